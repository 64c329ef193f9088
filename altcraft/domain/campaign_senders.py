"""Which real sender, From and Reply-To each message of a campaign launch gets.

A campaign with `sender_id` sends everything through that sender, with its From and Reply-To.
A campaign with `vsender_id` routes each recipient by the virtual sender's rules
(altcraft/domain/vsender_rules.py); the rule's custom `from_email`, `from_name` and
`reply_to`, where set, replace the real sender's in the message. The real sender still gives
MAIL FROM and the DKIM signature (akmtad reads both from it), so a custom From outside the
sender's DKIM domain does not align for DMARC: that is the rule author's choice to make.

Everything is checked when the launch starts: a sender deleted or no longer assigned to the
account fails the launch with an error naming it, before anything is published.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from altcraft.domain.message import Envelope
from altcraft.domain.senders import Senders
from altcraft.domain.vsender_rules import Router
from altcraft.domain.vsenders import VSenders


@dataclass(frozen=True)
class Via:
    sender_id: int
    envelope: Envelope


class CampaignSenders:
    def __init__(self, senders: dict[int, dict[str, Any]], fixed: Via | None = None,
                 router: Router | None = None, vias: dict[tuple[int, int], Via] | None = None):
        self.senders = senders  # every real sender this launch may publish to
        self._fixed = fixed
        self._router = router
        self._vias = vias or {}

    @classmethod
    def load(cls, senders: Senders, vsenders: VSenders, campaign: dict[str, Any],
             base: Envelope) -> CampaignSenders:
        """`base` carries everything of the envelope but From and Reply-To."""
        account_id = campaign["account_id"]
        if campaign.get("vsender_id") is None:
            sender = senders.for_account(campaign["sender_id"], account_id)
            envelope = replace(base, from_email=sender["from_email"], from_name=sender.get("from_name", ""),
                               reply_to=sender.get("reply_to", ""))
            return cls({sender["id"]: sender}, fixed=Via(sender["id"], envelope))
        router, rules, real = vsenders.router(account_id, campaign["vsender_id"])
        vias = {}
        for index, rule in enumerate(rules):
            for sender_id, _ in rule.senders:
                sender = real[sender_id]
                vias[(index, sender_id)] = Via(sender_id, replace(
                    base, from_email=rule.from_email or sender["from_email"],
                    from_name=rule.from_name or sender.get("from_name", ""),
                    reply_to=rule.reply_to or sender.get("reply_to", "")))
        return cls(real, router=router, vias=vias)

    def via(self, profile_id: str, rcpt: str) -> Via:
        if self._fixed is not None:
            return self._fixed
        route = self._router.route(profile_id, rcpt)
        return self._vias[(route.rule_index, route.sender_id)]
