"""Benchmark (not a test): ``appliance listen`` playing RTP, side by side with GStreamer.

    .venv/bin/python tests/bench_rtp.py [--seconds 60] [--idle-seconds 20]

One paced RTP sender inside this process (L16 on payload type 96, 20 ms per packet, a random
SSRC, ended by two RTCP BYEs to the same port) sends the same stream the same way to each
receiver in turn, on 127.0.0.1; each receiver plays it into the test rig's PulseAudio null
sink, which runs in the stream's format when the rig supports it:

* ours: ``appliance listen --no-mdns --no-gpio --bind 127.0.0.1 --port P [--payload-map ...]``
  (PyAudio through ALSA's pulse plugin: the ALSA default PCM points straight at the sink);
* GStreamer: ``gst-launch-1.0 udpsrc ! rtpjitterbuffer latency=60 ! rtpL16depay !
  audioconvert ! pulsesink sync=false`` (PULSE_SERVER is the rig's server). With pulsesink's
  default sync=true, a pipeline that idles T seconds before the stream comes loses the stream's
  first ~T seconds (see :func:`gst_receiver`); ``--gst-sync`` measures it that way anyway.

For 48 kHz stereo and 8 kHz mono it prints, for both receivers: CPU seconds per minute of
audio while playing (the whole process, every thread, from the first packet to 1 s after the
BYEs), idle CPU per minute (listening, no stream), peak and steady RSS while playing, and a
check that the audio was really played (the sink's monitor recorded and compared with what
was sent, silence aside). Then the ratios ours/GStreamer (the target is <= 1.5x playing, and
ours <= 0.3 s per minute idle) and where our CPU goes, thread by thread.

Needs (apt): pulseaudio pulseaudio-utils libasound2-plugins (the rig), gstreamer1.0-tools
gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-pulseaudio (GStreamer).
"""

from __future__ import annotations

import argparse
import collections
import inspect
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from audio_rig import SINK_NAME, AudioSink
from child_output import ChildOutput
from cli_runner import LOOPBACK, appliance_env

from appliance.sender.pacing import Pacer
from appliance.wire.rtcp import bye
from appliance.wire.rtp import RtpPacket

PAYLOAD_TYPE = 96
PTIME_S = 0.020
BYE_COPIES = 2
BYE_GAP_S = 0.05
SAMPLE_BYTES = 2
INT16_MAX = 32767

READY_TIMEOUT_S = 30.0
"""How long a receiver may take to start listening before it counts as failed."""
SETTLE_S = 2.0
"""After start-up, before anything is measured: imports, mDNS-less start, first allocations."""
TAIL_S = 1.0
"""The playing window ends this long after the BYEs, for both receivers: the buffered audio
plays out (and our session ends) inside the window."""
SAMPLE_EVERY_S = 0.5
"""How often RSS and the threads are sampled while playing."""
SESSION_END_WAIT_S = 5.0

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
KIB = 1024

GST_ELEMENTS = ("udpsrc", "rtpjitterbuffer", "rtpL16depay", "audioconvert", "pulsesink")
GST_APT = (
    "apt-get install -y --no-install-recommends gstreamer1.0-tools gstreamer1.0-plugins-base "
    "gstreamer1.0-plugins-good gstreamer1.0-pulseaudio"
)

Samples = npt.NDArray[np.int16]


@dataclass(frozen=True)
class StreamFormat:
    rate: int
    channels: int

    @property
    def label(self) -> str:
        layout = "stereo" if self.channels == 2 else "mono"
        return f"{self.rate / 1000:g} kHz {layout}"

    @property
    def frames_per_packet(self) -> int:
        return round(self.rate * PTIME_S)

    @property
    def payload_map(self) -> str | None:
        """Our ``--payload-map`` for PT 96; unmapped dynamic types are L16 8000 Hz mono."""
        if (self.rate, self.channels) == (8000, 1):
            return None
        return f"{PAYLOAD_TYPE}=L16/{self.rate}/{self.channels}"

    @property
    def gst_caps(self) -> str:
        return (
            f"application/x-rtp,media=audio,clock-rate={self.rate},encoding-name=L16,"
            f"channels={self.channels},payload={PAYLOAD_TYPE}"
        )


