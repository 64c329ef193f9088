"""A campaign with a virtual sender: campaign worker -> RabbitMQ -> akmtad -> SMTP sink, under
akd with the harness servers. The virtual sender and the campaign are made through the API."""

from __future__ import annotations

import email
import time
import uuid
from collections import Counter
from email.utils import parseaddr

import pytest

from altcraft import registry
from altcraft.domain.vsender_rules import pick
from altcraft.services.api import create_app
from tests.lib.api import Client
from tests.lib.sink import Sink
from tests.lib.wait import wait_for

pytestmark = pytest.mark.integration
TO_X, OTHERS = 100, 300


def _dkim_domain(message) -> str:
    signature = email.message_from_bytes(message.data)["DKIM-Signature"]
    return dict(part.strip().split("=", 1) for part in signature.replace("\r\n", "").split(";") if "=" in part)["d"]


@pytest.mark.timeout(300)
def test_virtual_sender_routes_each_recipient_by_its_rules(pipeline, sink_port):
    p = pipeline.platform
    admin = Client(create_app(pipeline.config, registry.get("api")).test_client(), p.tokens.create("admin")[0])
    account = admin.ok("admin/accounts/save", name="vsender-pipeline")
    a = account["id"]
    client = Client(admin.http, admin.ok("admin/tokens/add", account_id=a)["token"])
    senders = {}
    for n, reply_to in ((1, ""), (2, "desk@two.example"), (3, "")):
        sender = admin.ok("admin/senders/save", name=f"s{n}", from_email=f"news@{n}.sender.example",
                          from_name=f"Sender {n}", reply_to=reply_to, dkim_algorithm="ed25519")
        admin.ok("admin/senders/assign", id=sender["id"], account_id=a)
        senders[n] = sender
    s1, s2, s3 = (senders[n]["id"] for n in (1, 2, 3))
    vsender = admin.ok("admin/vsenders/add", account_id=a, name="by domain", rules=[
        {"match": "to_domain", "values": ["x.example"], "senders": [{"id": s1, "weight": 1}],
         "from_email": "hello@brand.example", "from_name": "Brand", "reply_to": "care@brand.example"},
        {"match": "default", "senders": [{"id": s2, "weight": 1}, {"id": s3, "weight": 3}]},
    ])

    db = client.ok("databases/add", name="main")
    tag = uuid.uuid4().hex[:6]  # the stop list is shared with other tests: addresses unique to this run
    rows = [{"email": f"x{i:04d}.{tag}@x.example"} for i in range(TO_X)] + \
           [{"email": f"o{i:04d}.{tag}@other{i % 3}.example"} for i in range(OTHERS)]
    assert client.ok("profiles/import_batch", db_id=db["id"], data=rows, subscribe_resource_id=1)["inserted"] == len(rows)
    segment = client.ok("segments/add", name="all", db_id=db["id"])
    template = client.ok("templates/add", name="t", subject="Hi", text="Hello", html="<p>Hello</p>")
    campaign = client.ok("campaigns/add", name="routed", db_id=db["id"], segment_id=segment["id"],
                         template_id=template["id"], vsender_id=vsender["id"])
    profile_of = {d["data"]["email"]: d["_id"] for d in
                  p.profiles(a, db["id"]).collection.find({}, {"data.email": 1})}

    with Sink(sink_port) as sink:
        client.ok("campaigns/start", id=campaign["id"])
        pipeline.start("campaign", "akmtad")
        sink.wait_for(len(rows), timeout=120)
        wait_for(lambda: client.ok("campaigns/get", id=campaign["id"])["state"] == "finished", 60, "the campaign to finish")
        time.sleep(2)  # anything extra would arrive now
        received = sink.messages

        rcpts = [m.rcpt for m in received]
        assert len(rcpts) == len(set(rcpts)) == len(rows) and set(rcpts) == {r["email"] for r in rows}
        by_sender = Counter()
        for message in received:
            headers = email.message_from_bytes(message.data)
            if message.rcpt.endswith("@x.example"):
                # the rule's custom From and Reply-To; the real sender's MAIL FROM and DKIM domain
                assert parseaddr(headers["From"]) == ("Brand", "hello@brand.example")
                assert headers["Reply-To"] == "care@brand.example"
                expected = s1
            else:
                expected = pick(((s2, 1), (s3, 3)), profile_of[message.rcpt])
                sender = senders[2 if expected == s2 else 3]
                assert parseaddr(headers["From"]) == (sender["from_name"], sender["from_email"])
                assert headers["Reply-To"] == (sender["reply_to"] or None)
            real = next(s for s in senders.values() if s["id"] == expected)
            assert message.mail_from == real["from_email"], message.rcpt
            assert _dkim_domain(message) == real["dkim_domain"], message.rcpt
            by_sender[expected] += 1
        assert by_sender[s1] == TO_X
        assert by_sender[s2] + by_sender[s3] == OTHERS
        # weights 1:3 -> 75 and 225 expected; 4 standard deviations (about 30) either way
        assert abs(by_sender[s3] - OTHERS * 3 / 4) < 30, by_sender

        # a sender unassigned since: the next launch fails naming it, and sends nothing
        admin.ok("admin/senders/assign", id=s3, account_id=a, allowed=False)
        client.ok("campaigns/start", id=campaign["id"])
        failed = wait_for(lambda: (c := client.ok("campaigns/get", id=campaign["id"]))["state"] == "failed" and c,
                          60, "the second launch to fail")
        assert f"sender {s3} is deleted or not assigned" in failed["error"], failed
        time.sleep(2)
        assert len(sink.messages) == len(rows)
