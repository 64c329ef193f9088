"""webadmin's second factor: after the password an enrolled administrator types a TOTP
code before any session opens; a code works once; wrong codes count against the sign-in
lock-out; with WEBADMIN_TOTP_REQUIRED an administrator without a key is enrolled first."""

from __future__ import annotations

import pytest

from altcraft import registry
from altcraft.web.admin import create_app
from tests.lib.race import at_once
from tests.lib.webpanel import PASSWORD, make_admin, token_of, totp_code

pytestmark = pytest.mark.integration


def _password(client, login: str):
    token = token_of(client.get("/signin").data)
    return client.post("/signin", data={"login": login, "password": PASSWORD, "csrf_token": token})


def _code(client, code: str, path: str = "/signin/code"):
    token = token_of(client.get(path).data)
    return client.post(path, data={"code": code, "csrf_token": token})


def _signout(client):
    client.post("/signout", data={"csrf_token": token_of(client.get("/accounts").data)})


def test_the_code_follows_the_password_and_works_once(config, platform):
    admin = make_admin(platform, totp=True)
    client = create_app(config, registry.get("webadmin")).test_client()
    response = _password(client, admin["login"])
    assert response.status_code == 302 and response.headers["Location"] == "/signin/code"
    assert client.get("/accounts").status_code == 302  # the password alone opens nothing
    code = totp_code(admin["totp_secret"])
    assert _code(client, code).status_code == 302
    assert client.get("/accounts").status_code == 200
    _signout(client)
    # the same code again (a replay, within its window): refused
    assert _password(client, admin["login"]).status_code == 302
    replay = _code(client, code)
    assert replay.status_code == 401 and b"Wrong or already used code." in replay.data
    assert client.get("/accounts").status_code == 302


def test_wrong_codes_lock_the_login(config, platform):
    admin = make_admin(platform, totp=True)
    client = create_app(config, registry.get("webadmin")).test_client()
    assert _password(client, admin["login"]).status_code == 302
    for attempt in range(5):
        assert _code(client, "000000" if totp_code(admin["totp_secret"]) != "000000" else "111111").status_code == 401
    locked = _code(client, totp_code(admin["totp_secret"]))
    assert locked.status_code == 429 and b"Too many failed sign-ins" in locked.data
    assert client.get("/accounts").status_code == 302
    # and the password step of that login is locked too
    assert _password(client, admin["login"]).status_code == 429


def test_required_totp_enrols_before_the_first_session(config, platform):
    required = config.model_copy(update={"WEBADMIN_TOTP_REQUIRED": True})
    admin = make_admin(platform)
    client = create_app(required, registry.get("webadmin")).test_client()
    response = _password(client, admin["login"])
    assert response.status_code == 302 and response.headers["Location"] == "/totp"
    assert client.get("/accounts").status_code == 302
    page = client.get("/totp").data.decode()
    assert 'src="data:image/svg+xml;base64,' in page
    secret = platform.admins.get(admin["id"])["totp_pending"]
    assert secret in page
    assert _code(client, "000000" if totp_code(secret) != "000000" else "111111", "/totp").status_code == 400
    code = totp_code(secret)
    assert _code(client, code, "/totp").status_code == 302
    assert client.get("/accounts").status_code == 200
    assert platform.admins.get(admin["id"])["totp_secret"] == secret
    _signout(client)
    # enrolled now: the code step follows; the enrolment's code is already used
    assert _password(client, admin["login"]).headers["Location"] == "/signin/code"
    assert _code(client, code).status_code == 401


def test_an_older_code_is_refused_after_a_newer_one(platform):
    """Within the drift window the previous step's code is still right; once the next
    step's code was used, it is refused (codes only move forward)."""
    import time

    import pyotp
    admin = make_admin(platform, totp=True)
    otp, step = pyotp.TOTP(admin["totp_secret"]), int(time.time() // 30)
    assert platform.admins.check_totp(admin["id"], otp.generate_otp(step + 1))
    assert not platform.admins.check_totp(admin["id"], otp.generate_otp(step + 1))
    assert not platform.admins.check_totp(admin["id"], otp.generate_otp(step))


def test_one_code_signs_in_once_when_sent_in_parallel(platform):
    """Eight requests with the same right code at the same moment (a double-clicked form, or a
    replayed request racing the real one): exactly one is accepted, in every round."""
    import time

    import pyotp
    admin = make_admin(platform, totp=True)
    otp = pyotp.TOTP(admin["totp_secret"])
    base = int(time.time() // 30)
    for offset in (0, 1):  # two rounds, each with a fresh step inside the drift window
        code = otp.generate_otp(base + offset)
        results = at_once(8, lambda _: platform.admins.check_totp(admin["id"], code))
        assert results.count(True) == 1, results
