"""RTP through an impaired network, on real parts: a paced L16 stream (8000 Hz mono, 20 ms
packets) goes through the user-space impairment relay (tests/impair.py) over UDP on 127.0.0.1
into the real listener, which plays it through PyAudio into a PulseAudio null sink. What the
listener's audio callback returned is compared with what was sent, and with what PortAudio
wrote (the rig's file tee, exact bytes) -- unless PortAudio flagged a late callback: a callback
thread stalled by CPU load makes PortAudio drop a period after it (measured: a 250 ms stall
lost 240 frames of the tee), which is the machine's doing, not the listener's.

Every impairment comes from a seed (the relay's fates never depend on timing), and the seeds
that give the wanted pattern -- exactly one loss, one burst of ten -- are found with
:func:`impair.plan` before the stream starts: each test knows its network in advance.

* Reordered and duplicated packets are played bit-exact, once each, and counted as the relay
  made them.
* A lost packet is concealed (a continuation of the signal, not silence), the stream keeps its
  exact length, and everything outside the gap and its end blend is bit-exact.
* A burst of ten losses fades to exact silence 60 ms in, and the audio after it plays
  bit-exact once blended back.

Buffers are larger than the default 60 ms start: on this rig the output is opened when a
stream's first packet comes (blocking the receiving thread), and PortAudio then takes about
three periods back to back; under CPU load those reads can meet the first packets and start
playing up to two periods (60 ms) below the target, a level the drift control then keeps.
With 60 ms a single loss then becomes an underrun (about half of the runs with two busy
cores), and these tests check bit-exactness, not that. The process also runs the sender and
the relay: a stall of either drains the buffer just as a late network does.

"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import peers
import pytest
from audio_rig import SAMPLE_RATE, AudioSink, test_signal
from impair import Fate, GilbertElliott, Impairment, ImpairmentRelay, plan
from streams import udp_socket

from appliance.listener.listener import Listener, ListenerConfig
from appliance.listener.outputs import AudioOutput, Render
from appliance.listener.outputs.portaudio import PyAudioOutput
from appliance.listener.session import EndReason, Session
from appliance.sender.pacing import Pacer
from appliance.wire import Wire
from appliance.wire.rtcp import bye
from appliance.wire.rtp import RtpPacket

PLAY_TIMEOUT_S = 30.0
DRAIN_TIMEOUT_S = 5.0
PACKET_FRAMES = 160
"""20 ms at 8000 Hz: the stream's packets."""
PACKET_BYTES = PACKET_FRAMES * 2
PAYLOAD_TYPE = 97
"""Dynamic: the listener plays it as L16 8000 Hz mono without configuration."""
SSRC = 0x1A2B3C4D
FIRST_SEQ = 65_400
FIRST_TIMESTAMP = 2**32 - 10 * PACKET_FRAMES
"""Sequence numbers and timestamps wrap around early in every stream: under impairment too."""
BLEND_MAX_FRAMES = 80
"""A concealment is blended back into the real audio over at most 10 ms."""
STEP_FRAMES = 80
"""10 ms: the concealment's fade steps."""
FADE_FRAMES = 6 * STEP_FRAMES
"""A concealment fades to silence in 60 ms."""
MAX_SEEDS = 20_000

Int16s = npt.NDArray[np.int16]
Floats = npt.NDArray[np.float64]
Plan = list[Fate]


# -- the stream ------------------------------------------------------------------------------


def rtp_datagrams(pcm: bytes) -> list[bytes]:
    """``pcm`` (s16le, 8 kHz mono) as L16 RTP packets of 20 ms (the last may be shorter)."""
    datagrams = []
    for index, start in enumerate(range(0, len(pcm), PACKET_BYTES)):
        chunk = np.frombuffer(pcm[start : start + PACKET_BYTES], dtype="<i2")
        packet = RtpPacket(
            payload_type=PAYLOAD_TYPE,
            sequence=(FIRST_SEQ + index) % 2**16,
            timestamp=(FIRST_TIMESTAMP + index * PACKET_FRAMES) % 2**32,
            ssrc=SSRC,
            payload=chunk.astype(">i2").tobytes(),
            marker=index == 0,
        )
        datagrams.append(bytes(packet))
    return datagrams


