"""What the webcontrol tests share: two accounts with users of each kind, and a Flask test
client that signs in the way a browser does (the CSRF token read from the page)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field

PASSWORD = "Quartz-Meadow-Lantern-42"
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Tenant:
    account_id: int
    writer: str
    reader: str
    db_ids: list[int] = field(default_factory=list)
    profile_ids: list[str] = field(default_factory=list)
    segment_ids: list[int] = field(default_factory=list)
    template_ids: list[int] = field(default_factory=list)


def make_tenant(platform, databases: int = 1, profiles: int = 2, segments: int = 0,
                templates: int = 0) -> Tenant:
    """An account with an editor and a viewer, `databases` profile databases and profiles
    in the last one, segments of that database (everyone named Anna) and templates."""
    tag = uuid.uuid4().hex[:8]
    account = platform.accounts.save(name=f"acc-{tag}")
    writer, reader = f"editor-{tag}", f"viewer-{tag}"
    platform.users.add(account["id"], writer, PASSWORD, roles=["editor"], lang="en")
    platform.users.add(account["id"], reader, PASSWORD, roles=["viewer"], lang="en")
    tenant = Tenant(account["id"], writer, reader)
    dbs = platform.databases(account["id"])
    for index in range(databases):
        tenant.db_ids.append(dbs.add(f"db {tag} {index}").id)
    people = platform.profiles(account["id"], tenant.db_ids[-1])
    for index in range(profiles):
        tenant.profile_ids.append(people.add({"email": f"p{index}-{tag}@example.com",
                                              "first_name": "Anna"})["id"])
    for index in range(segments):
        tenant.segment_ids.append(platform.segments(account["id"]).add(
            f"seg {index}", tenant.db_ids[-1], {"field": "first_name", "op": "eq", "value": "Anna"})["id"])
    for index in range(templates):
        tenant.template_ids.append(platform.templates(account["id"]).add(
            f"tpl {index}", "Hello {{ first_name }}", "<p>Hello {{ first_name }}</p>")["id"])
    return tenant


def token_of(html: bytes | str) -> str:
    text = html.decode() if isinstance(html, bytes) else html
    match = _TOKEN.search(text)
    assert match, "no CSRF token on the page"
    return match.group(1)


def signin(client, login: str, password: str = PASSWORD) -> str:
    """Signs in; returns the session's CSRF token."""
    page = client.get("/signin")
    response = client.post("/signin", data={"login": login, "password": password,
                                            "csrf_token": token_of(page.data)})
    assert response.status_code == 302, (response.status_code, response.data[:400])
    return token_of(client.get("/databases").data)
