"""SequenceTracker (RFC 3550 A.1/A.3 accounting) and InterarrivalJitter (RFC 3550 6.4.1)."""

from __future__ import annotations

import numpy as np
import pytest

from appliance.listener.reception import DUPLICATE_WINDOW, InterarrivalJitter, SequenceTracker


def observe_all(tracker: SequenceTracker, sequences: list[int]) -> list[bool]:
    return [tracker.observe(seq) for seq in sequences]


def counts(tracker: SequenceTracker) -> tuple[int, int, int, int, int]:
    """(expected, received, lost, duplicates, reordered)."""
    return (
        tracker.expected,
        tracker.received,
        tracker.lost,
        tracker.duplicates,
        tracker.reordered,
    )


# -- SequenceTracker ------------------------------------------------------------------------------


def test_nothing_observed() -> None:
    assert counts(SequenceTracker()) == (0, 0, 0, 0, 0)


def test_in_order() -> None:
    tracker = SequenceTracker()
    assert all(observe_all(tracker, list(range(1000, 1100))))
    assert counts(tracker) == (100, 100, 0, 0, 0)


def test_loss_is_expected_minus_received() -> None:
    tracker = SequenceTracker()
    sequences = [s for s in range(50) if s not in (10, 11, 12, 30)]
    assert all(observe_all(tracker, sequences))
    assert counts(tracker) == (50, 46, 4, 0, 0)


def test_a_late_packet_is_no_longer_lost_but_reordered() -> None:
    tracker = SequenceTracker()
    observe_all(tracker, [0, 1, 2, 4, 5])
    assert tracker.lost == 1
    assert tracker.observe(3)
    assert counts(tracker) == (6, 6, 0, 0, 1)


def test_duplicates_are_recognised_and_counted_once() -> None:
    tracker = SequenceTracker()
    assert observe_all(tracker, [0, 1, 2, 2, 3, 1, 4, 4, 4]) == [
        True,
        True,
        True,
        False,
        True,
        False,
        True,
        False,
        False,
    ]
    # A duplicate is neither received again (which would hide a loss) nor reordered.
    assert counts(tracker) == (5, 5, 0, 4, 0)
    tracker = SequenceTracker()
    observe_all(tracker, [0, 1, 3, 3, 3])  # 2 lost: duplicates must not make up for it
    assert counts(tracker) == (4, 3, 1, 2, 0)


def test_reordered_packets_are_counted() -> None:
    tracker = SequenceTracker()
    assert all(observe_all(tracker, [0, 1, 3, 2, 4, 7, 5, 6, 8]))
    assert counts(tracker) == (9, 9, 0, 0, 3)


def test_a_packet_before_the_first_extends_the_range() -> None:
    tracker = SequenceTracker()
    observe_all(tracker, [10, 11, 8])
    assert counts(tracker) == (4, 3, 1, 0, 1)  # 8..11 expected, 9 missing


def test_wrap_around_in_order() -> None:
    tracker = SequenceTracker()
    sequences = [*range(65530, 65536), *range(6)]
    assert all(observe_all(tracker, sequences))
    assert counts(tracker) == (12, 12, 0, 0, 0)


def test_wrap_around_with_loss() -> None:
    tracker = SequenceTracker()
    observe_all(tracker, [65533, 65534, 1, 2])  # 65535 and 0 lost
    assert counts(tracker) == (6, 4, 2, 0, 0)


def test_wrap_around_with_reordering_and_duplicates() -> None:
    tracker = SequenceTracker()
    assert observe_all(tracker, [65534, 0, 65535, 1, 0, 65535, 2]) == [
        True,
        True,
        True,  # reordered across the wrap
        True,
        False,  # duplicates across the wrap
        False,
        True,
    ]
    assert counts(tracker) == (5, 5, 0, 2, 1)


def test_many_wraps() -> None:
    tracker = SequenceTracker()
    lost = {70_000, 131_071, 131_072, 190_000}
    start = 65_000
    for i in range(start, 3 * 65_536 + 100):
        if i not in lost:
            assert tracker.observe(i % 65_536)
    assert tracker.expected == 3 * 65_536 + 100 - start
    assert tracker.lost == len(lost)
    assert tracker.reordered == tracker.duplicates == 0


def test_sequence_numbers_are_16_bit() -> None:
    with pytest.raises(ValueError):
        SequenceTracker().observe(65_536)
    with pytest.raises(ValueError):
        SequenceTracker().observe(-1)


def test_a_duplicate_within_the_window_is_recognised() -> None:
    tracker = SequenceTracker()
    observe_all(tracker, list(range(DUPLICATE_WINDOW)))
    assert not tracker.observe(0)  # the oldest remembered
    assert tracker.duplicates == 1


