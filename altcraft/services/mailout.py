"""One e-mail to one profile through the priority MTA queue (`akmta_prior_<sender>`), as
trigger campaigns (proctrigger) and scenario send steps (procworkflow) send it: the
audience rules (address, subscription, stop list), the campaign renderer with `data` as
{{ data.* }}, the sender or virtual sender, the MTA envelope. The caller derives the
message id; a message published twice carries one Message-ID, which akmtad drops."""

from __future__ import annotations

from typing import Any

from altcraft.config import MainConfig
from altcraft.domain import audience, message as messages
from altcraft.domain.campaign_senders import CampaignSenders
from altcraft.domain.stoplist import StopList
from altcraft.domain.templates import compile_parts
from altcraft.mta import envelope as mta_envelope
from altcraft.stores import kv
from altcraft.stores.broker import Broker, Message
from altcraft.wiring import Platform


class Skip(Exception):
    """A message that will not be sent; the text says why."""


class _Nothing:
    """A single message has no launch record: its message id is its de-duplication."""

    def handled(self, profile_ids):
        return [False] * len(profile_ids)


class Mailer:
    def __init__(self, config: MainConfig, platform: Platform, broker: Broker):
        self.config, self.platform, self.broker = config, platform, broker
        self.stoplist = StopList(kv.ssdb(config, "hbsupp"))
        self.declared: set[str] = set()

    def template(self, account_id: int, template_id: Any) -> Any:
        """The template, compiled (procworkflow keeps it for a batch of sends)."""
        return compile_parts(self.platform.templates(account_id).get(template_id))

    def senders(self, account_id: int, source: dict[str, Any]) -> CampaignSenders:
        """Who sends for `source` (procworkflow keeps it for a batch of sends)."""
        base = messages.Envelope(account_id, source["db_id"], source["resource_id"], source["id"], 0,
                                 "", "", "", self.config.TRACKING_BASE_URL, self.config.TRACKING_CRYPT_KEY)
        return CampaignSenders.load(self.platform.senders, self.platform.vsenders, source, base)

    def profiles(self, account_id: int, db_id: int) -> Any:
        """The profile database's collection (procworkflow keeps it for a batch of sends: finding
        it reads the database's definition)."""
        return self.platform.profiles(account_id, db_id).collection

    def send(self, account_id: int, source: dict[str, Any], profile_id: str, mid: str,
             data: dict[str, Any], out: list[Message] | None = None) -> None:
        """`source`: what sends, shaped as a trigger campaign (id = its campaign id, db_id,
        resource_id, template_id, sender_id or vsender_id). Raises Skip, or DomainError when
        the template or sender is gone. With `out`, the message is added to it instead of
        published (the caller publishes a batch in one broker transaction)."""
        profile = self.profiles(account_id, source["db_id"]).find_one({"_id": profile_id})
        if profile is None:
            raise Skip("the profile no longer exists")
        if not audience.choose([profile], source["resource_id"], stoplist=self.stoplist, handled=_Nothing()).profiles:
            raise Skip("no e-mail, not subscribed to the resource, or on the stop list")
        compiled = self.template(account_id, source["template_id"])
        via = self.senders(account_id, source).via(profile["_id"], profile["data"]["email"])
        try:
            rendered = messages.render(compiled, via.envelope, profile, mid=mid, extra={"data": data})
        except Exception as exc:  # a template that fails for this profile and data
            raise Skip(f"the template failed: {type(exc).__name__}: {exc}") from None
        addressed = mta_envelope.MtaEnvelope(
            sender_id=via.sender_id, rcpt=rendered.rcpt, account_id=account_id, campaign_id=source["id"],
            profile_id=profile["_id"], db_id=source["db_id"], resource_id=source["resource_id"])
        queue = mta_envelope.queue(via.sender_id, priority=True)
        if queue not in self.declared:
            self.broker.declare_durable_queue(queue)
            self.declared.add(queue)
        message = Message("", queue, rendered.data, rendered.message_id, addressed.headers(),
                          mta_envelope.CONTENT_TYPE)
        if out is None:
            self.broker.publish(message)
        else:
            out.append(message)
