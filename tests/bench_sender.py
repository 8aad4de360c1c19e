"""Benchmark (not a test): what ``appliance send`` costs, and how late ``send --input`` is.

    .venv/bin/python tests/bench_sender.py [--seconds S] [--clicks N] [--skip-cpu | --skip-latency]

**CPU.** ffmpeg makes a FLAC and an MP3 (192 kbit/s) of ``--seconds`` of 44.1 kHz stereo (a
sine on the left, pink noise on the right). Each is sent by a real ``appliance send FILE --to
NAME`` child process to a real ``appliance listen --output-file`` on 127.0.0.1, which this
process advertises over mDNS as a listener that plays only L16 48 kHz stereo (TXT ``rtp=127
l16=112``), so the sender's whole path runs: PyAV decoding, libsoxr 44.1 -> 48 kHz, RTP
packetizing, 20 ms pacing, the socket, and reading the listener's reports. The child's CPU
(user + system, ``getrusage(RUSAGE_CHILDREN)``) is measured for the long file and for a 1 s
file of the same kind; the difference, per minute of audio, is the streaming cost without
Python's start-up, the imports and the mDNS lookup (printed too). The sender's own lines
(what it converted, what it sent, what the listener played) are printed as it ran.

**Latency of --input.** On the test rig (a private PulseAudio null sink at 48 kHz stereo whose
monitor is the ALSA input ``rig_monitor``, see audio_rig.py), ``appliance send --input
rig_monitor --to 127.0.0.1:P --rtp`` streams to a UDP socket here. ``--clicks`` times a 2 ms
click is played into the sink (pacat). The moment a click is *in the sink* cannot be seen
from outside, so a reference capture of the same monitor runs alongside: ``parec
--latency-msec=1`` to a pipe. For each click: A = pacat started -> parec's pipe has the click,
B = pacat started -> the UDP packet with the click arrived. B - A is the sender's
capture-to-network latency for the click's sample (plus parec's own ~1 ms, not added), and B -
A + the click's position in its packet is that of the packet's oldest sample. Printed: median
and maximum of both, and PortAudio's own figure (``input latency`` in the sender's first line)
plus the 20 ms block, for comparison; and the sender's CPU per minute while capturing (from
/proc, start-up left out).

Needs: ffmpeg; the rig (apt: pulseaudio pulseaudio-utils libasound2-plugins); PyAudio.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from audio_rig import MONITOR_NAME, AudioSink
from cli_runner import LOOPBACK, appliance_env
from zeroconf import ServiceInfo, Zeroconf

from appliance.discovery.records import SERVICE_TYPE

RATE = 44100
SENT_RATE = 48000
CHANNELS = 2
PAYLOAD_TYPE = 127
PAYLOAD_BYTES = SENT_RATE * CHANNELS * 2 // 50  # 20 ms of L16 48 kHz stereo
RTP_HEADER = 12
CLICK_LEVEL = 20000
DETECT_LEVEL = 10000
CLICK_S = 0.002
CLICK_GAP_S = 0.5
READY_TIMEOUT_S = 20.0


# --- CPU -----------------------------------------------------------------------------------------


def make_file(directory: Path, name: str, seconds: float, *codec: str) -> Path:
    """``seconds`` of 44.1 kHz stereo, made by ffmpeg: a sine left, pink noise right."""
    path = directory / name
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate={RATE}:duration={seconds}",
         "-f", "lavfi", "-i", f"anoisesrc=color=pink:sample_rate={RATE}:amplitude=0.2:"
         f"duration={seconds}",
         "-filter_complex", "[0][1]amerge=inputs=2", "-ac", "2", *codec, str(path)],
        check=True,
    )  # fmt: skip
    return path


@dataclass
class Received:
    packets: int = 0
    bad: int = 0
    arrivals: list[tuple[float, bytes]] = field(default_factory=list)
    keep: bool = False


@contextmanager
def udp_receiver(keep: bool = False) -> Iterator[tuple[int, Received]]:
    """A UDP socket on 127.0.0.1 counting RTP packets (keeping them with their arrival time
    when ``keep``) until the block ends."""
    received = Received(keep=keep)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            now = time.monotonic()
            if len(data) < RTP_HEADER or data[1] in (200, 201, 203):  # RTCP: SR, RR, BYE
                continue
            received.packets += 1
            if data[1] & 0x7F != PAYLOAD_TYPE or len(data) - RTP_HEADER != PAYLOAD_BYTES:
                received.bad += 1
            if keep:
                received.arrivals.append((now, data[RTP_HEADER:]))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1], received
    finally:
        stop.set()
        thread.join()
        sock.close()


@contextmanager
def listener_at_48k(directory: Path) -> Iterator[str]:
    """A real ``appliance listen`` on 127.0.0.1, writing what it plays to a WAV file, and an
    mDNS record for it that offers only L16 48 kHz stereo (type 127 of the built-in table, TXT
    ``rtp=127 l16=112``): the sender must convert 44.1 kHz to it, and the listener's reports
    tell it that the stream is played. Yields the name to send to."""
    name = f"bench-sender-{os.getpid()}"
    listener = subprocess.Popen(
        [sys.executable, "-m", "appliance", "listen", *LOOPBACK, "--no-mdns", "--port", "0",
         "--output-file", str(directory / "played.wav")],
        env=appliance_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert listener.stderr is not None
    port = None
    for line in listener.stderr:
        if match := re.search(r"listening on 127\.0\.0\.1:(\d+)", line):
            port = int(match[1])
            break
    if port is None:
        listener.kill()
        raise SystemExit("appliance listen did not start")
    threading.Thread(target=listener.stderr.read, daemon=True).start()  # keep its pipe empty
    zeroconf = Zeroconf(interfaces=["127.0.0.1"])
    info = ServiceInfo(
        SERVICE_TYPE,
        f"{name}.{SERVICE_TYPE}",
        addresses=[socket.inet_aton("127.0.0.1")],
        port=port,
        properties={"rtp": str(PAYLOAD_TYPE), "l16": "112", "maxrate": "48000", "maxch": "2"},
    )
    zeroconf.register_service(info)
    try:
        yield name
    finally:
        zeroconf.unregister_service(info)
        zeroconf.close()
        listener.send_signal(signal.SIGTERM)
        listener.wait(timeout=10)


def child_cpu_s(*args: str) -> tuple[float, str]:
    """Run ``appliance ARGS``; its CPU seconds (user + system) and its stderr."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(
        [sys.executable, "-m", "appliance", *args],
        env=appliance_env(),
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"appliance {' '.join(args)} failed: {result.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, result.stderr


