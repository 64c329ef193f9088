"""A test campaign on an installed platform, checked at the receiving end.

Run inside the host with the platform's own Python (it has dkimpy):
    /opt/akd/ak/bin/python ALTCRAFT_ADMIN_TOKEN=TOKEN campaign_smoke.py --api-port 8801 --sink-port 2525

It starts an SMTP sink on <sink-host>:<sink-port> (main.json routes the domain sink.test
there: MTA.ROUTES; on two hosts the sending server's akmtad connects to it from one of the
sender's IPs, --sender-ips, and the sink checks the connection's source address is one of
them), then, through the HTTP API only: an account and its token, a sender with
an RSA DKIM key assigned to it, a profile database with one subscribed profile, a segment, a
template with a link, a campaign started now. It waits for the message in the sink and
checks it: addressed to the profile, personalised, its DKIM signature verifies against the
DNS record the API returned, the link was rewritten into a tracking link. Then it waits for
campaigns/report to count the delivery (akmtad -> RabbitMQ -> procactions -> ClickHouse).
Last, the admin API's queue counts (`admin/senders/queue/stats/`) must answer: the control
server reaches the sending server's akmtad control port on its private address, with the token.
With --click-via (nginx-trk's address), the message's link is then clicked through it as a
mail client does (no redirect followed): the answer must be the 302 to the template's URL, it
must come from the compiled front when --front-metrics names trkfront's /metrics (its count of
accepted events goes up by one), and campaigns/report must count the click (trkfront ->
trkaction's journal -> its relay -> RabbitMQ -> procactions -> ClickHouse).
Prints one JSON line, with the message's tracking link (tests/distribution/move_container.py
clicks it on another host); exit 0 when everything held, 1 otherwise (the line says what failed).
"""

from __future__ import annotations

import argparse
import email
import json
import os
import re
import socketserver
import ssl
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from html import unescape
from urllib.parse import urlsplit

import dkim

RECEIVED: list[bytes] = []
PEERS: list[str] = []  # the source address of each message's connection


class SinkHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP to take mail: no extensions, so the client sends one command at a time."""

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self) -> None:
        self.reply("220 sink.test ESMTP smoke sink")
        while True:
            line = self.rfile.readline()
            if not line:
                return
            verb = line.strip().split(b" ", 1)[0].split(b":", 1)[0].upper()
            if verb == b"EHLO":
                self.reply("250 sink.test")
            elif verb in (b"HELO", b"MAIL", b"RCPT", b"RSET", b"NOOP"):
                self.reply("250 ok")
            elif verb == b"DATA":
                self.reply("354 go ahead")
                lines = []
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    lines.append(chunk[1:] if chunk.startswith(b"..") else chunk)
                PEERS.append(self.client_address[0])
                RECEIVED.append(b"".join(lines))
                self.reply("250 queued")
            elif verb == b"QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("502 not implemented")


class Api:
    def __init__(self, port: int):
        self.base = f"http://127.0.0.1:{port}/api/v1.1/"

    def __call__(self, method: str, **params):
        request = urllib.request.Request(self.base + method, data=json.dumps(params).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read())
        if body.get("error") != 0:
            raise RuntimeError(f"{method}: {body.get('error_text')}")
        return body["data"]


def wait_for(what: str, probe, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.5)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def click(url: str) -> tuple[int, str | None]:
    """GET as a mail client's browser does, the redirect not followed; nginx's certificate is
    the self-signed one the role made."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    opener = urllib.request.build_opener(_NoRedirect, urllib.request.HTTPSHandler(context=context))
    request = urllib.request.Request(url, headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"})
    try:
        with opener.open(request, timeout=15) as response:
            return response.status, response.headers.get("Location")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Location")


def front_counts(url: str) -> tuple[int, int]:
    """trkfront's count of events it wrote and of answers its fast path gave
    (altcraft_trkfront_events_total{outcome="accepted"}, altcraft_trkfront_answers_total{server="fast"})."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    accepted = re.search(r'^altcraft_trkfront_events_total\{outcome="accepted"\} (\d+)$', text, re.M)
    fast = re.search(r'^altcraft_trkfront_answers_total\{server="fast"\} (\d+)$', text, re.M)
    if not accepted or not fast:
        raise RuntimeError(f"{url} has no accepted-events or fast-answers count: {text[:400]!r}")
    return int(accepted.group(1)), int(fast.group(1))


def click_through_nginx(args: argparse.Namespace, api: Api, token: str, campaign_id: int, link: str) -> dict:
    parts = urlsplit(link)
    url = args.click_via.rstrip("/") + parts.path + (f"?{parts.query}" if parts.query else "")
    before = front_counts(args.front_metrics) if args.front_metrics else None
    status, location = click(url)
    if (status, location) != (302, "https://shop.example/sale"):
        raise RuntimeError(f"the click through {url} answered {status} {location!r}, not 302 to the sale page")
    answered_by = "not checked"
    if before is not None:
        after = front_counts(args.front_metrics)
        if after[0] != before[0] + 1:
            raise RuntimeError(f"the click through nginx-trk did not reach trkfront: its accepted events went "
                               f"from {before[0]} to {after[0]} ({args.front_metrics})")
        if after[1] != before[1] + 1:  # nginx's request is the plain shape fast.go reads itself
            raise RuntimeError(f"trkfront answered the click through nginx-trk with net/http, not its fast path: "
                               f"fast answers went from {before[1]} to {after[1]} ({args.front_metrics})")
        answered_by = "trkfront"
    report = wait_for("campaigns/report to count the click",
                      lambda: (r := api("campaigns/report", token=token, id=campaign_id))["clicked"]["total"]["all"] >= 1
                      and r, args.timeout)
    return {"click_status": status, "click_answered_by": answered_by, "clicks": report["clicked"]["total"]["all"]}


def run(args: argparse.Namespace) -> dict:
    api = Api(args.api_port)
    suffix = uuid.uuid4().hex[:8]
    account = api("admin/accounts/save", token=args.admin_token, name=f"smoke-{suffix}")
    token = api("admin/tokens/add", token=args.admin_token, account_id=account["id"])["token"]
    sender_ips = [ip for ip in args.sender_ips.split(",") if ip]
    sender = api("admin/senders/save", token=args.admin_token, name=f"smoke-{suffix}",
                 from_email="news@smoke.example", dkim_algorithm="rsa", ips=sender_ips)
    api("admin/senders/assign", token=args.admin_token, id=sender["id"], account_id=account["id"])
    db = api("databases/add", token=token, name="smoke")
    rcpt = f"anna-{suffix}@sink.test"
    api("profiles/import_batch", token=token, db_id=db["id"], data=[{"email": rcpt, "first_name": "Anna"}],
        subscribe_resource_id=1)
    segment = api("segments/add", token=token, name="all", db_id=db["id"])
    template = api("templates/add", token=token, name="smoke", subject="Hello {{ first_name }}",
                   html="<p>Hi {{ first_name }}, see <a href='https://shop.example/sale'>the sale</a></p>",
                   text="Hi {{ first_name }}")
    campaign = api("campaigns/add", token=token, name="smoke", db_id=db["id"], segment_id=segment["id"],
                   template_id=template["id"], sender_id=sender["id"])
    api("campaigns/start", token=token, id=campaign["id"])

    raw = wait_for("the message in the sink", lambda: RECEIVED[:1], args.timeout)[0]
    message = email.message_from_bytes(raw)
    html = next(part.get_payload(decode=True).decode() for part in message.walk()
                if part.get_content_type() == "text/html")
    record = sender["dkim_dns_record"].encode()
    failures = []
    if message["To"] is None or rcpt not in message["To"]:
        failures.append(f"To is {message['To']!r}, not {rcpt}")
    if message["Subject"] != "Hello Anna":
        failures.append(f"Subject is {message['Subject']!r}")
    if not dkim.verify(raw, dnsfunc=lambda name, timeout=5: record):
        failures.append("the DKIM signature does not verify")
    if sender_ips and PEERS[0] not in sender_ips:
        failures.append(f"the message came from {PEERS[0]}, not from a sending IP ({', '.join(sender_ips)})")
    links = [unescape(u) for u in re.findall(r'href=["\']([^"\']+/c/[^"\']+)', html)]
    if "https://shop.example/sale" in html or not links:
        failures.append("the link was not rewritten into a tracking link")
    if failures:
        raise RuntimeError("; ".join(failures))

    report = wait_for("campaigns/report to count the delivery",
                      lambda: (r := api("campaigns/report", token=token, id=campaign["id"]))["delivered"] == 1 and r,
                      args.timeout)
    # the control server reaches the sending server's akmtad control port (its private
    # address, the bearer token): an "unavailable" here raises
    queue = api("admin/senders/queue/stats/", token=args.admin_token, id=sender["id"])
    clicked = click_through_nginx(args, api, token, campaign["id"], links[0]) if args.click_via else {}
    return {"ok": True, "account_id": account["id"], "db_id": db["id"], "campaign_id": campaign["id"],
            "link": links[0], "rcpt": rcpt, "dkim": "pass", "from_ip": PEERS[0],
            "delivered": report["delivered"], "messages_in_sink": len(RECEIVED),
            "sending_queue_rows": len(queue), **clicked}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--api-port", type=int, default=8801)
    # The token comes from the environment (ALTCRAFT_ADMIN_TOKEN): on a command line it would
    # show in the process list and in Ansible's error output, and a token starting with "-"
    # is taken for an option. --admin-token=TOKEN still works.
    parser.add_argument("--admin-token", default=os.environ.get("ALTCRAFT_ADMIN_TOKEN", ""))
    parser.add_argument("--sink-host", default="127.0.0.1", help="address the SMTP sink listens on")
    parser.add_argument("--sink-port", type=int, default=2525)
    parser.add_argument("--sender-ips", default="",
                        help="the test sender's sending IPs, comma-separated; the message must come from one")
    parser.add_argument("--click-via", default="",
                        help="nginx-trk's base URL (https://127.0.0.2): click the message's link through it")
    parser.add_argument("--front-metrics", default="",
                        help="trkfront's /metrics URL: the click must be answered by it")
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()
    if not args.admin_token:
        parser.error("no admin token: set ALTCRAFT_ADMIN_TOKEN (or --admin-token=TOKEN)")
    socketserver.ThreadingTCPServer.allow_reuse_address = True
    server = socketserver.ThreadingTCPServer((args.sink_host, args.sink_port), SinkHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = run(args)
    except Exception as exc:  # one line that says what failed, for the verify task's output
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        server.shutdown()
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