def stream_through(relay: ImpairmentRelay, listener: Listener, datagrams: Sequence[bytes]) -> None:
    """Send ``datagrams`` to the relay in real time (one per 20 ms), wait until the relay has
    forwarded everything, then end the session with an RTCP BYE sent straight to the listener
    (from the sender's host, so it counts as the session's RTCP). Loopback UDP is queued at
    the receiver when sent: the BYE comes after every relayed packet, and is itself never
    lost, delayed or duplicated."""
    # No spinning before deadlines: the listener shares this process (and its GIL).
    pacer = Pacer(interval=PACKET_FRAMES / SAMPLE_RATE, spin=0.0)
    with udp_socket() as sock:
        for datagram in datagrams:
            pacer.wait()
            sock.sendto(datagram, relay.address)
        assert relay.drain(timeout=DRAIN_TIMEOUT_S), "the relay did not forward everything"
        sock.sendto(bye(SSRC), ("127.0.0.1", listener.port))


class TappedListener:
    """A listener on 127.0.0.1 and a free port, playing through PyAudio as usual, whose
    audio callback's every block is also kept: :attr:`rendered` is exactly what the listener
    handed PortAudio."""

    def __init__(self, **options: Any) -> None:
        self.config = ListenerConfig(**{"port": 0, "bind": "127.0.0.1", **options})
        self.blocks: list[bytes] = []
        self.output: PyAudioOutput | None = None
        self.listener = Listener(self.config, output_factory=self._output)

    def _output(self, render: Render) -> AudioOutput:
        def tapped(n_frames: int, dac_time: float | None = None) -> bytes:
            block = render(n_frames, dac_time)
            self.blocks.append(block)
            return block

        self.output = PyAudioOutput(tapped, self.config.device, self.config.period_ms)
        return self.output

    @property
    def rendered(self) -> bytes:
        return b"".join(self.blocks)

    @property
    def output_underflows(self) -> int:
        """Callbacks PortAudio flagged as late (it may have dropped audio)."""
        return 0 if self.output is None else self.output.output_underflows


TappedFactory = Callable[..., TappedListener]


@pytest.fixture
def make_tapped() -> Iterator[TappedFactory]:
    """``make_tapped(**ListenerConfig options)``; the listeners are closed after the test."""
    made: list[TappedListener] = []

    def factory(**options: Any) -> TappedListener:
        tapped = TappedListener(**options)
        made.append(tapped)
        return tapped

    yield factory
    for tapped in made:
        tapped.listener.close()


@dataclass(frozen=True)
class Played:
    session: Session
    relay: ImpairmentRelay
    """Stopped: its stats are complete."""
    audio: Int16s
    """What the listener played, from its first non-zero sample to its last."""
    underflows: int
    """Late callbacks PortAudio reported (the tee was not compared if any)."""

    def figures(self) -> str:
        """For assertion messages: what the listener and the relay counted."""
        stats = self.relay.stats
        return (
            f"listener: {self.session.network_text()}; underruns {self.session.underruns}, "
            f"packets {self.session.packets}; relay: received {stats.received}, forwarded "
            f"{stats.forwarded}, dropped {stats.dropped}, duplicated {stats.duplicated}, "
            f"reordered {stats.reordered}; output underflows {self.underflows}"
        )


