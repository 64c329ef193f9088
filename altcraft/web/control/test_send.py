"""A template's test send: one message, rendered by the domain exactly as a chosen profile
would get it (altcraft.domain.message.render_test: its subject marked "[test]"), addressed
to the address typed in, published to the sender's priority queue (akmta_prior_<sender>),
so akmtad delivers it ahead of campaign mail, with DKIM and the sender's routing.

Every problem is named by the form field it concerns: `address`, `sender_id`, `profile`
(and `db_id`), or the template's part (`subject`, `html`, `text`) when it fails to render
for that profile. Nothing is published unless everything is right.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from altcraft.domain.errors import DomainError, Invalid, NotFound
from altcraft.domain.fields import normalize_email
from altcraft.domain.message import Envelope, render_test
from altcraft.domain.templates import compile_parts
from altcraft.mta import envelope as mta_envelope
from altcraft.stores.broker import Broker, Message

FIELDS = ("address", "sender_id", "db_id", "profile")
PROFILE_ID = re.compile(r"[0-9a-f]{32}")


@dataclass
class Outcome:
    errors: dict[str, str]
    rcpt: str = ""  # where it went, when it went


def senders_of(platform, account_id: int) -> list[dict[str, Any]]:
    """The senders this account may use (an administrator assigns them)."""
    return [s for s in platform.senders.list() if account_id in (s.get("accounts") or [])]


def find_profile(profiles, key: str) -> dict[str, Any]:
    """A profile by its id or its database's key (an e-mail or a phone); the raw document."""
    found = profiles.get(profile_id=key) if PROFILE_ID.fullmatch(key) else profiles.get(key_value=key)
    return profiles.collection.find_one({"_id": found["id"]})


def send(platform, config, account_id: int, template: dict[str, Any], form) -> Outcome:
    errors: dict[str, str] = {}
    try:
        rcpt = normalize_email(form.get("address", ""))
    except ValueError:
        errors["address"], rcpt = "not a valid e-mail address", ""
    sender = None
    try:
        sender = platform.senders.for_account(form.get("sender_id", type=int), account_id)
    except NotFound:
        errors["sender_id"] = "choose a sender of this account"
    db_id, key = form.get("db_id", type=int), form.get("profile", "").strip()
    profile = None
    if db_id is None or not key:
        errors["profile"] = "choose a database and a profile"
    else:
        try:
            # another account's database is not found: named on the field, nothing is sent
            profile = find_profile(platform.profiles(account_id, db_id), key)
        except NotFound as exc:
            errors["profile"] = exc.message
        except Invalid as exc:
            errors["profile"] = exc.reason
    if errors:
        return Outcome(errors)
    message_envelope = Envelope(account_id, db_id, 0, 0, 0, sender["from_email"], sender.get("from_name") or "",
                                sender.get("reply_to") or "", config.TRACKING_BASE_URL, config.TRACKING_CRYPT_KEY)
    try:
        rendered = render_test(compile_parts(template), message_envelope, profile, rcpt)
    except DomainError as exc:
        field = exc.field if isinstance(exc, Invalid) else "address"
        return Outcome({field: exc.reason if isinstance(exc, Invalid) else exc.message})
    addressed = mta_envelope.MtaEnvelope(sender_id=sender["id"], rcpt=rendered.rcpt, account_id=account_id,
                                         profile_id=profile["_id"], db_id=db_id)
    queue = mta_envelope.queue(sender["id"], priority=True)
    with Broker(config, app="webcontrol") as broker:
        broker.declare_durable_queue(queue)
        broker.publish(Message("", queue, rendered.data, rendered.message_id, addressed.headers(),
                               mta_envelope.CONTENT_TYPE))
    return Outcome({}, rcpt)
