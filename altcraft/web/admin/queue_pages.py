"""webadmin's queues page: what akmtad holds per sender (new, in progress, waiting for a
retry, held; per account and campaign), and hold / release / purge. The counts and the
actions are akmtad's control port (mta/control_client.py); when akmtad does not answer the
page says so (503 for an action) instead of failing."""

from __future__ import annotations

from collections import defaultdict

from flask import Blueprint, redirect, render_template, request, url_for

from altcraft.domain.errors import Unavailable
from altcraft.mta import control_client
from altcraft.web import i18n
from altcraft.web.app import panel

COUNTS = ("new", "proc", "retry", "hold", "total")


def add_routes(bp: Blueprint) -> None:
    @bp.get("/queues")
    def queues():
        return _page()

    @bp.post("/queues/<int:sender_id>/hold")
    def queue_hold(sender_id: int):
        return _act("hold", sender_id)

    @bp.post("/queues/<int:sender_id>/release")
    def queue_release(sender_id: int):
        return _act("release", sender_id)

    @bp.route("/queues/<int:sender_id>/purge", methods=["GET", "POST"])
    def queue_purge(sender_id: int):
        """Drops every queued message of the sender (each becomes a 'dropped' event), once
        the sender's name is typed."""
        sender = panel().platform.senders.get(sender_id, include_deleted=True)
        error, status = None, 200
        if request.method == "POST":
            if request.form.get("confirm", "").strip() != sender["name"]:
                error, status = i18n.gettext_("Type the sender's name to purge its queue."), 400
            else:
                try:
                    result = control_client.queue_action(panel().config, "purge", sender_id)
                except Unavailable as exc:
                    error, status = _down(exc), 503
                else:
                    return redirect(url_for("admin.queues", purged=result.get("purged", 0), sender=sender_id))
        return render_template("admin/queue_purge.html", sender=sender, error=error), status


def _act(action: str, sender_id: int):
    panel().platform.senders.get(sender_id, include_deleted=True)  # 404 when missing
    try:
        control_client.queue_action(panel().config, action, sender_id)
    except Unavailable as exc:
        return _page(error=_down(exc), status=503)
    return redirect(url_for("admin.queues", done=action, sender=sender_id))


def _down(exc: Unavailable) -> str:
    return i18n.gettext_("akmtad is not running or does not answer (%(reason)s): nothing was changed. "
                         "Start it with `akd start akmtad`.", reason=exc.message)


def _page(error: str | None = None, status: int = 200):
    ctx = panel()
    senders = {s["id"]: s for s in ctx.platform.senders.list(include_deleted=True)}
    unreachable = None
    try:
        stats = control_client.queue_stats(ctx.config)
    except Unavailable as exc:
        stats, unreachable = {"rows": [], "held_senders": []}, _down(exc)
    totals: dict[int, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTS, 0))
    details: dict[int, list[dict]] = defaultdict(list)
    for row in stats["rows"]:
        for key in COUNTS:
            totals[row["sender_id"]][key] += row.get(key, 0)
        details[row["sender_id"]].append(row)
    held = set(stats.get("held_senders", []))
    ids = [i for i, s in senders.items() if not s.get("deleted")] + \
        sorted(i for i in set(totals) | held if i not in senders or senders[i].get("deleted"))
    rows = [{"id": i, "name": senders.get(i, {}).get("name", f"#{i}"), "known": i in senders,
             "held": i in held, **totals[i], "details": details[i]} for i in ids]
    args = request.args
    return render_template("admin/queues.html", rows=rows, error=error, unreachable=unreachable,
                           done=args.get("done", ""), purged=args.get("purged", ""),
                           sender=args.get("sender", "")), status
