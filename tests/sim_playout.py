"""Simulate the listener's playout on the benchmark's loss traces, on a virtual clock (a tuning
tool, not a test; not collected by pytest).

    .venv/bin/python tests/sim_playout.py [--rates 8000,16000] [--conditions 0,1,5,10,5b,10b]
        [--repeats 3] [--buffer-ms 90] [--verbose]

The real benchmark (``tests/bench_playout.py``) takes 12 minutes and wants an idle machine;
this takes seconds and is deterministic. It feeds the same speech, cut into the same 20 ms
packets, through the same impairment fates (``impair.plan``: same delays, losses and seeds as
the benchmark's relays) into the listener's own :class:`PlayoutBuffer` and
:class:`DriftControl`, with every arrival and every 30 ms read at its exact time on a fake
clock, and scores what was read with PESQ against what was sent. It scores GStreamer's
behaviour the same way: the packets that arrived, in order, with the lost ones cut out.

On the built-in sample the figures come within about 0.05 PESQ of the real benchmark's (the
real run adds the machine's own scheduling jitter: a few late packets). Needs ``pesq``.

``--alternatives`` also scores, on the same traces, what other receivers would play: the lost
packets as silence (GStreamer's output on the stream's timeline), and the lost packets cut out
with their time given back, as silence, in the next pause of at least 100 ms (a receiver that
skips ahead and waits in the pause). PESQ favours the cut-out: its alignment finds each shift,
so a cut costs little, while any audio put in the gap is compared with what was lost.
"""

from __future__ import annotations

import argparse
import heapq
import importlib
import wave
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import soxr  # type: ignore[import-untyped]  # no stubs in python-soxr 1.1
from impair import GilbertElliott, Impairment, plan

from appliance.audio.format import AudioFormat
from appliance.commands.demo import sample_path
from appliance.listener.defaults import DEFAULT_BUFFER_MS, DEFAULT_PERIOD_MS
from appliance.listener.depacketizer import Frame
from appliance.listener.playout.buffer import Phase, PlayoutBuffer
from appliance.listener.playout.drift import DriftControl
from appliance.listener.playout.latency import LatencyTarget

Samples = npt.NDArray[np.int16]

CONDITIONS = {  # label: (independent loss, bursty loss); the benchmark's order sets the seeds
    "0": (0.0, 0.0),
    "1": (0.01, 0.0),
    "5": (0.05, 0.0),
    "10": (0.10, 0.0),
    "5b": (0.0, 0.05),
    "10b": (0.0, 0.10),
}
SEED = 7
SEED_STRIDE = 100
"""As in the benchmark: condition ``i``'s run ``k`` has seed ``SEED + i + SEED_STRIDE * k``."""
DELAY_MS = JITTER_MS = 30.0
MEAN_BURST = 3
PACKET_S = 0.02
SECONDS = 16.0


PAUSE_S = 0.1
"""``--alternatives``: a pause is a run of exact zeros this long (the sample's are digital)."""


@dataclass
class Run:
    ours: float
    cut: float
    exact: bool
    latency_ms: float
    text: str
    alternatives: dict[str, float]


