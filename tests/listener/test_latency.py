"""LatencyTarget: the adaptive latency target, fed slack observations at chosen times."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from appliance.listener.playout.latency import (
    CALM_S,
    LOWER_HYSTERESIS_MS,
    LOWER_STEP_MS,
    MARGIN_MS,
    MAX_OBSERVATIONS,
    MAX_RAISE_MS,
    MIN_OBSERVATIONS,
    ON_TIME,
    UNDERRUN_STEP_MS,
    UPDATE_S,
    WINDOW_S,
    LatencyTarget,
)

T0 = 1000.0
"""Observations start here: long after the target's creation (the calm before a step down is
counted from the first observation, not from the creation)."""
PACKET_S = 0.02


def feed(
    target: LatencyTarget, slack_ms: float | list[float], start: float, seconds: float
) -> float:
    """One observation per 20 ms packet from ``start`` for ``seconds`` (values cycled); returns
    the time of the last."""
    values = slack_ms if isinstance(slack_ms, list) else [slack_ms]
    count = round(seconds / PACKET_S)
    for i in range(count):
        target.observe(values[i % len(values)], start + i * PACKET_S)
    return start + (count - 1) * PACKET_S


def adaptive(start_ms: float = 100, floor_ms: float = 20, ceiling_ms: float = 200) -> LatencyTarget:
    return LatencyTarget(start_ms, floor_ms, ceiling_ms, adaptive=True)


def run(
    target: LatencyTarget, slack_ms: float, start: float, seconds: float
) -> list[tuple[float, float]]:
    """Packets with ``slack_ms`` from ``start``, the target updated after each second of them
    (never seeing the future); returns (seconds since ``start``, new target) for each move."""
    moves: list[tuple[float, float]] = []
    now = start
    for _ in range(round(seconds / UPDATE_S)):
        feed(target, slack_ms, now, UPDATE_S)
        now += UPDATE_S
        if target.update(now):
            moves.append((round(now - start, 6), target.target_ms))
    return moves


# -- construction --------------------------------------------------------------------------------


def test_start_is_clamped_and_bounds_are_checked() -> None:
    assert adaptive(start_ms=5).target_ms == 20
    assert adaptive(start_ms=500).target_ms == 200
    assert adaptive(start_ms=500).start_ms == 200
    for floor_ms, ceiling_ms in ((0, 100), (-5, 100), (100, 50)):
        with pytest.raises(ValueError):
            LatencyTarget(60, floor_ms, ceiling_ms)
    assert LatencyTarget(60, 60, 60).target_ms == 60


# -- a fixed target -------------------------------------------------------------------------------


def test_a_fixed_target_never_moves() -> None:
    target = LatencyTarget(60, 20, 200, adaptive=False)
    now = feed(target, -50.0, T0, 20)  # every packet late
    for k in range(30):
        assert not target.update(now + k * UPDATE_S, pending_ms=-100)
    target.underrun(now)
    feed(target, 500.0, now, 30)  # then lots of spare slack
    for k in range(40):
        assert not target.update(now + 30 + k * UPDATE_S)
    assert target.target_ms == 60
    assert target.raises == target.lowerings == 0


# -- raising -------------------------------------------------------------------------------------


def test_raises_at_once_by_the_shortfall_of_the_1st_percentile() -> None:
    assert (ON_TIME, MARGIN_MS) == (0.01, 0.0)
    target = adaptive(start_ms=60)
    values = [float(v - 5) for v in range(100)]  # -5 .. 94 ms: 5 packets late
    low = float(np.quantile(values, ON_TIME))
    assert low == pytest.approx(-4.01)  # the 1st percentile, interpolated
    now = feed(target, values, T0, 2)  # 100 packets, 2 s: far from a full window
    assert target.update(now)
    assert target.target_ms == pytest.approx(60 + MARGIN_MS - low)
    assert target.target_ms == pytest.approx(64.01)
    assert target.raises == 1
    assert target.lowerings == 0


@pytest.mark.parametrize(("late", "moved"), [(2, False), (3, True)])
def test_one_percent_of_packets_late_is_tolerated_more_is_not(late: int, moved: bool) -> None:
    """200 packets, ``late`` of them 20 ms late, the rest with 5 ms to spare: the 1st
    percentile lies between the 2nd and 3rd smallest slack (at 1.99 of 199)."""
    target = adaptive(start_ms=60)
    values = [-20.0] * late + [5.0] * (200 - late)
    now = feed(target, values, T0, 4)
    assert target.update(now) is moved
    # 1 %: 0.01 x -20 + 0.99 x 5 = 4.75 ms of slack, no raise; 1.5 %: -20 ms, raised by 20.
    assert target.target_ms == pytest.approx(80 if moved else 60)


def test_raises_by_the_exact_shortfall_of_negative_slack() -> None:
    target = adaptive(start_ms=60)
    now = feed(target, -12.0, T0, 1)  # 50 packets 12 ms late
    assert target.update(now)
    assert target.target_ms == pytest.approx(60 + 12 + MARGIN_MS)


def test_enough_slack_does_not_raise() -> None:
    target = adaptive(start_ms=60)
    now = feed(target, MARGIN_MS, T0, 2)  # exactly the margin (0): just on time
    assert not target.update(now)
    assert target.target_ms == 60


def test_a_raise_forgets_the_observations_before_it() -> None:
    target = adaptive(start_ms=60)
    now = feed(target, -5.0, T0, 1)
    assert target.update(now)
    assert target.target_ms == pytest.approx(65 + MARGIN_MS)
    # The same shortfall is not counted again: nothing new observed, nothing to do.
    assert not target.update(now + UPDATE_S)
    assert not target.update(now + 5 * UPDATE_S)
    assert target.target_ms == pytest.approx(65 + MARGIN_MS)


def test_pending_ms_counts_toward_the_slack() -> None:
    """Depth still on its way to the target adds to every packet's slack once it arrives."""
    target = adaptive(start_ms=60)
    now = feed(target, -2.0, T0, 1)  # every packet 2 ms late...
    assert not target.update(now, pending_ms=MARGIN_MS + 2.0)  # ...exactly made up
    assert target.target_ms == 60
    target = adaptive(start_ms=60)
    now = feed(target, -2.0, T0, 1)
    assert target.update(now, pending_ms=1.0)
    assert target.target_ms == pytest.approx(60 + MARGIN_MS + 1.0)
    # Negative: the buffer is above its target; that slack is going away.
    target = adaptive(start_ms=60)
    now = feed(target, 20.0, T0, 1)
    assert target.update(now, pending_ms=-22.0)
    assert target.target_ms == pytest.approx(60 + MARGIN_MS + 2.0)


