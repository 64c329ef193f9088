"""Sign-in: five failed attempts lock the login, the sixth is refused even with the right
password; the count is shared by every worker (it lives in the Redis-protocol store) and the
lock ends by itself."""

from __future__ import annotations

import time

import pytest

from altcraft import registry
from altcraft.web.control import create_app
from tests.webpanel import PASSWORD, make_tenant, token_of

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
