"""A template's test send from webcontrol through the real pipeline: the panel renders the
message for a chosen profile, publishes it to the sender's priority queue, akmtad delivers
it to the SMTP sink. Bad input is named by its field and nothing is published."""

from __future__ import annotations

import email
import email.policy

import pytest

from altcraft import registry
from altcraft.domain.message import TEST_MARK
from altcraft.mta import envelope as mta_envelope
from altcraft.stores.broker import Broker
from altcraft.web.control import create_app
from tests.lib.mta import Pipeline
from tests.lib.sink import Sink
from tests.lib.webpanel import make_tenant, signin

pytestmark = pytest.mark.integration


def test_a_test_send_reaches_the_sink_marked_and_personalised(harness, basedir, sink_port, vhost):
    pipe = Pipeline(harness, basedir, sink_port, vhost)
    try:
        platform = pipe.platform
        tenant = make_tenant(platform, profiles=1, templates=1)
        other = make_tenant(platform, profiles=0)  # owns a sender A may not use
        sender = platform.senders.save(name="news", from_email="news@shop.example", dkim_algorithm="ed25519")
        platform.senders.assign(sender["id"], tenant.account_id)
        foreign = platform.senders.save(name="theirs", from_email="x@other.example", dkim_algorithm="ed25519")
        platform.senders.assign(foreign["id"], other.account_id)
        queue = mta_envelope.queue(sender["id"], priority=True)
        client = create_app(pipe.config, registry.get("webcontrol")).test_client()
        token = signin(client, tenant.writer)
        url = f"/templates/{tenant.template_ids[0]}/test-send"
        good = {"address": "QA@Shop.Example", "sender_id": sender["id"], "db_id": tenant.db_ids[0],
                "profile": platform.profiles(tenant.account_id, tenant.db_ids[0]).get(
                    profile_id=tenant.profile_ids[0])["data"]["email"], "csrf_token": token}

        page = client.get(f"/templates/{tenant.template_ids[0]}").data.decode()
        assert 'data-testid="test-send-form"' in page and "news@shop.example" in page
        assert "x@other.example" not in page  # only the account's own senders are offered

        # each bad field is named under that field; nothing reaches the queue
        for change, field in (({"address": "not-an-address"}, "address"),
                              ({"sender_id": foreign["id"]}, "sender_id"),
                              ({"sender_id": "abc"}, "sender_id"),
                              ({"profile": "nobody@example.com"}, "profile"),
                              ({"db_id": 999}, "profile"), ({"profile": ""}, "profile")):
            response = client.post(url, data={**good, **change})
            assert response.status_code == 400, (change, response.status_code)
            assert f'id="{field}-error"' in response.data.decode(), (change, field)
        with Broker(pipe.config) as broker:
            broker.declare_durable_queue(queue)
            assert broker.queue_depth(queue) == 0

        with Sink(sink_port) as sink:
            pipe.start("akmtad")
            response = client.post(url, data=good)
            assert response.status_code == 200 and b'data-testid="test-sent"' in response.data
            assert b"qa@shop.example" in response.data
            (received,) = sink.wait_for(1, timeout=60)
    finally:
        pipe.stop()
    assert received.rcpt == "qa@shop.example" and received.mail_from == "news@shop.example"
    message = email.message_from_bytes(received.data, policy=email.policy.default)
    assert message["Subject"] == f"{TEST_MARK} Hello Anna"
    assert message["To"] == "qa@shop.example"
    assert "<p>Hello Anna</p>" in message.get_body(("html",)).get_content()
    assert message["DKIM-Signature"]  # delivered as the sender's mail, signed
