"""The clocks: monotonic, manual (tests) and skewed (a sender's clock as a listener sees it)."""

from __future__ import annotations

import pytest

from appliance.sync.clock import SECOND_NS, ManualClock, MonotonicClock, SkewedClock


def test_the_monotonic_clock_never_goes_back() -> None:
    clock = MonotonicClock()
    readings = [clock.now_ns() for _ in range(1000)]
    assert readings == sorted(readings)
    assert all(isinstance(r, int) for r in readings)


def test_a_manual_clock_moves_only_when_told_and_never_back() -> None:
    clock = ManualClock(100)
    assert clock.now_ns() == 100
    clock.advance(50)
    assert clock.now_ns() == 150
    clock.set(1_000)
    assert clock.now_ns() == 1_000
    with pytest.raises(ValueError, match="a clock does not go back: 999 < 1000"):
        clock.set(999)


def test_a_skewed_clock_is_offset_and_gains_its_ppm_exactly() -> None:
    base = ManualClock(5 * SECOND_NS)
    skewed = SkewedClock(base, offset_ns=37 * SECOND_NS, ppm=300)
    assert skewed.now_ns() == 42 * SECOND_NS
    base.advance(10 * SECOND_NS)  # 300 ppm of 10 s: 3 ms gained
    assert skewed.now_ns() == 15 * SECOND_NS + 37 * SECOND_NS + 3_000_000
    assert skewed.at(5 * SECOND_NS + 1_000_000) == 42 * SECOND_NS + 1_000_000 + 300


def test_a_slow_clock_loses_and_rounds_to_the_nearest_ns() -> None:
    base = ManualClock(0)
    slow = SkewedClock(base, offset_ns=-2_000, ppm=-500)
    assert slow.at(SECOND_NS) == SECOND_NS - 2_000 - 500_000
    assert slow.at(1_001) == 1_001 - 2_000 - 1  # 0.5005 ns lost: rounds to 1
