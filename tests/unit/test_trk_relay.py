"""The tracking journal (a worker's side) and the relay (the publishing process) with a fake
confirm window: no broker. The real broker, akd and a killed relay are in
tests/integration/test_trk_relay.py and test_tracking.py."""

from __future__ import annotations

import json
import os
import subprocess
import threading

import pytest

from altcraft.services.trk import relay as trk_relay
from altcraft.services.trk.journal import Journal, decode_line, encode_line
from altcraft.services.trk.publisher import EVENTS, Outgoing, Spool

BODY = b'{"event_id":"%s","kind":"click","user_agent":"a \\"quoted\\" agent\\n"}'


def body(n: int) -> bytes:
    return BODY % str(n).encode()


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


class FakeWindow:
    """Confirms what it is sent on the next poll, except what `refuse` says (nacked) and
    everything while `hold` is set; records every message id sent. `fail_once`: the first
    poll of the first window raises, as a lost connection does."""
    sent: list[str] = []
    refuse: set[str] = set()
    hold = False
    fail_once = False
    opened = 0

    def __init__(self, _params, _exchange):
        FakeWindow.opened += 1
        self._outstanding = []
        self.nacked = 0

    @classmethod
    def reset(cls):
        cls.sent, cls.refuse, cls.hold, cls.fail_once, cls.opened = [], set(), False, False, 0

    @property
    def outstanding(self):
        return len(self._outstanding)

    def send(self, items):
        FakeWindow.sent += [i.message_id for i in items]
        self._outstanding += items

    def poll(self, _timeout):
        if FakeWindow.fail_once:
            FakeWindow.fail_once = False
            raise ConnectionResetError("lost")
        if FakeWindow.hold:
            return []
        done, self._outstanding = self._outstanding, []
        for item in done:
            item.ok = item.message_id not in FakeWindow.refuse
        return done

    def oldest_age(self):
        return 0.0

    def take_outstanding(self):
        items, self._outstanding = self._outstanding, []
        return items

    def close(self):
        pass


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setattr(trk_relay, "ConfirmWindow", FakeWindow)
    monkeypatch.setattr(trk_relay, "SCAN_EVERY", 0.0)
    FakeWindow.reset()
    return FakeWindow


def write_journal(path, ids) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as handle:
        for i in ids:
            handle.write(encode_line("action.click", body(i), f"id{i}"))


def drain(relay: trk_relay.Relay, steps: int = 200) -> None:
    """Steps until nothing is in flight or waiting (or `steps` turns)."""
    for _ in range(steps):
        busy = relay.step()
        relay.scan()
        if not busy and not relay.later and not any(s.size > s.read_at for s in relay.sources.values()):
            return


def make_relay(directory, **kwargs) -> trk_relay.Relay:
    return trk_relay.Relay(lambda: None, "altcraft.events", directory, **kwargs)


def test_a_line_keeps_the_body_as_it_was_and_the_spool_format_still_reads(tmp_path):
    line = encode_line("action.open", body(7), "abc")
    assert line.endswith(b"}\n") and line.count(b"\n") == 1
    assert decode_line(line[:-1]) == ("action.open", body(7), "abc")
    assert json.loads(line)["event"]["user_agent"] == 'a "quoted" agent\n'  # one JSON object
    Spool(tmp_path).write([Outgoing("action.click", body(8), "old")])
    (spooled,) = tmp_path.glob("*.jsonl")
    assert decode_line(spooled.read_bytes().rstrip(b"\n")) == ("action.click", body(8), "old")
    for bad in (b"", b"{}", b'{"rk":"a","id":"b","event":', b"\x00\x00\x00"):
        with pytest.raises(ValueError):
            decode_line(bad)


def test_the_journal_appends_whole_lines_in_order_and_moves_to_a_new_segment(tmp_path):
    journal = Journal(tmp_path / "spool", segment_bytes=200)
    for i in range(6):
        assert journal.append("action.click", body(i), f"id{i}")
    journal.close()
    files = sorted((tmp_path / "spool").glob("*.jsonl"), key=lambda p: int(p.name.split(".")[1]))
    assert [f.name.split(".")[0] for f in files] == [str(os.getpid())] * len(files) and len(files) >= 3
    lines = [decode_line(raw) for f in files for raw in f.read_bytes().splitlines()]
    assert [m for _, _, m in lines] == [f"id{i}" for i in range(6)]
    assert journal.take_accepted() == 6 and journal.take_accepted() == 0
    assert oct((tmp_path / "spool" / files[0].name).stat().st_mode & 0o777) == "0o600"