def test_a_duplicate_older_than_the_window_is_not_recognised() -> None:
    tracker = SequenceTracker()
    observe_all(tracker, list(range(DUPLICATE_WINDOW + 1)))
    assert not tracker.observe(1)  # still remembered
    assert tracker.observe(0)  # forgotten: taken for a (very) late packet
    assert tracker.duplicates == 1
    assert tracker.reordered == 1
    assert tracker.received == DUPLICATE_WINDOW + 2
    assert tracker.lost == 0  # expected - received is negative: never below zero


def test_memory_is_bounded() -> None:
    tracker = SequenceTracker()
    for i in range(100_000):
        tracker.observe(i % 65_536)
        if i % 7 == 0:
            tracker.observe(i % 65_536)  # duplicates too
    assert tracker.received == 100_000
    assert tracker.duplicates == len(range(0, 100_000, 7))
    assert len(tracker._recent) == DUPLICATE_WINDOW
    assert len(tracker._order) == DUPLICATE_WINDOW
    # The remembered ones are the newest.
    assert min(tracker._recent) == 100_000 - DUPLICATE_WINDOW


# -- InterarrivalJitter ---------------------------------------------------------------------------

PTIME = 0.02


def arrivals(offsets_ms: list[float], rate: int, start: float = 5.0) -> list[tuple[float, int]]:
    """(arrival time, position) of 20 ms packets sent on time, delayed by ``offsets_ms``."""
    frames = round(rate * PTIME)
    return [
        (start + i * PTIME + offset / 1000, 12_345 + i * frames)
        for i, offset in enumerate(offsets_ms)
    ]


def jitter_after(offsets_ms: list[float], rate: int) -> float:
    jitter = InterarrivalJitter(rate)
    for arrival, position in arrivals(offsets_ms, rate):
        jitter.observe(arrival, position)
    return jitter.jitter_ms


@pytest.mark.parametrize("rate", [8000, 48000])
def test_no_jitter_for_paced_packets(rate: int) -> None:
    assert jitter_after([0.0] * 500, rate) == pytest.approx(0, abs=1e-6)
    assert jitter_after([37.5] * 500, rate) == pytest.approx(0, abs=1e-6)  # a constant delay
    assert InterarrivalJitter(rate).jitter_ms == 0


@pytest.mark.parametrize("rate", [8000, 48000])
@pytest.mark.parametrize("d_ms", [1.0, 5.0])
def test_alternating_offsets_converge_to_twice_the_offset(rate: int, d_ms: float) -> None:
    """Arrivals d early, d late, d early...: each transit differs from the last by 2d, so
    J(i) = J(i-1) + (2d - J(i-1)) / 16, from 0 at the first packet: J(n) = 2d (1 - (15/16)^(n-1))
    after n packets, tending to 2d (in milliseconds whatever the rate)."""
    for n in (2, 3, 10, 50):
        offsets = [d_ms if i % 2 else -d_ms for i in range(n)]
        expected = 2 * d_ms * (1 - (15 / 16) ** (n - 1))
        assert jitter_after(offsets, rate) == pytest.approx(expected, rel=1e-6), n
    offsets = [d_ms if i % 2 else -d_ms for i in range(400)]
    assert jitter_after(offsets, rate) == pytest.approx(2 * d_ms, rel=1e-6)


def test_jitter_is_kept_in_timestamp_units_and_reported_in_ms() -> None:
    offsets = [5.0 if i % 2 else -5.0 for i in range(400)]
    for rate in (8000, 48000):
        jitter = InterarrivalJitter(rate)
        for arrival, position in arrivals(offsets, rate):
            jitter.observe(arrival, position)
        assert jitter._jitter == pytest.approx(10 * rate / 1000, rel=1e-6)  # 80 or 480
        assert jitter.jitter_ms == pytest.approx(10.0, rel=1e-6)


def test_a_single_late_packet() -> None:
    """One packet 16 ms late: two transit differences of 16 ms, each weighted 1/16."""
    jitter = InterarrivalJitter(8000)
    offsets = [0.0, 0.0, 16.0, 0.0]
    for arrival, position in arrivals(offsets, 8000):
        jitter.observe(arrival, position)
    first = 16 / 16
    assert jitter.jitter_ms == pytest.approx(first + (16 - first) / 16)


def test_random_delays_give_the_mean_absolute_difference() -> None:
    """Independent delays uniform in [0, a]: E|X - Y| = a / 3, which J averages to."""
    rng = np.random.default_rng(1)
    a_ms = 30.0
    offsets = list(rng.uniform(0, a_ms, 20_000))
    jitter = InterarrivalJitter(48000)
    values = []
    for i, (arrival, position) in enumerate(arrivals(offsets, 48000)):
        jitter.observe(arrival, position)
        if i >= 100:
            values.append(jitter.jitter_ms)
    assert float(np.mean(values)) == pytest.approx(a_ms / 3, rel=0.03)
