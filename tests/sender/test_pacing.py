import pytest

from appliance.sender.pacing import Pacer


class FakeClock:
    """A monotonic clock that only moves when the code under test sleeps (or a test says)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(seconds, self.SLEEP_ZERO_TAKES)

    SLEEP_ZERO_TAKES = 0.0001
    """Even sleep(0) takes a little time (a system call): what makes spinning terminate."""


def test_packets_leave_on_absolute_deadlines() -> None:
    clock = FakeClock()
    pacer = Pacer(clock=clock, sleep=clock.sleep)
    sent_at = []
    for _ in range(5):
        pacer.wait()
        sent_at.append(clock.now)
        clock.now += 0.003  # the send itself takes time; it must not push the schedule
    assert sent_at == pytest.approx([1000.0, 1000.02, 1000.04, 1000.06, 1000.08], abs=1e-4)


def test_sleeps_then_spins_the_last_stretch() -> None:
    clock = FakeClock()
    pacer = Pacer(clock=clock, sleep=clock.sleep, spin=0.001)
    pacer.wait()
    pacer.wait()
    assert clock.sleeps[0] == pytest.approx(0.019)
    spins = clock.sleeps[1:]
    assert set(spins) == {0} and len(spins) in (10, 11)  # 1 ms of 0.1 ms polls
    assert clock.now == pytest.approx(1000.02, abs=1e-4)


def test_no_drift_over_an_hour() -> None:
    clock = FakeClock()
    pacer = Pacer(clock=clock, sleep=clock.sleep, spin=0)
    for _ in range(180_000):  # one hour of 20 ms packets
        pacer.wait()
        clock.now += 0.0001
    assert pacer.deadline(179_999) == pytest.approx(1000.0 + 179_999 * 0.02)
    assert pacer.reanchors == []


def test_small_lateness_is_caught_up_without_sleeping() -> None:
    clock = FakeClock()
    pacer = Pacer(clock=clock, sleep=clock.sleep)
    pacer.wait()
    clock.now += 0.05  # 50 ms hiccup: packets 1 and 2 are overdue, still within the bound
    assert pacer.wait() is None
    assert pacer.wait() is None
    assert clock.sleeps == []
    pacer.wait()
    assert clock.now == pytest.approx(1000.06, abs=1e-4)


def test_a_stall_reanchors_instead_of_bursting() -> None:
    clock = FakeClock()
    pacer = Pacer(clock=clock, sleep=clock.sleep)
    pacer.wait()
    pacer.wait()
    clock.now += 2.0  # laptop suspended for two seconds
    event = pacer.wait()
    assert event is not None
    assert event.packet_index == 2
    assert abs(event.lateness - 1.98) < 1e-3
    assert pacer.reanchors == [event]
    resumed = clock.now  # the schedule restarts from the moment the stall was noticed
    sent_at = []
    for _ in range(3):
        pacer.wait()
        sent_at.append(clock.now)
    assert sent_at == pytest.approx([resumed + 0.02, resumed + 0.04, resumed + 0.06], abs=1e-4)


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="interval must be positive"):
        Pacer(interval=0)