FORMATS = (StreamFormat(48000, 2), StreamFormat(8000, 1))


# --- the stream --------------------------------------------------------------------------------


def noise(n_samples: int, seed: int) -> Samples:
    """Like audio_rig.test_signal, for any rate: uniform over +-32767 without a zero sample, so
    that "silence aside" comparisons of what was played are exact."""
    rng = np.random.default_rng(seed)
    values = rng.integers(-INT16_MAX, INT16_MAX, size=n_samples, dtype=np.int32)
    values[values >= 0] += 1
    return values.astype(np.int16)


def stream_samples(fmt: StreamFormat, seconds: float) -> Samples:
    """Interleaved samples (native int16) for ``seconds``, whole packets; stereo channels
    carry two different signals."""
    frames = round(seconds / PTIME_S) * fmt.frames_per_packet
    channels = [noise(frames, seed=1 + channel) for channel in range(fmt.channels)]
    return np.stack(channels, axis=1).reshape(-1)


def rtp_datagrams(fmt: StreamFormat, samples: Samples, ssrc: int) -> list[bytes]:
    """L16 (big-endian) RTP packets of 20 ms; random first sequence number and timestamp, the
    marker on the first packet, as RFC 3550/3551 ask."""
    wire = samples.astype(">i2").tobytes()
    packet_bytes = fmt.frames_per_packet * fmt.channels * SAMPLE_BYTES
    sequence = random.getrandbits(16)
    timestamp = random.getrandbits(32)
    datagrams = []
    for index, start in enumerate(range(0, len(wire), packet_bytes)):
        packet = RtpPacket(
            PAYLOAD_TYPE,
            (sequence + index) & 0xFFFF,
            (timestamp + index * fmt.frames_per_packet) & 0xFFFFFFFF,
            ssrc,
            payload=wire[start : start + packet_bytes],
            marker=index == 0,
        )
        datagrams.append(bytes(packet))
    return datagrams


def send_stream(port: int, datagrams: list[bytes], ssrc: int) -> float:
    """Send ``datagrams`` to 127.0.0.1:``port`` paced in real time, then the BYEs; returns the
    seconds the stream took."""
    pacer = Pacer(interval=PTIME_S)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(("127.0.0.1", port))
        started = time.monotonic()
        for datagram in datagrams:
            pacer.wait()
            sock.send(datagram)
        pacer.wait()  # the last packet's 20 ms
        for copy in range(BYE_COPIES):
            if copy:
                time.sleep(BYE_GAP_S)
            sock.send(bye(ssrc))
    if pacer.reanchors:
        print(f"    (the sender stalled and re-anchored {len(pacer.reanchors)} times)")
    return time.monotonic() - started


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- measuring a process from /proc ------------------------------------------------------------


