"""The playout buffer playing to a shared schedule (issue 12): it starts, rejoins and stays at
exactly the sample the schedule says, given when each read will be heard.

The schedule here is a line (position P due at ``zero_s + P / rate``), the buffer's clock a
number the test moves, and every sample's value is its own position, so that what a read
returns says exactly which positions play when.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pytest

from appliance.audio.format import AudioFormat
from appliance.listener.depacketizer import Frame
from appliance.listener.playout.buffer import EXPAND_MS, REALIGN_MS, Phase, PlayoutBuffer
from appliance.listener.playout.drift import (
    SYNC_SILENCE_MS,
    VR_LAG_FRAMES,
    VR_LOOKAHEAD_FRAMES,
    DriftControl,
)
from appliance.listener.playout.schedule import MAX_HOLD_S, ScheduleState
from appliance.listener.render import DELAY_MARGIN_MS, LATENCY_CALLBACKS, Playout
from appliance.listener.state import StateMachine

RATE = 8000
FORMAT = AudioFormat(RATE, 1)
READ = 160  # 20 ms
PACKET = 160


class LineSchedule:
    def __init__(self, zero_s: float, state: ScheduleState = ScheduleState.READY) -> None:
        self.zero_s = zero_s
        self.state = state

    def due_s(self, position: int) -> float:
        return self.zero_s + position / RATE


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def numbered(position: int, samples: int = PACKET, *, silent: bool = False) -> Frame:
    """A frame whose every sample is its position (mod 2^15), or silence."""
    values = np.zeros(samples) if silent else np.arange(position, position + samples) % 32768
    return Frame(position, values.astype("<i2").tobytes(), FORMAT)


def positions(audio: bytes) -> list[int]:
    return [int(v) for v in np.frombuffer(audio, dtype="<i2")]


def make_buffer(
    clock: Clock,
    schedule: LineSchedule | None,
    frames: int,
    make: Callable[[int], Frame] = numbered,
    capacity_s: float = 10,
) -> PlayoutBuffer:
    """A 40 ms buffer playing to ``schedule``, holding ``frames`` samples made by ``make``."""
    buffer = PlayoutBuffer(40, capacity_s, 0, FORMAT, clock=clock)
    buffer.begin_stream(FORMAT)
    buffer.set_schedule(schedule)
    for position in range(0, frames, PACKET):
        buffer.push(make(position))
    return buffer


def test_a_stream_starts_at_the_very_sample_it_is_due() -> None:
    clock = Clock()
    heard_at = 101.0
    # Position 0 is due 12.5 ms (100 samples) into the read that will be heard at 101.0.
    buffer = make_buffer(clock, LineSchedule(heard_at + 100 / RATE), 1600)
    early = buffer.read(READ, heard_at - READ / RATE)
    phase_before = buffer.phase
    audio = buffer.read(READ, heard_at)
    assert early == bytes(2 * READ) and phase_before is Phase.BUFFERING
    assert positions(audio) == [0] * 100 + list(range(0, 60))
    assert buffer.phase is Phase.PLAYING
    assert positions(buffer.read(READ, heard_at + READ / RATE)) == list(range(60, 220))
    assert buffer.schedule_error_s == pytest.approx(0.0, abs=1e-9)


def test_a_stream_joined_late_starts_at_the_sample_due_now_dropping_what_is_past() -> None:
    clock = Clock()
    heard_at = 101.0
    buffer = make_buffer(clock, LineSchedule(heard_at - 0.1), 1600)  # 100 ms (800) late
    audio = buffer.read(READ, heard_at)
    assert positions(audio) == list(range(800, 960))
    assert buffer.stats().dropped == 800
    assert buffer.stats().samples_played == READ


def test_without_dac_times_or_a_schedule_the_buffer_plays_as_before() -> None:
    for schedule, heard_at in ((None, 101.0), (LineSchedule(200.0), None)):
        clock = Clock()
        buffer = make_buffer(clock, schedule, 1600)  # past twice the target: starts at once
        assert positions(buffer.read(READ, heard_at)) == list(range(0, READ))
        assert buffer.schedule_error_s is None


def test_an_off_schedule_plays_as_before() -> None:
    clock = Clock()
    buffer = make_buffer(clock, LineSchedule(200.0, ScheduleState.OFF), 1600)
    assert positions(buffer.read(READ, 101.0)) == list(range(0, READ))
    assert not buffer.scheduled


def test_a_pending_schedule_holds_the_start_then_gives_up_waiting() -> None:
    clock = Clock()
    schedule = LineSchedule(0.0, ScheduleState.PENDING)
    buffer = make_buffer(clock, schedule, 1600)
    assert buffer.scheduled
    assert buffer.read(READ, 101.0) == bytes(2 * READ)
    assert buffer.phase is Phase.BUFFERING
    clock.now += MAX_HOLD_S - 0.01
    assert buffer.read(READ, 101.0) == bytes(2 * READ)
    clock.now += 0.02
    # Never agreed: played unsynchronised rather than not at all.
    assert positions(buffer.read(READ, 101.0)) == list(range(0, READ))


def test_a_pending_schedule_that_becomes_ready_starts_on_time() -> None:
    clock = Clock()
    schedule = LineSchedule(101.0, ScheduleState.PENDING)
    buffer = make_buffer(clock, schedule, 1600)
    assert buffer.read(READ, 100.98) == bytes(2 * READ)
    schedule.state = ScheduleState.READY
    assert positions(buffer.read(READ, 101.0)) == list(range(0, READ))


def playing(clock: Clock, zero_s: float = 101.0) -> tuple[PlayoutBuffer, LineSchedule]:
    schedule = LineSchedule(zero_s)
    buffer = make_buffer(clock, schedule, 3200)
    assert positions(buffer.read(READ, zero_s)) == list(range(0, READ))
    return buffer, schedule


def test_small_distances_from_the_schedule_are_measured_not_corrected() -> None:
    clock = Clock()
    buffer, _ = playing(clock)
    late = (REALIGN_MS - 1) / 1000
    audio = buffer.read(READ, 101.0 + READ / RATE + late)
    assert positions(audio) == list(range(READ, 2 * READ))
    assert buffer.schedule_error_s == pytest.approx(late)
    assert buffer.stats().realigned == 0


def test_playing_far_behind_the_schedule_skips_ahead_at_once() -> None:
    clock = Clock()
    buffer, schedule = playing(clock)
    schedule.zero_s -= 0.025  # the estimate moved: 25 ms (200 samples) late now
    audio = buffer.read(READ, 101.0 + READ / RATE)
    assert positions(audio) == list(range(READ + 200, 2 * READ + 200))
    assert buffer.stats().realigned == 1
    assert buffer.stats().dropped == 200
    audio = buffer.read(READ, 101.0 + 2 * READ / RATE)
    assert positions(audio) == list(range(2 * READ + 200, 3 * READ + 200))
    assert buffer.schedule_error_s == pytest.approx(0.0, abs=1e-9)


def test_playing_far_ahead_of_the_schedule_waits_and_loses_nothing() -> None:
    clock = Clock()
    buffer, schedule = playing(clock)
    schedule.zero_s += 0.025  # 25 ms (200 samples) early now
    first = buffer.read(READ, 101.0 + READ / RATE)
    second = buffer.read(READ, 101.0 + 2 * READ / RATE)
    assert first == bytes(2 * READ)
    assert positions(second) == [0] * 40 + list(range(READ, 2 * READ - 40))
    assert buffer.stats().realigned == 1  # 160 of the 200 samples, then the other 40
    assert buffer.stats().dropped == 0


def test_after_an_underrun_the_stream_rejoins_exactly_in_step() -> None:
    clock = Clock()
    schedule = LineSchedule(101.0)
    buffer = make_buffer(clock, schedule, 800)
    heard = 101.0
    reads = 0
    while buffer.phase is not Phase.UNDERRUN:
        buffer.read(READ, heard)
        heard += READ / RATE
        reads += 1
        assert reads < 100, "never ran dry"
    assert buffer.stats().samples_played == 800
    # The sender's stream goes on: what comes now is due at its own time, not at once.
    resume = 4000 + 3 * PACKET
    for position in range(resume, resume + 800, PACKET):
        buffer.push(numbered(position))
    while heard + READ / RATE <= schedule.due_s(resume):
        assert buffer.read(READ, heard) == bytes(2 * READ)
        heard += READ / RATE
    audio = buffer.read(READ, heard)
    lead = round((schedule.due_s(resume) - heard) * RATE)
    assert positions(audio) == [0] * lead + list(range(resume, resume + READ - lead))
    assert buffer.stats().underruns == 1
    assert (resume - 800) * 1000 / RATE > EXPAND_MS  # the gap was longer than concealed


def test_the_drift_control_holds_the_schedule_in_pauses() -> None:
    clock = Clock()
    schedule = LineSchedule(101.0)
    buffer = make_buffer(clock, schedule, 16000, lambda p: numbered(p, silent=True))
    control = DriftControl(buffer)
    heard = 101.0
    control.read(READ, heard)  # on time
    late = 2 * SYNC_SILENCE_MS / 1000
    schedule.zero_s -= late  # from now on every read is heard 2 ms after it is due
    for _ in range(40):
        heard += READ / RATE
        clock.now += READ / RATE
        control.read(READ, heard)
    # The quiet blocks were shortened until the reads were back on the schedule.
    assert control.adjusted_frames == pytest.approx(late * RATE, abs=2)
    assert buffer.control.schedule_error_ms is not None
    assert abs(buffer.control.schedule_error_ms) < SYNC_SILENCE_MS


def test_the_drift_control_leaves_audio_alone_within_its_band() -> None:
    clock = Clock()
    schedule = LineSchedule(101.0)
    buffer = make_buffer(clock, schedule, 8000)
    control = DriftControl(buffer)
    heard = 101.0 + SYNC_SILENCE_MS / 2000
    played = b""
    for _ in range(40):
        clock.now += READ / RATE
        played += control.read(READ, heard)
        heard += READ / RATE
    skipped = round(SYNC_SILENCE_MS / 2000 * RATE)  # the start is put on the schedule
    assert positions(played) == list(range(skipped, skipped + 40 * READ))
    assert control.adjusted_frames == 0


def test_the_audio_callback_passes_the_dac_time_and_tells_the_delay_it_can_meet() -> None:
    clock = Clock()
    buffer = make_buffer(clock, LineSchedule(0.0), 1600)
    playout = Playout(buffer, StateMachine())
    playout.prepare(FORMAT, FORMAT)
    assert playout.min_delay_ns() is None  # the output has not said its latency yet
    dac_time = time.monotonic() + 0.060
    # Position 0 is due 5 ms into this callback's block: 40 samples of silence first, even
    # in the output's first callbacks (a scheduled start is never early).
    buffer.set_schedule(LineSchedule(dac_time + 40 / RATE))
    audio = playout.render(READ, dac_time)
    assert positions(audio) == [0] * 40 + list(range(0, READ - 40))
    assert playout.output_latency_s == pytest.approx(0.060, abs=0.005)
    assert playout.min_delay_ns() is None  # one callback's latency is not yet the output's
    for _ in range(LATENCY_CALLBACKS):
        playout.render(READ, time.monotonic() + 0.060)
    expected_ms = 40 + 60 + (VR_LOOKAHEAD_FRAMES + VR_LAG_FRAMES) * 1000 / RATE + DELAY_MARGIN_MS
    delay_ns = playout.min_delay_ns()
    assert delay_ns is not None and delay_ns / 1e6 == pytest.approx(expected_ms, abs=5)


def tone(position: int, samples: int = PACKET) -> Frame:
    t = np.arange(position, position + samples) / RATE
    values = 8000 * np.sin(2 * np.pi * 440 * t)
    return Frame(position, values.astype("<i2").tobytes(), FORMAT)


def test_music_without_pauses_is_brought_onto_the_schedule_by_resampling() -> None:
    clock = Clock()
    schedule = LineSchedule(101.0)
    buffer = make_buffer(clock, schedule, 40 * RATE, tone, capacity_s=60)
    control = DriftControl(buffer)
    heard = 101.0
    control.read(READ, heard)
    schedule.zero_s -= 0.003  # 3 ms late from now on: no pause to take it from
    errors = []
    for _ in range(30 * RATE // READ):
        clock.now += READ / RATE
        heard += READ / RATE
        control.read(READ, heard)
        errors.append(buffer.control.schedule_error_ms)
    assert control.engaged and control.adjusted_frames == 0
    assert buffer.stats().realigned == 0
    # The resampler's look-ahead is the stream's own audio, counted in when what is read is
    # heard: no jump, and the loop settles on the schedule itself (within 30 s: it
    # overshoots by half a ms on the way, its integral learning the drift).
    assert errors[-1] is not None and abs(errors[-1]) < SYNC_SILENCE_MS / 2