def speech(rate: int, seconds: float) -> Samples:
    """The built-in sample repeated to ``seconds``, at ``rate`` (upsampled from 8 kHz)."""
    with wave.open(str(sample_path())) as wav:
        sample = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    n = round(seconds * 8000)
    x = np.tile(sample, -(-n // len(sample)))[:n]
    if rate != 8000:
        up = soxr.resample(x.astype(np.float32), 8000, rate)
        x = np.clip(np.rint(up), -32768, 32767).astype(np.int16)
    return x


def trimmed(x: Samples) -> Samples:
    nonzero = np.flatnonzero(x)
    return x[nonzero[0] : nonzero[-1] + 1] if nonzero.size else x


def pause_middles(x: Samples, rate: int) -> list[int]:
    """The middle of each run of at least ``PAUSE_S`` of exact zeros."""
    edges = np.diff(np.concatenate([[0], (x == 0).astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [int(a + b) // 2 for a, b in zip(starts, ends, strict=True) if b - a >= rate * PAUSE_S]


def cut_and_repaid(sent: Samples, gaps: list[tuple[int, int]], rate: int) -> Samples:
    """``sent`` with each gap cut out and its length put back as silence in the next pause."""
    events = sorted([(a, b) for a, b in gaps] + [(m, -1) for m in pause_middles(sent, rate)])
    pieces, at, owed = [], 0, 0
    for where, end in events:
        if where < at:
            continue  # a pause or a gap inside a gap already cut
        pieces.append(sent[at:where])
        if end >= 0:  # a gap: skip it
            at, owed = end, owed + end - where
        else:  # a pause: repay
            pieces.append(np.zeros(owed, dtype=np.int16))
            at, owed = where, 0
    pieces += [sent[at:], np.zeros(owed, dtype=np.int16)]
    return np.concatenate(pieces)


def alternatives(rate: int, packets: list[Samples], lost: list[bool]) -> dict[str, float]:
    """PESQ of what other receivers would play (see ``--alternatives``)."""
    pesq = importlib.import_module("pesq").pesq
    mode = "nb" if rate == 8000 else "wb"
    sent = np.concatenate(packets)
    reference = trimmed(sent).astype(np.float32)
    n = packets[0].size
    pairs = zip(packets, lost, strict=True)
    silent = np.concatenate([np.zeros_like(p) if gone else p for p, gone in pairs])
    gaps = [(i * n, (i + 1) * n) for i, gone in enumerate(lost) if gone]
    repaid = cut_and_repaid(sent, gaps, rate)
    return {
        name: float(pesq(rate, reference, trimmed(x).astype(np.float32), mode))
        for name, x in (("silence", silent), ("cut, repaid in pauses", repaid))
    }


def run(rate: int, label: str, seed: int, buffer_ms: int, period_ms: int, others: bool) -> Run:
    pesq = importlib.import_module("pesq").pesq  # the bench extra (pip install pesq)
    sent = speech(rate, SECONDS)
    n = round(rate * PACKET_S)
    packets = [sent[i : i + n] for i in range(0, len(sent) - n + 1, n)]
    loss, bursty = CONDITIONS[label]
    impairment = Impairment(
        delay_ms=DELAY_MS,
        jitter_ms=JITTER_MS,
        loss=loss,
        burst=GilbertElliott.from_rate(bursty, MEAN_BURST) if bursty else None,
        seed=seed,
    )
    fates = plan(impairment, len(packets))
    fmt = AudioFormat(rate, 1)
    now = [0.0]
    floor = max(20, period_ms + 10)
    latency = LatencyTarget(buffer_ms, floor_ms=floor, ceiling_ms=200)
    buffer = PlayoutBuffer(buffer_ms, 120, 100, fmt, latency, clock=lambda: now[0])
    buffer.begin_stream(fmt)
    drift = DriftControl(buffer)
    arrivals: list[tuple[float, int]] = []
    for index, fate in enumerate(fates):
        for delay in fate.delays_ms:
            heapq.heappush(arrivals, (index * PACKET_S + delay / 1000, index))
    last = max(t for t, _ in arrivals)
    read_at = arrivals[0][0]
    period = round(rate * period_ms / 1000)
    out: list[Samples] = []
    depths: list[int] = []
    ended = False
    while True:
        while arrivals and arrivals[0][0] <= read_at:
            now[0], index = heapq.heappop(arrivals)
            buffer.push(Frame(index * n, packets[index].tobytes(), fmt))
        if not arrivals and not ended and read_at > last + 0.05:
            buffer.end_stream()
            ended = True
        now[0] = read_at
        out.append(np.frombuffer(drift.read(period), dtype=np.int16))
        depths.append(buffer.depth)
        if ended and buffer.phase is Phase.WAITING:
            break
        read_at += period_ms / 1000
    played, reference = trimmed(np.concatenate(out)), trimmed(np.concatenate(packets))
    cut = trimmed(np.concatenate([p for p, f in zip(packets, fates, strict=True) if f.delays_ms]))
    mode = "nb" if rate == 8000 else "wb"
    ours = float(pesq(rate, reference.astype(np.float32), played.astype(np.float32), mode))
    theirs = float(pesq(rate, reference.astype(np.float32), cut.astype(np.float32), mode))
    stats = buffer.stats()
    latency_ms = float(np.mean(depths)) * 1000 / rate + period_ms
    text = (
        f"  {rate} Hz {label}, seed {seed}: ours {ours:.2f}, cut {theirs:.2f}; "
        f"length {(len(played) - len(reference)) * 1000 / rate:+.0f} ms; "
        f"concealed {stats.concealed * 1000 / rate:.0f} ms in {stats.concealments}; "
        f"late {stats.late_frames}; underruns {stats.underruns}; target {buffer.target_ms:.0f} ms"
    )
    exact = len(played) == len(reference) and bool(np.array_equal(played, reference))
    lost = [not f.delays_ms for f in fates]
    return Run(
        ours, theirs, exact, latency_ms, text, alternatives(rate, packets, lost) if others else {}
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rates", default="8000,16000")
    parser.add_argument("--conditions", default=",".join(CONDITIONS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--buffer-ms", type=int, default=DEFAULT_BUFFER_MS)
    parser.add_argument("--period-ms", type=int, default=DEFAULT_PERIOD_MS)
    parser.add_argument("--verbose", action="store_true", help="a line per run")
    parser.add_argument(
        "--alternatives", action="store_true", help="also score silence and cut-and-repaid"
    )
    args = parser.parse_args()
    labels = list(CONDITIONS)
    for rate in (int(r) for r in args.rates.split(",")):
        for label in args.conditions.split(","):
            runs = [
                run(rate, label, SEED + labels.index(label) + SEED_STRIDE * k, args.buffer_ms,
                    args.period_ms, args.alternatives)
                for k in range(args.repeats)
            ]  # fmt: skip
            if args.verbose:
                for r in runs:
                    print(r.text)
            ours = float(np.mean([r.ours for r in runs]))
            cut = float(np.mean([r.cut for r in runs]))
            exact = sum(r.exact for r in runs)
            latency = float(np.mean([r.latency_ms for r in runs]))
            print(
                f"{rate} Hz {label:>3}: PESQ ours {ours:.2f}, cut-out {cut:.2f} "
                f"({ours - cut:+.2f}); bit-exact {exact}/{len(runs)}; latency {latency:.0f} ms",
                flush=True,
            )
            for name in runs[0].alternatives:
                score = float(np.mean([r.alternatives[name] for r in runs]))
                print(f"    {name}: {score:.2f} ({ours - score:+.2f})")


if __name__ == "__main__":
    main()