def test_an_unwritable_journal_says_so(tmp_path):
    (tmp_path / "spool").write_text("a file where the directory should be")
    assert not Journal(tmp_path / "spool").append("action.click", body(1), "id1")


def test_every_line_is_published_and_finished_files_go(tmp_path, fake):
    spool = tmp_path / "spool"
    gone = dead_pid()
    write_journal(spool / f"{gone}.0.jsonl", range(0, 5))  # a worker that died
    write_journal(spool / f"{os.getpid()}.0.jsonl", range(5, 8))  # a live worker, rotated
    write_journal(spool / f"{os.getpid()}.1.jsonl", range(8, 10))  # its current segment
    relay = make_relay(spool, batch=3)
    confirmed = EVENTS.labels("confirmed")._value.get()
    drain(relay)
    assert sorted(fake.sent) == sorted(f"id{i}" for i in range(10)) and len(fake.sent) == 10
    assert EVENTS.labels("confirmed")._value.get() - confirmed == 10
    # the dead writer's file and the finished segment are deleted; the current one is kept,
    # with how far it is done
    current = spool / f"{os.getpid()}.1.jsonl"
    assert sorted(p.name for p in spool.iterdir()) == sorted([current.name, current.name + ".done"])
    assert int((spool / (current.name + ".done")).read_text()) == current.stat().st_size
    write_journal(current, [10])  # the live writer goes on: only the new line goes out
    drain(relay)
    assert fake.sent[10:] == ["id10"]


def test_a_nacked_line_stays_in_the_journal_until_the_broker_confirms_it(tmp_path, fake, monkeypatch):
    spool = tmp_path / "spool"
    path = spool / f"{os.getpid()}.0.jsonl"
    write_journal(path, range(4))
    fake.refuse = {"id1"}
    relay = make_relay(spool)
    drain(relay, steps=5)
    assert sorted(fake.sent) == ["id0", "id1", "id2", "id3"]
    first = len(encode_line("action.click", body(0), "id0"))
    assert relay.sources[path].done == first  # not past the nacked line, though 2 and 3 are done
    relay.later = type(relay.later)((0.0, line) for _, line in relay.later)  # its retry is due
    fake.refuse = set()
    drain(relay)
    assert fake.sent.count("id1") == 2 and relay.sources[path].done == path.stat().st_size


def test_a_lost_connection_sends_the_unconfirmed_lines_again(tmp_path, fake, monkeypatch):
    spool = tmp_path / "spool"
    write_journal(spool / f"{dead_pid()}.0.jsonl", range(3))
    fake.fail_once = True
    relay = make_relay(spool)
    relay.step()  # sent, then the connection is lost before any confirm
    assert relay.channel is None and len(relay.retry) == 3
    relay._down_until = 0.0
    drain(relay)
    assert fake.sent == ["id0", "id1", "id2"] * 2 and fake.opened == 2
    assert not list(spool.iterdir())


def test_a_new_relay_starts_where_the_last_one_recorded(tmp_path, fake):
    """A relay killed (nothing flushed, nothing closed) loses nothing, and the next one does
    not send again what the broker had confirmed before the last recorded progress."""
    spool = tmp_path / "spool"
    path = spool / f"{os.getpid()}.0.jsonl"
    write_journal(path, range(6))
    relay = make_relay(spool, batch=4, window=4)
    relay.step()  # 0-3 sent and confirmed
    relay.scan()  # progress recorded
    fake.hold = True
    relay.step()  # 4 and 5 sent, never confirmed: then the relay is killed
    assert fake.sent == [f"id{i}" for i in range(6)]
    fake.hold = False
    drain(make_relay(spool))
    assert fake.sent[6:] == ["id4", "id5"]


