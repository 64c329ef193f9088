"""trkaction under akd (gunicorn) against the real broker, ClickHouse and document store:
clicks, the pixel, tampered tokens, unsubscribe (page and RFC 8058 one-click), the
subscription manager with CSRF, the web version of a sent campaign, and events surviving a
broker outage through the spool."""

from __future__ import annotations

import email
import json
import re
import time
import urllib.parse
from unittest import mock

import pytest

from altcraft.stores import broker
from altcraft.wiring import Platform
from tests.lib.ports import free_port
from tests.lib.stand import campaign_id, http
from tests.lib.wait import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@pytest.fixture
def people(stand):
    """An account with a profile database of three subscribed profiles."""
    platform = Platform(stand.config)
    account = platform.accounts.save(name=f"trk{campaign_id()}")
    database = platform.databases(account["id"]).add("readers", "email")
    profiles = platform.profiles(account["id"], database.id)
    added = [profiles.add({"email": f"reader{i}@example.com"},
                          [{"resource_id": 1, "channel": "email", "status": "subscribed"}]) for i in range(3)]
    yield account["id"], database.id, profiles, [p["id"] for p in added]
    platform.close()


def status_of(profiles, profile_id: str, resource_id: int = 1) -> str:
    subscriptions = profiles.get(profile_id=profile_id)["subscriptions"]
    return next(s["status"] for s in subscriptions if s["resource_id"] == resource_id)