@dataclass
class CpuRun:
    kind: str
    seconds: float
    total_s: float
    startup_s: float
    output: str

    @property
    def per_minute(self) -> float:
        return (self.total_s - self.startup_s) / (self.seconds - 1.0) * 60.0


CODECS = (
    ("FLAC", "flac", ("-c:a", "flac")),
    ("MP3", "mp3", ("-c:a", "libmp3lame", "-b:a", "192k")),
)


def measure_cpu(directory: Path, seconds: float) -> list[CpuRun]:
    runs = []
    with listener_at_48k(directory) as name:
        for kind, suffix, codec in CODECS:
            long_file = make_file(directory, f"long.{suffix}", seconds, *codec)
            short_file = make_file(directory, f"short.{suffix}", 1.0, *codec)
            to = ("--to", name, "--interface", "127.0.0.1")
            startup, _ = child_cpu_s("send", str(short_file), *to)
            total, output = child_cpu_s("send", str(long_file), *to)
            runs.append(CpuRun(kind, seconds, total, startup, output.strip()))
            print(f"  {kind}:", output.strip().replace("\n", "\n    "), flush=True)
    return runs


# --- latency -------------------------------------------------------------------------------------


def click_pcm() -> bytes:
    click = np.full((round(CLICK_S * SENT_RATE), CHANNELS), CLICK_LEVEL, dtype="<i2")
    tail = np.zeros((round(0.05 * SENT_RATE), CHANNELS), dtype="<i2")
    return np.concatenate([click, tail]).tobytes()


