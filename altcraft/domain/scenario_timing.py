"""The calendar arithmetic of scenarios: when a wait until a time of day or a date field
ends, which branch of a random split a run takes, and which profiles a date entry admits.

Pure functions of their arguments (no clock of their own, no store), so a step done again
computes the same outcome and the tests pin every case.
"""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from altcraft.domain.errors import Invalid

MAX_OFFSET = 365 * 86400
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_SPLIT_NS = uuid.UUID("3f4c2a8e-7d1b-4e9a-b6c5-0a9e8d7c6b5a")


def zone(name: Any) -> ZoneInfo | None:
    """The IANA time zone of that name, or None."""
    if not isinstance(name, str) or not name or len(name) > 64:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def check_until(raw: Any, where: str) -> dict[str, Any]:
    """A wait's `until`, as stored: {"time": "HH:MM", "zone", "zone_field"} (the next such
    time in the profile's zone) or {"field", "offset_seconds"} (a date field plus an offset)."""
    shape = '{"time": "HH:MM", "zone": "UTC", "zone_field": <field>} or {"field": <date field>, "offset_seconds"}'
    if not isinstance(raw, dict) or ("time" in raw) == ("field" in raw):
        raise Invalid(where, shape)
    allowed = {"time", "zone", "zone_field"} if "time" in raw else {"field", "offset_seconds"}
    unknown = set(raw) - allowed
    if unknown:
        raise Invalid(f"{where}.{sorted(unknown)[0]}", f"not a field here ({shape})")
    if "time" in raw:
        if not isinstance(raw["time"], str) or not _TIME.match(raw["time"]):
            raise Invalid(f"{where}.time", "a time of day, HH:MM (24 hours)")
        out = {"time": raw["time"], "zone": raw.get("zone", "UTC")}
        if zone(out["zone"]) is None:
            raise Invalid(f"{where}.zone", "an IANA time zone name (e.g. Europe/Moscow)")
        if raw.get("zone_field") is not None:
            if not isinstance(raw["zone_field"], str) or not raw["zone_field"]:
                raise Invalid(f"{where}.zone_field", "the name of the profile field holding its time zone")
            out["zone_field"] = raw["zone_field"]
        return out
    if not isinstance(raw["field"], str) or not raw["field"]:
        raise Invalid(f"{where}.field", "the name of a date or datetime field")
    offset = raw.get("offset_seconds", 0)
    if type(offset) is not int or not -MAX_OFFSET <= offset <= MAX_OFFSET:
        raise Invalid(f"{where}.offset_seconds", f"whole seconds, -{MAX_OFFSET}..{MAX_OFFSET} "
                                                 "(negative: before the date)")
    return {"field": raw["field"], "offset_seconds": offset}


def as_moment(value: Any) -> datetime | None:
    """A profile's date or datetime value as an aware UTC moment (a date: its midnight UTC)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, date):
        return datetime.combine(value, time(), timezone.utc)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    return None


def until(spec: dict[str, Any], profile: dict[str, Any], now: datetime) -> datetime:
    """When a wait until `spec` ends for a profile (its `data`), arriving at `now`. A profile
    without the date field (or with a date already past) goes on at once; a profile without
    a valid zone in `zone_field` waits in the node's own zone."""
    if "time" in spec:
        where = zone(profile.get(spec["zone_field"])) if spec.get("zone_field") else None
        where = where or zone(spec["zone"]) or timezone.utc
        local = now.astimezone(where)
        hour, minute = map(int, spec["time"].split(":"))
        target = datetime.combine(local.date(), time(hour, minute), where)
        if target <= local:
            target = datetime.combine(local.date() + timedelta(days=1), time(hour, minute), where)
        return target.astimezone(timezone.utc)
    moment = as_moment(profile.get(spec["field"]))
    if moment is None:
        return now
    return max(now, moment + timedelta(seconds=spec["offset_seconds"]))


def split_branch(run_id: str, node_id: str, visit: int, percents: list[int]) -> int:
    """The index of the branch a run takes: a bucket 0..99 derived from (run, node, visit),
    so a step done again (a replay, a second worker) takes the same branch."""
    bucket = int(uuid.uuid5(_SPLIT_NS, f"{run_id}:{node_id}:{visit}").hex[:8], 16) % 100
    for index, percent in enumerate(percents):
        if bucket < percent:
            return index
        bucket -= percent
    return len(percents) - 1


def anniversary_due(value: Any, day: date, offset_days: int = 0) -> bool:
    """Whether a date field (a birthday) admits a profile on `day`: `day` is the field's
    anniversary plus `offset_days` (-3: three days before it). 29 February falls on
    28 February in other years."""
    moment = as_moment(value)
    if moment is None:
        return False
    target = day - timedelta(days=offset_days)
    month, dom = moment.month, moment.day
    if (month, dom) == (2, 29):
        try:
            date(target.year, 2, 29)
        except ValueError:
            dom = 28
    return (target.month, target.day) == (month, dom)