def test_click_pixel_and_tampered_tokens(stand, people):
    account_id, db_id, _, ids = people
    campaign = campaign_id()
    stand.start("trkaction")
    assert http(f"{stand.base}/trkaction/health")[2] == b"OK"
    assert json.loads(http(f"{stand.base}/trkaction/readiness")[2]) == {"status": "OK"}

    target = "https://shop.example/sale?utm=mail&ü=1"
    click = stand.link("click", account_id, db_id, campaign, ids[0], link_id=3, target=target)
    pixel = stand.link("open", account_id, db_id, campaign, ids[0])
    token = click.rsplit("/", 1)[1]
    bad = [click[:-1], click + "A", click[:-20], stand.link("click", account_id, db_id, campaign, ids[0],
                                                           link_id=3, target=target, issued=int(time.time()) - 500 * 86400),
           pixel.replace("/o/", "/c/").removesuffix(".gif"),  # a real token of the wrong kind
           stand.link("click", account_id, db_id, campaign, ids[0], link_id=1, target="javascript:alert(1)")]
    for position in (0, 5, len(token) // 2, len(token) - 1):  # one changed character
        changed = next(c for c in ALPHABET if c != token[position])
        bad.append(f"{stand.base}/c/{token[:position]}{changed}{token[position + 1:]}")
    bad.append(pixel[:-10] + ("A" if pixel[-10] != "A" else "B") + pixel[-9:])

    # nothing consumes the queue yet: its depth shows every event trkaction publishes
    before = stand.depth("events.actions")
    for url in bad:
        status = http(url, headers={"User-Agent": BROWSER})[0]
        assert status in (400, 404), (url, status)
    time.sleep(1.5)  # longer than the publisher needs to flush anything it had accepted
    assert stand.depth("events.actions") == before

    status, headers, _ = http(click, headers={"User-Agent": BROWSER})
    assert status == 302 and headers["Location"] == "https://shop.example/sale?utm=mail&%C3%BC=1"
    status, headers, body = http(pixel, headers={"User-Agent": BROWSER})
    assert status == 200 and headers["Content-Type"] == "image/gif" and body[:6] == b"GIF89a"
    assert "no-store" in headers["Cache-Control"]
    assert http(click, method="HEAD", headers={"User-Agent": BROWSER})[0] == 302  # recorded, flagged
    wait_for(lambda: stand.depth("events.actions") >= before + 3, what="the three events in the queue")

    stand.start("procactions")
    where = "account_id = %(a)s AND campaign_id = %(c)s"
    params = {"a": account_id, "c": campaign}
    wait_for(lambda: stand.rows(where, params) >= 3, what="events in ClickHouse")
    time.sleep(1.5)
    rows = stand.query("SELECT kind, link_id, url, profile_id, db_id, is_bot, bot_reason, user_agent "
                       "FROM {events} WHERE " + where + " ORDER BY kind, is_bot", params)
    assert rows == [
        ("click", 3, target, ids[0], db_id, 0, "", BROWSER),
        ("click", 3, target, ids[0], db_id, 1, "head", BROWSER),
        ("open", 0, "", ids[0], db_id, 0, "", BROWSER),
    ]
    metrics = http(f"{stand.base}/metrics")[2].decode()
    assert re.search(r'altcraft_http_requests_total\{endpoint="/c/<token>",method="GET",service="trkaction",'
                     r'status="404"\} (\d+)', metrics).group(1) == str(len(bad) - 1)
    assert 'altcraft_trk_events_total{outcome="confirmed"} 3.0' in metrics


def _form(body: bytes) -> dict:
    text = body.decode()
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', text))


def _cookie(headers) -> str:
    return headers["Set-Cookie"].split(";", 1)[0]


def test_unsubscribe_page_one_click_and_csrf(stand, people):
    account_id, db_id, profiles, ids = people
    campaign = campaign_id()
    stand.start("trkaction", "procactions")
    page = stand.link("unsubscribe", account_id, db_id, campaign, ids[0])

    # GET only shows the confirmation: link scanners fetch every URL of a message
    status, headers, body = http(page, headers={"User-Agent": BROWSER})
    assert status == 200 and b'<form method="post" id="unsubscribe">' in body
    assert "HttpOnly" in headers["Set-Cookie"] and "SameSite=Lax" in headers["Set-Cookie"]
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    csrf, cookie = _form(body)["csrf"], _cookie(headers)
    assert status_of(profiles, ids[0]) == "subscribed"

    form = urllib.parse.urlencode({"csrf": csrf}).encode()
    form_type = {"Content-Type": "application/x-www-form-urlencoded"}
    # no cookie (a cross-site post), a wrong token, a foreign origin: refused, nothing changes
    assert http(page, "POST", form, form_type)[0] == 403
    assert http(page, "POST", urllib.parse.urlencode({"csrf": "0" * 32}).encode(),
                {**form_type, "Cookie": cookie})[0] == 403
    assert http(page, "POST", form, {**form_type, "Cookie": cookie, "Origin": "https://evil.example"})[0] == 403
    assert status_of(profiles, ids[0]) == "subscribed"

    status, _, body = http(page, "POST", form, {**form_type, "Cookie": cookie, "Origin": stand.base})
    assert status == 200 and b"You are unsubscribed" in body
    assert status_of(profiles, ids[0]) == "unsubscribed"  # applied at once, not only via the broker
    manage = re.search(rb'href="([^"]+)" id="manage"', body).group(1).decode()
    assert manage.startswith(f"{stand.base}/m/")

    # RFC 8058 one-click: what a mail provider posts, no cookie, no page
    one_click = stand.link("unsubscribe", account_id, db_id, campaign, ids[1])
    status, _, body = http(one_click, "POST", b"List-Unsubscribe=One-Click", form_type)
    assert (status, body) == (200, b"unsubscribed\n")
    assert status_of(profiles, ids[1]) == "unsubscribed"
    assert status_of(profiles, ids[2]) == "subscribed"

    # a tampered unsubscribe link changes nothing
    tampered = one_click[:-3] + ("AAA" if not one_click.endswith("AAA") else "BBB")
    assert http(tampered, "POST", b"List-Unsubscribe=One-Click", form_type)[0] == 404

    where = "account_id = %(a)s AND campaign_id = %(c)s AND kind = 'unsubscribe'"
    wait_for(lambda: stand.rows(where, {"a": account_id, "c": campaign}, "uniqExact(event_id)") == 2,
             what="two unsubscribe events in ClickHouse")
    assert sorted(r[0] for r in stand.query("SELECT profile_id FROM {events} WHERE " + where,
                                            {"a": account_id, "c": campaign})) == sorted(ids[:2])

    # the subscription manager from the confirmation page: resubscribe, with CSRF
    status, headers, body = http(manage, headers={"User-Agent": BROWSER})
    assert status == 200 and b'value="unsubscribed" checked' in body and b"r***@example.com" in body
    fields = {"csrf": _form(body)["csrf"], "status_email": "subscribed"}
    assert http(manage, "POST", urllib.parse.urlencode({**fields, "csrf": "x"}).encode(),
                {**form_type, "Cookie": _cookie(headers)})[0] == 403
    assert status_of(profiles, ids[0]) == "unsubscribed"
    status, _, body = http(manage, "POST", urllib.parse.urlencode(fields).encode(),
                           {**form_type, "Cookie": _cookie(headers)})
    assert status == 200 and b"Your choice is saved." in body and b'value="subscribed" checked' in body
    assert status_of(profiles, ids[0]) == "subscribed"
    wait_for(lambda: stand.rows("account_id = %(a)s AND campaign_id = %(c)s AND kind = 'subscribe'",
                                {"a": account_id, "c": campaign}) == 1, what="the subscribe event")
    time.sleep(1.5)  # procactions applies the events again: the latest state stays
    assert status_of(profiles, ids[0]) == "subscribed"

    webversion = stand.link("webversion", account_id, db_id, campaign, ids[0])
    assert http(webversion)[0] == 404  # no such campaign (the web version is tested below)
    assert http(webversion[:-2] + "zz")[0] == 404


def test_events_survive_a_broker_outage_through_the_spool(stand, people, harness, basedir):
    """Broker unreachable: clicks still redirect; SIGTERM spools what was accepted; the next
    start (broker back) publishes the spool, and every click reaches ClickHouse once."""
    account_id, db_id, _, ids = people
    campaign = campaign_id()
    good = stand.path.read_text()
    broken = json.loads(good)
    broken["RABBITMQ_PORT"] = free_port()  # nothing listens there
    stand.path.write_text(json.dumps(broken))
    stand.start("trkaction")
    links = [stand.link("click", account_id, db_id, campaign, pid, link_id=1, target="https://shop.example/")
             for pid in ids]
    for url in links * 5:
        assert http(url, headers={"User-Agent": BROWSER})[0] == 302
    assert json.loads(http(f"{stand.base}/trkaction/readiness")[2]) == {"status": "FAIL", "failed": ["rabbitmq"]}
    stand.stop("trkaction")
    spool = stand.config.run_dir / "trk" / "trkaction"
    spooled = sum(len(p.read_text().splitlines()) for p in spool.glob("*.jsonl"))
    assert spooled == 15

    stand.path.write_text(good)
    stand.start("trkaction", "procactions")
    where = "account_id = %(a)s AND campaign_id = %(c)s"
    wait_for(lambda: stand.rows(where, {"a": account_id, "c": campaign}, "uniqExact(event_id)") == 15,
             timeout=60, what="the 15 spooled clicks in ClickHouse")
    wait_for(lambda: not list(spool.iterdir()), what="the spool to be emptied")
    time.sleep(2)
    assert stand.rows(where, {"a": account_id, "c": campaign}, "uniqExact(event_id)") == 15


WEB_HTML = ('<html><body><p>Hello {{ first_name }}!</p><a href="https://shop.example/sale?id=1">Sale</a> '
            '<a href="https://shop.example/about">About</a></body></html>')


def _sent_messages(stand, queue: str, count: int) -> dict[str, email.message.Message]:
    """The messages the campaign worker published for the MTA, by recipient (nothing consumes them)."""
    def depth() -> int:
        with broker.Broker(stand.config, app="altcraft-test") as mq:
            # 0 while the worker has not declared the queue yet
            return mq.queue_depth(queue) if mq.exists("queue", queue) else 0

    wait_for(lambda: depth() >= count, timeout=60, what=f"{count} messages on {queue}")
    found: dict[str, email.message.Message] = {}
    with broker.Broker(stand.config, app="altcraft-test") as mq:
        def take(message: broker.Received) -> None:
            if len(found) < count:  # the rest stay in the queue
                found[message.headers["rcpt"]] = email.message_from_bytes(message.body)
                mq.ack(message.tag)

        mq.consume(queue, take)
        wait_for(lambda: mq.poll(0.1) or len(found) >= count, what=f"{count} messages from {queue}")
    return found


def _part(message, ctype: str) -> str:
    return next(p for p in message.walk() if p.get_content_type() == ctype).get_payload(decode=True).decode()


def test_web_version_of_a_sent_campaign(stand):
    """The campaign worker sends; the web-version URL of each message shows that profile's
    message as sent (same signed links, no pixel), the template as it was at the launch,
    nothing of another account, and records nothing; bad tokens and methods are refused."""
    platform = Platform(stand.config)
    try:
        accounts = []
        for tag, names in (("a", ("Anna", "Boris")), ("b", ("Vera",))):
            account = platform.accounts.save(name=f"web{tag}{campaign_id()}")
            database = platform.databases(account["id"]).add("readers", "email")
            profiles = platform.profiles(account["id"], database.id)
            ids = [profiles.add({"email": f"{n.lower()}.{account['id']}@example.com", "first_name": n},
                                [{"resource_id": 1, "channel": "email", "status": "subscribed"}])["id"]
                   for n in names]
            template = platform.templates(account["id"]).add(
                "news", "News for {{ first_name }}", WEB_HTML.replace("Hello", f"Hello from {tag.upper()},"),
                "Hello {{ first_name }}. Online: {{ webversion_url }}")
            segment = platform.segments(account["id"]).add("all", database.id, {})
            sender = platform.senders.save(name=f"news{tag}", from_email=f"news@{tag}.example")
            platform.senders.assign(sender["id"], account["id"])
            campaign = platform.campaigns.add(account["id"], "news", database.id, segment["id"], template["id"],
                                              sender["id"])
            accounts.append({"id": account["id"], "db": database.id, "profiles": profiles, "ids": ids,
                             "template": template["id"], "campaign": campaign["id"], "sender": sender["id"]})
        a, b = accounts
        stand.start("trkaction", "campaign")
        platform.campaigns.start(a["id"], a["campaign"])
        sent = _sent_messages(stand, f"akmta_{a['sender']}", 2)
        wait_for(lambda: platform.campaigns.get(a["id"], a["campaign"])["state"] == "finished",
                 what="campaign A to finish")
        anna = sent[f"anna.{a['id']}@example.com"]
        web = re.search(r"Online: (\S+)", _part(anna, "text/plain")).group(1)
        assert web.startswith(f"{stand.base}/w/")
        html = _part(anna, "text/html")
        pixel = re.search(r'<img src="[^"]+/o/[^"]+\.gif"[^>]*>', html).group(0)

        before = stand.depth("events.actions")
        status, headers, body = http(web, headers={"User-Agent": BROWSER})
        page = body.decode()
        assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
        assert page == html.replace(pixel, "")  # the e-mail's HTML: same personalisation and signed links
        assert "Hello from A, Anna!" in page and "Boris" not in page and "/o/" not in page
        csp = headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "sandbox" in csp and "script-src" not in csp
        assert headers["X-Content-Type-Options"] == "nosniff" and headers["Referrer-Policy"] == "no-referrer"
        assert "no-store" in headers["Cache-Control"] and "private" in headers["Cache-Control"]
        status, headers, body = http(web, "HEAD")
        assert status == 200 and body == b"" and headers["Content-Type"].startswith("text/html")
        # account_id comes from the token only: the query string changes nothing
        assert http(f"{web}?account_id={b['id']}&campaign_id={b['campaign']}")[2].decode() == page

        # the template edited after the send: the web version shows what was sent
        platform.templates(a["id"]).update(a["template"], html="<p>EDITED {{ first_name }}</p>")
        assert http(web)[2].decode() == page
        boris = http(re.search(r"Online: (\S+)", _part(sent[f"boris.{a['id']}@example.com"], "text/plain"))
                     .group(1))[2].decode()
        assert "Hello from A, Boris!" in boris and "Anna" not in boris and "EDITED" not in boris

        # its links are the e-mail's click links: a click there is a click
        click = re.search(r'href="([^"]+/c/[^"]+)"', page).group(1)
        time.sleep(1.5)  # anything the views had published would be in the queue by now
        assert stand.depth("events.actions") == before  # viewing recorded nothing
        status, headers, _ = http(click, headers={"User-Agent": BROWSER})
        assert status == 302 and headers["Location"] == "https://shop.example/sale?id=1"
        wait_for(lambda: stand.depth("events.actions") == before + 1, what="the click event")

        # refused like /c and /o: nothing shown, nothing recorded
        token = web.rsplit("/", 1)[1]
        for position in (0, len(token) // 2, len(token) - 1):
            changed = next(c for c in ALPHABET if c != token[position])
            assert http(f"{stand.base}/w/{token[:position]}{changed}{token[position + 1:]}") \
                == (404, mock.ANY, b"not found\n")
        assert http(web.replace("/w/", "/c/"))[0] == 404  # a web-version token is not a click
        assert http(stand.link("webversion", a["id"], a["db"], a["campaign"], a["ids"][0],
                               issued=int(time.time()) - 500 * 86400))[0] == 404  # expired
        assert http(web, "POST", b"x=1")[0] == 405

        # tenant isolation: a token naming account A reaches only A's campaign and profiles
        for other in (stand.link("webversion", a["id"], a["db"], b["campaign"], a["ids"][0]),
                      stand.link("webversion", a["id"], b["db"], a["campaign"], b["ids"][0]),
                      stand.link("webversion", a["id"], a["db"], a["campaign"], b["ids"][0]),
                      stand.link("webversion", b["id"], b["db"], a["campaign"], b["ids"][0])):
            status, _, body = http(other)
            assert status == 404 and b"Vera" not in body and b"Anna" not in body and b"Hello" not in body, other
        # B's campaign never sent (no snapshot): its web version is its current template
        status, _, body = http(stand.link("webversion", b["id"], b["db"], b["campaign"], b["ids"][0]))
        assert status == 200 and b"Hello from B, Vera!" in body and b"Anna" not in body

        # a deleted profile or campaign: a short page, 404
        a["profiles"].collection.delete_one({"_id": a["ids"][1]})
        sent_boris = re.search(r"Online: (\S+)", _part(sent[f"boris.{a['id']}@example.com"], "text/plain")).group(1)
        status, headers, body = http(sent_boris)
        assert status == 404 and b"no longer available" in body and b"Boris" not in body
        platform.campaigns.delete(a["id"], a["campaign"])
        status, _, body = http(web)
        assert status == 404 and b"no longer available" in body and b"Anna" not in body
        time.sleep(1.5)
        assert stand.depth("events.actions") == before + 1  # only the one click
    finally:
        platform.close()
