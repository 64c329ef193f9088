"""The relay gives way to the answers during a burst, and only then (services/trk/pacing.py)."""

from altcraft.services.trk import pacing
from altcraft.services.trk.pacing import CpuPressure, Pacer

PSI = ("some avg10=12.00 avg60=3.00 avg300=1.00 total={}\n"
       "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")


class Clock:
    def __init__(self):
        self.at = 100.0

    def __call__(self):
        return self.at


def test_the_stalled_time_is_read_from_the_some_line():
    assert pacing.stalled_microseconds(PSI.format(123456)) == 123456
    assert pacing.stalled_microseconds("full avg10=0.00 total=5\n") is None


def test_the_pressure_is_the_stalled_share_of_the_time_between_two_looks(tmp_path):
    path, clock = tmp_path / "cpu", Clock()
    pressure = CpuPressure(path, clock)
    path.write_text(PSI.format(1_000_000))
    assert pressure.share() == 0.0  # the first look has nothing to compare with
    clock.at += 0.5
    path.write_text(PSI.format(1_250_000))
    assert pressure.share() == 0.5
    assert CpuPressure(tmp_path / "absent", clock).share() == 0.0, "no PSI: never busy"


class Journal:
    def __init__(self):
        self.bytes = 0

    def __call__(self):
        return self.bytes


def run(pacer, clock, journal, seconds, grow_per_second, wanted=1000):
    """Steps of 10 ms for `seconds`; what was sent."""
    sent = 0
    for _ in range(int(seconds * 100)):
        clock.at += 0.01
        journal.bytes += int(grow_per_second * 0.01)
        room = pacer.room(wanted, journal)
        pacer.took(room)
        sent += room
    return sent


def test_a_burst_on_contended_cores_is_published_at_the_floor_rate():
    clock, journal = Clock(), Journal()
    pacer = Pacer(lambda: 0.9, clock, floor=2000)
    sent = run(pacer, clock, journal, 5.0, grow_per_second=20 * pacing.GROWING)
    assert pacer.yielding
    assert 8000 <= sent <= 10_000 + 1000 * 20, sent  # the floor, after the first sample at full speed


def test_no_yield_without_pressure_or_without_the_journal_growing():
    clock, journal = Clock(), Journal()
    idle = Pacer(lambda: 0.0, clock)
    assert run(idle, clock, journal, 2.0, grow_per_second=20 * pacing.GROWING) == 200 * 1000
    catching_up = Pacer(lambda: 0.9, clock)  # the cores are busy publishing, nothing new is written
    assert run(catching_up, clock, journal, 2.0, grow_per_second=0) == 200 * 1000
    assert not idle.yielding and not catching_up.yielding


def test_a_load_that_does_not_end_gets_full_speed_spells():
    clock, journal = Clock(), Journal()
    pacer = Pacer(lambda: 0.9, clock, floor=2000)
    run(pacer, clock, journal, pacing.MOST_YIELD + 1, grow_per_second=20 * pacing.GROWING)
    assert not pacer.yielding, "it gave way longer than MOST_YIELD"
    full = run(pacer, clock, journal, pacing.MOST_YIELD - 1, grow_per_second=20 * pacing.GROWING)
    assert full >= (pacing.MOST_YIELD - 1.5) * 100 * 1000
    run(pacer, clock, journal, 2.0, grow_per_second=20 * pacing.GROWING)
    assert pacer.yielding, "it did not give way again after the full-speed spell"


def test_the_burst_ending_restores_full_speed():
    clock, journal = Clock(), Journal()
    pacer = Pacer(lambda: 0.9, clock, floor=2000)
    run(pacer, clock, journal, 1.0, grow_per_second=20 * pacing.GROWING)
    assert pacer.yielding
    run(pacer, clock, journal, 0.5, grow_per_second=0)
    assert not pacer.yielding
