"""Benchmark (not a test): what the listener plays through an impaired network, scored with PESQ
side by side with GStreamer.

    .venv/bin/python tests/bench_playout.py [--seconds 24] [--rates 8000,16000] [--quick]
        [--seed 7] [--repeats 1] [--buffer-ms MS] [--keep DIR]

Speech is sent as L16 RTP (payload type 96, 20 ms packets, the marker on the first, a random
SSRC, sequence number and timestamp from a seeded generator) by one paced sender inside this
process. Every packet goes to two impairment relays (``tests/impair.py``) made alike, with the
same seed, one in front of each receiver, so that both receivers get the same impaired trace
in the same run; the stream ends with two RTCP BYEs sent straight to each receiver once the
relays have drained. All traffic stays on 127.0.0.1. The receivers:

* ours: an in-process :class:`~appliance.listener.listener.Listener` writing what it plays to
  a WAV file in real time, as a sound card would take it (``--buffer-ms`` sets its buffer);
* GStreamer: ``gst-launch-1.0 -e udpsrc ! rtpjitterbuffer latency=100 ! rtpL16depay !
  filesink`` (big-endian samples, stopped with SIGINT a second after the BYEs). It reorders but
  conceals nothing: lost packets vanish from its output, which comes out shorter. That is the
  receiver the target names; but a sound card does not play like that: it plays a gap's time.
  So its output is also scored put back on the stream's timeline ("GSt on time"): each of its
  packets (bit-exact copies of those sent) at the place it was sent, silence for the lost ones.
  (Its real ``pulsesink`` was tried into the rig's null sink: it dropped ~0.4 s at every start
  while its clock slaving settled, even with no loss -- a measure of GStreamer's defaults on a
  jittery stream more than of its receiver, so it is not used.)

The conditions: +-30 ms of jitter on 30 ms of delay, with 0, 1, 5 and 10 % of the packets lost
independently, and 5 and 10 % lost in bursts (Gilbert-Elliott, 3 packets on average); at
8 kHz (PESQ narrow band) and 16 kHz (PESQ wide band). ``--quick`` runs 0 %, 5 % and 10 %
bursty only.

For each receiver it prints PESQ (ITU-T P.862, the ``pesq`` package) of what was played
against what was sent, exact zeros trimmed from both ends of each; the length of the output's
audio (first to last non-zero sample) against the length sent, in ms (0: the timeline was
kept); whether the output is bit-exact; each receiver's added latency (ours: the session's mean
playout-buffer depth plus the output period; GStreamer: its configured 100 ms); and our
session's counters. Then the verdict against the target: bit-exact at 0 % loss, and at least
GStreamer + 0.2 PESQ at every loss rate with the timeline kept and no more latency than
GStreamer's 100 ms.

One run per condition is one loss pattern, and PESQ of an output with the lost packets cut out
(GStreamer's) swings with where the cuts fall: from 1.2 to 4.1 over five seeds of 10 % bursty
loss on the built-in sample, whose pauses are exact digital silence (cutting 60 ms of it costs
nothing). ``--repeats N`` runs each condition with N seeds and tables the means.

The speech: the built-in sample (8 kHz, 8 s) repeated to ``--seconds`` at 8 kHz; at 16 kHz,
espeak-ng's voice resampled to 16 kHz when espeak-ng is installed, else the built-in sample
upsampled (then nothing is above 4 kHz; the output says which).

Needs (apt): gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
(GStreamer), optionally espeak-ng; (pip): pesq (builds with gcc), soxr and numpy (already
dependencies of the project).
"""

from __future__ import annotations

import argparse
import bisect
import importlib
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt
import soxr  # type: ignore[import-untyped]  # no stubs or py.typed in python-soxr 1.1

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from child_output import ChildOutput
from impair import GilbertElliott, Impairment, ImpairmentRelay

from appliance.audio.format import AudioFormat
from appliance.commands.demo import sample_path
from appliance.listener.listener import Listener, ListenerConfig
from appliance.listener.outputs import AudioOutput, Render
from appliance.listener.outputs.wavfile import WavFileOutput
from appliance.listener.session import Session
from appliance.sender.pacing import Pacer
from appliance.wire.rtcp import bye
from appliance.wire.rtp import RtpPacket

PAYLOAD_TYPE = 96
PTIME_S = 0.020
BYE_COPIES = 2
BYE_GAP_S = 0.05
INT16_MAX = 32767