class ParecClicks:
    """``parec --latency-msec=1`` of the monitor: when each click reached its pipe."""

    def __init__(self, sink: AudioSink) -> None:
        self.times: list[float] = []
        self._process = subprocess.Popen(
            ["parec", "-s", sink.server, "-d", MONITOR_NAME, "--raw", "--format=s16le",
             f"--rate={SENT_RATE}", f"--channels={CHANNELS}", "--latency-msec=1"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
            env=sink._env(),
        )  # fmt: skip
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        assert self._process.stdout is not None
        fd = self._process.stdout.fileno()
        quiet = True
        pending = b""
        while chunk := os.read(fd, 4096):
            now = time.monotonic()
            data = pending + chunk
            whole = len(data) - len(data) % 2
            pending = data[whole:]
            loud = bool(np.any(np.abs(np.frombuffer(data[:whole], "<i2")) > DETECT_LEVEL))
            if loud and quiet:
                self.times.append(now)
            quiet = not loud

    def close(self) -> None:
        self._process.send_signal(signal.SIGINT)
        self._process.wait(timeout=5)
        self._thread.join(timeout=5)


def udp_clicks(received: Received) -> list[tuple[float, int]]:
    """Arrival time of each packet that starts a click, and the click's frame in it."""
    found = []
    quiet = True
    for arrival, payload in received.arrivals:
        samples = np.abs(np.frombuffer(payload, ">i2").astype(np.int32)).reshape(-1, CHANNELS)
        loud = np.flatnonzero(samples.max(axis=1) > DETECT_LEVEL)
        if len(loud) and quiet:
            found.append((arrival, int(loud[0])))
        quiet = not len(loud)
    return found


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a running process has used so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class LatencyRun:
    click_ms: list[float]
    oldest_ms: list[float]
    reference_ms: list[float]
    portaudio_ms: float | None
    line: str
    cpu_per_min: float


def measure_latency(clicks: int) -> LatencyRun:
    with (
        AudioSink(rate=SENT_RATE, channels=CHANNELS) as sink,
        udp_receiver(keep=True) as (
            port,
            received,
        ),
    ):
        sink.add_monitor_input()
        sender = subprocess.Popen(
            [sys.executable, "-m", "appliance", "send", "--input", "rig_monitor",
             "--to", f"127.0.0.1:{port}", "--rtp"],
            env=appliance_env(ALSA_CONFIG_PATH=str(sink.asound_conf)),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        reference = ParecClicks(sink)
        try:
            assert sender.stderr is not None
            line = sender.stderr.readline().strip()
            deadline = time.monotonic() + READY_TIMEOUT_S
            while received.packets < 25:  # half a second of packets flowing
                if time.monotonic() > deadline or sender.poll() is not None:
                    raise SystemExit(f"the sender did not start: {line}")
                time.sleep(0.05)
            written = []
            cpu_from, since = process_cpu_s(sender.pid), time.monotonic()
            for _ in range(clicks):
                written.append(time.monotonic())
                sink.play(click_pcm(), latency_ms=10)
                time.sleep(CLICK_GAP_S)
            cpu_per_min = (process_cpu_s(sender.pid) - cpu_from) / (time.monotonic() - since) * 60
        finally:
            sender.send_signal(signal.SIGINT)
            sender.wait(timeout=10)
            reference.close()
    arrivals = udp_clicks(received)
    click_ms, oldest_ms, reference_ms = [], [], []
    for start in written:
        seen = next((t for t in reference.times if t >= start), None)
        sent = next(((t, f) for t, f in arrivals if t >= start), None)
        if seen is None or sent is None or seen - start > CLICK_GAP_S:
            continue
        reference_ms.append((seen - start) * 1000)
        click_ms.append((sent[0] - seen) * 1000)
        oldest_ms.append((sent[0] - seen + sent[1] / SENT_RATE) * 1000)
    match = re.search(r"input latency ([\d.]+) ms", line)
    portaudio_ms = float(match[1]) if match else None
    return LatencyRun(click_ms, oldest_ms, reference_ms, portaudio_ms, line, cpu_per_min)


# --- report --------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the files")
    parser.add_argument("--clicks", type=int, default=10, help="clicks timed for --input")
    parser.add_argument("--skip-cpu", action="store_true", help="only the --input latency")
    parser.add_argument("--skip-latency", action="store_true", help="only the CPU")
    args = parser.parse_args()
    cpu_runs: list[CpuRun] = []
    if not args.skip_cpu:
        print(f"CPU: {args.seconds:g} s of 44.1 kHz stereo sent as L16 48 kHz stereo", flush=True)
        with tempfile.TemporaryDirectory(prefix="bench-sender-") as directory:
            cpu_runs = measure_cpu(Path(directory), args.seconds)
    latency = None if args.skip_latency else measure_latency(args.clicks)

    print()
    if cpu_runs:
        print(f"{'file (44.1 kHz stereo -> 48 kHz)':34}{'CPU s/min':>10}{'child total':>13}"
              f"{'start-up':>10}")  # fmt: skip
        for run in cpu_runs:
            print(f"{run.kind:34}{run.per_minute:>10.2f}{run.total_s:>12.2f}s"
                  f"{run.startup_s:>9.2f}s")  # fmt: skip
        print("  (CPU s/min: (child total - start-up) per minute of audio; start-up: the same"
              " command with a 1 s file)")  # fmt: skip
    if latency is not None:
        print()
        print(f"--input capture -> network ({len(latency.click_ms)} of {args.clicks} clicks "
              f"matched): {latency.line}")  # fmt: skip
        if latency.click_ms:
            rows = (
                ("the click's sample (B - A)", latency.click_ms),
                ("the packet's oldest sample", latency.oldest_ms),
                ("reference: pacat -> parec (A)", latency.reference_ms),
            )
            print(f"  {'':34}{'median':>9}{'max':>9}")
            for label, values in rows:
                print(f"  {label:34}{statistics.median(values):>7.1f}ms{max(values):>7.1f}ms")
        if latency.portaudio_ms is not None:
            print(f"  PortAudio's input latency + 20 ms block: {latency.portaudio_ms + 20:.1f} ms")
        print(f"  the sender's CPU while capturing: {latency.cpu_per_min:.2f} s per minute")


if __name__ == "__main__":
    main()
