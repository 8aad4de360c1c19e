"""Benchmark (not a test): the skew between two listeners playing one stream (issue 12).

    .venv/bin/python tests/bench_sync.py [--seconds 60 | --minutes 10] [--buffers 40,150]
        [--period-s 0.5] [--delay-ms MS] [--no-single]

Two ``appliance listen`` processes (fixed latency, ``--buffers`` ms each) play into ONE
private PulseAudio null sink (tests/sync_rig.py); ONE ``appliance send --rtp --to A --to B``
sends them a click track (tests/clicks.py); the sink's monitor is recorded and each click's
skew read from it (to 0.01 ms, see tests/sync/test_rig_resolution.py). Printed: the skew's
median and max over the clicks, its spread (max - min: creep), the clicks heard, and the CPU
time each listener process used per minute of audio. Then the same for ONE target alone (one
listener, its first buffer, no ``--delay-ms``: not synchronised), as the reference for the CPU
cost of sync against a single target (``--no-single`` skips it).

Then the peer the issue names, in the same run: Snapcast (tests/snapcast_peer.py): a
snapserver fed the same click track and two snapclients with the same ALSA buffers into a
null sink alike, measured the same way (``--no-snapcast`` skips it; where to get it: that
module's docstring). Its CPU is per client; its server's is printed apart.

Before synchronised playout (issue 12 part 1) the skew was the difference of what the two
buffers and outputs hold: 120.000 ms for 40 vs 150 ms. Now the listeners play to the group's
schedule: the sender agrees a group delay with them (the smallest both can meet), or takes
``--delay-ms`` (passed to the sender as is); each session line shows the offset to the sender,
the group delay and how far off the schedule it ended. ``--listener-arg`` adds any flag to both
listeners. All traffic stays on 127.0.0.1. Not collected by pytest (not named test_*).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from audio_rig import AudioSink
from clicks import click_positions, click_track, copies_heard, find_clicks, skews
from snapcast_peer import SERVER_BUFFER_MS, SnapcastGroup, snapcast_bin
from sync_rig import TwoListeners, send_to

RATE = 8000
SETTLED_S = 5.0
"""The skew is also summarised from this far into the stream on (Snapcast corrects its start
with a hard resync after a few seconds)."""


@dataclass
class Run:
    who: str
    buffers_ms: tuple[int, ...]
    clicks_sent: int
    copies: int
    skews_ms: list[float]
    cpu_per_min_s: list[float]
    send_rc: int
    sessions: list[str]
    """Each listener's session summary line (underruns, concealment, depth, offset)."""
    settled_ms: list[float]
    """The skews from ``SETTLED_S`` into the stream on."""

    def line(self) -> str:
        cpu = ", ".join(f"{c:.2f}" for c in self.cpu_per_min_s)
        head = (
            f"{self.who}, buffers {'/'.join(map(str, self.buffers_ms))} ms: clicks sent "
            f"{self.clicks_sent}, "
            f"copies heard {self.copies} of {self.clicks_sent * len(self.buffers_ms)}; "
        )
        if len(self.buffers_ms) > 1 and self.skews_ms:
            head += (
                f"skew median {statistics.median(self.skews_ms):.3f} ms, "
                f"p95 {percentile(self.skews_ms, 95):.3f} ms, "
                f"max {max(self.skews_ms):.3f} ms, "
                f"spread {max(self.skews_ms) - min(self.skews_ms):.3f} ms; "
            )
            if self.settled_ms:
                head += (
                    f"from {SETTLED_S:g} s on: median {statistics.median(self.settled_ms):.3f} "
                    f"ms, max {max(self.settled_ms):.3f} ms; "
                )
        summary = "".join(f"\n  {line}" for line in self.sessions)
        who = "listener" if self.who == "ours" else "client"
        return head + f"CPU per {who} {cpu} s per minute; sender exit {self.send_rc}{summary}"


def percentile(values: list[float], percent: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(percent / 100 * (len(ordered) - 1)))]


def run(
    buffers_ms: tuple[int, ...],
    seconds: float,
    period_s: float,
    sender_args: list[str],
    listener_args: list[str],
) -> Run:
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as directory:
        track = Path(directory) / "clicks.raw"
        track.write_bytes(click_track(RATE, 1, seconds, period_s))
        with AudioSink() as sink, TwoListeners(sink, buffers_ms, extra_args=listener_args) as group:
            cpu_before = group.cpu_s()
            sink.start_recording()
            result = send_to(group.ports, track, extra_args=sender_args, timeout_s=seconds + 60)
            recording = sink.stop_recording(settle_s=0.6)
            cpu_after = group.cpu_s()
            cpu_used = [b - a for a, b in zip(cpu_before, cpu_after, strict=True)]
            sessions = [
                line.split(" INFO ", 1)[-1]
                for listener in group.listeners
                for line in listener.log.splitlines()
                if " ended " in line
            ]
            if result.returncode != 0:
                print(result.stderr, file=sys.stderr)
    cpu = [60 * c / seconds for c in cpu_used]
    return measured("ours", buffers_ms, recording, seconds, period_s, cpu, result.returncode,
                    sessions)  # fmt: skip


