"""Benchmark (not a test): sender pacing accuracy and the listener's CPU cost.

    python tests/bench_streaming.py [--seconds 30]

1. Our sender streams to a timestamping receiver (another process, 127.0.0.1): prints the
   median, p99 and max of |interval - 20 ms| and the drift of the last packet against the ideal
   schedule.
2. ``appliance listen`` plays a stream into the test rig's PulseAudio null sink: prints its CPU
   seconds per minute of audio, next to a minimal PyAudio network player (a receiving thread
   and a callback, nothing else) playing the same stream the same way.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from audio_rig import AudioSink, test_signal
from cli_runner import LOOPBACK, appliance_env

from appliance.sender.sender import Sender
from appliance.wire.raw import frame_pcm

INTERVAL_S = 0.020


def timestamp_receiver(
    port_out: multiprocessing.Queue[int], result: multiprocessing.Queue[list[float]]
) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port_out.put(sock.getsockname()[1])
    stamps = []
    while True:
        data = sock.recv(65536)
        stamps.append(time.monotonic())
        if not data:
            break
    result.put(stamps[:-1])


class StampingSocket(socket.socket):
    """A UDP socket that notes when each datagram left, as the sender itself sees it."""

    def __init__(self) -> None:
        super().__init__(socket.AF_INET, socket.SOCK_DGRAM)
        self.stamps: list[float] = []

    def sendto(self, data: Any, address: Any) -> int:  # type: ignore[override]
        sent = super().sendto(data, address)
        self.stamps.append(time.monotonic())
        return sent


def print_interval_errors(label: str, stamps: list[float]) -> None:
    intervals = [b - a for a, b in itertools.pairwise(stamps)]
    errors_ms = sorted(abs(i - INTERVAL_S) * 1000 for i in intervals)
    p99 = errors_ms[int(len(errors_ms) * 0.99) - 1]
    drift_ms = ((stamps[-1] - stamps[0]) - (len(stamps) - 1) * INTERVAL_S) * 1000
    print(
        f"  {label}: |interval - 20 ms| median {statistics.median(errors_ms):.3f} ms, "
        f"p99 {p99:.3f} ms, max {errors_ms[-1]:.3f} ms; drift after the last packet "
        f"{drift_ms:+.3f} ms"
    )


def bench_pacing(seconds: float) -> None:
    ports: multiprocessing.Queue[int] = multiprocessing.Queue()
    results: multiprocessing.Queue[list[float]] = multiprocessing.Queue()
    receiver = multiprocessing.Process(target=timestamp_receiver, args=(ports, results))
    receiver.start()
    port = ports.get()
    pcm = bytes(int(seconds * 16000))
    sock = StampingSocket()
    with Sender(("127.0.0.1", port), sock=sock) as sender:
        sender.send(frame_pcm([pcm]))
    received: list[float] = results.get()
    receiver.join()
    print(f"sender pacing over {len(received)} packets ({seconds:.0f} s):")
    print_interval_errors("at the receiving process", received)
    print_interval_errors("leaving the sender", sock.stamps[:-1])  # the last is the end marker


MINIMAL_NETWORK_PLAYER = """
# The least a PyAudio network player can do: the seed's design (a thread receiving datagrams,
# a callback playing 20 ms frames) without its defects, and without sessions, checks or logs.
import collections, socket, sys, threading, pyaudio
frames = collections.deque()
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("127.0.0.1", int(sys.argv[1])))
def receive():
    while True:
        frames.append(sock.recv(2048))
def callback(in_data, frame_count, time_info, status):
    data = frames.popleft() if frames else b""
    return data.ljust(frame_count * 2, b"\\0"), pyaudio.paContinue
threading.Thread(target=receive, daemon=True).start()
pa = pyaudio.PyAudio()
stream = pa.open(format=pyaudio.paInt16, channels=1, rate=8000, output=True,
                 frames_per_buffer=160, stream_callback=callback)
print("listening on", flush=True)
threading.Event().wait()
"""


def process_cpu_seconds(pid: int) -> float:
    """CPU time of all of a process's threads, from the scheduler's own nanosecond counts."""
    total_ns = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        total_ns += int((task / "schedstat").read_text().split()[0])
    return total_ns / 1e9


def cpu_while_playing(command: list[str], env: dict[str, str], port: int, pcm: bytes) -> float:
    """CPU seconds the player process uses while ``pcm`` streams to it in real time."""
    player = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    try:
        assert player.stdout is not None
        for line in player.stdout:
            if "listening on" in line:
                break
        time.sleep(1.0)  # let start-up settle: only steady playing is measured
        before = process_cpu_seconds(player.pid)
        with Sender(("127.0.0.1", port)) as sender:
            sender.send(frame_pcm([pcm]))
        return process_cpu_seconds(player.pid) - before
    finally:
        player.terminate()
        player.wait()


def bench_listener_cpu(seconds: float) -> None:
    pcm = test_signal(seconds, seed=1)
    per_minute = 60 / seconds
    with AudioSink() as sink:
        env = appliance_env(ALSA_CONFIG_PATH=str(sink.asound_conf))
        ours = cpu_while_playing(
            [sys.executable, "-m", "appliance", "listen", *LOOPBACK, "--port", "5123"],
            env, 5123, pcm,
        )
        minimal = cpu_while_playing(
            [sys.executable, "-c", MINIMAL_NETWORK_PLAYER, "5124"], env, 5124, pcm
        )
    print(f"CPU while playing {seconds:.0f} s into the test rig's PulseAudio sink:")
    print(f"  appliance listen (mDNS on loopback):  {ours * per_minute:.2f} s per minute of audio")
    print(f"  minimal PyAudio network player:       {minimal * per_minute:.2f} s per minute")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    bench_pacing(args.seconds)
    bench_listener_cpu(args.seconds)


if __name__ == "__main__":
    main()
