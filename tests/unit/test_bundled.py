from altcraft.bundled.badpass import BadPass
from altcraft.bundled.geodb import GeoDB
from altcraft.bundled.sexdb import SexDB
from altcraft.domain.errors import Invalid
from altcraft.domain.passwords import PasswordPolicy, hash_password, verify_password


def test_badpass_knows_common_passwords(tmp_path):
    badpass = BadPass()
    assert len(badpass) > 20_000
    assert badpass.contains("password123") and badpass.contains("QWERTY")
    assert not badpass.contains("Correct-Horse-Battery-9")
    extra = tmp_path / "leaked.txt"
    extra.write_text("Correct-Horse-Battery-9\n")
    assert BadPass(extra).contains("correct-horse-battery-9")


def test_password_policy_gives_reasons():
    policy = PasswordPolicy(BadPass(), min_length=10)
    for password, reason in (("password123", "too common"), ("short1!", "too short"),
                             ("alice-is-great-42", "must not contain the login")):
        try:
            policy.check(password, login="alice")
        except Invalid as exc:
            assert exc.field == "password" and reason in exc.reason
        else:
            raise AssertionError(f"{password!r} was accepted")
    assert policy.check("Correct-Horse-Battery-9", "alice")


def test_passwords_are_hashed_with_argon2():
    stored = hash_password("Correct-Horse-Battery-9")
    assert stored.startswith("$argon2id$") and "Correct" not in stored
    assert verify_password(stored, "Correct-Horse-Battery-9")
    assert not verify_password(stored, "correct-horse-battery-9")
    assert not verify_password("not-a-hash", "x")


def test_sexdb():
    sexdb = SexDB()
    assert sexdb.gender("John") == "m" and sexdb.gender("mary") == "f"
    assert sexdb.gender("Ольга") == "f" and sexdb.gender("Пётр") == "m" and sexdb.gender("Петр") == "m"
    assert sexdb.gender("Nikita") == "m"
    assert sexdb.gender("Zzyzx") is None and sexdb.gender("") is None


def test_sexdb_licensed_file_wins(tmp_path):
    extra = tmp_path / "names.tsv"
    extra.write_text("# name<TAB>gender\nandrea\tf\nzzyzx\tm\n")
    sexdb = SexDB(extra)
    assert sexdb.gender("Andrea") == "f" and sexdb.gender("Zzyzx") == "m"


def test_geodb_reads_dbip_lite_csv(tmp_path):
    path = tmp_path / "dbip-city-lite.csv"
    path.write_text(
        "1.0.0.0,1.0.0.255,OC,AU,Queensland,Brisbane,-27.4,153.0\n"
        "5.3.0.0,5.3.255.255,EU,RU,Tatarstan,Kazan,55.8,49.1\n"
        "2a00:1370::,2a00:1370:ffff:ffff:ffff:ffff:ffff:ffff,EU,RU,Moscow,Moscow,55.7,37.6\n"
    )
    geodb = GeoDB(path)
    assert len(geodb) == 3
    assert geodb.lookup("5.3.10.20").city == "Kazan" and geodb.lookup("5.3.10.20").country == "RU"
    assert geodb.lookup("2a00:1370::1").city == "Moscow"
    assert geodb.lookup("5.4.0.1") is None and geodb.lookup("not an ip") is None
    assert GeoDB().lookup("5.3.10.20") is None  # nothing bundled: no guess