def measured(who: str, buffers_ms: tuple[int, ...], recording: bytes, seconds: float,
             period_s: float, cpu: list[float], rc: int, sessions: list[str]) -> Run:  # fmt: skip
    sent = len(click_positions(RATE, seconds, period_s))
    if len(buffers_ms) == 1:  # one listener: no skew, each click one copy
        return Run(who, buffers_ms, sent, len(find_clicks(recording, RATE)), [], cpu, rc,
                   sessions, [])  # fmt: skip
    found = skews(recording, RATE, period_s)
    settled = [s.skew_ms for s in found if s.index * period_s >= SETTLED_S]
    return Run(who, buffers_ms, sent, copies_heard(found), [s.skew_ms for s in found], cpu, rc,
               sessions, settled)  # fmt: skip


def run_snapcast(buffers_ms: tuple[int, ...], seconds: float, period_s: float,
                 bin_dir: Path) -> Run:  # fmt: skip
    """The same click track through Snapcast: one snapserver, a snapclient per buffer."""
    track = click_track(RATE, 1, seconds, period_s)
    with AudioSink() as sink, SnapcastGroup(sink, buffers_ms, bin_dir) as group:
        cpu_before, server_before = group.cpu_s(), group.server_cpu_s()
        sink.start_recording()
        group.play(track)
        recording = sink.stop_recording(settle_s=0.6)
        cpu_used = [b - a for a, b in zip(cpu_before, group.cpu_s(), strict=True)]
        server_s = group.server_cpu_s() - server_before
        logs = group.logs()
    resyncs = sum("full() &&" in line for line in logs.splitlines())
    notes = [
        f"snapserver buffer {SERVER_BUFFER_MS} ms (its default: the end-to-end latency); "
        f"server CPU {60 * server_s / seconds:.2f} s per minute; hard resyncs logged by the "
        f"clients: {resyncs}"
    ]
    cpu = [60 * c / seconds for c in cpu_used]
    return measured("Snapcast 0.26", buffers_ms, recording, seconds, period_s, cpu, 0, notes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--seconds", type=float, default=60.0, help="audio sent (default 60)")
    length.add_argument("--minutes", type=float, help="audio sent, in minutes")
    parser.add_argument("--buffers", default="40,150", help="each listener's --buffer-ms")
    parser.add_argument("--period-s", type=float, default=0.5, help="seconds between clicks")
    parser.add_argument("--delay-ms", type=int, help="passed to `appliance send`")
    parser.add_argument("--listener-arg", action="append", default=[], help="for both listeners")
    parser.add_argument("--no-single", action="store_true", help="skip the one-target run")
    parser.add_argument("--no-snapcast", action="store_true", help="skip the Snapcast run")
    parser.add_argument(
        "--snapcast-bin", type=Path, help="where snapserver and snapclient are (see above)"
    )
    args = parser.parse_args()
    seconds = args.minutes * 60 if args.minutes is not None else args.seconds
    try:
        buffers = tuple(int(b) for b in args.buffers.split(","))
    except ValueError:
        parser.error(f"--buffers must be numbers separated by commas, not {args.buffers!r}")
    sender_args = [] if args.delay_ms is None else ["--delay-ms", str(args.delay_ms)]
    print(
        f"{seconds:g} s of clicks every {args.period_s:g} s, 8000 Hz mono, RTP; "
        f"sender args {sender_args or 'none'}; listener args {args.listener_arg or 'none'}"
    )
    bin_dir = None if args.no_snapcast else snapcast_bin(args.snapcast_bin)
    if not args.no_snapcast and bin_dir is None:
        parser.error("no snapserver/snapclient (tests/snapcast_peer.py says how; or --no-snapcast)")
    started = time.monotonic()
    print(run(buffers, seconds, args.period_s, sender_args, args.listener_arg).line())
    if not args.no_single:
        # One target as a user sends to one speaker: no group delay, nothing synchronised.
        print(run(buffers[:1], seconds, args.period_s, [], args.listener_arg).line())
    if bin_dir is not None:
        print(run_snapcast(buffers, seconds, args.period_s, bin_dir).line())
    print(f"({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