DELAY_MS = 30.0
JITTER_MS = 30.0
MEAN_BURST = 3.0
GST_LATENCY_MS = 100
"""GStreamer's jitter buffer latency: its added latency, as configured."""
PESQ_MARGIN = 0.2
"""The target: ours at least this much above GStreamer at every loss rate."""
TIMELINE_TOLERANCE_MS = PTIME_S * 1000
"""The output's audio may be this much shorter or longer than what was sent (one packet: the
first or last packet with sound lost) and still count as keeping the timeline."""

READY_TIMEOUT_S = 30.0
DRAIN_TIMEOUT_S = 5.0
GST_TAIL_S = 1.0
"""GStreamer is stopped this long after the BYEs."""
PLAYED_TIMEOUT_S = 20.0
GST_STOP_TIMEOUT_S = 10.0
SETTLE_S = 0.3
"""After the receivers are ready, before the stream starts."""

ESPEAK_TEXT = (
    "The quick brown fox jumps over the lazy dog. "
    "A network audio listener plays what it receives, in real time, on a small computer. "
    "Packets arrive late, out of order, or not at all, and the listener must hide the gaps. "
    "She sells sea shells by the sea shore, and the shells she sells are surely sea shells. "
    "Please call Stella and ask her to bring these things with her from the store. "
    "Six spoons of fresh snow peas, five thick slabs of blue cheese, and maybe a snack. "
)

SESSION_FIELDS = (
    "lost", "late", "reordered", "duplicates", "concealments", "jitter_ms", "drift_ppm",
    "drift_by", "target_ms", "mean_depth_ms",
)  # fmt: skip
"""Session figures being added to the listener; read with getattr, "n/a" when absent (the
concealed audio is read apart: ``concealed_ms``, or ``concealed_frames`` in sample frames)."""

GST_ELEMENTS = ("udpsrc", "rtpjitterbuffer", "rtpL16depay", "filesink")
GST_APT = (
    "apt-get install -y --no-install-recommends gstreamer1.0-tools gstreamer1.0-plugins-base "
    "gstreamer1.0-plugins-good"
)

Samples = npt.NDArray[np.int16]


# --- conditions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    label: str
    loss: float
    """Packets lost, as a fraction."""
    bursty: bool = False

    def impairment(self, seed: int) -> Impairment:
        if self.bursty:
            return Impairment(
                delay_ms=DELAY_MS,
                jitter_ms=JITTER_MS,
                burst=GilbertElliott.from_rate(self.loss, mean_burst=MEAN_BURST),
                seed=seed,
            )
        return Impairment(delay_ms=DELAY_MS, jitter_ms=JITTER_MS, loss=self.loss, seed=seed)


CONDITIONS = (
    Condition("0%", 0.0),
    Condition("1%", 0.01),
    Condition("5%", 0.05),
    Condition("10%", 0.10),
    Condition("5% bursty", 0.05, bursty=True),
    Condition("10% bursty", 0.10, bursty=True),
)
QUICK = ("0%", "5%", "10% bursty")
SEED_STRIDE = 100
"""Condition ``i``'s run ``k`` uses seed ``--seed + i + SEED_STRIDE * k`` (relays and sender)."""


# --- the speech --------------------------------------------------------------------------------


