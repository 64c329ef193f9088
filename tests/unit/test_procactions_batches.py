"""procactions' batching policy (Consumer._batch_due), without a broker: when the gathered
messages go to the writer."""

from altcraft.services import procactions


class Source:
    """What _batch_due asks the broker: messages ready per queue."""

    def __init__(self, ready: dict[str, int] | None = None):
        self.counts = ready or {}
        self.asked = 0

    def ready(self, queue: str) -> int:
        self.asked += 1
        return self.counts.get(queue, 0)


def consumer() -> procactions.Consumer:
    made = procactions.Consumer(None, None, prefetch=20, flush_seconds=1.0)  # batches of 10
    made._first_at = 100.0
    return made


def test_half_the_window_goes_at_once():
    assert consumer()._batch_due(Source(), 10, quiet=False, now=100.0)


def test_a_trickle_waits_for_its_second_even_when_the_queues_are_empty():
    made, source = consumer(), Source()
    assert not made._batch_due(source, 3, quiet=True, now=100.5)
    assert source.asked == 0  # no burst: the broker is not even asked
    assert made._batch_due(source, 3, quiet=True, now=101.0)


def test_the_end_of_a_burst_goes_at_once_once_the_queues_are_empty():
    made = consumer()
    assert made._batch_due(Source(), 12, quiet=False, now=100.0)  # a full batch: a burst
    made._first_at = 100.01
    assert not made._batch_due(Source(), 4, quiet=False, now=100.02)  # still arriving
    paused = Source({"events.delivery": 7})
    assert not made._batch_due(paused, 4, quiet=True, now=100.03)  # a pause, not the end
    assert paused.asked == 2
    assert made._batch_due(Source(), 4, quiet=True, now=100.04)  # the end: written now
    made._first_at = 100.05
    assert not made._batch_due(Source(), 1, quiet=True, now=100.06)  # a trickle again


def test_a_drain_request_sends_what_is_gathered():
    made = consumer()
    made._drain = (1, 5)
    assert made._batch_due(Source(), 1, quiet=False, now=100.0)
