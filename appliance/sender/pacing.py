"""Real-time pacing: datagram k leaves at ``start + k * interval`` on the monotonic clock.

Scheduling against absolute deadlines, not "sleep 20 ms after each send", means per-packet
jitter never accumulates into drift. When the process stalls (laptop suspend, overload) and
falls more than ``max_lateness`` behind, catching up would flood the listener with a burst; the
schedule is re-anchored to "now" instead and the caller is told.

Example::

    pacer = Pacer(interval=0.020)
    for datagram in datagrams:
        pacer.wait()          # returns at this datagram's deadline
        sock.send(bytes(datagram))
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_INTERVAL_S = 0.02
"""One 20 ms packet (VoIP's ptime 20), unless the sender is told another packet time."""
DEFAULT_MAX_LATENESS_S = 0.1
"""Up to five 20 ms packets may go out back to back to catch up; beyond that, re-anchor."""
DEFAULT_SPIN_S = 0.001
"""The last stretch before a deadline is waited out by polling the clock, not by sleeping:
a sleeping thread wakes up to a few ms late on a busy machine, a polling one within
microseconds. It costs about 5% of one core (1 ms in every 20)."""


@dataclass(frozen=True, slots=True)
class Reanchor:
    """The schedule jumped because the sender fell ``lateness`` seconds behind."""

    packet_index: int
    lateness: float


class Pacer:
    def __init__(
        self,
        interval: float = DEFAULT_INTERVAL_S,
        max_lateness: float = DEFAULT_MAX_LATENESS_S,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        spin: float = DEFAULT_SPIN_S,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.interval = interval
        self.max_lateness = max_lateness
        self._clock = clock
        self._sleep = sleep
        self._spin = spin
        self._anchor: float | None = None
        self._anchor_index = 0
        self._index = 0
        self.reanchors: list[Reanchor] = []

    @property
    def packets_released(self) -> int:
        return self._index

    def deadline(self, index: int) -> float:
        """When packet ``index`` is due (the schedule starts at the first :meth:`wait`)."""
        assert self._anchor is not None, "the schedule starts at the first wait()"
        return self._anchor + (index - self._anchor_index) * self.interval

    def wait(self) -> Reanchor | None:
        """Sleep until the next packet's deadline. Returns a Reanchor if the schedule jumped."""
        now = self._clock()
        if self._anchor is None:
            self._anchor = now
        due = self.deadline(self._index)
        event = None
        if now - due > self.max_lateness:
            event = Reanchor(self._index, now - due)
            self.reanchors.append(event)
            self._anchor, self._anchor_index = now, self._index
        else:
            self._wait_until(due, now)
        self._index += 1
        return event

    def _wait_until(self, due: float, now: float) -> None:
        while now < due:
            remaining = due - now
            self._sleep(remaining - self._spin if remaining > self._spin else 0)
            now = self._clock()

    def elapsed_schedule(self) -> float:
        """Audio time released so far according to the schedule, in seconds."""
        return self._index * self.interval


class LivePacer(Pacer):
    """No schedule: each packet goes as soon as it exists. For a live source (an input device,
    :attr:`~appliance.sender.source.PcmSource.live`), whose own clock already paces it: waiting
    for deadlines on the monotonic clock as well would add delay, and as the two clocks drift
    apart the delay would grow (or the sender would report stalls that are only drift)."""

    def wait(self) -> Reanchor | None:
        self._index += 1
        return None
