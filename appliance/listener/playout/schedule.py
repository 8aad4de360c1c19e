"""What the playout buffer needs of a shared schedule (issue 12): when each position is due.

Several listeners play one stream in step by each playing every sample when the group's
schedule says (the sender's timeline plus the group delay, converted to the listener's own
clock: :mod:`appliance.listener.schedule`). The buffer sees only this narrow view of it, in
its own terms: buffer positions in, ``time.monotonic()`` seconds out (the clock PortAudio's DAC
times are on), so that the playout knows nothing of RTP, RTCP or clock estimation.

A schedule is :attr:`ScheduleState.OFF` for a stream that has none (one target, a plain RTP
sender, the raw wire): the buffer then plays as it always has. :attr:`~ScheduleState.PENDING`
while the sender has announced a group but the delay is not agreed or the clock not measured
yet: the buffer holds the stream's start (for at most :data:`MAX_HOLD_S`). :attr:`READY`: it
starts, and rejoins after an underrun, exactly when the schedule says, and measures how far
off it plays.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

MAX_HOLD_S = 2.0
"""A stream whose schedule is still pending this long after it began starts unsynchronised
(the sender's group never agreed, or its clock never answered): late but not silent."""


class ScheduleState(StrEnum):
    OFF = "off"
    PENDING = "pending"
    READY = "ready"


class Schedule(Protocol):
    @property
    def state(self) -> ScheduleState: ...

    def due_s(self, position: int) -> float:
        """When the sample frame at buffer ``position`` must be heard, in
        ``time.monotonic()`` seconds (only meaningful while :attr:`state` is READY)."""
        ...