def test_memory_holds_at_most_a_window_while_the_broker_does_not_confirm(tmp_path, fake):
    spool = tmp_path / "spool"
    path = spool / f"{os.getpid()}.0.jsonl"
    write_journal(path, range(50))
    fake.hold = True
    relay = make_relay(spool, batch=4, window=10)
    for _ in range(30):
        relay.step()
        assert relay.held() <= 10
    assert len(fake.sent) == 10 and relay.sources[path].done == 0
    fake.hold = False
    drain(relay)
    assert sorted(fake.sent) == sorted(f"id{i}" for i in range(50))


def test_a_torn_last_line_of_a_dead_writer_is_dropped_and_counted(tmp_path, fake):
    spool = tmp_path / "spool"
    path = spool / f"{dead_pid()}.0.jsonl"
    write_journal(path, range(2))
    with open(path, "ab") as handle:
        handle.write(encode_line("action.click", body(2), "id2")[:30])  # killed mid-write
    lost = EVENTS.labels("lost")._value.get()
    drain(make_relay(spool))
    assert fake.sent == ["id0", "id1"] and EVENTS.labels("lost")._value.get() - lost == 1
    assert not list(spool.iterdir())


def test_a_live_writers_unfinished_line_waits(tmp_path, fake):
    spool = tmp_path / "spool"
    path = spool / f"{os.getpid()}.0.jsonl"
    line = encode_line("action.click", body(0), "id0")
    path.parent.mkdir()
    path.write_bytes(line[:20])
    relay = make_relay(spool)
    drain(relay)
    assert fake.sent == []
    with open(path, "ab") as handle:
        handle.write(line[20:])
    drain(relay)
    assert fake.sent == ["id0"]


def test_the_relay_stops_with_its_parent_and_records_its_progress(tmp_path, fake):
    spool = tmp_path / "spool"
    path = spool / f"{os.getpid()}.0.jsonl"
    write_journal(path, range(3))
    relay = make_relay(spool, batch=2, window=2)
    relay.step()  # two sent and confirmed (recorded at the next scan, or when it stops)
    fake.hold = True
    relay.step()  # the third one in flight
    stop = threading.Event()
    relay.flush_timeout = 0.05
    relay.run(stop, parent=os.getppid() + 1)  # "the parent is gone": it returns
    assert stop.is_set() and fake.sent == ["id0", "id1", "id2"]
    second = len(encode_line("action.click", body(0), "id0")) * 2
    assert int((spool / (path.name + ".done")).read_text()) == second  # not past the unconfirmed one


class Recorder:
    def __init__(self):
        self.events = []
        self.ticks = []

    def submit(self, routing_key, body, message_id):
        self.events.append(message_id)

    def start(self):
        pass


def test_a_click_is_appended_to_the_journal_or_else_handed_to_the_publisher(tmp_path):
    import time

    from altcraft import registry
    from altcraft.config import validate
    from altcraft.domain.tracking import Link, sign
    from altcraft.services.trk.app import TrackingApp

    key = "k" * 40
    config, report = validate({"PRIVATE_KEY": key, "WEBAPI_PRIVATE_KEY": key, "TRACKING_CRYPT_KEY": key,
                               "TRACKING_BASE_URL": "http://127.0.0.1:8095"})
    assert config is not None, report
    token = sign(Link("click", 1, 2, 3, 77, "0" * 32, 2, "https://shop.example/", int(time.time()) - 60), key)
    recorder = Recorder()
    journal = Journal(tmp_path / "spool")
    app = TrackingApp(config, registry.get("trkaction"), recorder, lambda *_: [b""], journal)

    def click() -> str:
        seen = []
        app({"REQUEST_METHOD": "GET", "PATH_INFO": f"/c/{token}", "REMOTE_ADDR": "192.0.2.7",
             "HTTP_USER_AGENT": "Mozilla/5.0"}, lambda status, headers: seen.append(status))
        return seen[0]

    assert click() == "302 Found"
    (path,) = (tmp_path / "spool").glob("*.jsonl")
    routing_key, event, message_id = decode_line(path.read_bytes().rstrip(b"\n"))
    assert routing_key == "action.click" and json.loads(event)["event_id"] == message_id
    assert recorder.events == []
    app._flush_counts()
    assert journal.accepted == 0  # counted into altcraft_trk_events_total{outcome="accepted"}

    journal.directory = tmp_path / "not-a-directory"
    journal.directory.write_text("")
    journal._size = journal.segment_bytes  # the next append opens a segment there: it cannot
    assert click() == "302 Found" and len(recorder.events) == 1  # the publisher has it


