"""Draw ``images/playout.svg``: the playout buffer over an RTP stream through a bad network:
its depth, the adaptive latency target, concealed packets and the listener's state (not
collected by pytest).

    PYTHONPATH=.:tests python tests/plot_playout.py images/playout.svg

The listener plays into a WAV file (real-time paced, no sound card needed). A paced RTP sender
on 127.0.0.1 sends 8 s of the built-in speech through the impairment relay (tests/impair.py:
30 ms of delay +- 25 ms of jitter, 3 % of packets lost in bursts of 2 on average, seeded), and
stalls for 300 ms after 3 s, as Wi-Fi does, then sends what it held back at once. Sampled every
5 ms.
"""

from __future__ import annotations

import itertools
import socket
import sys
import tempfile
import threading
import time
import wave
from dataclasses import dataclass
from pathlib import Path

from impair import GilbertElliott, Impairment, ImpairmentRelay

from appliance.commands.demo import sample_path
from appliance.listener.listener import Listener, ListenerConfig
from appliance.listener.state import ListenerState
from appliance.wire.rtcp import bye
from appliance.wire.rtp import RtpPacket

SAMPLE_S = 0.005
WIDTH, HEIGHT = 860, 340
LEFT, RIGHT, TOP, BOTTOM = 60, 20, 40, 80
STATE_COLOURS = {
    ListenerState.WAITING: "#dddddd",
    ListenerState.BUFFERING: "#f6d365",
    ListenerState.PLAYING: "#8fd694",
    ListenerState.UNDERRUN: "#f28b82",
    ListenerState.DRAINING: "#a7c7e7",
}
IMPAIRMENT = Impairment(
    delay_ms=30, jitter_ms=25, burst=GilbertElliott.from_rate(0.03, mean_burst=2), seed=3
)
STALL_AT_S, STALL_S = 3.0, 0.3


@dataclass(frozen=True, slots=True)
class Sample:
    t: float
    depth_ms: float
    state: ListenerState
    target_ms: float
    concealed: int


def speech(seconds: float) -> bytes:
    with wave.open(str(sample_path())) as wav:
        pcm: bytes = wav.readframes(wav.getnframes())
    return (pcm * (int(seconds * 8000 * 2 / len(pcm)) + 1))[: int(seconds * 8000) * 2]


def send(pcm: bytes, address: tuple[str, int], bye_to: tuple[str, int]) -> None:
    big_endian = bytearray(pcm)
    big_endian[0::2], big_endian[1::2] = pcm[1::2], pcm[0::2]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        start = time.monotonic()
        for index, offset in enumerate(range(0, len(big_endian), 320)):
            due = start + index * 0.02
            if index * 0.02 >= STALL_AT_S:
                due = max(due, start + STALL_AT_S + STALL_S)
            time.sleep(max(0.0, due - time.monotonic()))
            packet = RtpPacket(
                payload_type=96, sequence=index, timestamp=index * 160, ssrc=0x5107,
                payload=bytes(big_endian[offset : offset + 320]), marker=index == 0,
            )
            sock.sendto(bytes(packet), address)
        time.sleep(0.3)
        sock.sendto(bye(0x5107), bye_to)


def record() -> list[Sample]:
    samples: list[Sample] = []
    with tempfile.TemporaryDirectory() as tmp:
        config = ListenerConfig(port=0, bind="127.0.0.1", output_file=Path(tmp) / "out.wav")
        with Listener(config) as listener:
            listener.start()
            buffer = listener.buffer
            started = time.monotonic()
            done = threading.Event()

            def sample() -> None:
                while not done.is_set():
                    samples.append(
                        Sample(
                            time.monotonic() - started,
                            buffer.depth * 1000 / buffer.format.rate,
                            listener.state_machine.state,
                            buffer.target_ms,
                            buffer.stats().concealed,
                        )
                    )
                    time.sleep(SAMPLE_S)

            sampler = threading.Thread(target=sample)
            sampler.start()
            time.sleep(0.2)
            target = ("127.0.0.1", listener.port)
            with ImpairmentRelay(target, IMPAIRMENT) as relay:
                send(speech(8.0), relay.address, target)
            listener.wait_session_played(timeout=10)
            time.sleep(0.2)
            done.set()
            sampler.join()
            print(listener.sessions[-1].end_line())
    return samples