def read_wav(path: Path) -> tuple[Samples, int]:
    """Mono int16 samples and the rate of a 16-bit WAV file (channels averaged)."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2:
            raise ValueError(f"{path}: not 16-bit PCM")
        channels, rate = wav.getnchannels(), wav.getframerate()
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    if channels > 1:
        data = data.reshape(-1, channels).mean(axis=1).round().astype(np.int16)
    return data.astype(np.int16), rate


def write_wav(path: Path, samples: Samples, rate: int) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.astype("<i2").tobytes())


def resample(samples: Samples, from_rate: int, to_rate: int) -> Samples:
    if from_rate == to_rate:
        return samples
    converted: npt.NDArray[np.float32] = soxr.resample(
        samples.astype(np.float32) / 32768, from_rate, to_rate
    )
    return np.clip(np.round(converted * 32768), -INT16_MAX - 1, INT16_MAX).astype(np.int16)


def espeak_speech(directory: Path) -> tuple[Samples, int] | None:
    """A few sentences from espeak-ng (its own rate), or None if it is not installed."""
    if shutil.which("espeak-ng") is None:
        return None
    path = directory / "espeak.wav"
    subprocess.run(["espeak-ng", "-w", str(path), ESPEAK_TEXT], check=True, capture_output=True)
    return read_wav(path)


def repeat_to(samples: Samples, n_samples: int) -> Samples:
    copies = -(-n_samples // samples.size)
    return np.tile(samples, copies)[:n_samples]


def speech(rate: int, seconds: float, directory: Path) -> tuple[Samples, str]:
    """``seconds`` of speech at ``rate`` (whole packets) and where it came from."""
    n_samples = round(seconds / PTIME_S) * round(rate * PTIME_S)
    sample, sample_rate = read_wav(sample_path())
    if rate == sample_rate:
        return repeat_to(sample, n_samples), f"the built-in sample ({sample_rate} Hz), repeated"
    spoken = espeak_speech(directory)
    if spoken is not None:
        voice, voice_rate = spoken
        source = f"espeak-ng ({voice_rate} Hz) resampled to {rate} Hz with soxr, repeated"
        return repeat_to(resample(voice, voice_rate, rate), n_samples), source
    source = (
        f"the built-in sample ({sample_rate} Hz) upsampled to {rate} Hz with soxr, repeated "
        f"(espeak-ng is not installed: nothing above {sample_rate // 2} Hz)"
    )
    return repeat_to(resample(sample, sample_rate, rate), n_samples), source


# --- the stream --------------------------------------------------------------------------------


def rtp_datagrams(samples: Samples, rate: int, rng: random.Random) -> tuple[list[bytes], int]:
    """L16 (big-endian) RTP packets of 20 ms, the marker on the first; and the SSRC."""
    wire = samples.astype(">i2").tobytes()
    frames = round(rate * PTIME_S)
    ssrc, sequence, timestamp = rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(32)
    datagrams = []
    for index, start in enumerate(range(0, len(wire), frames * 2)):
        packet = RtpPacket(
            PAYLOAD_TYPE,
            (sequence + index) & 0xFFFF,
            (timestamp + index * frames) & 0xFFFFFFFF,
            ssrc,
            payload=wire[start : start + frames * 2],
            marker=index == 0,
        )
        datagrams.append(bytes(packet))
    return datagrams, ssrc


@dataclass
class Sent:
    started_at: float
    """``time.monotonic()`` of the first packet."""
    seconds: float
    reanchors: int


def send_stream(datagrams: list[bytes], ssrc: int, relays: list[ImpairmentRelay],
                receiver_ports: list[int]) -> Sent:  # fmt: skip
    """Every packet to every relay, paced in real time; when the relays have drained, the
    BYEs straight to each receiver."""
    pacer = Pacer(interval=PTIME_S)
    addresses = [relay.address for relay in relays]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        started = 0.0
        for index, datagram in enumerate(datagrams):
            pacer.wait()
            if index == 0:
                started = time.monotonic()
            for address in addresses:
                sock.sendto(datagram, address)
        pacer.wait()  # the last packet's 20 ms
        seconds = time.monotonic() - started
        for relay in relays:
            relay.drain(timeout=DRAIN_TIMEOUT_S)
        for copy in range(BYE_COPIES):
            if copy:
                time.sleep(BYE_GAP_S)
            for port in receiver_ports:
                sock.sendto(bye(ssrc), ("127.0.0.1", port))
    return Sent(started, seconds, len(pacer.reanchors))


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- receivers ---------------------------------------------------------------------------------


class TimedWavOutput(WavFileOutput):
    """The listener's WAV output, noting when it first opened: the WAV's first sample is
    rendered then, and each later one a sample period after the one before (real-time pacing),
    which dates what was played."""

    def __init__(self, render: Render, path: Path, period_ms: int) -> None:
        super().__init__(render, path, period_ms)
        self.opened_at: float | None = None

    def open(self, audio_format: AudioFormat) -> None:
        if self.opened_at is None:
            self.opened_at = time.monotonic()
        super().open(audio_format)


class OursReceiver:
    def __init__(
        self, rate: int, path: Path, buffer_ms: int | None, period_ms: int | None = None
    ) -> None:
        config = ListenerConfig(
            port=0,
            bind="127.0.0.1",
            output_file=path,
            payload_map=(f"{PAYLOAD_TYPE}=L16/{rate}/1",),
        )
        if buffer_ms is not None:
            config.buffer_ms = buffer_ms
        if period_ms is not None:
            config.period_ms = period_ms
        self.config = config
        self.path = path
        self.output: TimedWavOutput | None = None
        self.listener = Listener(config, output_factory=self._output)

    def _output(self, render: Render) -> AudioOutput:
        self.output = TimedWavOutput(render, self.path, self.config.period_ms)
        return self.output

    def start(self) -> int:
        self.listener.start()
        return self.listener.port

    def finish(self) -> tuple[Samples, Session | None, str | None]:
        """Wait until the session is played out; the WAV's samples, the session, a problem."""
        played = self.listener.wait_session_played(1, timeout=PLAYED_TIMEOUT_S)
        sessions = list(self.listener.sessions)
        self.listener.close()
        problem = None if played else f"no session played out in {PLAYED_TIMEOUT_S:g} s"
        if not self.path.exists():
            return np.zeros(0, dtype=np.int16), None, problem or "no WAV written"
        samples, _ = read_wav(self.path)
        return samples, (sessions[-1] if sessions else None), problem