def play_through(
    tapped: TappedListener, sink: AudioSink, impairment: Impairment, pcm: bytes
) -> Played:
    """Stream ``pcm`` through a relay with ``impairment`` into ``tapped``'s listener; what
    it played, checked against the bytes PortAudio wrote (the rig's tee) unless PortAudio
    reported a late callback."""
    listener = tapped.listener
    datagrams = rtp_datagrams(pcm)
    listener.start()
    with ImpairmentRelay(("127.0.0.1", listener.port), impairment) as relay:
        stream_through(relay, listener, datagrams)
    assert listener.wait_session_played(timeout=PLAY_TIMEOUT_S)
    listener.stop()  # closes the output: the tee file is complete
    [session] = listener.sessions
    played = Played(session, relay, trimmed(tapped.rendered), tapped.output_underflows)
    if played.underflows == 0:
        assert np.array_equal(trimmed(sink.tee_bytes()), played.audio), (
            "PortAudio did not write what the listener rendered"
        )
    assert (session.wire, session.end_reason, session.invalid) == (Wire.RTP, EndReason.BYE, 0)
    assert relay.stats.received == len(datagrams)
    assert relay.stats.fates == plan(impairment, len(datagrams))
    return played


def trimmed(pcm: bytes) -> Int16s:
    """The samples from the first non-zero one to the last: PortAudio's leading silence and
    the drain's tail of silence set aside (silence inside is kept)."""
    samples = np.frombuffer(pcm, dtype="<i2")
    audible = np.flatnonzero(samples)
    assert audible.size, "nothing audible was played"
    return samples[audible[0] : audible[-1] + 1]


def as_samples(pcm: bytes) -> Int16s:
    return np.frombuffer(pcm, dtype="<i2")


def voiced(seconds: float) -> bytes:
    """A voiced-like tone: five harmonics of 125 Hz (an 8 ms period, 64 samples), peaks about
    -5 dBFS, with no pause; its first and last samples are not zero (trimming keeps it
    whole)."""
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    wave = np.zeros_like(t)
    for k, amplitude in enumerate((6000.0, 3500.0, 2000.0, 1000.0, 500.0), start=1):
        wave += amplitude * np.sin(2 * np.pi * 125 * k * t + 0.7 * k)
    samples = np.rint(wave).astype("<i2")
    assert samples[0] != 0 and samples[-1] != 0
    return samples.tobytes()


def seed_where(
    make: Callable[[int], Impairment], packets: int, wanted: Callable[[Plan], bool]
) -> Impairment:
    """The first impairment ``make(seed)`` (seed 0, 1, ...) whose plan for ``packets``
    datagrams is ``wanted`` (a few ms: plans are computed offline)."""
    for seed in range(MAX_SEEDS):
        impairment = make(seed)
        if wanted(plan(impairment, packets)):
            return impairment
    raise AssertionError(f"no seed below {MAX_SEEDS} gives the wanted plan")


def dropped(fates: Plan) -> list[int]:
    return [fate.index for fate in fates if fate.dropped]


def one_run_of(length: int, first_from: int, first_to: int) -> Callable[[Plan], bool]:
    """A plan that drops exactly ``length`` consecutive datagrams, the first of them within
    ``first_from..first_to``, and nothing else."""

    def wanted(fates: Plan) -> bool:
        lost = dropped(fates)
        return (
            len(lost) == length
            and lost == list(range(lost[0], lost[0] + length))
            and first_from <= lost[0] <= first_to
        )

    return wanted


def rms(x: Floats) -> float:
    return float(np.sqrt(np.mean(np.square(x))))


def correlation(a: Floats, b: Floats) -> float:
    return float(np.dot(a, b) / np.sqrt(np.dot(a, a) * np.dot(b, b)))


# -- reordering and duplicates ---------------------------------------------------------------


