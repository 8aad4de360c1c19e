"""Benchmark: the audio server killed under a playing listener, and brought back.

    .venv/bin/python tests/bench_recovery.py [--repeats 5] [--down-s 1 3 8]

A listener plays a paced raw stream (ours, on 127.0.0.1) into the private PulseAudio null
sink of tests/audio_rig.py. Each repeat SIGKILLs the server mid-stream, leaves it away for
``down`` seconds, and starts it again on the same socket. Printed, per down time, median and
max over the repeats:

- kill -> ERROR: how long the failure goes unnoticed (the watchdog looks every 0.1 s);
- return -> output open: from the server being ready again to the listener's output open
  again (its state back to WAITING); this is mostly the wait for the next retry of the
  backoff schedule (0.5, 1.5, 3.5, 7.5 s after the failure, then every 5 s);
- return -> playing: to the stream being heard again (state PLAYING, the buffer refilled).

Loopback only; not collected by pytest.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import threading
import time

from audio_rig import AudioSink, test_signal

from appliance.listener.listener import Listener, ListenerConfig
from appliance.listener.state import ListenerState, StateMachine

S = ListenerState
FRAME_BYTES = 320
FRAME_S = 0.02
TIMEOUT_S = 30.0
SETTLE_S = 1.0
"""Playing this long before each kill."""


class PacedStream:
    """A raw 8 kHz stream to ``port`` in 20 ms datagrams, until stopped (no end marker: the
    listener sees one long session from one source)."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._audio = test_signal(seconds=1.0, seed=41)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="paced-stream", daemon=True)

    def __enter__(self) -> PacedStream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            started = time.monotonic()
            index = 0
            while not self._stop.is_set():
                start = index * FRAME_BYTES % len(self._audio)
                sock.sendto(self._audio[start : start + FRAME_BYTES], ("127.0.0.1", self._port))
                index += 1
                self._stop.wait(max(0.0, started + index * FRAME_S - time.monotonic()))


def entered_at(machine: StateMachine, state: ListenerState, after: float) -> float:
    """When ``machine`` last entered ``state`` at or after ``after`` (waits for it)."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        times = [t.at for t in machine.history() if t.current is state and t.at >= after]
        if times:
            return times[0]
        time.sleep(0.005)
    raise RuntimeError(f"the listener did not reach {state} within {TIMEOUT_S:g} s")


def one_outage(listener: Listener, sink: AudioSink, down_s: float) -> tuple[float, float, float]:
    """(kill -> ERROR, return -> WAITING, return -> PLAYING), in seconds."""
    machine = listener.state_machine
    if not machine.wait_for(S.PLAYING, timeout=TIMEOUT_S):
        raise RuntimeError(f"not playing before the kill but {machine.state}")
    time.sleep(SETTLE_S)
    killed_at = time.monotonic()
    sink.kill(signal.SIGKILL)
    noticed = entered_at(machine, S.ERROR, killed_at) - killed_at
    time.sleep(max(0.0, killed_at + down_s - time.monotonic()))
    sink.restart()
    back_at = time.monotonic()
    reopened = entered_at(machine, S.WAITING, back_at) - back_at
    playing = entered_at(machine, S.PLAYING, back_at) - back_at
    return noticed, reopened, playing


def summary(label: str, seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return f"{label} median {statistics.median(ms):.0f} ms, max {max(ms):.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--down-s", type=float, nargs="+", default=[1.0, 3.0, 8.0])
    args = parser.parse_args()
    with AudioSink() as sink:
        os.environ["ALSA_CONFIG_PATH"] = str(sink.asound_conf)
        listener = Listener(ListenerConfig(port=0, bind="127.0.0.1", timeout_s=30.0))
        try:
            listener.start()
            with PacedStream(listener.port):
                for down_s in args.down_s:
                    runs = [one_outage(listener, sink, down_s) for _ in range(args.repeats)]
                    noticed, reopened, playing = zip(*runs, strict=True)
                    print(
                        f"server away {down_s:g} s (n={args.repeats}): "
                        f"{summary('kill -> ERROR', list(noticed))}; "
                        f"{summary('return -> output open', list(reopened))}; "
                        f"{summary('return -> playing', list(playing))}",
                        flush=True,
                    )
        finally:
            listener.close()


if __name__ == "__main__":
    main()
