"""Sign-in: five failed attempts lock the login, the sixth is refused even with the right
password; the count is shared by every worker (it lives in the Redis-protocol store) and the
lock ends by itself."""

from __future__ import annotations

import time

import pytest

from altcraft import registry
from altcraft.web.control import create_app
from tests.lib.webpanel import PASSWORD, make_tenant, token_of

pytestmark = pytest.mark.integration


def _attempt(client, login: str, password: str):
    token = token_of(client.get("/signin").data)
    return client.post("/signin", data={"login": login, "password": password, "csrf_token": token})


def test_sixth_sign_in_is_refused_even_with_the_right_password(config, platform):
    tenant = make_tenant(platform, profiles=0)
    # two apps: as two gunicorn workers (or two panel hosts), each with its own connections
    first, second = (create_app(config, registry.get("webcontrol")) for _ in range(2))
    one, two = first.test_client(), second.test_client()
    for attempt in range(5):
        response = _attempt(one if attempt % 2 else two, tenant.writer, "Wrong-Password-123456")
        assert response.status_code == 401, attempt
        assert b"Wrong login or password." in response.data
    locked = _attempt(one, tenant.writer, PASSWORD)
    assert locked.status_code == 429
    assert b"Too many failed sign-ins" in locked.data
    assert one.get("/dashboard").status_code == 302  # not signed in
    assert _attempt(two, tenant.writer, PASSWORD).status_code == 429
    # another login is not affected
    assert _attempt(one, tenant.reader, PASSWORD).status_code == 302


def test_the_lock_ends_and_a_good_sign_in_resets_the_count(config, platform):
    tenant = make_tenant(platform, profiles=0)
    app = create_app(config, registry.get("webcontrol"))
    with app.app_context():
        throttle = app.extensions["altcraft_panel"].throttle
    throttle.window = 2  # seconds, instead of 15 minutes
    client = app.test_client()
    for _ in range(5):
        assert _attempt(client, tenant.writer, "Wrong-Password-123456").status_code == 401
    assert _attempt(client, tenant.writer, PASSWORD).status_code == 429
    deadline = time.monotonic() + 30
    while throttle.locked_for(tenant.writer) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _attempt(client, tenant.writer, PASSWORD).status_code == 302
    # the success cleared the count: four more failures do not lock
    client.post("/signout", data={"csrf_token": token_of(client.get("/databases").data)})
    for _ in range(4):
        assert _attempt(client, tenant.writer, "Wrong-Password-123456").status_code == 401
    assert _attempt(client, tenant.writer, PASSWORD).status_code == 302


def test_unknown_login_inactive_user_and_inactive_account_cannot_sign_in(config, platform):
    tenant = make_tenant(platform, profiles=0)
    client = create_app(config, registry.get("webcontrol")).test_client()
    assert _attempt(client, "nobody-" + tenant.writer, PASSWORD).status_code == 401
    user = platform.control.users.find_one({"login": tenant.reader})
    platform.users.update(user["id"], active=False)
    assert _attempt(client, tenant.reader, PASSWORD).status_code == 401
    platform.accounts.set_flag(tenant.account_id, "active", False)
    assert _attempt(client, tenant.writer, PASSWORD).status_code == 401


def test_a_signed_in_user_is_signed_out_when_deactivated(config, platform):
    tenant = make_tenant(platform, profiles=0)
    client = create_app(config, registry.get("webcontrol")).test_client()
    assert _attempt(client, tenant.writer, PASSWORD).status_code == 302
    assert client.get("/databases").status_code == 200
    user = platform.control.users.find_one({"login": tenant.writer})
    platform.users.update(user["id"], active=False)
    assert client.get("/databases").status_code == 302


def test_frozen_account_reads_but_does_not_change(config, platform):
    tenant = make_tenant(platform, profiles=0)
    client = create_app(config, registry.get("webcontrol")).test_client()
    assert _attempt(client, tenant.writer, PASSWORD).status_code == 302
    platform.accounts.set_flag(tenant.account_id, "frozen", True)
    page = client.get("/databases")
    assert page.status_code == 200 and b'data-testid="read-only"' in page.data
    response = client.post("/databases", data={"name": "x y", "csrf_token": token_of(page.data)})
    assert response.status_code == 403


def test_pages_follow_the_users_language(config, platform):
    tenant = make_tenant(platform, profiles=0)
    user = platform.control.users.find_one({"login": tenant.writer})
    platform.users.update(user["id"], lang="ru")
    client = create_app(config, registry.get("webcontrol")).test_client()
    anonymous = client.get("/signin", headers={"Accept-Language": "ru-RU,ru;q=0.9"})
    assert "Вход" in anonymous.data.decode() and 'lang="ru"' in anonymous.data.decode()
    assert "Sign in" in client.get("/signin", headers={"Accept-Language": "en"}).data.decode()
    assert _attempt(client, tenant.writer, PASSWORD).status_code == 302
    page = client.get("/databases", headers={"Accept-Language": "en"}).data.decode()  # the setting wins
    assert "Базы профилей" in page and "Выйти" in page


def test_password_change_follows_the_policy_and_ends_other_sessions(config, platform):
    tenant = make_tenant(platform, profiles=0)
    app = create_app(config, registry.get("webcontrol"))
    anonymous = app.test_client()
    assert anonymous.get("/password").headers["Location"].startswith("/signin")
    token = token_of(anonymous.get("/signin").data)
    assert anonymous.post("/password", data={"csrf_token": token}).headers["Location"].startswith("/signin")

    # a read-only user changes its own password; another session of it ends
    mine, other = app.test_client(), app.test_client()
    assert _attempt(mine, tenant.reader, PASSWORD).status_code == 302
    assert _attempt(other, tenant.reader, PASSWORD).status_code == 302
    token = token_of(mine.get("/password").data)
    new = "Violet-Harbour-Compass-77"
    stored = platform.control.users.find_one({"login": tenant.reader})["password_hash"]

    def change(current, password, repeat=None, with_token=True):
        data = {"current": current, "new": password, "repeat": password if repeat is None else repeat}
        return mine.post("/password", data={**data, "csrf_token": token} if with_token else data)

    assert change(PASSWORD, new, with_token=False).status_code == 400
    wrong = change("Not-The-Password-000", new)
    assert wrong.status_code == 400 and b"The current password is wrong." in wrong.data
    assert change(PASSWORD, new, repeat=new + "x").status_code == 400
    weak = change(PASSWORD, "short")
    assert weak.status_code == 400 and b"too short" in weak.data
    assert platform.control.users.find_one({"login": tenant.reader})["password_hash"] == stored
    done = change(PASSWORD, new)
    assert done.status_code == 200 and b'data-testid="password-changed"' in done.data

    assert mine.get("/databases").status_code == 200     # this session goes on
    assert other.get("/databases").status_code == 302    # the other one is ended
    assert _attempt(app.test_client(), tenant.reader, PASSWORD).status_code == 401
    assert _attempt(app.test_client(), tenant.reader, new).status_code == 302


def test_htmx_request_of_a_signed_out_user_redirects_the_whole_page(config, platform):
    tenant = make_tenant(platform)
    client = create_app(config, registry.get("webcontrol")).test_client()
    response = client.get(f"/databases/{tenant.db_ids[0]}/profiles?email=p", headers={"HX-Request": "true"})
    assert response.status_code == 204 and response.headers["HX-Redirect"] == "/signin"
