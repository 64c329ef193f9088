"""EventWriter recounts the hourly statistics less often when a recount takes long: the
batches wait while it runs, and an hour of a big campaign takes long to recount."""

from altcraft.domain import ingest


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class SlowStats:
    """A recount that takes `takes` seconds of the clock."""

    def __init__(self, clock: Clock, takes: float):
        self.clock, self.takes, self.calls = clock, takes, 0

    def refresh(self, analytics, touched) -> int:
        self.calls += 1
        self.clock.now += self.takes
        return len(touched)


def writer(monkeypatch, takes: float) -> tuple[ingest.EventWriter, SlowStats, Clock]:
    clock = Clock()
    monkeypatch.setattr(ingest.time, "monotonic", clock)
    stats = SlowStats(clock, takes)
    made = ingest.EventWriter(None, lambda a, d: None, None, stats)
    return made, stats, clock


def test_a_quick_recount_runs_every_stats_every(monkeypatch):
    made, stats, clock = writer(monkeypatch, takes=0.01)
    for _ in range(5):
        made._dirty.add((1, 3600))
        made.refresh_stats()
        clock.now += ingest.STATS_EVERY
    assert stats.calls == 5


def test_a_slow_recount_takes_at_most_its_share_of_the_writer(monkeypatch):
    made, stats, clock = writer(monkeypatch, takes=0.25)
    began = clock.now
    while clock.now - began < 60:  # a minute of batches every 50 ms, each touching the hour
        made._dirty.add((1, 3600))
        made.refresh_stats()
        clock.now += 0.05
    recounting = stats.calls * stats.takes
    assert recounting / (clock.now - began) <= ingest.STATS_SHARE * 1.05
    assert stats.calls >= 20  # still recounted every 2.5 s or so, not given up


def test_force_recounts_at_once(monkeypatch):
    made, stats, _clock = writer(monkeypatch, takes=0.25)
    made._dirty.add((1, 3600))
    made.refresh_stats()
    made._dirty.add((1, 3600))
    made.refresh_stats(force=True)
    assert stats.calls == 2
