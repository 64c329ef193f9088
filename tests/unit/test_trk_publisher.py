"""The tracking publisher's thread with a fake confirm window (no broker; the real broker,
its outages and a cluster are in tests/integration/test_tracking.py and
test_rabbitmq_cluster.py)."""

from altcraft.services.trk import publisher as trk_publisher


class FakeWindow:
    """The first channel confirms "a" and leaves everything else unconfirmed, then reports
    its oldest message as too old (a confirm timeout) in the same step; later channels
    confirm everything they are sent."""
    opened = 0

    def __init__(self, _params, _exchange):
        FakeWindow.opened += 1
        self.first = FakeWindow.opened == 1
        self._outstanding = []
        self.nacked = 0
        self.timed_out = False

    @property
    def outstanding(self):
        return len(self._outstanding)

    def send(self, items):
        self._outstanding += items

    def poll(self, _timeout):
        done = [i for i in self._outstanding if not self.first or i.message_id == "a"]
        self._outstanding = [i for i in self._outstanding if i not in done]
        for item in done:
            item.ok = True
        self.timed_out = self.first and bool(done)
        return done

    def oldest_age(self):
        return trk_publisher.CONFIRM_TIMEOUT + 1 if self.timed_out and self._outstanding else 0.0

    def take_outstanding(self):
        items, self._outstanding = self._outstanding, []
        return items

    def close(self):
        pass


def test_a_confirm_that_arrives_with_a_timeout_is_not_dropped(monkeypatch, tmp_path):
    monkeypatch.setattr(trk_publisher, "ConfirmWindow", FakeWindow)
    FakeWindow.opened = 0
    confirmed = trk_publisher.EVENTS.labels("confirmed")._value.get()
    publisher = trk_publisher.EventPublisher(lambda: None, "altcraft.events", tmp_path / "spool")
    publisher.submit("action.click", b"{}", "b")
    assert publisher.publish_and_wait("action.click", b"{}", "a", timeout=5)  # confirmed: its page may answer
    publisher.close(timeout=5)
    assert trk_publisher.EVENTS.labels("confirmed")._value.get() - confirmed == 2
    assert FakeWindow.opened == 2 and not list(tmp_path.glob("spool/*"))
