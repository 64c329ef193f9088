"""The manifest rules of altcraft.backup: complete only with a manifest written last and
atomically, every file checked, order-independent checksums; and the TSV value format."""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import os
import uuid
from pathlib import Path

import pytest

from altcraft.backup import clickhouse, manifest, runner
from altcraft.backup.digest import SumDigest


def _backup(root: Path, files: dict[str, bytes], finished: str = "2026-11-30T01:00:00Z") -> Path:
    root.mkdir(parents=True)
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    manifest.write_atomic(root, {
        "format": manifest.FORMAT, "platform_version": "0.1.0", "started_at": finished, "finished_at": finished,
        "stores": {}, "files": {r: e.as_dict() for r, e in manifest.hash_files(root).items()}})
    return root


def test_sum_digest_ignores_order_but_not_content_or_multiplicity():
    a, b, c = SumDigest(), SumDigest(), SumDigest()
    for record in (b"x", b"y", b"z"):
        a.add(record)
    for record in (b"z", b"x", b"y"):
        b.add(record)
    for record in (b"x", b"y", b"y"):
        c.add(record)
    assert a.as_dict() == b.as_dict() and a.count == 3
    assert c.hexdigest() != a.hexdigest()


def test_a_directory_without_manifest_is_incomplete_and_a_complete_one_verifies(tmp_path):
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / manifest.LOCK).write_text("123\n")
    assert manifest.state(partial) == "incomplete"
    with pytest.raises(manifest.ManifestError, match="incomplete"):
        manifest.load(partial)
    done = _backup(tmp_path / "done", {"a/b.bson": b"\x05\x00\x00\x00\x00", "c.tsv": b"1\t2\n"})
    assert manifest.state(done) == "complete"
    assert manifest.check_files(done, manifest.load(done)) == []
    assert not list(done.glob("manifest.json.*"))  # no temporary file left


def test_check_files_names_each_damaged_missing_or_unlisted_file(tmp_path):
    root = _backup(tmp_path / "b", {"one.tsv": b"abc\n", "two.tsv": b"defg\n", "three.tsv": b"x\n"})
    data = bytearray((root / "one.tsv").read_bytes())
    data[1] ^= 0x01
    (root / "one.tsv").write_bytes(bytes(data))  # same size, one bit
    (root / "two.tsv").write_bytes(b"de\n")
    (root / "three.tsv").unlink()
    (root / "stray").write_bytes(b"?")
    problems = {p.path: p.message for p in manifest.check_files(root, manifest.load(root))}
    assert set(problems) == {"one.tsv", "two.tsv", "three.tsv", "stray"}
    assert "SHA-256" in problems["one.tsv"] and "size 3" in problems["two.tsv"]
    assert problems["three.tsv"] == "missing" and problems["stray"] == "not in the manifest"


