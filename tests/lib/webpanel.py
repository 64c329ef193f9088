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
    sender_id: int | None = None
    campaign_ids: list[int] = field(default_factory=list)


def make_tenant(platform, databases: int = 1, profiles: int = 2, segments: int = 0,
                templates: int = 0, campaigns: tuple[str, ...] = ()) -> Tenant:
    """An account with an editor and a viewer, `databases` profile databases and profiles
    in the last one, segments of that database (everyone named Anna) and templates; with
    `campaigns`, a sender of its own and a campaign of the last segment and template in each
    of those states (draft, scheduled or paused, reached by the domain's transitions)."""
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
    if campaigns:
        sender = platform.senders.save(name=f"news {tag}", from_email=f"news@{tag}.example",
                                       dkim_algorithm="none")
        platform.senders.assign(sender["id"], account["id"])
        tenant.sender_id = sender["id"]
    steps = {"draft": (), "scheduled": ("start",), "paused": ("start", "pause")}
    for state in campaigns:
        # far in the future: no worker ever claims these
        doc = platform.campaigns.add(account["id"], f"camp {state}", tenant.db_ids[-1], tenant.segment_ids[-1],
                                     tenant.template_ids[-1], sender_id=tenant.sender_id,
                                     schedule={"type": "once", "at": "2099-01-01T00:00:00Z"})
        for step in steps[state]:
            getattr(platform.campaigns, step)(account["id"], doc["id"])
        tenant.campaign_ids.append(doc["id"])
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
