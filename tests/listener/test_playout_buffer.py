# mypy: disable-error-code="comparison-overlap"
# (phases change under the checker's feet: that is what these tests are about)
import math

import pytest

from appliance.audio.format import AudioFormat
from appliance.listener.depacketizer import Frame
from appliance.listener.playout.buffer import EXPAND_AFTER_S, Phase, PlayoutBuffer
from appliance.listener.playout.concealment import Concealer
from appliance.wire.raw import RAW_FORMAT

N = 320  # one 20 ms frame
SAMPLES = N // 2


def frame(index: int, size: int = N) -> Frame:
    """Frame ``index`` of a contiguous stream; its bytes encode its index so order shows."""
    return Frame(index * SAMPLES, bytes([index % 250 + 1]) * size)


def make(target_frames: int = 3, capacity_frames: int = 100, tail_frames: int = 2) -> PlayoutBuffer:
    """A buffer for the raw wire's 20 ms packets, its sizes counted in packets."""
    return PlayoutBuffer(target_frames * 20, capacity_frames * 0.02, tail_frames * 20)


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
    buffer = make(target_frames=2)
    for i in range(2):
        buffer.push(frame(i))
    played = [read(buffer, N) for _ in range(3)]
    assert played == [frame(0).payload, frame(1).payload, bytes(N)]
    assert buffer.phase is Phase.UNDERRUN
    assert buffer.stats().underruns == 0  # counted only when playing resumes
    buffer.push(frame(2))
    assert read(buffer, N) == bytes(N)  # rebuffering to the target
    buffer.push(frame(3))
    assert read(buffer, N) == frame(2).payload
    assert buffer.phase is Phase.PLAYING
    assert buffer.stats().underruns == 1


def test_running_dry_at_the_end_of_a_stream_is_not_an_underrun() -> None:
    buffer = make(target_frames=1, tail_frames=2)
    buffer.push(frame(0))
    assert read(buffer, N) == frame(0).payload
    assert read(buffer, N) == bytes(N)
    assert buffer.phase is Phase.UNDERRUN
    buffer.end_stream()
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
    # The same concealment a Concealer makes from what was played before the gap.
    reference = Concealer(RAW_FORMAT)
    reference.played(frame(0).payload)
    assert played[0] == frame(0).payload
    assert played[1] == reference.conceal(SAMPLES)
    assert played[1] != bytes(N)
    assert played[2] == reference.played(frame(2).payload)  # blended back in
    stats = buffer.stats()
    assert (stats.concealed, stats.concealments, stats.samples_played) == (SAMPLES, 1, 2 * SAMPLES)


def test_a_burst_of_losses_is_one_concealment_that_fades_to_silence() -> None:
    buffer = make(target_frames=2)
    buffer.push(frame(0))
    buffer.push(frame(6))  # 100 ms lost
    played = [read(buffer, N) for _ in range(7)]
    assert played[1] != bytes(N)
    assert played[4:6] == [bytes(N)] * 2  # 60 ms into the burst: silence
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


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


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
    # The same gap with nothing held after it is extrapolated (and blended back).
    reference = Concealer(RAW_FORMAT)
    for i in range(3):
        reference.played(voiced(i).payload)
    assert played[3] != reference.conceal(SAMPLES)
    assert played[3] != bytes(N)


def test_playing_resumes_at_the_first_frame_held_after_an_underrun() -> None:
    buffer = make(target_frames=3)
    for i in range(3):
        buffer.push(frame(i))
    played = [read(buffer, N) for _ in range(4)]
    assert buffer.phase is Phase.UNDERRUN and played[3] == bytes(N)
    for i in (13, 14, 15):  # 3 .. 12 never came
        buffer.push(frame(i))
    assert [read(buffer, N) for _ in range(3)] == [frame(i).payload for i in (13, 14, 15)]
    assert buffer.stats().concealed == 0  # skipped, not concealed


def test_running_dry_mid_stream_is_concealed_and_keeps_the_timeline() -> None:
    clock = FakeClock()
    buffer = PlayoutBuffer(60, 10, 40, clock=clock)
    count = round(EXPAND_AFTER_S * 50) + 3  # past the start, when refilling costs nothing
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
    count = round(EXPAND_AFTER_S * 50) + 3
    for i in range(count):
        buffer.push(voiced(i))  # all at once, as the seed's sender at twice real time
    clock.now += 5.0
    for _ in range(count):
        read(buffer, N)
    assert read(buffer, N) == bytes(N)
    assert buffer.phase is Phase.UNDERRUN
    assert buffer.stats().concealed == 0
