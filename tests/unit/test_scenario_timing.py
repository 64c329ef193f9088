"""The calendar arithmetic of scenario waits, splits and date entries (domain/scenario_timing.py)."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timezone

from altcraft.domain import scenario_timing as timing

NOON = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


def test_a_wait_until_a_time_of_day_is_the_next_such_time_in_the_profiles_zone():
    spec = {"time": "09:00", "zone": "UTC", "zone_field": "tz"}
    # Moscow is UTC+3: 15:00 there now, so 09:00 tomorrow = 06:00 UTC
    assert timing.until(spec, {"tz": "Europe/Moscow"}, NOON) == datetime(2026, 12, 1, 6, 0, tzinfo=timezone.utc)
    # Vladivostok is UTC+10: 22:00 there now, 09:00 tomorrow = 23:00 UTC today
    assert timing.until(spec, {"tz": "Asia/Vladivostok"}, NOON) == datetime(2026, 11, 30, 23, 0, tzinfo=timezone.utc)
    # New York is UTC-5: 07:00 there, 09:00 today = 14:00 UTC
    assert timing.until(spec, {"tz": "America/New_York"}, NOON) == datetime(2026, 11, 30, 14, 0, tzinfo=timezone.utc)
    # no zone (or a bad one) on the profile: the node's own
    assert timing.until(spec, {}, NOON) == timing.until(spec, {"tz": "Nowhere/Else"}, NOON) == \
        datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
    # exactly that time now: the next day's
    assert timing.until({"time": "12:00", "zone": "UTC"}, {}, NOON) == datetime(2026, 12, 1, 12, tzinfo=timezone.utc)


def test_a_wait_until_a_date_field_plus_an_offset():
    spec = {"field": "renewal", "offset_seconds": -86400}
    assert timing.until(spec, {"renewal": "2026-12-10"}, NOON) == datetime(2026, 12, 9, tzinfo=timezone.utc)
    moment = datetime(2026, 12, 10, 8, 30, tzinfo=timezone.utc)
    assert timing.until(spec, {"renewal": moment}, NOON) == datetime(2026, 12, 9, 8, 30, tzinfo=timezone.utc)
    # past, missing or not a date: on at once
    assert timing.until(spec, {"renewal": "2026-01-01"}, NOON) == NOON
    assert timing.until(spec, {}, NOON) == timing.until(spec, {"renewal": "soon"}, NOON) == NOON


def test_a_split_is_deterministic_per_run_and_near_its_percentages():
    picks = [timing.split_branch(f"wf1.run{i}", "ab", 1, [30, 70]) for i in range(2000)]
    assert picks == [timing.split_branch(f"wf1.run{i}", "ab", 1, [30, 70]) for i in range(2000)], \
        "a replay took another branch"
    share = Counter(picks)[0] / len(picks)
    assert 0.25 < share < 0.35, share
    assert {timing.split_branch("wf1.r", "ab", v, [50, 50]) for v in range(1, 40)} == {0, 1}, \
        "each visit of a cycle got the same bucket"


def test_a_date_entry_admits_on_the_anniversary_plus_offset():
    assert timing.anniversary_due("1990-12-03", date(2026, 12, 3))
    assert not timing.anniversary_due("1990-12-03", date(2026, 12, 2))
    assert timing.anniversary_due("1990-12-03", date(2026, 11, 30), offset_days=-3), "three days before"
    assert timing.anniversary_due(datetime(1990, 12, 3, 23, 0, tzinfo=timezone.utc), date(2026, 12, 3))
    assert timing.anniversary_due("2000-02-29", date(2027, 2, 28)), "29 February in a common year"
    assert not timing.anniversary_due("2000-02-29", date(2028, 2, 28))
    assert timing.anniversary_due("2000-02-29", date(2028, 2, 29))
    assert not timing.anniversary_due(None, date(2026, 12, 3))
    assert not timing.anniversary_due("not a date", date(2026, 12, 3))