def test_a_manifest_of_another_format_or_truncated_is_refused(tmp_path):
    root = _backup(tmp_path / "b", {"x": b"1"})
    text = (root / manifest.MANIFEST).read_text()
    (root / manifest.MANIFEST).write_text(text[: len(text) // 2])
    assert manifest.state(root) == "damaged"
    (root / manifest.MANIFEST).write_text(json.dumps({"format": 99}))
    with pytest.raises(manifest.ManifestError, match="format"):
        manifest.load(root)


def _hold_lock(path: str, ready, release) -> None:
    lock = manifest.RunLock(Path(path))
    lock.acquire()
    ready.set()
    release.wait(10)


def test_the_lock_says_running_only_while_its_process_lives(tmp_path):
    root = tmp_path / "run"
    root.mkdir()
    ready, release = multiprocessing.Event(), multiprocessing.Event()
    proc = multiprocessing.Process(target=_hold_lock, args=(str(root), ready, release))
    proc.start()
    assert ready.wait(10)
    assert manifest.state(root) == "running"
    with pytest.raises(manifest.ManifestError, match="another backup"):
        manifest.RunLock(root).acquire()
    proc.kill()  # SIGKILL: the kernel drops the flock with the process
    proc.join()
    assert manifest.state(root) == "incomplete"


def test_prune_keeps_the_newest_complete_and_removes_dead_runs(tmp_path):
    now = dt.datetime.now(dt.timezone.utc)
    stamps = [(now - dt.timedelta(days=d)).strftime("%Y-%m-%dT%H:%M:%SZ") for d in (30, 10, 1)]
    for name, stamp in zip(("old", "mid", "new"), stamps):
        _backup(tmp_path / name, {"f": name.encode()}, stamp)
    dead = tmp_path / "dead"
    dead.mkdir()
    (dead / manifest.LOCK).write_text("1\n")
    (tmp_path / "not-a-backup").mkdir()
    assert sorted(Path(p).name for p in runner.prune(tmp_path, keep=2, dry_run=True)) == ["dead", "old"]
    assert sorted(Path(p).name for p in runner.prune(tmp_path, days=5, dry_run=True)) == ["dead", "mid", "old"]
    # even --days 0 leaves the newest complete backup
    removed = runner.prune(tmp_path, days=0)
    assert sorted(Path(p).name for p in removed) == ["dead", "mid", "old"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new", "not-a-backup"]


@pytest.mark.parametrize("kind, value", [
    ("String", "tab\there\nnew line \\ backslash \x00 nul \r cr".encode()),
    ("String", "caf\u00e9".encode() + b"\xff\xfe raw bytes"),
    ("LowCardinality(String)", b"open"),
    ("Nullable(String)", None),
    ("Nullable(String)", b"\\N"),
    ("UUID", uuid.UUID("12345678-1234-4234-8234-123456789abc")),
    ("DateTime", dt.datetime(2026, 11, 30, 1, 2, 3)),
    ("Date", dt.date(2026, 11, 30)),
    ("UInt64", 2**64 - 1),
    ("Int32", -5),
    ("Float64", 0.1),
])
def test_tsv_values_come_back_equal(kind, value):
    text = clickhouse.to_text(kind, value)
    assert "\t" not in text and "\n" not in text
    assert clickhouse.from_text(kind, text) == value


def test_column_types_without_a_restore_path_are_refused():
    assert clickhouse.supported("LowCardinality(String)") and clickhouse.supported("Nullable(UInt32)")
    assert not clickhouse.supported("Array(String)") and not clickhouse.supported("Map(String, String)")


def test_the_partition_expression_is_read_from_show_create():
    create = ("CREATE TABLE db.events ( `event_id` UUID) ENGINE = ReplacingMergeTree() "
              "PARTITION BY toYYYYMM(event_date) ORDER BY (account_id, event_id) SETTINGS index_granularity = 8192")
    assert clickhouse._partition_expr(create) == "toYYYYMM(event_date)"
    assert clickhouse._partition_expr("CREATE TABLE db.t (x UInt8) ENGINE = MergeTree ORDER BY x") is None


def test_secrets_are_owner_only(tmp_path):
    from altcraft.backup import files

    main = tmp_path / "main.json"
    main.write_text("{}")
    os.chmod(main, 0o644)
    section = files.dump_secrets(main, [], tmp_path / "secrets")
    assert (tmp_path / "secrets").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "secrets" / "main.json").stat().st_mode & 0o777 == 0o600
    assert files.check_secrets(tmp_path / "secrets", section) == []
    os.chmod(tmp_path / "secrets" / "main.json", 0o644)
    assert files.check_secrets(tmp_path / "secrets", section)[0][1].startswith("mode 0o644")


def test_datetimes_follow_the_target_servers_time_zone():
    shift = clickhouse._zone_shift("Europe/Moscow", "Etc/UTC")
    convert = clickhouse._converters([("t", "DateTime"), ("n", "Nullable(DateTime)"), ("s", "String")], shift)
    assert convert[0]("2026-11-30 04:00:00") == dt.datetime(2026, 11, 30, 1, 0, 0)
    assert convert[1]("\\N") is None and convert[1]("2026-11-30 04:00:00") == dt.datetime(2026, 11, 30, 1)
    assert convert[2]("2026-11-30 04:00:00") == b"2026-11-30 04:00:00"
    assert clickhouse._zone_shift("Etc/UTC", "Etc/UTC") is None and clickhouse._zone_shift(None, "Etc/UTC") is None


@pytest.mark.parametrize("kind, text", [
    ("DateTime", "2026-11-30T04:00:00"), ("DateTime", "2026-11-30 04:00:00+03:00"), ("DateTime", "2026-11-30"),
    ("Date", "20261130"), ("Nullable(DateTime)", "2026-11-30 04:00"), ("UInt8", "x"), ("UUID", "not-a-uuid"),
])
def test_a_field_the_dump_never_writes_is_not_read(kind, text):
    """The per-type parsers built once (clickhouse.parser) stay as strict as the one text
    form the dump writes: verify must find a damaged field."""
    with pytest.raises(ValueError):
        clickhouse.from_text(kind, text)
