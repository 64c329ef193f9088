"""The failsafe kill run's reading of the sink (tests/lib/failsafe_kill.sink_summary): a repeat
whose first copy left the killed app server before it died is the MTA's window; any other
repeat is not, and check() names it."""

from __future__ import annotations

from tests.lib.failsafe_kill import ADDRESS, sink_summary
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