def svg(samples: list[Sample]) -> str:
    t_max = samples[-1].t
    d_max = max(60.0, max(max(k.depth_ms, k.target_ms) for k in samples)) * 1.15
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(t: float) -> float:
        return LEFT + t / t_max * plot_w

    def y(d: float) -> float:
        return TOP + plot_h - d / d_max * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        'font-family="DejaVu Sans, sans-serif" font-size="12">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="{WIDTH / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">'
        "Playout buffer: RTP through 30 +- 25 ms of jitter, 3 % bursty loss, a 300 ms stall"
        "</text>",
    ]
    start = 0
    for i in range(1, len(samples) + 1):
        if i == len(samples) or samples[i].state != samples[start].state:
            state = samples[start].state
            end_t = samples[i].t if i < len(samples) else t_max
            colour = STATE_COLOURS.get(state, "#ffffff")
            parts.append(
                f'<rect x="{x(samples[start].t):.1f}" y="{TOP}" '
                f'width="{max(0.5, x(end_t) - x(samples[start].t)):.1f}" height="{plot_h}" '
                f'fill="{colour}" opacity="0.6"/>'
            )
            start = i
    points = " ".join(f"{x(k.t):.1f},{y(k.depth_ms):.1f}" for k in samples)
    parts.append(f'<polyline points="{points}" fill="none" stroke="#1f4e9a" stroke-width="2"/>')
    target = " ".join(f"{x(k.t):.1f},{y(k.target_ms):.1f}" for k in samples)
    parts.append(
        f'<polyline points="{target}" fill="none" stroke="#555" stroke-width="1.5" '
        'stroke-dasharray="5 3"/>'
    )
    for before, after in itertools.pairwise(samples):
        if after.concealed > before.concealed:
            parts.append(
                f'<line x1="{x(after.t):.1f}" y1="{TOP}" x2="{x(after.t):.1f}" y2="{TOP + 12}" '
                'stroke="#c0392b" stroke-width="2"/>'
            )
    parts.append(
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" '
        'stroke="#333"/>'
    )
    for tick in range(0, int(t_max) + 1):
        t = float(tick)
        parts.append(
            f'<text x="{x(t):.1f}" y="{TOP + plot_h + 16}" text-anchor="middle">{t:.1f} s</text>'
        )
    for d in range(0, int(d_max) + 1, 20):
        parts.append(
            f'<text x="{LEFT - 6}" y="{y(d) + 4:.1f}" text-anchor="end">{d} ms</text>'
        )
    legend_x = LEFT
    for state, colour in STATE_COLOURS.items():
        parts.append(
            f'<rect x="{legend_x}" y="{HEIGHT - 30}" width="14" height="14" fill="{colour}"/>'
            f'<text x="{legend_x + 18}" y="{HEIGHT - 19}">{state}</text>'
        )
        legend_x += 110
    parts.append(
        f'<text x="{LEFT}" y="{HEIGHT - 52}"><tspan fill="#1f4e9a">blue: audio held in the '
        'buffer (ms)</tspan>; <tspan fill="#555">dashed: the adaptive latency target</tspan>; '
        '<tspan fill="#c0392b">red ticks: audio concealed (lost or late packets)</tspan></text>'
        f'<text x="{LEFT}" y="{HEIGHT - 38}">bands: the listener\'s state. '
        "Generated by tests/plot_playout.py.</text>"
    )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else Path("images/playout.svg")
    out.write_text(svg(record()))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
