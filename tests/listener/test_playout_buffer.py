# mypy: disable-error-code="comparison-overlap"
# (phases change under the checker's feet: that is what these tests are about)
import math

import numpy as np
import pytest

from appliance.audio.format import AudioFormat
from appliance.listener.depacketizer import Frame
from appliance.listener.playout import buffer as buffer_module
from appliance.listener.playout.buffer import (
    EXPAND_AFTER_S,
    EXPAND_MS,
    EXPAND_RECENT_S,
    START_DEPTH_FACTOR,
    Phase,
    PlayoutBuffer,
)
from appliance.listener.playout.concealment import Concealer
from appliance.wire.raw import RAW_FORMAT

N = 320  # one 20 ms frame
SAMPLES = N // 2


class FakeClock:
    """The buffer's clock: time stands still unless a test moves it (no wall-clock time)."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def frame(index: int, size: int = N) -> Frame:
    """Frame ``index`` of a contiguous stream; its bytes encode its index so order shows."""
    return Frame(index * SAMPLES, bytes([index % 250 + 1]) * size)


def make(
    target_frames: int = 3,
    capacity_frames: int = 100,
    tail_frames: int = 2,
    clock: FakeClock | None = None,
) -> PlayoutBuffer:
    """A buffer for the raw wire's 20 ms packets, its sizes counted in packets, on a fake clock
    (by default one that stands still: every packet has just come)."""
    return PlayoutBuffer(
        target_frames * 20,
        capacity_frames * 0.02,
        tail_frames * 20,
        clock=clock or FakeClock(),
    )


def read(buffer: PlayoutBuffer, n_bytes: int) -> bytes:
    """``n_bytes`` of 16-bit mono audio (the buffer counts sample frames)."""
    return buffer.read(n_bytes // 2)


def test_starts_waiting_and_plays_silence() -> None:
    buffer = make()
    assert buffer.phase is Phase.WAITING
    assert read(buffer, N) == bytes(N)


def test_prebuffers_to_target_then_plays_in_order() -> None:
    buffer = make(target_frames=3)
    buffer.push(frame(0))
    assert buffer.phase is Phase.BUFFERING
    buffer.push(frame(1))
    assert read(buffer, N) == bytes(N)  # below target: still buffering
    buffer.push(frame(2))
    assert read(buffer, N) == frame(0).payload
    assert buffer.phase is Phase.PLAYING
    assert read(buffer, N) == frame(1).payload
    assert read(buffer, N) == frame(2).payload


def test_underrun_plays_silence_rebuffers_and_resumes_in_order() -> None:
    clock = FakeClock()
    buffer = make(target_frames=2, clock=clock)
    for i in range(2):
        buffer.push(frame(i))
    played = [read(buffer, N) for _ in range(2)]
    clock.now += EXPAND_RECENT_S + 0.02  # no packet for longer than running dry is concealed
    played.append(read(buffer, N))
    assert played == [frame(0).payload, frame(1).payload, bytes(N)]
    assert buffer.phase is Phase.UNDERRUN
    assert buffer.stats().underruns == 0  # counted only when playing resumes
    assert buffer.stats().concealed == 0
    buffer.push(frame(2))
    assert read(buffer, N) == bytes(N)  # rebuffering to the target
    buffer.push(frame(3))
    assert read(buffer, N) == frame(2).payload
    assert buffer.phase is Phase.PLAYING
    assert buffer.stats().underruns == 1


def play_in_real_time(buffer: PlayoutBuffer, clock: FakeClock, count: int) -> list[bytes]:
    """Push frames 0..count-1 one per 20 ms, each read as it comes: a stream playing along."""
    played = []
    for i in range(count):
        buffer.push(frame(i))
        played.append(read(buffer, N))
        clock.now += 0.02
    return played


PAST_START = round(EXPAND_AFTER_S * 50) + 1
"""Frames of 20 ms that take a stream past EXPAND_AFTER_S (running dry is concealed)."""


def test_running_dry_at_the_end_of_a_stream_is_not_an_underrun() -> None:
    clock = FakeClock()
    buffer = make(target_frames=1, tail_frames=2, clock=clock)
    played = play_in_real_time(buffer, clock, PAST_START)
    assert played == [frame(i).payload for i in range(PAST_START)]
    clock.now -= 0.02  # the last frame has just come
    # The sender stopped without an end marker. Reads every 20 ms: the next packet might only
    # be late, so EXPAND_MS of it is concealed (a fade to silence), the timeline kept...
    concealed = int(EXPAND_MS // 20)
    assert concealed == 12
    for _ in range(concealed):
        clock.now += 0.02
        read(buffer, N)
        assert buffer.phase is Phase.PLAYING
    assert buffer.stats().concealed == concealed * SAMPLES
    assert buffer.cursor == (PAST_START + concealed) * SAMPLES
    # ...then the buffer has run dry.
    clock.now += 0.02
    assert read(buffer, N) == bytes(N)
    assert buffer.phase is Phase.UNDERRUN
    buffer.end_stream()  # the listener's timeout
    assert buffer.phase is Phase.DRAINING
    assert read(buffer, N) == bytes(N)
    assert read(buffer, N) == bytes(N)
    assert buffer.phase is Phase.WAITING
    assert buffer.stats().underruns == 0


def test_end_of_stream_plays_out_the_rest_below_target_then_a_silent_tail() -> None:
    buffer = make(target_frames=5, tail_frames=2)
    buffer.push(frame(0))
    buffer.push(frame(1, size=100))  # the seed's short last datagram
    buffer.end_stream()
    assert read(buffer, N) == frame(0).payload
    assert read(buffer, N) == frame(1).payload[:100] + bytes(N - 100)
    assert buffer.phase is Phase.DRAINING
    assert read(buffer, N) == bytes(N)
    assert buffer.phase is Phase.DRAINING
    assert read(buffer, N) == bytes(N)
    assert buffer.phase is Phase.WAITING
    assert buffer.stats().samples_played * 2 == N + 100


def test_reads_of_any_size_see_every_byte_once() -> None:
    buffer = make(target_frames=1)
    pushed = b""
    for i in range(10):
        buffer.push(frame(i))
        pushed += frame(i).payload
    buffer.end_stream()
    played = b"".join(read(buffer, size) for size in [100, 540, 2, 318, 640, 1000, 600])
    assert played[: len(pushed)] == pushed
    assert played[len(pushed) :] == bytes(len(played) - len(pushed))


def test_a_full_buffer_drops_the_oldest_audio_and_counts_it() -> None:
    buffer = make(target_frames=2, capacity_frames=4)
    for i in range(6):
        buffer.push(frame(i))
    assert buffer.depth * 2 == 4 * N
    assert buffer.stats().dropped * 2 == 2 * N
    assert [read(buffer, N) for _ in range(4)] == [frame(i).payload for i in range(2, 6)]


def test_peak_depth_is_tracked_and_can_be_reset() -> None:
    buffer = make(target_frames=1)
    for i in range(3):
        buffer.push(frame(i))
    assert buffer.stats().peak_depth * 2 == 3 * N
    read(buffer, N)
    buffer.reset_peak()
    assert buffer.stats().peak_depth * 2 == 2 * N


def test_reordered_frames_play_by_position() -> None:
    buffer = make(target_frames=3)
    for i in (0, 2, 1):
        buffer.push(frame(i))
    assert [read(buffer, N) for _ in range(3)] == [frame(i).payload for i in range(3)]


def test_a_gap_while_playing_is_concealed_in_its_exact_length() -> None:
    buffer = make(target_frames=2)
    buffer.push(frame(0))
    buffer.push(frame(2))  # frame 1 lost
    played = [read(buffer, N) for _ in range(3)]
    # The same concealment a Concealer makes from what was played before the gap and the
    # frame held after it (20 ms of it: enough to interpolate a 20 ms gap).
    reference = Concealer(RAW_FORMAT)
    reference.played(frame(0).payload)
    assert played[0] == frame(0).payload
    assert played[1] == reference.conceal(SAMPLES, gap_frames=SAMPLES, following=frame(2).payload)
    assert played[1] != bytes(N)
    assert played[2] == frame(2).payload  # interpolated into it: nothing to blend
    stats = buffer.stats()
    assert (stats.concealed, stats.concealments, stats.samples_played) == (SAMPLES, 1, 2 * SAMPLES)


def test_a_burst_of_losses_is_one_concealment_faded_then_interpolated_into_the_next() -> None:
    buffer = make(target_frames=2)
    buffer.push(frame(0))
    buffer.push(frame(6))  # 100 ms lost
    played = [read(buffer, N) for _ in range(7)]
    # Each read of the gap passes what is left of it and the frame held after it: too long to
    # interpolate at first (extrapolated, fading), then 40 ms: interpolated into frame 6.
    reference = Concealer(RAW_FORMAT)
    reference.played(frame(0).payload)
    expected = [
        reference.conceal(SAMPLES, gap_frames=left * SAMPLES, following=frame(6).payload)
        for left in (5, 4, 3, 2, 1)
    ]
    assert played[1:6] == expected
    assert played[1] != bytes(N)
    last = np.frombuffer(played[3], dtype="<i2")
    assert abs(int(last[-1])) <= 2  # the fade: all but silent 60 ms into the burst
    assert played[6] == frame(6).payload  # the gap ends where it starts: nothing to blend
    stats = buffer.stats()
    assert (stats.concealed, stats.concealments) == (5 * SAMPLES, 1)


def test_late_and_duplicate_frames_are_dropped_and_counted() -> None:
    buffer = make(target_frames=1)
    buffer.push(frame(0))
    buffer.push(frame(1))
    read(buffer, N)
    buffer.push(frame(0))  # already played
    buffer.push(frame(1))  # already queued
    stats = buffer.stats()
    assert (stats.late_frames, stats.duplicate_frames) == (1, 1)
    assert read(buffer, N) == frame(1).payload


def test_a_new_stream_during_the_drain_keeps_playing() -> None:
    buffer = make(target_frames=1, tail_frames=5)
    buffer.push(frame(0))
    buffer.end_stream()
    buffer.begin_stream(RAW_FORMAT)
    assert buffer.phase is Phase.PLAYING
    buffer.push(frame(1))
    assert [read(buffer, N) for _ in range(2)] == [frame(0).payload, frame(1).payload]


def test_clear_forgets_everything() -> None:
    buffer = make(target_frames=1)
    buffer.push(frame(0))
    buffer.clear()
    assert (buffer.phase, buffer.depth) == (Phase.WAITING, 0)
    assert read(buffer, N) == bytes(N)


def test_target_must_fit_in_capacity() -> None:
    with pytest.raises(ValueError, match="need 0 < target_ms <= capacity_s"):
        PlayoutBuffer(target_ms=40, capacity_s=0.02, drain_tail_ms=0)


CD = AudioFormat(48000, 2)
CD_PACKET = 960  # sample frames in 20 ms at 48 kHz
CD_BYTES = CD_PACKET * 4


def cd_frame(index: int) -> Frame:
    return Frame(index * CD_PACKET, bytes([index % 250 + 1]) * CD_BYTES, CD)


def test_targets_are_durations_whatever_the_format() -> None:
    buffer = make(target_frames=3, capacity_frames=10, tail_frames=2)
    assert (buffer.target, buffer.capacity, buffer.drain_tail) == (480, 1600, 320)
    buffer.begin_stream(CD)
    assert (buffer.target, buffer.capacity, buffer.drain_tail) == (2880, 9600, 1920)
    assert buffer.format == CD


def test_stereo_48k_plays_whole_sample_frames_in_order() -> None:
    buffer = make(target_frames=2)
    buffer.begin_stream(CD)
    for i in range(3):
        buffer.push(cd_frame(i))
    buffer.end_stream()
    assert buffer.read(CD_PACKET) == cd_frame(0).payload
    assert buffer.read(100) + buffer.read(CD_PACKET - 100) == cd_frame(1).payload
    assert len(buffer.read(CD_PACKET * 2)) == 2 * CD_BYTES
    assert buffer.stats().samples_played == 3 * CD_PACKET


def test_a_stream_in_another_format_replaces_the_drain_of_the_last() -> None:
    buffer = make(target_frames=1, tail_frames=5)
    buffer.push(frame(0))
    buffer.push(frame(1))
    read(buffer, N)
    buffer.end_stream()
    assert buffer.begin_stream(CD) is True
    assert (buffer.phase, buffer.depth) == (Phase.WAITING, 0)
    assert buffer.stats().dropped == SAMPLES  # frame 1 never played
    buffer.push(cd_frame(0))
    assert buffer.read(CD_PACKET) == cd_frame(0).payload
    assert buffer.begin_stream(CD.with_ptime(40)) is False  # same rate and channels


def test_the_drain_tail_can_be_lengthened_for_the_current_stream() -> None:
    buffer = make(target_frames=1, tail_frames=1)
    buffer.set_drain_tail(60)
    assert buffer.drain_tail == 480
    buffer.push(frame(0))
    buffer.end_stream()
    assert [read(buffer, N) for _ in range(4)] == [frame(0).payload] + [bytes(N)] * 3
    assert buffer.phase is Phase.WAITING


# -- the timeline under loss: interpolation, expansion, resuming ---------------------------------


def voiced(index: int) -> Frame:
    """Frame ``index`` of a 200 Hz tone (concealment has something to continue)."""
    t = [index * SAMPLES + i for i in range(SAMPLES)]
    payload = b"".join(
        round(8000 * math.sin(2 * math.pi * 200 * k / 8000)).to_bytes(2, "little", signed=True)
        for k in t
    )
    return Frame(index * SAMPLES, payload)


def test_a_gap_with_enough_audio_held_after_it_is_interpolated() -> None:
    buffer = make(target_frames=5)
    for i in (0, 1, 2, 4, 5, 6, 7):  # frame 3 lost, 80 ms held after it
        buffer.push(voiced(i))
    played = [read(buffer, N) for _ in range(5)]
    assert played[:3] == [voiced(i).payload for i in range(3)]
    assert played[4] == voiced(4).payload  # interpolated into it: nothing to blend
    # What a Concealer makes of the gap with the audio held after it (as much as its history).
    held = b"".join(voiced(i).payload for i in (4, 5, 6, 7))
    interpolating, extrapolating = Concealer(RAW_FORMAT), Concealer(RAW_FORMAT)
    for concealer in (interpolating, extrapolating):
        for i in range(3):
            concealer.played(voiced(i).payload)
    following = held[: interpolating.history_frames * 2]
    assert played[3] == interpolating.conceal(SAMPLES, gap_frames=SAMPLES, following=following)
    # The same gap with nothing held after it is extrapolated (and blended back).
    assert played[3] != extrapolating.conceal(SAMPLES)
    assert played[3] != bytes(N)


def test_playing_resumes_at_the_first_frame_held_after_an_underrun() -> None:
    clock = FakeClock()
    buffer = make(target_frames=3, clock=clock)
    for i in range(3):
        buffer.push(frame(i))
    played = [read(buffer, N) for _ in range(3)]
    clock.now += 1.0  # the sender went quiet for a second: not concealed
    played.append(read(buffer, N))
    assert buffer.phase is Phase.UNDERRUN and played[3] == bytes(N)
    for i in (13, 14, 15):  # 3 .. 12 never came
        buffer.push(frame(i))
    assert [read(buffer, N) for _ in range(3)] == [frame(i).payload for i in (13, 14, 15)]
    assert buffer.stats().concealed == 0  # skipped, not concealed


def test_running_dry_mid_stream_is_concealed_and_keeps_the_timeline() -> None:
    clock = FakeClock()
    buffer = PlayoutBuffer(60, 10, 40, clock=clock)
    count = PAST_START
    for i in range(count):
        buffer.push(voiced(i))
    for _ in range(count):
        read(buffer, N)
    clock.now += 0.05  # the next packet is late: 50 ms ago there was one
    dry = read(buffer, N)
    assert buffer.phase is Phase.PLAYING and dry != bytes(N)
    buffer.push(voiced(count))  # too late: its time was concealed
    buffer.push(voiced(count + 1))
    resumed = read(buffer, N)  # blended in from the concealment, then exact
    blend = 80 * 2  # at most 10 ms
    assert resumed[blend:] == voiced(count + 1).payload[blend:]
    stats = buffer.stats()
    assert (stats.late_frames, stats.concealed, stats.underruns) == (1, SAMPLES, 0)


def test_a_stream_that_ended_long_ago_runs_dry_into_silence() -> None:
    clock = FakeClock()
    buffer = PlayoutBuffer(60, 10, 40, clock=clock)
    count = 10
    for i in range(count):
        buffer.push(voiced(i))  # all at once, as the seed's sender at twice real time
    clock.now += 5.0
    for _ in range(count):
        read(buffer, N)
    assert read(buffer, N) == bytes(N)
    assert buffer.phase is Phase.UNDERRUN
    assert buffer.stats().concealed == 0


def assert_dry_is_an_underrun_and_the_late_audio_plays_whole(
    buffer: PlayoutBuffer, clock: FakeClock, played: int
) -> None:
    """Frames 0..played-1 of a tone pushed and read along in real time, then a read with the
    next frame late: silence, an underrun, the cursor not moved on; the late frames then play
    whole, nothing concealed or dropped."""
    for i in range(played):
        buffer.push(voiced(i))
        assert read(buffer, N) == voiced(i).payload
        clock.now += 0.02
    assert read(buffer, N) == bytes(N)  # the next packet late: silence
    assert buffer.phase is Phase.UNDERRUN
    assert buffer.cursor == played * SAMPLES  # not moved on
    for i in range(played, played + 3):
        buffer.push(voiced(i))
    late = [voiced(i).payload for i in range(played, played + 3)]
    assert [read(buffer, N) for _ in range(3)] == late
    stats = buffer.stats()
    assert (stats.concealed, stats.late_frames, stats.underruns) == (0, 0, 1)


def test_running_dry_at_a_stream_s_very_start_is_an_underrun() -> None:
    """Within EXPAND_AFTER_S of its start a stream that runs dry refills: the output's start-up
    reads and the sender's packet pattern can do that with nothing lost, and what comes late
    then plays whole, after a pause."""
    clock = FakeClock()
    buffer = make(target_frames=1, clock=clock)
    assert_dry_is_an_underrun_and_the_late_audio_plays_whole(buffer, clock, played=3)


def test_on_the_raw_wire_running_dry_is_an_underrun_and_the_late_audio_plays_next() -> None:
    """Raw frames are positioned back to back as they arrive: a missing one is only late, so
    running dry is not concealed over (the cursor stays), and what comes next plays whole --
    past EXPAND_AFTER_S too, where a timed stream would conceal."""
    clock = FakeClock()
    buffer = make(target_frames=1, clock=clock)
    buffer.begin_stream(RAW_FORMAT, timed=False)
    assert_dry_is_an_underrun_and_the_late_audio_plays_whole(buffer, clock, played=PAST_START)


# -- when a stream starts: the target after its fastest frame -----------------------------------


def play_arrivals(
    arrivals: list[tuple[float, int]], target_frames: int, reads: list[float], read_bytes: int = N
) -> tuple[PlayoutBuffer, list[bytes], list[Phase]]:
    """Frames pushed at their arrival times (seconds from 100.0) and reads of ``read_bytes`` at
    ``reads``, in time order (a push before a read at the same time); the reads and the phase
    after each."""
    clock = FakeClock()
    buffer = make(target_frames=target_frames, clock=clock)
    events = sorted([(at, 0, index) for at, index in arrivals] + [(at, 1, 0) for at in reads])
    played: list[bytes] = []
    phases: list[Phase] = []
    for at, kind, index in events:
        clock.now = 100.0 + at
        if kind == 0:
            buffer.push(frame(index))
        else:
            played.append(read(buffer, read_bytes))
            phases.append(buffer.phase)
    return buffer, played, phases


def test_a_late_first_frame_starts_when_the_fastest_path_would_have_held_the_target() -> None:
    """Frame 0 sent at 0 arrives 40 ms late; frames 1, 2, 3 come on time (at 20, 40, 60 ms).
    The start is the target (60 ms) after frame 0 would have come over the fastest path (at
    0, frame 1's path), less the frame itself: at 40 ms -- not the target after frame 0's own
    arrival (at 80 ms). Without jitter after it, that is when the depth reaches the target."""
    arrivals = [(0.04, 0), (0.02, 1), (0.04, 2), (0.06, 3)]
    reads = [0.005 + 0.01 * k for k in range(10)]  # 10 ms reads, half-way between arrivals
    buffer, played, phases = play_arrivals(arrivals, 3, reads, read_bytes=N // 2)
    # Reads at 5 and 15 ms: nothing yet; 25 and 35 ms: frame 1 held, not due (it would be at
    # 60 ms: frame 1 is the head, and its path the fastest); at 45 ms: frame 0's half.
    assert played[:4] == [bytes(N // 2)] * 4
    assert phases[:4] == [Phase.WAITING] * 2 + [Phase.BUFFERING] * 2
    assert phases[4] is Phase.PLAYING
    assert b"".join(played[4:]) == b"".join(frame(i).payload for i in range(3))
    stats = buffer.stats()
    assert (stats.reordered_frames, stats.late_frames, stats.concealed) == (1, 0, 0)


def test_a_stream_starts_before_its_depth_reaches_the_target_if_later_frames_are_slower() -> None:
    """Frame 0 comes on time (the fastest path), frames 1 and 2 are 40 ms late, frames 3 on
    on time: the stream starts 40 ms after frame 0 (the target less the frame, over the fastest
    path) with one frame held, where the depth would reach the target only at 60 ms."""
    arrivals = [(0.0, 0), (0.06, 1), (0.08, 2), (0.06, 3), (0.08, 4), (0.10, 5), (0.12, 6)]
    reads = [0.01 + 0.02 * k for k in range(7)]  # 20 ms reads, 10 ms after the arrivals
    buffer, played, phases = play_arrivals(arrivals, 3, reads)
    # At 10 and 30 ms: waiting; at 50 ms: frame 0, though frame 1 has not come yet.
    assert played[:2] == [bytes(N)] * 2
    assert phases[:2] == [Phase.BUFFERING] * 2
    assert phases[2] is Phase.PLAYING
    assert played[2:] == [frame(i).payload for i in range(5)]  # the late ones just in time
    stats = buffer.stats()
    assert (stats.late_frames, stats.concealed, stats.underruns) == (0, 0, 0)


@pytest.mark.parametrize("held", [3, 4])
def test_frames_pushed_at_once_holding_the_target_start_at_once(held: int) -> None:
    """A sender ahead of real time: pushed at the same moment, the target's worth is due at
    once (the last of it came over the fastest path)."""
    buffer = make(target_frames=3)
    for i in range(held):
        buffer.push(frame(i))
    assert read(buffer, N) == frame(0).payload
    assert buffer.phase is Phase.PLAYING


def test_frames_pushed_at_once_below_the_target_wait_until_it_is_due() -> None:
    clock = FakeClock()
    buffer = make(target_frames=3, clock=clock)
    buffer.push(frame(0))
    buffer.push(frame(1))  # 40 ms: frame 2 would come 20 ms from now
    assert read(buffer, N) == bytes(N)
    clock.now += 0.019
    assert read(buffer, N) == bytes(N)
    assert buffer.phase is Phase.BUFFERING
    clock.now += 0.002
    assert read(buffer, N) == frame(0).payload
    assert buffer.phase is Phase.PLAYING


def test_twice_the_target_held_starts_at_once_whatever_the_frames(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The start time assumes the target's last frame is as long as the head frame; a 10 ms
    frame followed by a 110 ms one would not be due for 40 ms, but holding twice the target
    (START_DEPTH_FACTOR) starts it at once."""
    assert START_DEPTH_FACTOR == 2.0

    def pushed(clock: FakeClock) -> PlayoutBuffer:
        buffer = make(target_frames=3, clock=clock)  # 480 sample frames
        buffer.push(Frame(0, bytes([1]) * 160))  # 80 sample frames
        buffer.push(Frame(80, bytes([2]) * 1760))  # 880: 960 held, twice the target
        assert buffer.depth == 2 * buffer.target
        return buffer

    buffer = pushed(FakeClock())
    assert read(buffer, N) == bytes([1]) * 160 + bytes([2]) * 160
    assert buffer.phase is Phase.PLAYING
    # Without the factor, the 110 ms frame would be taken for the target's last 10 ms.
    monkeypatch.setattr(buffer_module, "START_DEPTH_FACTOR", 3.0)
    clock = FakeClock()
    buffer = pushed(clock)
    clock.now += 0.039
    assert read(buffer, N) == bytes(N)
    clock.now += 0.002
    assert read(buffer, N) == bytes([1]) * 160 + bytes([2]) * 160
