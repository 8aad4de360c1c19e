"""Fuzzing the playout buffer: seeded random sequences of pushes (frames anywhere: in order,
overlapping, late, far ahead, duplicated), reads of any size, format changes, end of stream,
clear and discard, on a clock the test moves. Whatever the order, the buffer never raises,
every read returns exactly what was asked for, its depth is exactly what it holds past the
play cursor, its counters only grow, and it never holds more than its capacity.

The clock is the test's (``clock=``): the buffer's decisions depend on time, and a seeded
run must replay the same way to be debugged.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import astuple

import pytest

from appliance.audio.format import AudioFormat, Encoding
from appliance.listener.depacketizer import Frame
from appliance.listener.playout.buffer import BufferStats, PlayoutBuffer
from appliance.listener.playout.latency import LatencyTarget

FORMATS = (
    AudioFormat(8000, 1, Encoding.S16LE),
    AudioFormat(16000, 1, Encoding.S16LE),
    AudioFormat(48000, 2, Encoding.S16LE),
)
STEPS = 4_000
CAPACITY_S = 0.5


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def random_frame(
    rng: random.Random, buffer: PlayoutBuffer, last_end: int, shortest: int = 1
) -> Frame:
    fmt = buffer.format
    samples = rng.choice(
        (shortest, fmt.rate // 50, fmt.rate // 50, rng.randrange(shortest, fmt.rate // 2))
    )
    anchor = buffer.cursor if buffer.cursor is not None and rng.random() < 0.3 else last_end
    position = anchor + rng.choice(
        (0, 0, 0, -samples, -1, 1, samples // 2, -rng.randrange(1, 10 * samples + 2),
         rng.randrange(1, 10 * samples + 2), rng.randrange(-10 * fmt.rate, 10 * fmt.rate))
    )
    return Frame(position, rng.randbytes(samples * fmt.frame_bytes), fmt)


def counters(buffer: PlayoutBuffer) -> tuple[int, ...]:
    stats = buffer.stats()
    stats.peak_depth = 0  # the one that may go down (reset_peak)
    return astuple(stats)


def overlaps_held(buffer: PlayoutBuffer, frame: Frame) -> bool:
    """Whether ``frame`` covers part of a held frame (a duplicate at the same position aside),
    as the buffer would insert it: a frame begun before the cursor loses its played part."""
    cursor = buffer.cursor
    if cursor is not None and frame.position < cursor:
        frame = frame.after(cursor)
    return any(
        held.position < frame.end and frame.position < held.end and held.position != frame.position
        for held in buffer._frames
    )


@pytest.mark.parametrize(
    "mode",
    [
        "contiguous",
        "gaps",
        "overlapping",
    ],
)
@pytest.mark.parametrize("seed", range(8))
def test_random_operations_keep_the_buffer_consistent_and_bounded(seed: int, mode: str) -> None:
    """``contiguous``: frames follow on, or come again, or late, streams untimed (the raw
    wire): nothing is concealed (nothing to conceal); ``gaps``: frames anywhere
    but apart, streams timed or not; ``overlapping``: frames anywhere at all."""
    rng = random.Random(seed)
    clock = Clock()
    adaptive = seed % 2 == 1
    buffer = PlayoutBuffer(
        target_ms=rng.choice((20, 60, 90)),
        capacity_s=CAPACITY_S,
        drain_tail_ms=rng.choice((0, 100)),
        audio_format=FORMATS[0],
        latency=LatencyTarget(60, 20, 200, adaptive=adaptive) if adaptive else None,
        clock=clock,
    )
    buffer.begin_stream(FORMATS[0], timed=mode != "contiguous")
    last_end = 0
    before = counters(buffer)
    operations = {"push": 0, "read": 0}
    for _ in range(STEPS):
        clock.now += rng.choice((0.0, 0.001, 0.02, 0.03, rng.random()))
        choice = rng.random()
        fmt = buffer.format
        if choice < 0.5:
            frame = random_frame(rng, buffer, last_end)
            if mode == "contiguous":
                follow_on = buffer.queued_end
                if follow_on is None:
                    follow_on = last_end if buffer.cursor is None else buffer.cursor
                # Late (wholly or partly), a copy of a held frame, or the next one: no gap.
                late = buffer.cursor is not None and frame.position < buffer.cursor
                copy = any(held.position == frame.position for held in buffer._frames)
                if not (late or copy):
                    frame = Frame(follow_on, frame.payload, frame.format)
            if mode != "overlapping" and overlaps_held(buffer, frame):
                continue
            buffer.push(frame)
            last_end = max(last_end, frame.end)
            operations["push"] += 1
        elif choice < 0.85:
            n = rng.choice((1, fmt.rate * 30 // 1000, rng.randrange(1, fmt.rate // 5)))
            played_before = buffer.stats().samples_played
            audio = buffer.read(n)
            assert len(audio) == n * fmt.frame_bytes
            assert 0 <= buffer.stats().samples_played - played_before <= n
            operations["read"] += 1
        elif choice < 0.9:
            # Only a timed stream conceals running dry: kept out of the contiguous mode.
            timed = mode != "contiguous" and rng.random() < 0.5
            buffer.begin_stream(rng.choice(FORMATS), timed=timed)
            last_end = buffer.queued_end or (buffer.cursor or 0)
        elif choice < 0.94:
            buffer.end_stream()
        elif choice < 0.96:
            buffer.clear()
            last_end = 0
        elif choice < 0.98:
            buffer.discard_queued(rng.choice((None, 0.0, 20.0)))
        else:
            buffer.update_target(clock.now, rng.choice((0.0, 50.0)))
        assert_consistent(buffer)
        after = counters(buffer)
        assert all(a >= b for a, b in zip(after, before, strict=True)), (before, after)
        before = after
    assert operations["push"] > STEPS // 3 and operations["read"] > STEPS // 4


def assert_consistent(buffer: PlayoutBuffer) -> None:
    """The depth is what is held past the cursor, frames are in order and do not overlap
    unplayed audio twice, and the memory held is within the capacity (one frame's slack)."""
    frames = list(buffer._frames)
    cursor = buffer.cursor
    start = {id(f): f.position if cursor is None else max(f.position, cursor) for f in frames}
    held = sum(f.end - start[id(f)] for f in frames)
    assert buffer.depth == held, (buffer.depth, held, cursor, [(f.position, f.end) for f in frames])
    assert 0 <= buffer.depth <= buffer.capacity
    assert all(a.position < b.position for a, b in itertools.pairwise(frames))
    if cursor is not None:
        # A frame ending at the cursor may stay until the next read pops it (discard_queued
        # leaves one when it keeps nothing past the cursor): it holds no audio to play.
        assert all(f.end >= cursor for f in frames)
    largest = max((len(f.payload) for f in frames), default=0)
    held_bytes = sum(len(f.payload) for f in frames)
    assert held_bytes <= buffer.capacity * buffer.format.frame_bytes + largest
    assert isinstance(buffer.stats(), BufferStats)


def test_a_frame_inside_a_held_one_is_not_played_twice() -> None:
    """Found by the fuzz above: an RTP packet of the stream's own SSRC whose timestamp falls
    inside an earlier packet (a sender that repacketizes, or a forger of plain RTP)."""
    fmt = FORMATS[0]
    clock = Clock()
    buffer = PlayoutBuffer(20, CAPACITY_S, 0, fmt, clock=clock)
    outer = Frame(0, bytes(range(256)) * 2 + bytes(128), fmt)  # 320 sample frames
    buffer.push(outer)
    buffer.push(Frame(100, bytes([0xAA]) * 100, fmt))  # 50 sample frames inside it
    clock.now += 1
    played = b"".join(buffer.read(160) for _ in range(3))
    assert played[: len(outer.payload)] == outer.payload
    # Dry within the stream's first 0.5 s: it waits (refills) rather than conceals.
    assert (buffer.depth, buffer.cursor) == (0, len(outer.payload) // 2)


def test_lost_packets_of_a_48_khz_stream_are_concealed() -> None:
    """Found by the fuzz above: 48 kHz mono, 20 ms packets of noise, now and then one or two
    lost, 30 ms reads (the listener's default period)."""
    fmt = AudioFormat(48000, 1, Encoding.S16LE)
    packet = fmt.rate // 50
    rng = random.Random(2)
    clock = Clock()
    buffer = PlayoutBuffer(60, CAPACITY_S, 0, fmt, clock=clock)
    position = 0
    for _ in range(30):
        position += rng.choice((0, 0, 0, 0, packet, 2 * packet))
        buffer.push(Frame(position, rng.randbytes(2 * packet), fmt))
        position += packet
        clock.now += 0.02
        assert len(buffer.read(1440)) == 2 * 1440


def test_a_timestamp_jump_far_ahead_is_not_planned_but_faded() -> None:
    """Found by the fuzz above: one packet of the stream's SSRC with its timestamp 100 s
    ahead (a forger of plain RTP, a sender restarting with the same SSRC) made every read of
    the gap plan it from both sides, at a cost growing with the gap (minutes per read)."""
    fmt = FORMATS[0]
    clock = Clock()
    buffer = PlayoutBuffer(20, CAPACITY_S, 0, fmt, clock=clock)
    rng = random.Random(3)
    for index in range(100):
        buffer.push(Frame(index * 160, rng.randbytes(320), fmt))
    buffer.push(Frame(100 * 8000, rng.randbytes(320), fmt))
    clock.now += 1
    for _ in range(100):
        assert len(buffer.read(160)) == 320
    concealed = [buffer.read(240) for _ in range(20)]
    assert buffer._concealer.planned is False  # the costly plan was not made
    assert concealed[-1] == bytes(480)  # faded to silence (G.711 App. I: 60 ms)
    assert buffer.depth == 160
