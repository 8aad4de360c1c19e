"""Clocks as integers of nanoseconds, injectable so that tests and benchmarks can skew them.

Every time in :mod:`appliance.sync` is an ``int`` of nanoseconds on some clock: no floats, so
that the scheduling arithmetic is exact and a day of nanoseconds (8.6e13) loses nothing.

Example::

    sender_clock = SkewedClock(MonotonicClock(), offset_ns=37 * SECOND_NS, ppm=300)
    listener_clock = MonotonicClock()
    truth = sender_clock.at(listener_clock.now_ns()) - listener_clock.now_ns()   # ~37 s
"""

from __future__ import annotations

import time
from typing import Protocol

SECOND_NS = 1_000_000_000
MS_NS = 1_000_000
PPM = 1_000_000


class Clock(Protocol):
    """A clock that only goes forward (or stands still)."""

    def now_ns(self) -> int: ...


class MonotonicClock:
    """``time.monotonic_ns()``: what both ends use for real. Never the wall clock: a Pi
    without a real-time clock boots with a wrong date, and NTP steps it later."""

    def now_ns(self) -> int:
        return time.monotonic_ns()


class ManualClock:
    """A clock that moves only when told (tests)."""

    def __init__(self, start_ns: int = 0) -> None:
        self._now = start_ns

    def now_ns(self) -> int:
        return self._now

    def set(self, now_ns: int) -> None:
        if now_ns < self._now:
            raise ValueError(f"a clock does not go back: {now_ns} < {self._now}")
        self._now = now_ns

    def advance(self, ns: int) -> None:
        self.set(self._now + ns)


class SkewedClock:
    """``base`` read ``offset_ns`` ahead and running ``ppm`` parts per million fast (slow if
    negative), counted from the moment it is made: a sender's clock as a listener sees it.

    ``at(base_ns)`` is what it reads when ``base`` reads ``base_ns``: the truth an estimate is
    judged against, exactly (integer arithmetic, rounded to the nearest ns).
    """

    def __init__(self, base: Clock, offset_ns: int, ppm: float) -> None:
        self.base = base
        self.offset_ns = offset_ns
        self.ppm = ppm
        self.anchor_ns = base.now_ns()

    def at(self, base_ns: int) -> int:
        elapsed = base_ns - self.anchor_ns
        return base_ns + self.offset_ns + round(elapsed * self.ppm / PPM)

    def now_ns(self) -> int:
        return self.at(self.base.now_ns())

    def base_of(self, skewed_ns: int) -> int:
        """What ``base`` reads when this clock reads ``skewed_ns`` (the inverse of :meth:`at`)."""
        elapsed = (skewed_ns - self.offset_ns - self.anchor_ns) / (1 + self.ppm / PPM)
        return self.anchor_ns + round(elapsed)


def monotonic_s(clock: Clock, clock_ns: int) -> float:
    """``clock_ns`` on ``clock`` as ``time.monotonic()`` seconds (what audio outputs tell
    their DAC times on). Exact for the monotonic clock and for a skewed one over it; for any
    other, by their distance now."""
    if isinstance(clock, MonotonicClock):
        return clock_ns / SECOND_NS
    if isinstance(clock, SkewedClock) and isinstance(clock.base, MonotonicClock):
        return clock.base_of(clock_ns) / SECOND_NS
    return (clock_ns - clock.now_ns() + time.monotonic_ns()) / SECOND_NS
