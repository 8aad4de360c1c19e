"""A one-line progress display for ``appliance send`` on a terminal (nothing when piped).

When the listener reports back, the line ends with what it says: ``| buffer 85 ms, lost 0``
(one such part per listener that reports, when sending to several).
"""

from __future__ import annotations

import time
from typing import TextIO

from appliance.sender.sender import SendReport

REFRESH_S = 0.25
BAR_WIDTH = 24


def clock_text(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60)
    return f"{int(minutes):02d}:{secs:04.1f}"


class ProgressLine:
    """Redraws ``[#####.....] 00:12.3 / 01:00.0 -> target`` at most four times a second."""

    def __init__(self, stream: TextIO, total_s: float | None, target: str) -> None:
        self._stream = stream
        self._total_s = total_s
        self._target = target
        self._last_draw = 0.0

    def update(self, report: SendReport, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_draw < REFRESH_S:
            return
        self._last_draw = now
        done = report.audio_s
        if self._total_s:
            filled = min(BAR_WIDTH, int(BAR_WIDTH * done / self._total_s))
            bar = "[" + "#" * filled + "." * (BAR_WIDTH - filled) + "] "
            text = f"{bar}{clock_text(done)} / {clock_text(self._total_s)} -> {self._target}"
        else:
            text = f"{clock_text(done)} -> {self._target}"
        heard = listener_text(report)
        if heard:
            text += f" | {heard}"
        self._stream.write("\r" + text + "\x1b[K")
        self._stream.flush()

    def note(self, line: str) -> None:
        """Print ``line`` on its own line; the progress line is redrawn at the next update."""
        self._stream.write("\r\x1b[K" + line + "\n")
        self._stream.flush()
        self._last_draw = 0.0

    def finish(self, report: SendReport) -> None:
        self.update(report, force=True)
        self._stream.write("\n")
        self._stream.flush()


def listener_text(report: SendReport) -> str:
    """``buffer 85 ms, lost 0`` for each live target that has reported, joined by ``; ``."""
    parts = []
    for state in report.targets:
        if state.live and state.last is not None:
            parts.append(f"buffer {state.last.buffer_ms} ms, lost {state.lost}")
    return "; ".join(parts)
