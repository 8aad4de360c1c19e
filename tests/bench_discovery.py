"""Benchmark: how long a sender waits for a listener's address when it is given a name.

    PYTHONPATH=. python tests/bench_discovery.py [RUNS]

An Advertiser is registered on 127.0.0.1 first; then, RUNS times, the clock runs from the
start of ``resolve_listener(name)`` (which opens its own Zeroconf, queries, and closes it, as
``send --to NAME`` does) to the returned record, and separately on one shared Zeroconf.
Prints the median and range of each. Last, the whole command as a user runs it: from
starting ``appliance send FILE --to NAME`` to its first datagram arriving at the advertised
port (Python start-up, imports and the lookup included). Loopback only; not collected by
pytest.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from appliance.discovery import Advertiser, make_zeroconf, resolve_listener
from appliance.listener.state import ListenerState, StateMachine

LO = ["127.0.0.1"]
DEFAULT_RUNS = 10
TIMEOUT_S = 30.0
REGISTER_TIMEOUT_S = 10.0


def measure(runs: int, lookup: Callable[[], object]) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        lookup()
        times.append(time.perf_counter() - started)
    return times


def report(label: str, times: list[float]) -> None:
    ms = [t * 1000 for t in times]
    print(
        f"{label}: median {statistics.median(ms):.1f} ms "
        f"(min {min(ms):.1f}, max {max(ms):.1f}, n={len(ms)})"
    )


def send_until_first_packet(name: str, receiver: socket.socket) -> float:
    """Seconds from starting ``appliance send --to NAME`` to its first datagram's arrival."""
    with tempfile.TemporaryDirectory() as tmp:
        audio = Path(tmp) / "short.raw"
        audio.write_bytes(bytes(320 * 5))
        started = time.perf_counter()
        sender = subprocess.Popen(
            [sys.executable, "-m", "appliance", "send", str(audio), "--to", name,
             "--interface", LO[0], "-q"],
        )
        receiver.recv(65536)
        elapsed = time.perf_counter() - started
        sender.wait()
    while True:  # drain the rest of this stream before the next run
        receiver.settimeout(0.2)
        try:
            receiver.recv(65536)
        except TimeoutError:
            break
    receiver.settimeout(TIMEOUT_S)
    return elapsed


def main(argv: list[str]) -> int:
    runs = int(argv[0]) if argv else DEFAULT_RUNS
    name = f"bench-{os.getpid()}"
    machine = StateMachine()
    machine.start()
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(TIMEOUT_S)
    advertiser = Advertiser(name, receiver.getsockname()[1], LO, machine, server="bench.local.")
    try:
        advertiser.attach()
        machine.set(ListenerState.WAITING, "bench")
        if not advertiser.wait_registered(REGISTER_TIMEOUT_S):
            print(f"could not register: {advertiser.last_error}", file=sys.stderr)
            return 1
        report(
            "resolve by name, new Zeroconf each time (send --to NAME)",
            measure(runs, lambda: resolve_listener(name, LO, TIMEOUT_S)),
        )
        zc = make_zeroconf(LO)
        try:
            # After the first lookup the answer is in this Zeroconf's cache: this is the floor
            # (the code path without network), for comparison with the figure above.
            report(
                "resolve by name, shared Zeroconf (answer cached after the first)",
                measure(runs, lambda: resolve_listener(name, LO, TIMEOUT_S, zeroconf=zc)),
            )
        finally:
            zc.close()
        report(
            "`appliance send FILE --to NAME` start to first packet (whole command)",
            [send_until_first_packet(name, receiver) for _ in range(runs)],
        )
    finally:
        advertiser.close()
        machine.close()
        receiver.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
