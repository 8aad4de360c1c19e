import pytest

from appliance.pacing import Pacer, Reanchor


class FakeClock:
    """A monotonic clock that only moves when the code under test sleeps (or a test says)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_packets_leave_on_absolute_deadlines() -> None:
    clock = FakeClock()
    pacer = Pacer(clock=clock, sleep=clock.sleep)
    sent_at = []
    for _ in range(5):
        pacer.wait()
        sent_at.append(clock.now)
        clock.now += 0.003  # the send itself takes time; it must not push the schedule
    assert sent_at == pytest.approx([1000.0, 1000.02, 1000.04, 1000.06, 1000.08])


def test_no_drift_over_an_hour() -> None:
    clock = FakeClock()
    pacer = Pacer(clock=clock, sleep=clock.sleep)
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
    assert clock.now == pytest.approx(1000.06)


def test_a_stall_reanchors_instead_of_bursting() -> None:
    clock = FakeClock()
    pacer = Pacer(clock=clock, sleep=clock.sleep)
    pacer.wait()
    pacer.wait()
    clock.now += 2.0  # laptop suspended for two seconds
    event = pacer.wait()
    assert event == Reanchor(packet_index=2, lateness=pytest.approx(1.98))
    assert pacer.reanchors == [event]
    sent_at = []
    for _ in range(3):
        pacer.wait()
        sent_at.append(clock.now)
    resumed = 1000.02 + 2.0
    assert sent_at == pytest.approx([resumed + 0.02, resumed + 0.04, resumed + 0.06])


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="interval must be positive"):
        Pacer(interval=0)
