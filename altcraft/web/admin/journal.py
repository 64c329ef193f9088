"""webadmin's audit journal page: the entries of domain/audit.py, newest first, filtered by
time, actor, account, action and channel; paged by sequence number (keyset)."""

from __future__ import annotations

from datetime import date, datetime, timezone

from flask import Blueprint, render_template, request

from altcraft.domain.audit import Filter
from altcraft.web import i18n
from altcraft.web.app import panel

PAGE_SIZE = 50
CHANNELS = ("api", "webcontrol", "webadmin", "aktool")


def _day_ms(text: str, *, end: bool = False) -> int | None:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        return None
    start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp() * 1000
    return int(start + (86_400_000 if end else 0))


def add_routes(bp: Blueprint) -> None:
    @bp.get("/audit")
    def audit():
        args = {k: request.args.get(k, "").strip() for k in ("since", "until", "actor", "account", "action",
                                                              "channel", "after")}
        flt = Filter(since_ms=_day_ms(args["since"]), until_ms=_day_ms(args["until"], end=True),
                     actor=args["actor"] or None,
                     account_id=int(args["account"]) if args["account"].isdigit() else None,
                     action=args["action"] or None,
                     channel=args["channel"] if args["channel"] in CHANNELS else None,
                     from_seq=int(args["after"]) if args["after"].isdigit() else None, limit=PAGE_SIZE)
        entries = panel().platform.journal.list(flt)
        next_after = entries[-1]["seq"] if len(entries) == PAGE_SIZE else None
        options = [("", i18n.gettext_("Any"))] + [(c, c) for c in CHANNELS]
        kinds = {"admin": i18n.gettext_("administrator"), "user": i18n.gettext_("user"),
                 "token": i18n.gettext_("token"), "system": i18n.gettext_("system")}
        return render_template("admin/audit.html", entries=entries, args=args, channel_options=options,
                               next_after=next_after, kinds=kinds)
