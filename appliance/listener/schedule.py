"""A stream's shared schedule in the playout buffer's terms (issue 12).

:class:`SessionSchedule` joins what the session knows: the time client's view of the sender
(its sender reports' RTP-to-clock mapping, the announced group delay, the estimate of its clock
against ours: :mod:`appliance.listener.timesync`) and the depacketizer's placing of RTP
timestamps at buffer positions. It answers the buffer's one question, "when must position P
be heard", in ``time.monotonic()`` seconds (:class:`~appliance.listener.playout.schedule.Schedule`).

Its state follows what has arrived: OFF while the sender announced no group (one target, a
plain RTP sender), PENDING while the group delay is not agreed (announced as 0) or our clock's
offset to the sender's is not measured yet, READY from then on. A sender that stops answering
later keeps the last estimate: the drift fitted keeps it good for minutes.

Example::

    schedule = SessionSchedule(time_client, depacketizer.timestamp_of)
    buffer.set_schedule(schedule)
"""

from __future__ import annotations

from collections.abc import Callable

from appliance.listener.playout.schedule import ScheduleState
from appliance.listener.timesync import TimeClient
from appliance.sync.clock import monotonic_s
from appliance.sync.schedule import Timeline


class SessionSchedule:
    """When each buffer position is due, from the session's time client."""

    def __init__(self, client: TimeClient, timestamp_of: Callable[[int], int]) -> None:
        self._client = client
        self._timestamp_of = timestamp_of
        self._timeline: Timeline | None = None

    @property
    def state(self) -> ScheduleState:
        client = self._client
        delay = client.group_delay_ns
        if delay is None or client.gave_up:
            return ScheduleState.OFF
        if delay == 0 or client.mapping is None or not client.settled:
            return ScheduleState.PENDING
        return ScheduleState.READY

    def due_s(self, position: int) -> float:
        client = self._client
        mapping, delay = client.mapping, client.group_delay_ns or 0
        timeline = self._timeline
        if mapping is None:
            raise RuntimeError("no sender report yet: the schedule is not ready")
        if timeline is None or timeline.mapping is not mapping or timeline.delay_ns != delay:
            timeline = self._timeline = Timeline(mapping, delay)
        local_ns = timeline.due_local_ns(self._timestamp_of(position), client.estimator)
        return monotonic_s(client.clock, local_ns)
