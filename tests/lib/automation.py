"""Trigger campaigns end to end as the automation tests drive them: the sending pipeline
(tests/lib/mta.py) with procevent, proctrigger and akmtad under akd, the v1.1 API through
Flask's client with an account token, and the sink's messages picked out by recipient."""

from __future__ import annotations

import email
import re
import uuid
from email.message import Message

from altcraft import registry
from altcraft.services.api import create_app
from tests.lib.api import Client
from tests.lib.mta import Pipeline

TEMPLATE_HTML = '<html><body><p>Order {{ data.order }} for {{ first_name }}</p></body></html>'


class Automation:
    def __init__(self, pipeline: Pipeline):
        self.pipeline = pipeline
        p = pipeline.platform
        self.account = p.accounts.save(name=f"trig-{uuid.uuid4().hex[:8]}")
        token, _ = p.tokens.create("account", self.account["id"])
        self.api = Client(create_app(pipeline.config, registry.get("api")).test_client(), token)
        self.db = self.api.ok("databases/add", name="shop")
        sender = p.senders.save(name="orders", from_email="orders@shop.example", from_name="Shop")
        p.senders.assign(sender["id"], self.account["id"])
        self.sender_id = sender["id"]
        self.template = self.api.ok("templates/add", name="order", subject="Order {{ data.order }}",
                                    html=TEMPLATE_HTML)

    def trigger(self, **params) -> dict:
        return self.api.ok("campaigns/triggers/add", name="t", db_id=self.db["id"],
                           template_id=self.template["id"], sender_id=self.sender_id, **params)

    def profile(self, name: str = "Anna") -> str:
        """A new subscribed profile; its (unique) e-mail address."""
        address = f"{uuid.uuid4().hex[:12]}@example.test"
        self.api.ok("profiles/add", db_id=self.db["id"], data={"email": address, "first_name": name},
                    subscriptions=[{"resource_id": 1, "channel": "email", "status": "subscribed"}])
        return address

    def sends(self, **query) -> list[dict]:
        return list(self.pipeline.platform.triggers.sends.find({"account_id": self.account["id"], **query}))


def to(sink, rcpt: str) -> list[Message]:
    return [email.message_from_bytes(m.data) for m in sink.messages if m.rcpt == rcpt]


def by_rcpt(sink) -> dict[str, list[Message]]:
    """The sink's messages by recipient, each parsed once (`to` for many recipients)."""
    out: dict[str, list[Message]] = {}
    for m in list(sink.messages):
        out.setdefault(m.rcpt, []).append(email.message_from_bytes(m.data))
    return out


def html_of(message: Message) -> str:
    part = next(p for p in message.walk() if p.get_content_type() == "text/html")
    return part.get_payload(decode=True).decode()


def kill9(pid: int) -> list[int]:
    """kill -9 of a process and its children (an HTTP process is gunicorn's arbiter and its
    workers: killing the arbiter alone would leave its workers stepping until they notice).
    The pids killed."""
    import psutil

    try:
        parent = psutil.Process(pid)
        victims = [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
    for victim in victims:
        try:
            victim.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(victims, timeout=10)
    return [v.pid for v in victims]


def pixel_url(message: Message) -> str:
    """The open pixel's signed URL in a sent message (as a mail client would load it)."""
    found = re.findall(r'src="([^"]+/o/[^"]+\.gif)"', html_of(message))
    assert len(found) == 1, f"{len(found)} open pixels in the message"
    return found[0].replace("&amp;", "&")