def test_too_few_observations_do_nothing() -> None:
    target = adaptive(start_ms=60)
    for i in range(MIN_OBSERVATIONS - 1):
        target.observe(-100.0, T0 + i * PACKET_S)
    assert not target.update(T0 + 1)
    target.observe(-100.0, T0 + 1)
    assert not target.update(T0 + 1.5)  # within UPDATE_S of the last evaluation
    assert target.update(T0 + 2)
    # A shortfall of 110 ms: raised by MAX_RAISE_MS at a time (one stall is no new normal).
    assert target.target_ms == pytest.approx(60 + MAX_RAISE_MS)


def test_updates_at_most_once_per_update_period() -> None:
    target = adaptive(start_ms=60)
    now = feed(target, 50.0, T0, 1)
    assert not target.update(now)  # evaluated: nothing to do
    feed(target, -20.0, now, 1)
    assert not target.update(now + UPDATE_S / 2)  # not evaluated
    assert target.target_ms == 60
    assert target.update(now + UPDATE_S)
    assert target.target_ms > 60


def test_old_observations_leave_the_window() -> None:
    target = adaptive(start_ms=60)
    now = feed(target, -30.0, T0, 1)  # late packets...
    feed(target, MARGIN_MS + 5, now + 1, WINDOW_S)  # ...then 10 s on time
    assert not target.update(now + 1 + WINDOW_S + 0.5)  # the late ones are gone
    assert target.target_ms == 60
    assert target.raises == 0


