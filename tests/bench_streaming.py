"""Benchmark (not a test): sender pacing accuracy and the listener's CPU cost.

    python tests/bench_streaming.py [--seconds 30]

1. Our sender streams to a timestamping receiver (another process, 127.0.0.1): prints the
   median, p99 and max of |interval - 20 ms| and the drift of the last packet against the ideal
   schedule.
2. ``appliance listen`` plays a stream into the test rig's PulseAudio null sink: prints its CPU
   seconds per minute of audio, next to a minimal PyAudio callback player playing the same.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import itertools

from audio_rig import AudioSink, test_signal
from cli_runner import appliance_env

from appliance.framing import frame_pcm
from appliance.sender import Sender

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


def bench_pacing(seconds: float) -> None:
    ports: multiprocessing.Queue[int] = multiprocessing.Queue()
    results: multiprocessing.Queue[list[float]] = multiprocessing.Queue()
    receiver = multiprocessing.Process(target=timestamp_receiver, args=(ports, results))
    receiver.start()
    port = ports.get()
    pcm = bytes(int(seconds * 16000))
    with Sender(("127.0.0.1", port)) as sender:
        sender.send(frame_pcm([pcm]))
    stamps: list[float] = results.get()
    receiver.join()
    intervals = [b - a for a, b in itertools.pairwise(stamps)]
    errors_ms = sorted(abs(i - INTERVAL_S) * 1000 for i in intervals)
    p99 = errors_ms[int(len(errors_ms) * 0.99) - 1]
    drift_ms = ((stamps[-1] - stamps[0]) - (len(stamps) - 1) * INTERVAL_S) * 1000
    print(f"sender pacing over {len(stamps)} packets ({seconds:.0f} s):")
    print(
        f"  |interval - 20 ms|: median {statistics.median(errors_ms):.3f} ms, "
        f"p99 {p99:.3f} ms, max {errors_ms[-1]:.3f} ms"
    )
    print(f"  drift of the last packet against the schedule: {drift_ms:+.3f} ms")


MINIMAL_PLAYER = """
import sys, time, pyaudio
pcm = open(sys.argv[1], "rb").read()
position = 0
def callback(in_data, frame_count, time_info, status):
    global position
    chunk = pcm[position:position + frame_count * 2]
    position += frame_count * 2
    return chunk.ljust(frame_count * 2, b"\\0"), pyaudio.paContinue
pa = pyaudio.PyAudio()
stream = pa.open(format=pyaudio.paInt16, channels=1, rate=8000, output=True,
                 frames_per_buffer=160, stream_callback=callback)
while position < len(pcm):
    time.sleep(0.1)
stream.stop_stream(); stream.close(); pa.terminate()
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime + stime
    return ticks / os.sysconf("SC_CLK_TCK")


def bench_listener_cpu(seconds: float) -> None:
    pcm = test_signal(seconds, seed=1)
    with AudioSink() as sink:
        env = appliance_env(ALSA_CONFIG_PATH=str(sink.asound_conf))
        port = 5123
        listener = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "appliance",
                "listen",
                "--once",
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert listener.stderr is not None
        for line in listener.stderr:
            if "listening on" in line:
                break
        before = cpu_seconds(listener.pid)
        with Sender(("127.0.0.1", port)) as sender:
            sender.send(frame_pcm([pcm]))
        during = cpu_seconds(listener.pid) - before
        listener.communicate(timeout=30)
        raw = Path(sink.asound_conf).parent / "bench.raw"
        raw.write_bytes(pcm)
        started = time.monotonic()
        player = subprocess.Popen([sys.executable, "-c", MINIMAL_PLAYER, str(raw)], env=env)
        # Sample its CPU just before it exits, over the same audio duration.
        minimal = 0.0
        while player.poll() is None:
            try:
                minimal = cpu_seconds(player.pid)
            except (FileNotFoundError, ProcessLookupError):
                break
            time.sleep(0.05)
        elapsed = time.monotonic() - started
    per_minute = 60 / seconds
    print(
        f"listener CPU while playing {seconds:.0f} s: {during:.2f} s "
        f"= {during * per_minute:.2f} s per minute of audio"
    )
    print(
        f"minimal PyAudio callback player (start-up included, {elapsed:.0f} s): "
        f"{minimal:.2f} s = {minimal * per_minute:.2f} s per minute of audio"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    bench_pacing(args.seconds)
    bench_listener_cpu(args.seconds)


if __name__ == "__main__":
    main()
