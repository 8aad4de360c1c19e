"""Benchmark (not a test): the listener's CPU idle, playing, and playing under a junk flood.

    .venv/bin/python tests/bench_hardening.py [--seconds 20] [--flood-rate 5000] [--srtp]

Runs ``appliance listen`` as a child (loopback configuration, no mDNS, no GPIO) playing into
the test rig's PulseAudio null sink, and measures its CPU time (utime + stime from
/proc/PID/stat, every thread) over three windows of ``--seconds`` each:

* idle: listening, no stream;
* playing: one RTP stream (L16 8 kHz mono, 20 ms packets, paced in real time) from 127.0.0.1;
* flood: the same stream while a stranger (127.0.0.2) sends ``--flood-rate`` junk datagrams a
  second (random bytes, RTP- and RTCP-shaped lies, empty, oversized: tests/listener/
  test_fuzz_listener.py's mix).

It prints CPU seconds per minute for each, the flood's cost against the plain stream, the
flood rate really achieved, and the session line the listener logged (underruns, ignored).
``--srtp``: two more rows, a listener with ``--key-file`` playing the stream protected
(SRTP, AES_CM_128_HMAC_SHA1_80), alone and under the flood (which does not authenticate).
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "listener"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from audio_rig import AudioSink, test_signal
from cli_runner import LOOPBACK, appliance_env
from streams import RTP_L16_8K
from test_fuzz_listener import junk

from appliance.wire.codecs import codec_for
from appliance.wire.rtcp import bye
from appliance.wire.rtp import RtpPacket

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
STRANGER = "127.0.0.2"
WARM_UP_S = 1.0
"""The stream plays this long before its window opens (buffering, the output opening)."""


def process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ListenerChild:
    """``appliance listen`` in a child process; its log is collected on a thread."""

    def __init__(self, sink: AudioSink, port: int, key_file: Path | None = None) -> None:
        self.log: list[str] = []
        self._ready = threading.Event()
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "appliance", "listen", *LOOPBACK, "--no-mdns"),
                *("--bind", "127.0.0.1", "--port", str(port), "--timeout", "1"),
                *(() if key_file is None else ("--key-file", str(key_file))),
            ],
            env=appliance_env(ALSA_CONFIG_PATH=str(sink.asound_conf)),
            stdin=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._read_log, daemon=True).start()
        if not self._ready.wait(60):
            self.close()
            raise SystemExit("the listener did not start:\n" + "".join(self.log[-20:]))

    def _read_log(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line)
            if "listening on" in line:
                self._ready.set()

    def session_lines(self) -> list[str]:
        return [line.strip() for line in self.log if " ended (" in line]

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def flood(port: int, rate: float, stop: threading.Event, sent: list[int]) -> None:
    """``rate`` junk datagrams a second from STRANGER until ``stop``; counts into ``sent``."""
    rng = random.Random(5000)
    datagrams = [junk(rng) for _ in range(20_000)]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((STRANGER, 0))
        started = time.monotonic()
        count = 0
        while not stop.is_set():
            for _ in range(50):
                sock.sendto(datagrams[count % len(datagrams)], ("127.0.0.1", port))
                count += 1
            time.sleep(max(0.0, started + count / rate - time.monotonic()))
        sent.append(count)
        sent.append(round(count / (time.monotonic() - started)))


Protect = Callable[[bytes], bytes]


def send_stream(pcm: bytes, port: int, protect: Protect) -> None:
    """L16 8 kHz mono RTP, 20 ms packets paced in real time, then a BYE; each datagram
    through ``protect`` (SRTP, or as is)."""
    codec, ssrc = codec_for(RTP_L16_8K.encoding), random.getrandbits(32)
    started = time.monotonic()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for index, start in enumerate(range(0, len(pcm), 320)):
            payload = codec.encode(pcm[start : start + 320], 1)
            packet = RtpPacket(97, index % 65536, 160 * index, ssrc, payload, marker=index == 0)
            sock.sendto(protect(bytes(packet)), ("127.0.0.1", port))
            time.sleep(max(0.0, started + (index + 1) * 0.02 - time.monotonic()))
        sock.sendto(protect(bye(ssrc)), ("127.0.0.1", port))


def measure(pid: int, seconds: float) -> float:
    """CPU seconds per minute of the process over the next ``seconds``."""
    before = process_cpu_s(pid)
    time.sleep(seconds)
    return (process_cpu_s(pid) - before) * 60 / seconds


def stream_window(
    listener: ListenerChild,
    port: int,
    seconds: float,
    flood_rate: float | None,
    protect: Protect = bytes,
) -> tuple[float, int | None]:
    """CPU per minute while one stream plays (and junk floods, with ``flood_rate``)."""
    pcm = test_signal(seconds=seconds + 2 * WARM_UP_S, seed=7)
    sender = threading.Thread(target=send_stream, args=(pcm, port, protect), daemon=True)
    stop, sent = threading.Event(), list[int]()
    flooder = threading.Thread(target=flood, args=(port, flood_rate or 1, stop, sent), daemon=True)
    sender.start()
    time.sleep(WARM_UP_S)
    if flood_rate:
        flooder.start()
    cpu = measure(listener.process.pid, seconds)
    stop.set()
    if flood_rate:
        flooder.join()
    sender.join()
    time.sleep(WARM_UP_S + 1.5)  # the stream drains and its session ends (--timeout 1)
    return cpu, sent[1] if sent else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="each window (default 20)")
    parser.add_argument("--flood-rate", type=float, default=5000.0, help="junk/s (default 5000)")
    parser.add_argument("--srtp", action="store_true", help="add the SRTP rows")
    args = parser.parse_args()
    rows: list[tuple[str, float, str]] = []
    sessions: list[str] = []
    with AudioSink() as sink, tempfile.TemporaryDirectory() as directory:
        plain = run_listener(sink, None, args.seconds, args.flood_rate, bytes)
        rows += [("idle", plain[0], ""), *plain[1]]
        sessions += plain[2]
        if args.srtp:
            from appliance.wire.srtp import SrtpProtector, write_new_key

            key_file = Path(directory) / "listener.key"
            protect = SrtpProtector(write_new_key(key_file)).protect  # RTP and the BYE
            srtp = run_listener(sink, key_file, args.seconds, args.flood_rate, protect)
            rows += [("idle, with --key-file", srtp[0], ""), *srtp[1]]
            sessions += srtp[2]
    print(f"appliance listen, CPU seconds per minute ({args.seconds:g} s windows, 2 shared cores)")
    for name, cpu, note in rows:
        print(f"  {name:<48} {cpu:6.2f}{note}")
    for line in sessions:
        print(f"  session: {line.split(' INFO ', 1)[-1][:220]}")
    return 0


def run_listener(
    sink: AudioSink, key_file: Path | None, seconds: float, flood_rate: float, protect: Protect
) -> tuple[float, list[tuple[str, float, str]], list[str]]:
    """Idle CPU, the two stream rows, and the session lines of one listener."""
    what = "RTP" if key_file is None else "SRTP"
    port = free_port()
    listener = ListenerChild(sink, port, key_file)
    try:
        idle = measure(listener.process.pid, seconds)
        playing, _ = stream_window(listener, port, seconds, None, protect)
        flooded, achieved = stream_window(listener, port, seconds, flood_rate, protect)
    finally:
        listener.close()
    rows = [
        (f"playing one {what} stream (8 kHz mono)", playing, ""),
        (
            f"  + flood from {STRANGER} ({achieved}/s)",
            flooded,
            f"   {flooded / playing:.1f}x the stream alone",
        ),
    ]
    return idle, rows, listener.session_lines()


if __name__ == "__main__":
    raise SystemExit(main())