# -- lowering -------------------------------------------------------------------------------------


def step_down(slack_ms: float) -> float:
    """The step down when every packet has ``slack_ms``: a quarter of the spare beyond the
    margin, at least LOWER_STEP_MS, never into the hysteresis."""
    spare = slack_ms - MARGIN_MS
    return min(max(LOWER_STEP_MS, spare / 4), spare - LOWER_HYSTERESIS_MS)


def test_lowers_quickly_from_far_above_what_is_needed() -> None:
    target = adaptive(start_ms=200)
    moves = run(target, 150.0, T0, 60)  # after a stall: 150 ms more than the margin
    # By a quarter of the spare each time (37.5 ms, not LOWER_STEP_MS), once per CALM_S.
    assert step_down(150.0) == 37.5
    assert moves == [(20, 162.5), (40, 125.0), (60, 87.5)]


def test_one_stall_raises_by_at_most_max_raise() -> None:
    target = adaptive(start_ms=60)
    now = feed(target, -300.0, T0, 1)  # every packet of a second 300 ms late
    assert target.update(now)
    assert target.target_ms == 60 + MAX_RAISE_MS


def test_does_not_lower_within_calm_s_of_the_first_observation() -> None:
    assert CALM_S == 2 * WINDOW_S
    target = adaptive(start_ms=100)
    spare = 50.0  # far beyond the hysteresis
    assert run(target, spare, T0, 19) == []  # updates at 1 .. 19 s: the window is full from 9
    assert target.target_ms == 100
    # CALM_S after the first observation (at T0), not after the target's creation.
    assert run(target, spare, T0 + 19, 1) == [(1, 100 - step_down(spare))]
    assert target.lowerings == 1


def test_does_not_lower_before_a_full_window() -> None:
    target = adaptive(start_ms=100)
    spare = 50.0
    assert run(target, spare, T0, 1) == []  # the first observation: the calm counts from T0
    # A pause of 30 s (no packets): CALM_S has passed, but the window holds only what came
    # since the packets resumed at T0 + 31; it is full 9 s (0.9 of it) after that.
    assert run(target, spare, T0 + 31, 8) == []
    assert target.target_ms == 100
    assert run(target, spare, T0 + 39, 1) == [(1, 100 - step_down(spare))]
    assert target.lowerings == 1


def test_lowers_by_at_most_a_step_once_per_calm_period() -> None:
    target = adaptive(start_ms=100)
    moves = run(target, 50.0, T0, 120)  # two minutes of packets with 50 ms of slack
    # CALM_S from the first observation, then a step every CALM_S (the observations before a
    # step are forgotten, and CALM_S must pass since it), each a quarter of the spare.
    step = step_down(50.0)
    assert step == 12.5
    assert moves == [(20 * (i + 1), 100 - step * (i + 1)) for i in range(6)]
    assert all(b - a >= CALM_S for (a, _), (b, _) in itertools.pairwise(moves))
    assert target.lowerings == 6


def test_lowers_by_less_than_a_step_when_little_is_spare() -> None:
    target = adaptive(start_ms=100)
    spare = LOWER_HYSTERESIS_MS + 2  # slack = margin + 12 ms
    feed(target, MARGIN_MS + spare, T0, CALM_S)
    assert target.update(T0 + CALM_S)
    # Down by the spare beyond the hysteresis: then the spare is the hysteresis, and stays.
    assert target.target_ms == pytest.approx(100 - (spare - LOWER_HYSTERESIS_MS))
    assert 100 - target.target_ms < LOWER_STEP_MS