def test_a_forked_worker_writes_a_journal_of_its_own(tmp_path):
    journal = Journal(tmp_path / "spool")
    assert journal.append("action.click", body(0), "parent")
    child = os.fork()
    if child == 0:  # the worker
        os._exit(0 if journal.append("action.click", body(1), "child") else 1)
    assert os.waitpid(child, 0)[1] == 0
    assert journal.append("action.click", body(2), "parent-again")
    journal.close()
    ids = {p.name.split(".")[0]: [decode_line(raw)[2] for raw in p.read_bytes().splitlines()]
           for p in (tmp_path / "spool").glob("*.jsonl")}
    assert ids == {str(os.getpid()): ["parent", "parent-again"], str(child): ["child"]}


class IdleWindow(FakeWindow):
    """A window with nothing in flight that counts its polls; `gone` makes a poll raise."""
    polls = 0
    gone = False

    def poll(self, _timeout):
        IdleWindow.polls += 1
        if IdleWindow.gone:
            raise ConnectionResetError("gone while idle")
        return []


def test_an_idle_connection_is_polled_for_its_heartbeats_and_dropped_quietly_when_gone(tmp_path, fake, monkeypatch):
    """Unpolled, the broker drops an idle connection after two heartbeat intervals and the
    next click's publish fails first: an idle relay polls its open window about once a
    second, and one lost while idle is dropped (a new one opens with the next event)."""
    clock = [1000.0]
    monkeypatch.setattr(trk_relay.time, "monotonic", lambda: clock[0])
    (tmp_path / "spool").mkdir()
    relay = make_relay(tmp_path / "spool")
    IdleWindow.polls, IdleWindow.gone = 0, False
    relay.channel = IdleWindow(None, None)
    for _ in range(50):  # idle turns within one TEND_EVERY: one poll
        assert relay.step() is False
    assert IdleWindow.polls == 1
    clock[0] += trk_relay.TEND_EVERY
    relay.step()
    assert IdleWindow.polls == 2
    IdleWindow.gone = True
    clock[0] += trk_relay.TEND_EVERY
    assert relay.step() is False and relay.channel is None


class TrickleWindow(FakeWindow):
    """Confirms one message a poll (a broker busy but alive); nothing while `hold` is set.
    Its messages' ages run on the relay's clock."""

    def send(self, items):
        for item in items:
            item.sent_at = trk_relay.time.monotonic()
        super().send(items)

    def oldest_age(self):
        return trk_relay.time.monotonic() - self._outstanding[0].sent_at if self._outstanding else 0.0

    def poll(self, _timeout):
        if FakeWindow.hold or not self._outstanding:
            return []
        item = self._outstanding.pop(0)
        item.ok = True
        return [item]


def test_a_slow_broker_is_waited_for_and_a_silent_one_gets_the_window_again(tmp_path, fake, monkeypatch):
    """The confirm timeout counts from the last confirm, not from the oldest message: a broker
    that confirms a message every 4 s is alive (nothing sent twice, one channel), one that
    confirms nothing for CONFIRM_TIMEOUT gets what is in flight again on a new channel."""
    monkeypatch.setattr(trk_relay, "ConfirmWindow", TrickleWindow)
    clock = [1000.0]
    monkeypatch.setattr(trk_relay.time, "monotonic", lambda: clock[0])
    spool = tmp_path / "spool"
    write_journal(spool / f"{os.getpid()}.0.jsonl", range(8))
    relay = make_relay(spool, batch=8, window=8)
    for _ in range(8):  # 28 s from the first send to the last confirm
        relay.step()
        clock[0] += 4.0
    assert fake.sent == [f"id{i}" for i in range(8)] and fake.opened == 1
    write_journal(spool / f"{os.getpid()}.0.jsonl", range(8, 12))
    fake.hold = True
    relay.scan()
    relay.step()  # 8-11 in flight, never confirmed
    clock[0] += trk_relay.CONFIRM_TIMEOUT + 1
    relay.step()  # the timeout: taken back for a new channel
    fake.hold = False
    clock[0] += 10
    drain(relay)
    assert fake.sent[8:] == ["id8", "id9", "id10", "id11"] * 2 and fake.opened == 2
