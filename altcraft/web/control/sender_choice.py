"""How every form of the panel offers a sender (campaigns, A/B tests, trigger campaigns,
scenario send steps): one select whose values are "s:<id>" for a sender and "v:<id>" for a
virtual sender, so one field carries both kinds."""

from __future__ import annotations

from typing import Any

from altcraft.web.i18n import gettext_


def sender_options(platform: Any, account: int) -> list[tuple[str, str]]:
    """The account's usable senders, then its virtual senders, as (value, label)."""
    options = [(f"s:{s['id']}", f"{gettext_('sender')}: {s['name']} <{s['from_email']}>")
               for s in platform.senders.usable_by(account)]
    options += [(f"v:{v['id']}", f"{gettext_('virtual sender')}: {v['name']}")
                for v in platform.vsenders.list(account)]
    return options


def sender_ids(value: str) -> dict[str, int | None]:
    """A chosen value as the domain's `sender_id` / `vsender_id` (both None when it is neither:
    the domain then names the missing sender)."""
    kind, _, number = value.partition(":")
    return {"sender_id": int(number) if kind == "s" and number.isdigit() else None,
            "vsender_id": int(number) if kind == "v" and number.isdigit() else None}