def test_spare_within_the_hysteresis_is_kept() -> None:
    target = adaptive(start_ms=100)
    assert run(target, MARGIN_MS + LOWER_HYSTERESIS_MS, T0, 40) == []
    assert target.target_ms == 100


def test_does_not_lower_within_calm_s_of_a_raise() -> None:
    target = adaptive(start_ms=100)
    now = feed(target, -5.0, T0, 1)
    assert target.update(now)
    raised = target.target_ms
    assert raised == pytest.approx(105)
    moves = run(target, 80.0, now, 25)
    # The window fills 9 s after the raise, but a step down waits CALM_S from the raise.
    assert moves == [(CALM_S, raised - step_down(80.0))]


# -- bounds ---------------------------------------------------------------------------------------


def test_the_ceiling_bounds_raises() -> None:
    target = adaptive(start_ms=180, ceiling_ms=200)
    now = feed(target, -500.0, T0, 1)
    assert target.update(now)
    assert target.target_ms == 200
    now = feed(target, -500.0, now + 1, 1)
    assert not target.update(now)  # already at the ceiling: no move, not counted
    assert target.target_ms == 200
    assert target.raises == 1
    target.underrun(now)
    assert target.target_ms == 200
    assert target.raises == 1


def test_the_floor_bounds_lowering() -> None:
    target = adaptive(start_ms=45, floor_ms=30)
    assert run(target, 200.0, T0, 80) == [(CALM_S, 30)]  # a quarter of 200 ms spare, bounded
    assert target.target_ms == 30
    assert target.lowerings == 1


# -- underruns and restarts -----------------------------------------------------------------------


def test_an_underrun_raises_by_a_step() -> None:
    target = adaptive(start_ms=60)
    target.underrun(T0)
    assert target.target_ms == 60 + UNDERRUN_STEP_MS
    target.underrun(T0 + 0.1)
    assert target.target_ms == 60 + 2 * UNDERRUN_STEP_MS
    assert target.raises == 2
    # It counts as a change: no step down for CALM_S after it.
    moves = run(target, 80.0, T0 + 0.1, 25)
    assert moves == [(CALM_S, 60 + 2 * UNDERRUN_STEP_MS - step_down(80.0))]


def test_restart_goes_back_to_the_start() -> None:
    target = adaptive(start_ms=60)
    now = feed(target, -40.0, T0, 1)
    assert target.update(now)
    target.underrun(now)
    assert target.target_ms > 60
    feed(target, -40.0, now, 1)  # observations pending at the restart
    target.restart()
    assert target.target_ms == 60
    # Nothing observed before the restart counts, and the next update is not held back.
    assert not target.update(now + 0.1)
    feed(target, -5.0, now + 0.2, 1)
    assert target.update(now + 1.3)
    assert target.target_ms == pytest.approx(65 + MARGIN_MS)


def test_after_a_restart_the_calm_counts_from_the_new_stream_s_first_observation() -> None:
    target = adaptive(start_ms=100)
    now = feed(target, -5.0, T0, 1)
    assert target.update(now)  # the last change: at T0 + 0.98
    target.restart()
    # The next stream starts 100 s later: long after the last change, but a step down still
    # waits CALM_S from its own first packet.
    start = T0 + 100
    assert run(target, 50.0, start, 19) == []
    assert run(target, 50.0, start + 19, 1) == [(1, 100 - step_down(50.0))]
    assert (target.raises, target.lowerings) == (1, 1)


# -- memory ---------------------------------------------------------------------------------------


def test_observations_are_bounded() -> None:
    target = adaptive(start_ms=60)
    for i in range(3 * MAX_OBSERVATIONS):  # 1 ms packets: more than a window can hold
        target.observe(-50.0 if i < 2 * MAX_OBSERVATIONS else 50.0, T0 + i * 0.001)
    assert len(target._slack) == MAX_OBSERVATIONS
    # Only the newest are kept: the late packets before them are forgotten.
    assert not target.update(T0 + 3 * MAX_OBSERVATIONS * 0.001)
    assert target.target_ms == 60