@pytest.mark.audio
def test_reordered_packets_within_the_buffer_play_bit_exact(
    audio_sink: AudioSink, make_tapped: TappedFactory
) -> None:
    # Delays of 5..45 ms against 20 ms packet spacing: about one packet in eight overtakes
    # its predecessor (20 +- 15 ms reorders only ~6 %: 15 of 250).
    sent = test_signal(seconds=5.0, seed=61)
    impairment = Impairment(delay_ms=25, jitter_ms=20, seed=61)
    tapped = make_tapped(fixed_latency=True, buffer_ms=120)
    played = play_through(tapped, audio_sink, impairment, sent)
    session, relay, info = played.session, played.relay, played.figures()
    assert played.audio.tobytes() == sent, info
    assert relay.stats.reordered >= 15, info
    assert session.reordered == relay.stats.reordered, info
    assert (session.lost, session.late, session.duplicates) == (0, 0, 0), info
    assert (session.concealed_ms, session.concealments, session.underruns) == (0, 0, 0), info
    assert session.audio_bytes == len(sent), info


@pytest.mark.audio
def test_duplicated_packets_play_once(audio_sink: AudioSink, make_tapped: TappedFactory) -> None:
    sent = test_signal(seconds=4.0, seed=62)
    packets = len(sent) // PACKET_BYTES
    # Not the first packet (a duplicated first packet has its own test below).
    impairment = seed_where(
        lambda seed: Impairment(delay_ms=5, jitter_ms=2, duplicate=0.2, seed=seed),
        packets,
        lambda fates: len(fates[0].delays_ms) == 1,
    )
    tapped = make_tapped(fixed_latency=True, buffer_ms=120)
    played = play_through(tapped, audio_sink, impairment, sent)
    session, relay, info = played.session, played.relay, played.figures()
    assert played.audio.tobytes() == sent, info
    assert relay.stats.duplicated >= 20, info
    # Every copy arrives (drain() before the BYE), and every one is recognised.
    assert session.duplicates == relay.stats.duplicated, info
    assert session.packets == relay.stats.forwarded + relay.stats.duplicated, info
    assert session.audio_bytes == len(sent), info
    assert (session.lost, session.late, session.concealed_ms, session.underruns) == (0, 0, 0, 0)


@pytest.mark.audio
def test_a_duplicated_first_packet_is_still_rtp(
    audio_sink: AudioSink, make_tapped: TappedFactory
) -> None:
    sent = test_signal(seconds=1.0, seed=63)
    packets = len(sent) // PACKET_BYTES
    impairment = seed_where(  # no jitter: each copy goes right behind its original
        lambda seed: Impairment(delay_ms=5, duplicate=0.05, seed=seed),
        packets,
        lambda fates: len(fates[0].delays_ms) == 2,
    )
    tapped = make_tapped(fixed_latency=True, buffer_ms=120, timeout_s=1.0)
    played = play_through(tapped, audio_sink, impairment, sent)
    assert played.audio.tobytes() == sent, played.figures()
    assert played.session.duplicates == played.relay.stats.duplicated


# -- losses ----------------------------------------------------------------------------------


