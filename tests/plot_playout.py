"""Draw ``images/playout.svg``: the playout buffer's depth and the listener's state over a
real stream that pauses for longer than the buffer (not collected by pytest).

    PYTHONPATH=. python tests/plot_playout.py images/playout.svg

The listener plays into a WAV file (real-time paced, no sound card needed); a sender on
127.0.0.1 sends 1.2 s of audio, pauses 0.4 s, then sends 1.2 s more. The buffer depth and the
state are sampled every 5 ms.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from pathlib import Path

from appliance.listener.listener import Listener, ListenerConfig
from appliance.listener.state import ListenerState
from appliance.sender.sender import Sender
from appliance.wire.raw import frame_pcm

SAMPLE_S = 0.005
WIDTH, HEIGHT = 760, 300
LEFT, RIGHT, TOP, BOTTOM = 60, 20, 40, 70
STATE_COLOURS = {
    ListenerState.WAITING: "#dddddd",
    ListenerState.BUFFERING: "#f6d365",
    ListenerState.PLAYING: "#8fd694",
    ListenerState.UNDERRUN: "#f28b82",
    ListenerState.DRAINING: "#a7c7e7",
}


def record() -> list[tuple[float, float, ListenerState]]:
    samples: list[tuple[float, float, ListenerState]] = []
    with tempfile.TemporaryDirectory() as tmp:
        config = ListenerConfig(port=0, bind="127.0.0.1", output_file=Path(tmp) / "out.wav")
        with Listener(config) as listener:
            listener.start()
            started = time.monotonic()
            done = threading.Event()

            def sample() -> None:
                while not done.is_set():
                    depth_ms = listener.buffer.depth * 1000 / listener.buffer.format.rate
                    state = listener.state_machine.state
                    samples.append((time.monotonic() - started, depth_ms, state))
                    time.sleep(SAMPLE_S)

            sampler = threading.Thread(target=sample)
            sampler.start()
            time.sleep(0.2)
            with Sender(("127.0.0.1", listener.port)) as sender:
                sender.send(frame_pcm([bytes(range(1, 241)) * 80]), end_of_stream=False)
                time.sleep(0.4)
                sender.send(frame_pcm([bytes(range(1, 241)) * 80]))
            listener.wait_session_played(timeout=10)
            time.sleep(0.2)
            done.set()
            sampler.join()
    return samples


def svg(samples: list[tuple[float, float, ListenerState]]) -> str:
    t_max = samples[-1][0]
    d_max = max(60.0, max(d for _, d, _ in samples)) * 1.2
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
        "Playout buffer over a stream that pauses for 400 ms (60 ms target)</text>",
    ]
    start = 0
    for i in range(1, len(samples) + 1):
        if i == len(samples) or samples[i][2] != samples[start][2]:
            state = samples[start][2]
            end_t = samples[i][0] if i < len(samples) else t_max
            colour = STATE_COLOURS.get(state, "#ffffff")
            parts.append(
                f'<rect x="{x(samples[start][0]):.1f}" y="{TOP}" '
                f'width="{max(0.5, x(end_t) - x(samples[start][0])):.1f}" height="{plot_h}" '
                f'fill="{colour}" opacity="0.6"/>'
            )
            start = i
    points = " ".join(f"{x(t):.1f},{y(d):.1f}" for t, d, _ in samples)
    parts.append(f'<polyline points="{points}" fill="none" stroke="#1f4e9a" stroke-width="2"/>')
    parts.append(
        f'<line x1="{LEFT}" y1="{y(60):.1f}" x2="{WIDTH - RIGHT}" y2="{y(60):.1f}" '
        'stroke="#555" stroke-dasharray="4 3"/>'
        f'<text x="{WIDTH - RIGHT - 4}" y="{y(60) - 4:.1f}" text-anchor="end" fill="#555">'
        "target 60 ms</text>"
    )
    parts.append(
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" '
        'stroke="#333"/>'
    )
    for tick in range(0, int(t_max * 2) + 1):
        t = tick / 2
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
        f'<text x="{LEFT}" y="{HEIGHT - 38}" fill="#1f4e9a">line: audio held in the buffer '
        "(ms); bands: the listener's state. Generated by tests/plot_playout.py.</text>"
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