def process_cpu_seconds(pid: int) -> float:
    """CPU time of the whole process from /proc/PID/stat (utime + stime): unlike a sum over
    /proc/PID/task/*/schedstat it keeps the time of threads that have exited (a player's
    audio thread ends with its stream). Resolution 1/CLK_TCK (10 ms)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLOCK_TICKS


def status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    raise KeyError(key)


@dataclass
class ThreadUse:
    comm: str
    first_ns: int
    last_ns: int
    new: bool
    """Started after the window began."""
    first_runs: int = 0
    last_runs: int = 0
    """Times the thread got the CPU (schedstat's third field): its wake-ups, roughly."""
    alive: bool = True
    waits: collections.Counter[str] = field(default_factory=collections.Counter)

    @property
    def seconds(self) -> float:
        return (self.last_ns - self.first_ns) / 1e9


def read_threads(pid: int) -> dict[int, tuple[str, int, int, str]]:
    """tid -> (comm, CPU nanoseconds, times run, wchan) for the live threads."""
    threads = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            ns, _, runs = (int(n) for n in (task / "schedstat").read_text().split()[:3])
            comm = (task / "comm").read_text().strip()
            wchan = (task / "wchan").read_text().strip() or "running"
        except OSError:
            continue  # the thread exited meanwhile
        threads[int(task.name)] = (comm, ns, runs, wchan)
    return threads


class ProcessWatch:
    """A measuring window on a process: its CPU time, and RSS and threads sampled every
    SAMPLE_EVERY_S.

    The CPU time is the sum of the threads' scheduler nanoseconds (/proc/PID/task/*/schedstat,
    as in bench_streaming.py), sampled so that a thread that exits inside the window (a
    player's audio thread ends with its stream) keeps what it used up to its last sample. If
    that sum and /proc/PID/stat's total (which keeps exited threads exactly, but in 10 ms
    ticks) disagree by more than the ticks can explain, some thread was missed and the stat
    total is used instead.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.rss_kib: list[int] = []
        self.threads: dict[int, ThreadUse] = {}
        self.seconds = 0.0
        self.cpu_seconds = 0.0
        self.cpu_source = "schedstat"
        self._stat_before = 0.0
        self._started = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self, first: bool = False) -> None:
        try:
            self.rss_kib.append(status_kib(self.pid, "VmRSS"))
            live = read_threads(self.pid)
        except (OSError, KeyError):
            return  # the process is gone: the caller notices
        for tid, use in self.threads.items():
            use.alive = tid in live
        for tid, (comm, ns, runs, wchan) in live.items():
            if tid not in self.threads:
                self.threads[tid] = ThreadUse(
                    comm, ns if first else 0, ns, not first, runs if first else 0, runs
                )
            use = self.threads[tid]
            use.last_ns, use.last_runs = ns, runs
            use.waits[wchan] += 1

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY_S):
            self._sample()

    def __enter__(self) -> ProcessWatch:
        self._started = time.monotonic()
        self._stat_before = process_cpu_seconds(self.pid)
        self._sample(first=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self.seconds = time.monotonic() - self._started
        by_threads = sum(use.seconds for use in self.threads.values())
        try:
            by_stat = process_cpu_seconds(self.pid) - self._stat_before
        except OSError:
            by_stat = by_threads
        self.cpu_seconds = by_threads
        if abs(by_stat - by_threads) > 2.5 / CLOCK_TICKS:
            self.cpu_seconds, self.cpu_source = by_stat, "stat"


# --- receivers ---------------------------------------------------------------------------------


@dataclass
class Run:
    """One receiver playing one stream."""

    receiver: str
    fmt: StreamFormat
    error: str | None = None
    idle_cpu_per_min: float | None = None
    play_cpu_per_min: float | None = None
    rss_peak_kib: int | None = None
    rss_steady_kib: int | None = None
    played: str = "not checked"
    played_fraction: float | None = None
    bit_exact: bool | None = None
    threads: dict[int, ThreadUse] = field(default_factory=dict)
    idle_threads: dict[int, ThreadUse] = field(default_factory=dict)
    audio_seconds: float = 0.0
    send_seconds: float = 0.0
    log: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Receiver:
    name: str
    ready_marker: str
    command: Callable[[StreamFormat, int], list[str]]
    env: Callable[[AudioSink, Path], dict[str, str]]
    unavailable: str | None = None
    session_log: bool = False


def listen_flags() -> tuple[set[str], str | None]:
    """The flags ``appliance listen --help`` lists, or why it could not be asked."""
    result = subprocess.run(
        [sys.executable, "-m", "appliance", "listen", "--help"],
        env=appliance_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip().splitlines()
        shown = "\n".join(f"      {line}" for line in output[-25:])
        return set(), f"`appliance listen --help` failed:\n{shown}"
    return {word.strip(",[]") for word in result.stdout.split() if word.startswith("--")}, None


def our_receiver() -> Receiver:
    flags, problem = listen_flags()
    optional = [flag for flag in ("--no-mdns", "--no-gpio") if flag in flags]

    def command(fmt: StreamFormat, port: int) -> list[str]:
        mapping = []
        if fmt.payload_map is not None:
            mapping = ["--payload-map", fmt.payload_map]
        return [
            sys.executable, "-m", "appliance", "listen", *LOOPBACK, *optional,
            "--bind", "127.0.0.1", "--port", str(port), *mapping,
        ]  # fmt: skip

    def env(sink: AudioSink, alsa_conf: Path) -> dict[str, str]:
        return appliance_env(ALSA_CONFIG_PATH=str(alsa_conf))

    if problem is None and "--payload-map" not in flags:
        problem = "`appliance listen` has no --payload-map option (48 kHz cannot be mapped)"
    return Receiver("appliance listen", "listening on", command, env, problem, session_log=True)


def gst_receiver(sync: bool) -> Receiver:
    """GStreamer's RTP receiver; without ``sync`` its pulsesink plays buffers as they come.

    With ``sync=true`` (pulsesink's default) a stream that starts T seconds after the pipeline
    went to PLAYING loses its first ~T seconds and starts playing ~T late (measured here with
    GStreamer 1.22: the first buffer's running time is T, and the ring buffer waits for it while
    early packets are dropped). An idle receiver that then plays a stream, as measured here,
    would play part of it; ``sync=false`` plays all of it, bit-exact. The jitter buffer still
    schedules its output either way.
    """

    def command(fmt: StreamFormat, port: int) -> list[str]:
        return [
            "gst-launch-1.0", "udpsrc", "address=127.0.0.1", f"port={port}",
            f"caps={fmt.gst_caps}", "!", "rtpjitterbuffer", "latency=60", "!", "rtpL16depay",
            "!", "audioconvert", "!", "pulsesink", f"device={SINK_NAME}",
            *([] if sync else ["sync=false"]),
        ]  # fmt: skip

    def env(sink: AudioSink, alsa_conf: Path) -> dict[str, str]:
        return {**os.environ, "PULSE_SERVER": sink.server}

    problem = None
    if shutil.which("gst-launch-1.0") is None:
        problem = f"gst-launch-1.0 is not installed ({GST_APT})"
    else:
        missing = [
            element
            for element in GST_ELEMENTS
            if subprocess.run(
                ["gst-inspect-1.0", "--exists", element], check=False, capture_output=True
            ).returncode
            != 0
        ]
        if missing:
            problem = f"GStreamer elements missing: {', '.join(missing)} ({GST_APT})"
    return Receiver("GStreamer", "Setting pipeline to PLAYING", command, env, problem)


# --- the rig -----------------------------------------------------------------------------------


def sink_for(fmt: StreamFormat) -> tuple[AudioSink, StreamFormat]:
    """A rig sink in the stream's format if the rig takes ``rate``/``channels``, else the rig's
    own 8 kHz mono one (PulseAudio then resamples); returns the sink and its format."""
    parameters = inspect.signature(AudioSink).parameters
    if "rate" in parameters and "channels" in parameters:
        kwargs: dict[str, Any] = {"rate": fmt.rate, "channels": fmt.channels}
        return AudioSink(**kwargs), fmt
    return AudioSink(), StreamFormat(8000, 1)


def direct_alsa_conf(sink: AudioSink, directory: Path) -> Path:
    """ALSA's default PCM straight into the sink, without the rig's file tee (whose writes
    would be charged to our process only)."""
    path = directory / "asound-direct.conf"
    path.write_text(
        f'pcm.!default {{ type pulse server "{sink.server}" device "{SINK_NAME}" }}\n'
        f'ctl.!default {{ type pulse server "{sink.server}" }}\n'
    )
    return path


def check_played(recorded: bytes, sent: Samples, sink_fmt: StreamFormat, fmt: StreamFormat,
                 run: Run) -> None:  # fmt: skip
    """Compare the sink's monitor recording with what was sent, silence aside."""
    usable = len(recorded) - len(recorded) % SAMPLE_BYTES
    heard = np.frombuffer(recorded[:usable], dtype="<i2")
    heard = heard[heard != 0]
    if sink_fmt != fmt:
        expected = sent.size * sink_fmt.rate * sink_fmt.channels // (fmt.rate * fmt.channels)
        run.played_fraction = heard.size / expected
        run.played = (
            f"{run.played_fraction:.1%} of the stream's length non-silent at the sink "
            f"({sink_fmt.label}: resampled, not comparable sample by sample)"
        )
        return
    run.played_fraction = heard.size / sent.size
    run.bit_exact = np.array_equal(heard, sent)
    if run.bit_exact:
        run.played = "100.0% of the samples sent, bit-exact (silence aside)"
        return
    run.played = f"{run.played_fraction:.1%} of the samples sent non-silent at the sink; " + (
        describe_difference(heard, sent, fmt)
    )


PROBE_SAMPLES = 16


def describe_difference(heard: Samples, sent: Samples, fmt: StreamFormat) -> str:
    """Where what was played (silence aside) departs from what was sent."""

    def ms(samples: int) -> str:
        return f"{samples / fmt.channels / fmt.rate * 1000:.0f} ms"

    probe = heard[:PROBE_SAMPLES]
    start = None
    if probe.size == PROBE_SAMPLES:
        candidates = np.flatnonzero(sent == probe[0])
        start = next(
            (int(k) for k in candidates if np.array_equal(sent[k : k + PROBE_SAMPLES], probe)),
            None,
        )
    if start is None:
        return "its first samples are nowhere in the stream sent"
    rest = sent[start:]
    n = min(heard.size, rest.size)
    differ = np.flatnonzero(heard[:n] != rest[:n])
    parts = [f"starts {ms(start)} into the stream" if start else "starts at the stream's start"]
    if differ.size:
        parts.append(f"matches for {ms(int(differ[0]))}, then differs")
    else:
        parts.append(f"matches for {ms(n)}" + (", to its end" if n == rest.size else ""))
        if heard.size > rest.size:
            parts.append(f"then {ms(heard.size - rest.size)} more")
        elif rest.size > heard.size:
            parts.append(f"the last {ms(rest.size - heard.size)} missing")
    return ", ".join(parts)


@contextmanager
def started(
    receiver: Receiver, fmt: StreamFormat, sink: AudioSink, alsa_conf: Path, run: Run
) -> Iterator[tuple[subprocess.Popen[str], ChildOutput, int] | None]:
    port = free_udp_port()
    command = receiver.command(fmt, port)
    process = subprocess.Popen(
        command,
        env=receiver.env(sink, alsa_conf),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = ChildOutput(process)
    try:
        if not output.wait_for(receiver.ready_marker, READY_TIMEOUT_S):
            code = process.poll()
            why = f"exited with code {code}" if code is not None else "did not get ready"
            run.error = (
                f"{receiver.name} {why} (waiting for {receiver.ready_marker!r}); command:\n"
                f"      {' '.join(command)}\n    its output:\n"
                + "\n".join(f"      {line}" for line in output.lines[-40:])
            )
            yield None
        else:
            yield process, output, port
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        run.log = output.finish()


def measure(receiver: Receiver, fmt: StreamFormat, sent: Samples,
            idle_seconds: float, sink: AudioSink, sink_fmt: StreamFormat,
            alsa_conf: Path) -> Run:  # fmt: skip
    run = Run(receiver.name, fmt)
    if receiver.unavailable is not None:
        run.error = receiver.unavailable
        return run
    with started(receiver, fmt, sink, alsa_conf, run) as child:
        if child is None:
            return run
        process, output, port = child
        pid = process.pid
        time.sleep(SETTLE_S)
        if idle_seconds > 0:
            with ProcessWatch(pid) as idle:
                time.sleep(idle_seconds)
            run.idle_cpu_per_min = idle.cpu_seconds * 60 / idle.seconds
            run.idle_threads = idle.threads
        ssrc = random.getrandbits(32)
        datagrams = rtp_datagrams(fmt, sent, ssrc)
        audio_s = len(datagrams) * PTIME_S
        sink.start_recording()
        try:
            with ProcessWatch(pid) as watch:
                run.send_seconds = send_stream(port, datagrams, ssrc)
                time.sleep(TAIL_S)
                run.rss_peak_kib = status_kib(pid, "VmHWM")
        finally:
            recorded = sink.stop_recording()
        run.play_cpu_per_min = watch.cpu_seconds * 60 / audio_s
        run.audio_seconds = audio_s
        if watch.cpu_source != "schedstat":
            run.notes.append("a thread exited unsampled: CPU from /proc/PID/stat (10 ms ticks)")
        half = watch.rss_kib[len(watch.rss_kib) // 2 :]
        run.rss_steady_kib = round(statistics.median(half)) if half else None
        run.threads = watch.threads
        if receiver.session_log and not output.wait_for("ended (", SESSION_END_WAIT_S):
            run.notes.append(f"no session end in the log {SESSION_END_WAIT_S:g} s after the BYEs")
        if process.poll() is not None:
            run.notes.append(f"exited with code {process.returncode} while playing")
    check_played(recorded, sent, sink_fmt, fmt, run)
    return run


# --- the report --------------------------------------------------------------------------------


def figure(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def mib(kib: int | None) -> str:
    return "-" if kib is None else f"{kib / KIB:.1f} MiB"


IDLE_RATIO_FLOOR = 0.02
"""Idle figures below this (s per minute) are noise next to each other: no ratio."""


def ratio(ours: float | None, theirs: float | None, floor: float = 0.0) -> str:
    if ours is None or theirs is None or theirs <= 0:
        return "-"
    if theirs < floor:
        return "n/a"
    return f"{ours / theirs:.2f}x"


def idle_ratio(ours: Run, gst: Run) -> str:
    return ratio(ours.idle_cpu_per_min, gst.idle_cpu_per_min, IDLE_RATIO_FLOOR)


def print_run(run: Run) -> None:
    print(f"  {run.receiver}:")
    if run.error is not None:
        print(f"    NOT MEASURED: {run.error}")
        return
    print(
        f"    playing {figure(run.play_cpu_per_min)} s CPU per minute of audio; idle "
        f"{figure(run.idle_cpu_per_min, 3)} s per minute; RSS peak {mib(run.rss_peak_kib)}, "
        f"steady {mib(run.rss_steady_kib)}"
    )
    print(f"    played: {run.played}")
    for line in run.log:
        if "session " in line and ("started:" in line or "ended (" in line):
            print(f"    log: {line.strip()}")
    for note in run.notes:
        print(f"    NOTE: {note}")


THREAD_LEGEND = (
    "  (Python 3.11 leaves its threads unnamed in /proc, so ours show as 'python'. Where a\n"
    "  thread waits tells them apart: __skb_wait_for_more_packets is a blocking recvfrom (our\n"
    "  receiving thread), poll_schedule_timeout in a thread that is new with the stream is\n"
    "  PortAudio's audio thread (it runs the callback), futex_do_wait a thread waiting on a\n"
    "  lock or an event; threaded-ml is the PulseAudio client's main loop (ALSA's pulse plugin\n"
    "  in ours, pulsesink in GStreamer). runs/s: how often the thread got the CPU.)"
)


def print_threads(run: Run, idle_seconds: float) -> None:
    windows = (
        ("playing", run.threads, run.audio_seconds, "per minute of audio"),
        ("idle", run.idle_threads, idle_seconds, "per minute"),
    )
    for what, threads, seconds, unit in windows:
        if not threads or seconds <= 0:
            continue
        busiest = sorted(threads.items(), key=lambda item: -item[1].seconds)
        print(f"  {run.receiver}, {run.fmt.label}, {what}: CPU s {unit} by thread:")
        print(f"    {'tid':>8} {'name':<16} {'CPU':>6} {'runs/s':>7}  waits most in")
        for tid, use in busiest[: 8 if what == "playing" else 3]:
            flags = [word for word, on in (("new", use.new), ("exited", not use.alive)) if on]
            wait = use.waits.most_common(1)[0][0] if use.waits else "?"
            runs = (use.last_runs - use.first_runs) / seconds
            print(
                f"    {tid:>8} {use.comm:<16} {use.seconds * 60 / seconds:6.3f} {runs:7.1f}"
                f"  {wait:<34} {' '.join(flags)}".rstrip()
            )


def print_table(runs: dict[tuple[str, StreamFormat], Run], names: tuple[str, str]) -> None:
    ours_name, gst_name = names
    print()
    print(f"{'':34}{'ours':>14}{'GStreamer':>14}{'ours/GSt':>10}  target")
    for fmt in FORMATS:
        ours, gst = runs[(ours_name, fmt)], runs[(gst_name, fmt)]
        playing = (ours.play_cpu_per_min, gst.play_cpu_per_min)
        idle = (ours.idle_cpu_per_min, gst.idle_cpu_per_min)
        print(f"{fmt.label + ', CPU s/min playing':34}{figure(playing[0]):>14}"
              f"{figure(playing[1]):>14}{ratio(*playing):>10}  <= 1.5x")  # fmt: skip
        print(f"{fmt.label + ', CPU s/min idle':34}{figure(idle[0], 3):>14}"
              f"{figure(idle[1], 3):>14}{idle_ratio(ours, gst):>10}  ours <= 0.30")  # fmt: skip
        for label, x, y in (
            ("RSS peak", ours.rss_peak_kib, gst.rss_peak_kib),
            ("RSS steady", ours.rss_steady_kib, gst.rss_steady_kib),
        ):
            print(f"{fmt.label + ', ' + label:34}{mib(x):>14}{mib(y):>14}"
                  f"{ratio(x, y):>10}")  # fmt: skip
        played = [
            "-" if run.played_fraction is None
            else f"{run.played_fraction:.1%}{' exact' if run.bit_exact else ''}"
            for run in (ours, gst)
        ]  # fmt: skip
        print(f"{fmt.label + ', played (silence aside)':34}{played[0]:>14}{played[1]:>14}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="stream length")
    parser.add_argument(
        "--idle-seconds", type=float, default=20.0, help="idle measurement (0: skip it)"
    )
    parser.add_argument(
        "--gst-sync",
        action="store_true",
        help="leave GStreamer's pulsesink at sync=true (it then loses the stream's start)",
    )
    parser.add_argument(
        "--receivers", choices=("both", "ours", "gst"), default="both", help="who to measure"
    )
    args = parser.parse_args()

    receivers = (our_receiver(), gst_receiver(args.gst_sync))
    skip = {"ours": receivers[1].name, "gst": receivers[0].name}.get(args.receivers)
    print(
        f"RTP L16 on PT {PAYLOAD_TYPE}, 20 ms packets, {args.seconds:g} s per stream, paced from "
        f"this process to 127.0.0.1; idle measured over {args.idle_seconds:g} s after "
        f"{SETTLE_S:g} s of settling; CPU of the whole receiver process; GStreamer's "
        f"pulsesink sync={'true' if args.gst_sync else 'false'}\n"
    )
    runs: dict[tuple[str, StreamFormat], Run] = {}
    for fmt in FORMATS:
        sent = stream_samples(fmt, args.seconds)
        sink, sink_fmt = sink_for(fmt)
        with sink, tempfile.TemporaryDirectory(prefix="bench-rtp-") as tmp:
            alsa_conf = direct_alsa_conf(sink, Path(tmp))
            print(f"{fmt.label} L16 (the rig's sink: {sink_fmt.label}):", flush=True)
            for receiver in receivers:
                if receiver.name == skip:
                    run = Run(receiver.name, fmt, error="skipped (--receivers)")
                else:
                    run = measure(receiver, fmt, sent, args.idle_seconds, sink,
                                  sink_fmt, alsa_conf)  # fmt: skip
                runs[(receiver.name, fmt)] = run
                print_run(run)
                sys.stdout.flush()
            ours, gst = runs[(receivers[0].name, fmt)], runs[(receivers[1].name, fmt)]
            print(
                f"  ours/GStreamer: playing {ratio(ours.play_cpu_per_min, gst.play_cpu_per_min)}"
                f" (target <= 1.5x), idle {idle_ratio(ours, gst)}\n"
            )
    print_table(runs, (receivers[0].name, receivers[1].name))
    print("\nWhere the CPU goes, thread by thread:")
    print(THREAD_LEGEND)
    for fmt in FORMATS:
        for receiver in receivers:
            print_threads(runs[(receiver.name, fmt)], args.idle_seconds)


if __name__ == "__main__":
    main()
