"""Log lines about traffic the listener refuses, limited so that a flood cannot flood the log.

A stranger sending 5,000 datagrams a second, or from 5,000 addresses, must not write 5,000
lines: each kind of notice is logged at most once per ``interval_s``; what came meanwhile is
counted and said in the next line of that kind, or by :meth:`NoticeLimiter.flush` once the
interval is over (the receiver's timer calls it), so nothing goes unsaid for long.

Example::

    notices = NoticeLimiter(log)
    notices.warning("ignored", "ignoring %s: session %d belongs to %s", who, number, owner)
    ...
    notices.flush(time.monotonic())   # "... and 4,999 more like it in the last 10 s"

The kinds are a fixed set of short strings chosen by the code, never taken from the network:
the table stays as small as the code that uses it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

NOTICE_INTERVAL_S = 10.0
"""At most one line of each kind this often."""


@dataclass(slots=True)
class _Kind:
    last_logged_at: float
    suppressed: int = 0
    level: int = logging.WARNING
    message: str = ""


class NoticeLimiter:
    """At most one log line per kind of notice per ``interval_s``; the rest counted."""

    def __init__(
        self,
        logger: logging.Logger,
        interval_s: float = NOTICE_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self._interval_s = interval_s
        self._clock = clock
        self._kinds: dict[str, _Kind] = {}

    def warning(self, kind: str, message: str, *args: object) -> None:
        self._notice(logging.WARNING, kind, message, args)

    def info(self, kind: str, message: str, *args: object) -> None:
        self._notice(logging.INFO, kind, message, args)

    def _notice(self, level: int, kind: str, message: str, args: tuple[object, ...]) -> None:
        now = self._clock()
        state = self._kinds.get(kind)
        if state is not None and now - state.last_logged_at < self._interval_s:
            state.suppressed += 1
            return
        text = message % args if args else message
        if state is not None and state.suppressed:
            text += f" (and {state.suppressed} more like it in the last {self._interval_s:g} s)"
        self._log.log(level, "%s", text)
        self._kinds[kind] = _Kind(now, 0, level, message)

    def flush(self, now: float | None = None) -> None:
        """Say what was counted and not yet said, for kinds whose interval is over."""
        now = self._clock() if now is None else now
        for kind, state in self._kinds.items():
            if state.suppressed and now - state.last_logged_at >= self._interval_s:
                self._log.log(
                    state.level,
                    "%d more like '%s' in the last %g s",
                    state.suppressed, kind, now - state.last_logged_at,
                )
                state.suppressed = 0
                state.last_logged_at = now

    def suppressed(self, kind: str) -> int:
        """Notices of ``kind`` counted since its last line (for tests and status)."""
        state = self._kinds.get(kind)
        return 0 if state is None else state.suppressed
