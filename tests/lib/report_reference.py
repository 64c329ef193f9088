"""The campaign report's figures counted straight from `events` (uniqExact over the raw
rows), as domain/reports.py counted them before it read the aggregates: the reference the
aggregates must agree with."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from altcraft.domain.events import DELIVERY_KINDS


def raw_figures(store, account_id: int, campaign_id: int) -> dict[str, Any]:
    """{kind: (total, total_human, unique, unique_human)}, sent, {link: (...)}, {(hour, kind):
    (total, human)}: each a distinct count of event or profile ids over the raw rows."""
    table = store.table("events")
    where = "account_id = %(a)s AND campaign_id = %(c)s"
    params = {"a": account_id, "c": campaign_id}
    kinds = {kind: tuple(int(v) for v in rest) for kind, *rest in store.execute(
        f"SELECT kind, uniqExact(event_id), uniqExactIf(event_id, is_bot = 0), uniqExact(profile_id), "
        f"uniqExactIf(profile_id, is_bot = 0) FROM {table} WHERE {where} GROUP BY kind", params)}
    sent = store.execute(f"SELECT uniqExact(profile_id) FROM {table} WHERE {where} AND kind IN %(k)s",
                         {**params, "k": tuple(DELIVERY_KINDS)})[0][0]
    links = {int(link): (url, *(int(v) for v in rest)) for link, url, *rest in store.execute(
        f"SELECT link_id, any(url), uniqExact(event_id), uniqExactIf(event_id, is_bot = 0), uniqExact(profile_id), "
        f"uniqExactIf(profile_id, is_bot = 0) FROM {table} WHERE {where} AND kind = 'click' GROUP BY link_id", params)}
    hours = {(int(hour), kind): (int(total), int(human)) for hour, kind, total, human in store.execute(
        f"SELECT intDiv(toUInt32(event_time), 3600) * 3600 AS hour, kind, uniqExact(event_id), "
        f"uniqExactIf(event_id, is_bot = 0) FROM {table} WHERE {where} GROUP BY hour, kind", params)}
    return {"kinds": kinds, "sent": int(sent), "links": links, "hours": hours}


PEOPLE = {"delivered": ("delivered",), "deferred": ("deferred",), "bounced_hard": ("bounced", "hard"),
          "bounced_soft": ("bounced", "soft"), "dropped": ("dropped",), "unsubscribe": ("unsubscribed",),
          "subscribe": ("resubscribed",)}


def expected(raw: dict[str, Any]) -> dict[str, Any]:
    """raw_figures() in the shape report_figures() gives: people kinds as their unique count."""
    kinds = {kind: (raw["kinds"].get(kind, (0, 0, 0, 0))[2] if kind in PEOPLE else raw["kinds"].get(kind, (0,) * 4))
             for kind in (*PEOPLE, "open", "click")}
    return {**raw, "kinds": kinds}


def report_figures(report: dict[str, Any]) -> dict[str, Any]:
    """The same figures read back from a Reports.campaign() answer."""
    def both(pair: dict[str, int]) -> tuple[int, int]:
        return pair["all"], pair["human"]

    def at(path: tuple[str, ...]) -> int:
        value: Any = report
        for key in path:
            value = value[key]
        return value

    kinds: dict[str, Any] = {kind: at(path) for kind, path in PEOPLE.items()}
    for kind, key in (("open", "opened"), ("click", "clicked")):
        kinds[kind] = (*both(report[key]["total"]), *both(report[key]["unique"]))
    links = {link["link_id"]: (link["url"], *both(link["clicks"]["total"]), *both(link["clicks"]["unique"]))
             for link in report["links"]}
    hours = {}
    for slot in report["timeline"]:
        epoch = int(datetime.strptime(slot["hour"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp())
        hours.update({(epoch, kind): both(pair) for kind, pair in slot.items() if kind != "hour"})
    return {"kinds": kinds, "sent": report["sent"], "links": links, "hours": hours}