@pytest.mark.audio
@pytest.mark.parametrize(
    "options",
    [{"fixed_latency": True, "buffer_ms": 120}, {"buffer_ms": 120}],
    ids=["fixed-120ms", "adaptive-from-120ms"],
)
def test_a_lost_packet_is_concealed_and_the_stream_keeps_its_length(
    audio_sink: AudioSink,
    make_tapped: TappedFactory,
    caplog: pytest.LogCaptureFixture,
    options: dict[str, Any],
) -> None:
    sent = voiced(seconds=4.0)
    packets = len(sent) // PACKET_BYTES
    impairment = seed_where(
        lambda seed: Impairment(delay_ms=5, loss=1 / packets, seed=seed),
        packets,
        one_run_of(1, packets // 3, 2 * packets // 3),
    )
    [lost] = dropped(plan(impairment, packets))
    tapped = make_tapped(**options)
    with caplog.at_level(logging.INFO, logger="appliance"):
        played = play_through(tapped, audio_sink, impairment, sent)
    session, info = played.session, played.figures()
    audio, truth = played.audio, as_samples(sent)
    assert audio.size == truth.size, info
    gap = slice(lost * PACKET_FRAMES, (lost + 1) * PACKET_FRAMES)
    blended = gap.stop + BLEND_MAX_FRAMES
    assert np.array_equal(audio[: gap.start], truth[: gap.start]), info
    assert np.array_equal(audio[blended:], truth[blended:]), info
    # The gap holds a continuation of the tone, close to what was lost: zeros there would
    # have an SNR of 0 dB and no correlation.
    concealed, real = audio[gap].astype(np.float64), truth[gap].astype(np.float64)
    # (Interpolated from both sides, a steady tone may come back exact: no error at all.)
    error = max(float(np.sum((concealed - real) ** 2)), 1.0)
    snr_db = 10 * np.log10(np.sum(real**2) / error)
    assert rms(concealed) > 0.7 * rms(real), info
    assert correlation(concealed, real) > 0.9, info
    assert snr_db > 10.0, info
    assert (session.lost, session.concealments, session.concealed_ms) == (1, 1, 20), info
    assert (session.late, session.duplicates, session.underruns) == (0, 0, 0), info
    assert "lost 1, late 0, " in caplog.text
    assert "concealed 20 ms in 1 gaps" in caplog.text


@pytest.mark.audio
def test_a_burst_of_losses_fades_to_silence_and_recovers(
    audio_sink: AudioSink, make_tapped: TappedFactory
) -> None:
    sent = voiced(seconds=5.0)
    packets = len(sent) // PACKET_BYTES
    burst = 10
    # Bursts of 10 on average, one in a stream; the seed gives exactly one, of exactly 10,
    # well after the drift control has settled (2 s of playing).
    impairment = seed_where(
        lambda seed: Impairment(delay_ms=5, burst=GilbertElliott(p=0.004, r=1 / burst), seed=seed),
        packets,
        one_run_of(burst, packets // 2, 3 * packets // 4),
    )
    first = dropped(plan(impairment, packets))[0]
    # The burst must fit in the buffer: a packet after it is held when the gap is reached,
    # or the buffer runs dry instead (a burst longer than the buffer has its own test below).
    tapped = make_tapped(fixed_latency=True, buffer_ms=350)
    played = play_through(tapped, audio_sink, impairment, sent)
    session, info = played.session, played.figures()
    audio, truth = played.audio, as_samples(sent)
    assert audio.size == truth.size, info
    gap = slice(first * PACKET_FRAMES, (first + burst) * PACKET_FRAMES)
    blended = gap.stop + BLEND_MAX_FRAMES
    assert np.array_equal(audio[: gap.start], truth[: gap.start]), info
    assert np.array_equal(audio[blended:], truth[blended:]), info
    # The fade: the first 10 ms at the tone's level, then down step by step, then nothing;
    # the audio after the burst is held, so the gap is interpolated: it fades in again, the
    # same way backwards, over its last 60 ms, into the real audio.
    fade = audio[gap.start : gap.start + FADE_FRAMES].astype(np.float64)
    levels = [rms(fade[i : i + STEP_FRAMES]) for i in range(0, FADE_FRAMES, STEP_FRAMES)]
    level = rms(truth[gap].astype(np.float64))
    assert levels[0] > 0.8 * level, levels
    assert all(a > b for a, b in itertools.pairwise(levels)), levels
    assert levels[-1] < 0.2 * level, levels
    silent = slice(gap.start + FADE_FRAMES, gap.stop - FADE_FRAMES)
    assert not np.any(audio[silent]), "not silent from 60 ms into the burst to 60 ms before its end"
    rise = audio[gap.stop - FADE_FRAMES : gap.stop].astype(np.float64)
    rising = [rms(rise[i : i + STEP_FRAMES]) for i in range(0, FADE_FRAMES, STEP_FRAMES)]
    assert all(a < b for a, b in itertools.pairwise(rising)), rising
    assert rising[-1] > 0.8 * level, rising
    expected = (burst, 1, burst * 20)
    assert (session.lost, session.concealments, session.concealed_ms) == expected, info
    assert (session.late, session.underruns) == (0, 0), info


@pytest.mark.audio
def test_a_burst_longer_than_the_buffer_costs_no_lasting_latency(
    audio_sink: AudioSink, make_tapped: TappedFactory
) -> None:
    sent = voiced(seconds=4.0)
    packets = len(sent) // PACKET_BYTES
    burst = 10
    impairment = seed_where(
        lambda seed: Impairment(delay_ms=5, burst=GilbertElliott(p=0.004, r=1 / burst), seed=seed),
        packets,
        one_run_of(burst, packets // 3, packets // 2),
    )
    first = dropped(plan(impairment, packets))[0]
    # 120 ms: still well short of the 200 ms burst, and room for a loaded machine's scheduling
    # (at 60 ms, a CI run once had a packet late by it, which this test is not about).
    tapped = make_tapped(fixed_latency=True, buffer_ms=120)
    played = play_through(tapped, audio_sink, impairment, sent)
    audio, truth, info = played.audio, as_samples(sent), played.figures()
    after = (first + burst) * PACKET_FRAMES + BLEND_MAX_FRAMES
    assert np.array_equal(audio[: first * PACKET_FRAMES], truth[: first * PACKET_FRAMES])
    assert np.array_equal(audio[audio.size - truth.size + after :], truth[after:]), info
    # The silence replaces the burst; it may differ from it by a refill's timing (a callback
    # period of 30 ms, and a packet), not by the burst's whole 200 ms.
    extra_ms = (audio.size - truth.size) * 1000 / SAMPLE_RATE
    assert abs(extra_ms) <= 50, f"{extra_ms:+.0f} ms played; {info}"


@pytest.mark.audio
def test_a_packet_ffmpeg_sent_and_the_network_lost_is_concealed(
    audio_sink: AudioSink, make_tapped: TappedFactory, tmp_path: Path
) -> None:
    """A real peer through the relay: ffmpeg's RTP (L16, type 97, 40 ms packets, its RTCP and
    BYE on the same port), one packet lost in the middle. Concealed in its exact length, the
    rest bit-exact, the session ended by ffmpeg's own BYE."""
    sent = voiced(seconds=4.0)
    datagrams = len(sent) // (2 * PACKET_BYTES) + 3  # 100 packets, RTCP reports and the BYE
    impairment = seed_where(
        lambda seed: Impairment(delay_ms=5, loss=1 / datagrams, seed=seed),
        datagrams,
        one_run_of(1, datagrams // 3, 2 * datagrams // 3),
    )
    tapped = make_tapped(fixed_latency=True, buffer_ms=120)  # ffmpeg -re sends in pairs
    listener = tapped.listener
    listener.start()
    with ImpairmentRelay(("127.0.0.1", listener.port), impairment) as relay:
        peers.ffmpeg_l16(sent, relay.address[1], tmp_path)
        assert relay.drain(timeout=DRAIN_TIMEOUT_S)
    assert listener.wait_session_played(timeout=PLAY_TIMEOUT_S)
    listener.stop()
    [session] = listener.sessions
    audio, truth = trimmed(tapped.rendered), as_samples(sent)
    info = f"{session.end_line()}; relay dropped {relay.stats.dropped}"
    assert relay.stats.dropped == 1, info
    assert (session.wire, session.payload_type, session.end_reason) == (
        Wire.RTP, 97, EndReason.BYE
    ), info
    assert (session.lost, session.concealments, session.concealed_ms) == (1, 1, 40), info
    assert audio.size == truth.size, info  # the timeline is kept
    differs = np.flatnonzero(audio != truth)
    assert differs.size > 0, info
    # Everything but the lost packet (and the blend after it, when it was extrapolated) is
    # exactly what ffmpeg sent.
    assert differs[-1] - differs[0] < 2 * PACKET_FRAMES + BLEND_MAX_FRAMES, info
    gap = audio[differs[0] : differs[0] + 2 * PACKET_FRAMES].astype(np.float64)
    assert rms(gap) > 0.5 * rms(truth.astype(np.float64)), "the gap played as silence"
