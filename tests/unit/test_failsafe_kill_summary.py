"""The failsafe kill run's reading of the sink (tests/lib/failsafe_kill.sink_summary): a repeat
whose first copy left the killed app server before it died is the MTA's window; any other
repeat is not, and check() names it."""

from __future__ import annotations

from tests.lib.failsafe_kill import ADDRESS, check, match_requests, sink_summary
from tests.lib.sink import Received

KILL_AT = 1000.0


def message(message_id: str, rcpt: str, at: float, peer: str) -> Received:
    data = f"Message-ID: <{message_id}>\r\nTo: {rcpt}\r\nSubject: x\r\n\r\nbody\r\n".encode()
    return Received("news@failsafe.example", rcpt, data, at, peer)


def test_a_repeat_across_the_kill_from_the_killed_server_is_the_window():
    received = [message("a", "a@sink.test", KILL_AT - 0.2, ADDRESS["app1"]),
                message("b", "b@sink.test", KILL_AT - 5, ADDRESS["app2"]),
                message("a", "a@sink.test", KILL_AT + 200, ADDRESS["app1"])]
    summary = sink_summary(received, {"a@sink.test", "b@sink.test"}, KILL_AT)
    assert summary["repeated_in_mta_window"] == 1 and summary["repeated_outside_window"] == 0
    assert summary["message_ids"] == 2 and summary["missing_recipients"] == 0


def test_any_other_repeat_is_outside_the_window():
    received = [message("a", "a@sink.test", KILL_AT + 10, ADDRESS["app2"]),
                message("a", "a@sink.test", KILL_AT + 11, ADDRESS["app2"]),
                message("c", "c@sink.test", KILL_AT - 30, ADDRESS["app1"]),  # long before the kill
                message("c", "c@sink.test", KILL_AT + 100, ADDRESS["app1"])]
    summary = sink_summary(received, {"a@sink.test", "c@sink.test", "d@sink.test"}, KILL_AT)
    assert summary["repeated_outside_window"] == 2 and summary["repeated_in_mta_window"] == 0
    assert summary["missing_recipients"] == 1


def test_requests_matched_to_events_by_serial():
    answered = {"open": {1: 100.0, 3: 140.0, 5: 170.0}, "click": {2: 100.5, 4: 141.0}}
    rows = [("open", 1, 1), ("open", 5, 2), ("open", 9, 1),  # 3 missing, 5 doubled, 9 unanswered
            ("click", 2, 1), ("click", 4, 1)]
    matched = match_requests(rows, answered, since=90.0)
    assert matched["open"]["missing"] == 1 and matched["open"]["missing_first"] == [(3, 140.0)]
    assert matched["open"]["missing_by_30s"] == {30: 1}
    assert matched["open"]["doubled"] == 1 and matched["open"]["unanswered"] == 1
    assert matched["click"] == {"answered": 2, "with_event": 2, "missing": 0, "missing_first": [],
                                "missing_by_30s": {}, "doubled": 0, "unanswered": 0}


def facts(**changes) -> dict:
    """The facts of a run that proved everything, with `changes`."""
    replica = {"delivered": {"rows": 2, "events": 2, "profiles": 2, "ids_hash": "1", "final": 2},
               "open": {"rows": 2, "events": 2, "profiles": 2, "ids_hash": "2", "final": 2}}
    base = {
        "sink": {"missing_recipients": 0, "recipients_with_two_message_ids": 0, "repeated_in_mta_window": 0,
                 "repeated_outside_window": 0},
        "tracking": {"failed_ratio": 0.0, "failed": 0, "requests": 2, "failures": {},
                     "answered_just_before_kill": {}},
        "clickhouse": {"per_replica": {"db1": replica, "db2": replica}, "answered": {"open": 2}, "messages": 2,
                       "requests": {h: {"open": {"missing": 0, "doubled": 0, "missing_by_30s": {}}}
                                    for h in ("db1", "db2")}},
        "alerts_firing": ["api", "trkaction"], "app1_processes": ["api", "trkaction"],
        "relays_before": {"app1": ["AK:trkaction:relay"], "app2": ["AK:trkaction:relay"]},
        "relays_after": {"app1": ["AK:trkaction:relay"], "app2": ["AK:trkaction:relay"]},
        "rejoined": {"haproxy": {"trk/app1": "UP"}, "rabbitmq_running_nodes": 3, "clickhouse_readonly": 0,
                     "clickhouse_min_active_replicas": 2, "kv_primary": "10.58.0.12",
                     "old_kv_primary": {"role": "slave", "master_link_status": "up", "master_host": "10.58.0.12"}},
    }
    base.update(changes)
    return base


def test_check_passes_a_run_that_proved_everything():
    assert check(facts()) == []


def test_check_names_a_process_of_app1_whose_alert_did_not_fire():
    problems = check(facts(alerts_firing=["api"]))
    assert problems == ["prometheus: AltcraftProcessDown did not fire for app1's ['trkaction']"]


def test_check_names_answered_requests_without_an_event():
    run = facts()
    run["clickhouse"]["requests"]["db2"] = {"open": {"missing": 1, "doubled": 0, "missing_by_30s": {60: 1}}}
    problems = check(run)
    assert len(problems) == 1 and problems[0].startswith("clickhouse db2: open: 1 answered requests without an event")


def test_check_names_an_app_server_without_its_event_relay():
    problems = check(facts(relays_after={"app1": [], "app2": ["AK:trkaction:relay"]}))
    assert problems == ["trk: the event relays on app1 (relays_after): []"]