def gst_problem() -> str | None:
    """Why GStreamer cannot be run here, or None."""
    if shutil.which("gst-launch-1.0") is None:
        return f"gst-launch-1.0 is not installed ({GST_APT})"
    missing = [
        element
        for element in GST_ELEMENTS
        if subprocess.run(
            ["gst-inspect-1.0", "--exists", element], check=False, capture_output=True
        ).returncode
        != 0
    ]
    if missing:
        return f"GStreamer elements missing: {', '.join(missing)} ({GST_APT})"
    return None


class GstReceiver:
    READY_MARKER = "Setting pipeline to PLAYING"

    def __init__(self, rate: int, path: Path) -> None:
        self.rate = rate
        self.path = path
        self.port = free_udp_port()
        caps = (
            f"application/x-rtp,media=audio,clock-rate={rate},encoding-name=L16,channels=1,"
            f"payload={PAYLOAD_TYPE}"
        )
        self.command = [
            "gst-launch-1.0", "-e", "udpsrc", "address=127.0.0.1", f"port={self.port}",
            f"caps={caps}", "!", "rtpjitterbuffer", f"latency={GST_LATENCY_MS}", "!",
            "rtpL16depay", "!", "filesink", f"location={path}",
        ]  # fmt: skip
        self.process: subprocess.Popen[str] | None = None
        self.output: ChildOutput | None = None

    def start(self) -> int:
        self.process = subprocess.Popen(
            self.command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output = ChildOutput(self.process)
        if not self.output.wait_for(self.READY_MARKER, READY_TIMEOUT_S):
            self.stop()
            lines = "\n".join(f"      {line}" for line in self.output.finish()[-20:])
            raise RuntimeError(f"GStreamer did not get ready: {' '.join(self.command)}\n{lines}")
        return self.port

    def stop(self) -> str | None:
        """SIGINT (with -e: an EOS that flushes the pipeline), then wait; a problem or None."""
        process = self.process
        if process is None or process.poll() is not None:
            return None if process is None else f"exited early with code {process.returncode}"
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=GST_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            return f"did not stop within {GST_STOP_TIMEOUT_S:g} s of SIGINT: killed"
        return None

    def samples(self) -> Samples:
        """What it wrote: rtpL16depay's big-endian samples, as native int16."""
        if not self.path.exists():
            return np.zeros(0, dtype=np.int16)
        data = self.path.read_bytes()
        data = data[: len(data) - len(data) % 2]
        return np.frombuffer(data, dtype=">i2").astype(np.int16)


# --- measuring ---------------------------------------------------------------------------------


def load_pesq() -> ModuleType | None:
    try:
        return importlib.import_module("pesq")
    except ImportError:
        return None


def nonzero_span(samples: Samples) -> tuple[int, int] | None:
    """Index of the first non-zero sample and one past the last, or None if all are zero."""
    nonzero = np.flatnonzero(samples)
    if nonzero.size == 0:
        return None
    return int(nonzero[0]), int(nonzero[-1]) + 1


def trimmed(samples: Samples) -> Samples:
    span = nonzero_span(samples)
    return samples[:0] if span is None else samples[span[0] : span[1]]


def on_timeline(played: Samples, sent: Samples, rate: int) -> Samples:
    """GStreamer's output as a sound card would play it: each of its 20 ms packets (bit-exact
    copies of packets sent, in order) at the place it was sent, silence where none came.

    Packets are matched in order, each to the first packet sent with the same samples after the
    one matched before (the sample repeats every few seconds; a gap is never that long).
    """
    n = round(rate * PTIME_S)
    sent_packets = sent[: sent.size - sent.size % n].reshape(-1, n)
    places: dict[bytes, list[int]] = {}
    for index, packet in enumerate(sent_packets):
        places.setdefault(packet.tobytes(), []).append(index)
    out = np.zeros_like(sent)
    after = 0
    for packet in played[: played.size - played.size % n].reshape(-1, n):
        indices = places.get(packet.tobytes(), [])
        at = bisect.bisect_left(indices, after)
        if at < len(indices):
            index = indices[at]
            out[index * n : (index + 1) * n] = packet
            after = index + 1
    return out


@dataclass
class Measure:
    """One receiver's output, scored."""

    pesq: float | None = None
    pesq_error: str | None = None
    duration_delta_ms: float | None = None
    output_ms: float | None = None
    bit_exact: bool = False
    span: tuple[int, int] | None = None


def measure(pesq: ModuleType | None, sent: Samples, played: Samples, rate: int) -> Measure:
    result = Measure()
    ref, deg = trimmed(sent), trimmed(played)
    result.span = nonzero_span(played)
    result.bit_exact = np.array_equal(ref, deg)
    if deg.size:
        result.output_ms = deg.size * 1000 / rate
        result.duration_delta_ms = (deg.size - ref.size) * 1000 / rate
    if pesq is None:
        result.pesq_error = "pesq is not installed (pip install pesq)"
    elif not deg.size:
        result.pesq_error = "nothing was played"
    else:
        try:
            mode = "nb" if rate == 8000 else "wb"
            score = pesq.pesq(rate, ref.astype(np.float64), deg.astype(np.float64), mode)
            result.pesq = float(score)
        except Exception as error:  # the pesq package raises several kinds for bad input
            result.pesq_error = f"{type(error).__name__}: {error}"
    return result


@dataclass
class Result:
    condition: Condition
    rate: int
    seed: int
    lost_pct: float | None = None
    relay_text: str = ""
    ours: Measure = field(default_factory=Measure)
    gst: Measure = field(default_factory=Measure)
    on_time: Measure = field(default_factory=Measure)
    """GStreamer's output put back on the timeline (see :func:`on_timeline`)."""
    ours_latency_ms: float | None = None
    ours_latency_how: str = ""
    ours_measured: tuple[float, float] | None = None
    """Sender to WAV, at the stream's first and last sound (ms): includes the relay's delay."""
    concealed_ms: float | None = None
    session_text: str = ""
    notes: list[str] = field(default_factory=list)


def session_value(session: Session | None, name: str) -> Any:
    return None if session is None else getattr(session, name, None)


def show(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def concealed_ms(session: Session | None, rate: int) -> float | None:
    """Audio concealed, in ms: the session's ``concealed_ms``, or its ``concealed_frames`` (in
    sample frames of the stream's rate, the buffer's unit)."""
    ms = session_value(session, "concealed_ms")
    if isinstance(ms, int | float):
        return float(ms)
    frames = session_value(session, "concealed_frames")
    if not isinstance(frames, int | float):
        return None
    return float(frames) * 1000 / rate


def our_latency(session: Session | None, period_ms: int) -> tuple[float | None, str]:
    """Our added latency: mean playout-buffer depth + one output period, and how it was got."""
    depth = session_value(session, "mean_depth_ms")
    if not isinstance(depth, int | float):
        return None, "n/a: the session has no mean_depth_ms yet"
    return float(depth) + period_ms, f"mean buffer depth {depth:.1f} ms + period {period_ms} ms"


def measured_latency(
    out: TimedWavOutput | None,
    sent_at: float,
    ref_span: tuple[int, int] | None,
    played_span: tuple[int, int] | None,
    rate: int,
) -> tuple[float, float] | None:
    """When the first and last sound sent were rendered to the WAV, after they were sent (ms).

    The WAV is written in real time from the output's opening, so its sample ``i`` was rendered
    ``i / rate`` after that; sample ``j`` of the stream left the sender ``j / rate`` after its
    first packet. Includes the relay's delay (``DELAY_MS`` on average), not the output's own.
    """
    if out is None or out.opened_at is None or ref_span is None or played_span is None:
        return None
    start = out.opened_at + played_span[0] / rate - (sent_at + ref_span[0] / rate)
    end = out.opened_at + played_span[1] / rate - (sent_at + ref_span[1] / rate)
    return start * 1000, end * 1000


def run_condition(condition: Condition, rate: int, sent: Samples, seed: int,
                  args: argparse.Namespace, pesq: ModuleType | None, work: Path,
                  keep: Path | None) -> Result:  # fmt: skip
    """One stream through the two relays (impairment seed ``seed``) to both receivers."""
    result = Result(condition, rate, seed)
    name = f"{rate}-{condition.label.replace('%', 'pct').replace(' ', '-')}-seed{seed}"
    ours_path, gst_path = work / f"{name}-ours.wav", work / f"{name}-gst.raw"
    ours = OursReceiver(rate, ours_path, args.buffer_ms, args.period_ms)
    gst = GstReceiver(rate, gst_path)
    relays: list[ImpairmentRelay] = []
    session: Session | None = None
    played = np.zeros(0, dtype=np.int16)
    try:
        ports = [ours.start(), gst.start()]
        relays = [
            ImpairmentRelay(target=("127.0.0.1", port), impairment=condition.impairment(seed))
            for port in ports
        ]
        for relay in relays:
            relay.start()
        time.sleep(SETTLE_S)
        datagrams, ssrc = rtp_datagrams(sent, rate, random.Random(seed))
        stream = send_stream(datagrams, ssrc, relays, ports)
        if stream.reanchors:
            result.notes.append(f"the sender stalled and re-anchored {stream.reanchors} times")
        played, session, problem = ours.finish()
        if problem:
            result.notes.append(f"ours: {problem}")
        time.sleep(max(0.0, stream.started_at + stream.seconds + GST_TAIL_S - time.monotonic()))
        problem = gst.stop()
        if problem:
            result.notes.append(f"GStreamer {problem}")
        stats = [relay.stats for relay in relays]
        first = stats[0]
        if first.received:
            result.lost_pct = first.dropped * 100 / first.received
        result.relay_text = (
            f"relay: {first.received} in, {first.dropped} dropped, {first.reordered} reordered"
        )
        traces = {(s.received, s.forwarded, s.dropped) for s in stats}
        if len(traces) > 1:
            result.notes.append(f"the two relays differ (in, out, dropped): {sorted(traces)}")
    finally:
        for relay in relays:
            relay.stop()
        ours.listener.close()
        gst.stop()
    gst_samples = gst.samples()
    result.ours = measure(pesq, sent, played, rate)
    result.gst = measure(pesq, sent, gst_samples, rate)
    gst_on_time = on_timeline(gst_samples, sent, rate)
    result.on_time = measure(pesq, sent, gst_on_time, rate)
    result.ours_latency_ms, result.ours_latency_how = our_latency(session, ours.config.period_ms)
    result.ours_measured = measured_latency(
        ours.output, stream.started_at, nonzero_span(sent), result.ours.span, rate
    )
    result.concealed_ms = concealed_ms(session, rate)
    figures = [f"{n} {show(session_value(session, n))}" for n in SESSION_FIELDS]
    figures.insert(4, f"concealed {number(concealed_ms(session, rate), 0)} ms")
    figures += [f"underruns {show(session_value(session, 'underruns'))}",
                f"peak depth {show(session_value(session, 'peak_depth_ms'))} ms"]  # fmt: skip
    result.session_text = ", ".join(figures)
    if keep is not None:
        write_wav(keep / f"{name}-ours.wav", played, rate)
        write_wav(keep / f"{name}-gst.wav", gst_samples, rate)
        write_wav(keep / f"{name}-gst-on-time.wav", gst_on_time, rate)
    return result


def mean(values: list[float | None]) -> float | None:
    """The mean, or None if any is missing (a failed run must not vanish into an average)."""
    if not values or any(value is None for value in values):
        return None
    return sum(value for value in values if value is not None) / len(values)


def combine(results: list[Result]) -> Result:
    """The runs of one condition (one per seed) as one row: means, and bit-exact if all were."""
    first = results[0]

    def measures(pick: str) -> Measure:
        runs: list[Measure] = [getattr(r, pick) for r in results]
        errors = [m.pesq_error for m in runs if m.pesq_error]
        return Measure(
            pesq=mean([m.pesq for m in runs]),
            pesq_error=errors[0] if errors else None,
            duration_delta_ms=mean([m.duration_delta_ms for m in runs]),
            output_ms=mean([m.output_ms for m in runs]),
            bit_exact=all(m.bit_exact for m in runs),
        )

    return Result(
        first.condition,
        first.rate,
        first.seed,
        lost_pct=mean([r.lost_pct for r in results]),
        ours=measures("ours"),
        gst=measures("gst"),
        on_time=measures("on_time"),
        ours_latency_ms=mean([r.ours_latency_ms for r in results]),
        concealed_ms=mean([r.concealed_ms for r in results]),
    )


# --- the report --------------------------------------------------------------------------------


def pesq_text(m: Measure) -> str:
    return "err" if m.pesq is None else f"{m.pesq:.2f}"


def number(value: float | None, digits: int = 0, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


COLUMNS = (
    ("condition", 11), ("lost%", 6), ("ours", 5), ("GSt", 5), ("diff", 6), ("on time", 7),
    ("diff", 6), ("ours dur", 9), ("GSt dur", 8), ("ours lat", 9), ("GSt lat", 8), ("exact", 6),
    ("concealed", 10),
)  # fmt: skip


def row(cells: tuple[str, ...]) -> str:
    widths = (width for _, width in COLUMNS)
    return " | ".join(f"{cell:>{width}}" for cell, width in zip(cells, widths, strict=True))


def print_condition(result: Result) -> None:
    r = result
    print(
        f"  {r.condition.label:>10}, seed {r.seed}: relay lost {number(r.lost_pct, 1)}%; PESQ ours "
        f"{pesq_text(r.ours)}, GStreamer {pesq_text(r.gst)} (on time "
        f"{pesq_text(r.on_time)}); output vs sent: ours "
        f"{number(r.ours.duration_delta_ms, 0, True)} ms, GStreamer "
        f"{number(r.gst.duration_delta_ms, 0, True)} ms; ours bit-exact "
        f"{'yes' if r.ours.bit_exact else 'no'}, GStreamer {'yes' if r.gst.bit_exact else 'no'}"
    )
    print(f"      {r.relay_text}")
    print(f"      ours: {r.session_text}")
    print(f"      ours added latency: {number(r.ours_latency_ms, 1)} ms ({r.ours_latency_how})")
    if r.ours_measured is not None:
        first, last = r.ours_measured
        print(
            f"      ours sender -> WAV (incl. the relay's {DELAY_MS:g} ms mean delay): "
            f"{first:.0f} ms at the first sound, {last:.0f} ms at the last"
        )
    for m, who in ((r.ours, "ours"), (r.gst, "GStreamer"), (r.on_time, "GStreamer on time")):
        if m.pesq_error:
            print(f"      {who} PESQ: {m.pesq_error}")
    for note in r.notes:
        print(f"      NOTE: {note}")
    sys.stdout.flush()


def print_table(rate: int, results: list[Result], repeats: int) -> None:
    mode = "narrow band" if rate == 8000 else "wide band"
    runs = f"; the mean of {repeats} runs (seeds)" if repeats > 1 else ""
    print(f"\n{rate} Hz, PESQ {mode}; durations: output's audio minus sent, ms; latency ms{runs}")
    print(row(tuple(title for title, _ in COLUMNS)))
    for r in results:
        cells = (
            r.condition.label, number(r.lost_pct, 1), pesq_text(r.ours), pesq_text(r.gst),
            number(pesq_diff(r.ours, r.gst), 2, True), pesq_text(r.on_time),
            number(pesq_diff(r.ours, r.on_time), 2, True),
            number(r.ours.duration_delta_ms, 0, True), number(r.gst.duration_delta_ms, 0, True),
            number(r.ours_latency_ms, 0), f"{GST_LATENCY_MS}*", "yes" if r.ours.bit_exact else "no",
            number(r.concealed_ms, 0),
        )  # fmt: skip
        print(row(cells))
    print(
        "  (GSt: its output as written, the lost packets cut out; on time: the same put back on "
        f"the stream's timeline, silence for the lost; GSt lat*: rtpjitterbuffer "
        f"latency={GST_LATENCY_MS}, as configured, not measured; ours lat: mean playout-buffer "
        "depth + output period; concealed: ms of audio)"
    )


def pesq_diff(ours: Measure, theirs: Measure) -> float | None:
    if ours.pesq is None or theirs.pesq is None:
        return None
    return ours.pesq - theirs.pesq


def verdict(results: list[Result]) -> list[str]:
    """The summary against the target, one line per criterion."""

    def met(misses: list[str]) -> str:
        return f"NOT MET (misses: {', '.join(misses)})" if misses else "MET"

    def where(r: Result) -> str:
        return f"{r.rate // 1000} kHz {r.condition.label}"

    lines = []
    clean = [r for r in results if r.condition.loss == 0]
    misses = [where(r) for r in clean if not r.ours.bit_exact]
    lines.append(f"bit-exact at 0% loss: {met(misses)}")
    lossy = [r for r in results if r.condition.loss > 0]
    for pick, who in (("gst", "GStreamer"), ("on_time", "GStreamer on the timeline")):
        misses = []
        for r in lossy:
            diff = pesq_diff(r.ours, getattr(r, pick))
            if diff is None:
                misses.append(f"{where(r)} (no score)")
            elif diff < PESQ_MARGIN:
                misses.append(f"{where(r)} ({diff:+.2f})")
        lines.append(f"ours >= {who} + {PESQ_MARGIN} PESQ at every loss rate: " + met(misses))
    misses = [
        f"{where(r)} ({number(r.ours.duration_delta_ms, 0, True)} ms)"
        for r in results
        if r.ours.duration_delta_ms is None or abs(r.ours.duration_delta_ms) > TIMELINE_TOLERANCE_MS
    ]
    lines.append(
        f"timeline kept (ours' audio within {TIMELINE_TOLERANCE_MS:g} ms of the length sent): "
        + met(misses)
    )
    unknown = [where(r) for r in results if r.ours_latency_ms is None]
    misses = [
        f"{where(r)} ({r.ours_latency_ms:.0f} ms)"
        for r in results
        if r.ours_latency_ms is not None and r.ours_latency_ms > GST_LATENCY_MS
    ]
    status = "NOT MET" if misses else ("UNKNOWN" if unknown else "MET")
    detail = [f"over: {', '.join(misses)}"] if misses else []
    if unknown:
        detail.append(f"n/a for {len(unknown)} of {len(results)} conditions")
    lines.append(
        f"ours' latency <= GStreamer's {GST_LATENCY_MS} ms: {status}"
        + (f" ({'; '.join(detail)})" if detail else "")
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=24.0, help="speech per stream")
    parser.add_argument(
        "--rates", default="8000,16000", help="sample rates, comma-separated (8000, 16000)"
    )
    quick = ", ".join(QUICK).replace("%", "%%")  # argparse formats help with %
    parser.add_argument("--quick", action="store_true", help=f"only {quick}")
    parser.add_argument("--seed", type=int, default=7, help="relays' and sender's seed")
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="runs per condition, each with its own seed; the tables show the means",
    )
    parser.add_argument(
        "--buffer-ms", type=int, default=None, help="our buffer (default: the listener's)"
    )
    parser.add_argument(
        "--period-ms", type=int, default=None, help="our output period (default: the listener's)"
    )
    parser.add_argument(
        "--keep", type=Path, metavar="DIR", help="keep the sent and played audio here as WAVs"
    )
    args = parser.parse_args()
    rates = [int(text) for text in args.rates.split(",") if text.strip()]
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if any(rate not in (8000, 16000) for rate in rates):
        parser.error("--rates: PESQ takes 8000 (narrow band) and 16000 (wide band) only")
    problem = gst_problem()
    if problem is not None:
        sys.exit(f"GStreamer is needed: {problem}")
    pesq = load_pesq()
    if pesq is None:
        print("NOTE: the pesq package is not installed (pip install pesq): no scores\n")
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    conditions = [c for c in CONDITIONS if not args.quick or c.label in QUICK]
    buffer_ms = args.buffer_ms if args.buffer_ms is not None else ListenerConfig().buffer_ms
    print(
        f"L16 RTP on PT {PAYLOAD_TYPE}, 20 ms packets, {args.seconds:g} s of speech per stream, "
        f"paced to two relays on 127.0.0.1 (delay {DELAY_MS:g} ms +- {JITTER_MS:g} ms jitter, "
        f"seed {args.seed}, {args.repeats} run(s) per condition); ours: Listener, buffer "
        f"{buffer_ms} ms"
        f"{'' if args.buffer_ms is not None else ' (its default)'}, output period "
        f"{args.period_ms or ListenerConfig().period_ms} ms, into a real-time WAV; "
        f"GStreamer: rtpjitterbuffer latency={GST_LATENCY_MS} ! rtpL16depay ! filesink"
    )
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-playout-") as tmp:
        work = Path(tmp)
        for rate in rates:
            sent, source = speech(rate, args.seconds, work)
            print(f"\n{rate} Hz: {source}", flush=True)
            if args.keep is not None:
                write_wav(args.keep / f"{rate}-sent.wav", sent, rate)
            rows = []
            for condition in conditions:
                runs = []
                for repeat in range(args.repeats):
                    seed = args.seed + CONDITIONS.index(condition) + SEED_STRIDE * repeat
                    run = run_condition(condition, rate, sent, seed, args, pesq, work, args.keep)
                    print_condition(run)
                    runs.append(run)
                rows.append(combine(runs))
            results += rows
            print_table(rate, rows, args.repeats)
    print("\nTarget:")
    for line in verdict(results):
        print(f"  {line}")
    if args.keep is not None:
        print(f"\nThe sent and played audio are in {args.keep}")


if __name__ == "__main__":
    main()
