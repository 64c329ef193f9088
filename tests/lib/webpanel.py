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
    import_ids: list[str] = field(default_factory=list)


def make_tenant(platform, databases: int = 1, profiles: int = 2, segments: int = 0,
                templates: int = 0, campaigns: tuple[str, ...] = (), imports: int = 0) -> Tenant:
    """An account with an editor and a viewer, `databases` profile databases and profiles
    in the last one, segments of that database (everyone named Anna) and templates; with
    `campaigns`, a sender of its own and a campaign of the last segment and template in each
    of those states (draft, scheduled or paused, reached by the domain's transitions); with
    `imports`, uploaded (not yet checked) import files of that database."""
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
    for _ in range(imports):
        tenant.import_ids.append(upload(platform, account["id"], tenant.db_ids[-1],
                                        f"email,first_name\nnew-{tag}@example.com,Olga\n")["_id"])
    return tenant


def upload(platform, account_id: int, db_id: int, text: str, name: str = "people.csv",
           user: str = "test") -> dict:
    """An import job as the panel's upload makes it (the file stored, its columns read)."""
    import io

    from altcraft.domain import importer
    from altcraft.domain.import_jobs import save_upload

    path, size, lines = save_upload(platform.config.imports_dir, name, io.BytesIO(text.encode()), 1 << 30)
    fmt = importer.detect_format(path)
    with path.open(encoding="utf-8", newline="" if fmt == "csv" else None) as handle:
        columns = importer.columns(handle, fmt)
    database = platform.databases(account_id).get(db_id)
    return platform.import_jobs(account_id).create(database, path, name, size, lines, columns, user)


def other_first(token: str) -> str:
    """The token with its first character changed: always a wrong token ("x" + token[1:] is
    the right one whenever the token starts with "x")."""
    return ("y" if token[0] == "x" else "x") + token[1:]


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


def people_csv(count: int, broken: int = 0, tag: str = "") -> tuple[str, list[int]]:
    """A CSV of `count` profiles (columns "E-mail", "Name", "city") with `broken` of them
    spread through the file carrying an e-mail that is not one; returns the text and the
    broken rows' line numbers (the header is line 1)."""
    tag = tag or uuid.uuid4().hex[:8]
    step = max(1, count // max(broken, 1))
    bad = {index for index in range(step // 2, count, step)}
    bad = set(sorted(bad)[:broken])
    lines = ["E-mail,Name,city"]
    for index in range(count):
        email = f"broken-{index}-at-{tag}" if index in bad else f"p{index}-{tag}@example.com"
        lines.append(f"{email},Anna {index},Kazan")
    return "\n".join(lines) + "\n", sorted(index + 2 for index in bad)


# -- webadmin ------------------------------------------------------------------------------
def make_admin(platform, totp: bool = False) -> dict:
    """A platform administrator of its own (login admin-<tag>, PASSWORD); with `totp`, enrolled
    (its secret under "totp_secret")."""
    from altcraft.domain import totp as otp
    admin, _ = platform.admins.ensure(f"admin-{uuid.uuid4().hex[:8]}", PASSWORD)
    if totp:
        secret = platform.admins.begin_totp(admin["id"])
        # a step well in the past: the codes the test types later are all newer
        platform.admins.collection.update_one({"id": admin["id"]}, {"$set": {
            "totp_secret": secret, "totp_step": 0}, "$unset": {"totp_pending": ""}})
    return platform.admins.get(admin["id"])


def totp_code(secret: str) -> str:
    """The code an authenticator app shows now for `secret` (computed with pyotp)."""
    import pyotp
    return pyotp.TOTP(secret).now()


def admin_signin(client, login: str, password: str = PASSWORD, secret: str | None = None) -> str:
    """Signs an administrator in to webadmin (with a TOTP code of `secret` when enrolled);
    returns the session's CSRF token."""
    page = client.get("/signin")
    response = client.post("/signin", data={"login": login, "password": password,
                                            "csrf_token": token_of(page.data)})
    assert response.status_code == 302, (response.status_code, response.data[:400])
    if secret is not None:
        assert response.headers["Location"].startswith("/signin/code"), response.headers["Location"]
        page = client.get("/signin/code")
        response = client.post("/signin/code", data={"code": totp_code(secret), "csrf_token": token_of(page.data)})
        assert response.status_code == 302, (response.status_code, response.data[:400])
    return token_of(client.get("/accounts").data)


def form_fields(html: bytes | str, testid: str) -> dict[str, str]:
    """What a browser would send for the form with data-testid=`testid` as the page gives it:
    inputs (checkboxes only when checked), the selected option of each select (the first when
    none is selected); buttons send nothing."""
    from html.parser import HTMLParser

    text = html.decode() if isinstance(html, bytes) else html

    class Reader(HTMLParser):
        def __init__(self):
            super().__init__(convert_charrefs=True)
            self.depth, self.fields, self.select, self.first = 0, {}, None, None

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag == "form" and a.get("data-testid") == testid:
                self.depth = 1
            elif not self.depth:
                return
            elif tag == "form":
                self.depth += 1
            elif tag == "input" and a.get("name"):
                if a.get("type") in ("checkbox", "radio") and "checked" not in a:
                    return
                self.fields[a["name"]] = a.get("value", "on" if a.get("type") == "checkbox" else "")
            elif tag == "select" and a.get("name"):
                self.select, self.first = a["name"], None
            elif tag == "option" and self.select:
                value = a.get("value", "")
                if self.first is None:
                    self.first = value
                    self.fields.setdefault(self.select, value)
                if "selected" in a:
                    self.fields[self.select] = value

        def handle_endtag(self, tag):
            if not self.depth:
                return
            if tag == "select":
                self.select = None
            elif tag == "form":
                self.depth -= 1

    reader = Reader()
    reader.feed(text)
    assert reader.fields, f"no form {testid!r} on the page"
    return reader.fields
