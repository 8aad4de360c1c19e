"""The listener's side of the shared timeline (issue 12): a time client per RTP session.

Once the session's source has sent a sender report (RTCP SR: it keeps a timeline; an
``appliance send`` sends one as soon as it hears the listener's first reply), it asks the
source for the time (``TIMQ``, :mod:`appliance.wire.timesync`) by the path replies take
(:mod:`appliance.listener.feedback`: the listener's socket, SRTCP with a key): every
:data:`FIRST_INTERVAL_NS` until the estimate is :attr:`~TimeClient.settled` and a group's
delay agreed (a tenth of a second on a LAN: a group's stream waits for both), every
:data:`FAST_INTERVAL_NS` until :data:`FAST_PERIOD_NS`, then every :data:`SLOW_INTERVAL_NS`.
Answers (``TIMR``) feed a :class:`~appliance.sync.offset.ClockEstimator`; the sender's
reports give the
:class:`~appliance.sync.schedule.RtpClockMapping` of the stream, ``APGD`` the group delay.

No thread of its own: :meth:`TimeClient.poll` is called after each datagram of the session
and on the receiver's session timer (4 times a second), under the receiver's lock. A source
that sends no sender reports (the seed, a plain RTP sender) is never asked; one that does but
never answers (ffmpeg, GStreamer) is asked :data:`MAX_UNANSWERED` times, then no more, without
a log line; one that has answered is asked on for the whole session.

Example::

    client = TimeClient(feedback.send_datagram, source, feedback.ssrc, rate=48000)
    client.poll(clock.now_ns())                 # sends a request when one is due
    client.receive(parse_compound(datagram))    # TIMR, SR, APGD
    if client.estimator.ready: ...
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from appliance.listener.feedback import Address, SendReply
from appliance.sync.clock import MS_NS, SECOND_NS, Clock, MonotonicClock
from appliance.sync.offset import ClockEstimator
from appliance.sync.schedule import RtpClockMapping, Timeline
from appliance.wire.rtcp import RtcpPacket, SenderReport
from appliance.wire.rtp import InvalidPacket
from appliance.wire.timesync import (
    GroupDelay,
    TimeRequest,
    TimeResponse,
    compound,
    time_messages,
)

log = logging.getLogger(__name__)

FIRST_INTERVAL_NS = 20 * MS_NS
"""Until the estimate is ready (a few answers): a stream in a group waits for it to start."""
FAST_INTERVAL_NS = 250 * MS_NS
FAST_PERIOD_NS = 2 * SECOND_NS
SLOW_INTERVAL_NS = SECOND_NS
MAX_UNANSWERED = 5
"""Requests to a source that has never answered before giving up on it."""
SETTLED_ERROR_NS = 2 * MS_NS
SETTLED_SAMPLES = 16
"""The estimate is good enough to play to (:attr:`TimeClient.settled`) once its error bound is
this small, or, on a path whose round trip is never that quick (Wi-Fi), once this many
exchanges were made: the quickest of them sets the offset."""
MAX_OUTSTANDING = 8
"""Requests remembered while unanswered (older ones are forgotten: their answers are late)."""


@dataclass(frozen=True, slots=True)
class SyncFigures:
    """What a session measured of its sender's clock, for the log and status."""

    offset_ms: float | None
    """Sender's clock minus ours; None if never measured."""
    error_ms: float | None
    drift_ppm: float | None
    group_delay_ms: float | None
    """Announced by the sender; None if it announced none (0: not agreed yet)."""
    schedule_error_ms: float | None = None
    """How late (>0) or early the listener plays against the shared schedule, smoothed; None
    while it does not play to the schedule."""

    def describe(self) -> str:
        """``"offset to sender +37000.123 ms (+-0.041 ms, drift +300 ppm), group delay 80
        ms"``; '' when nothing was measured or announced."""
        parts = []
        if self.offset_ms is not None:
            parts.append(
                f"offset to sender {self.offset_ms:+.3f} ms (+-{self.error_ms or 0:.3f} ms, "
                f"drift {self.drift_ppm or 0:+.0f} ppm)"
            )
        if self.group_delay_ms is not None:
            parts.append(f"group delay {self.group_delay_ms:g} ms")
        if self.schedule_error_ms is not None:
            parts.append(f"{self.schedule_error_ms:+.2f} ms off the schedule")
        return ", ".join(parts)


class TimeClient:
    """One RTP session's time exchange with its source (see the module docstring)."""

    schedule_error_ms: Callable[[], float | None] | None = None
    """How far off the schedule the session plays (the playout's measure), for
    :meth:`figures`; set by whoever plays the stream."""

    def __init__(
        self,
        send: SendReply,
        source: Address,
        ssrc: int,
        *,
        rate: int,
        clock: Clock | None = None,
        estimator: ClockEstimator | None = None,
        min_delay: Callable[[], int | None] | None = None,
    ) -> None:
        """``min_delay()``: the smallest group delay the listener can meet, in ns (None: not
        known yet), told to the sender with each request."""
        self._send = send
        self._min_delay = min_delay
        self.source = source
        self.ssrc = ssrc
        """The listener's SSRC (its reports' sender)."""
        self.rate = rate
        self.clock: Clock = clock or MonotonicClock()
        self.estimator = estimator or ClockEstimator()
        self.mapping: RtpClockMapping | None = None
        """From the sender's latest report: when each RTP timestamp is due on its clock."""
        self.group_delay_ns: int | None = None
        self.sent = 0
        self.answered = 0
        self.stray = 0
        """Answers to no request of ours (late beyond the outstanding ones, or forged)."""
        self.reports = 0
        """Sender reports received."""
        self._outstanding: dict[int, int] = {}
        self._sequence = 0
        self._started_ns: int | None = None
        self._next_ns: int | None = None
        self.gave_up = False
        """The source never answered: no more requests."""

    # -- requests ---------------------------------------------------------------------------

    def poll(self, now_ns: int | None = None) -> None:
        """Send a request if one is due (cheap when not)."""
        if self.gave_up or self.reports == 0:
            return
        now = self.clock.now_ns() if now_ns is None else now_ns
        if self._next_ns is not None and now < self._next_ns:
            return
        if self._started_ns is None:
            self._started_ns = now
        if self.answered == 0 and self.sent >= MAX_UNANSWERED:
            self.gave_up = True
            log.debug("%s:%d never answered a time request: not asking again", *self.source)
            return
        if not self.settled or self.group_delay_ns == 0:
            # A group's stream waits for both: our clock's offset, and the delay the sender
            # agrees from what each listener says it can meet (said with every request).
            interval = FIRST_INTERVAL_NS
        elif now - self._started_ns < FAST_PERIOD_NS:
            interval = FAST_INTERVAL_NS
        else:
            interval = SLOW_INTERVAL_NS
        self._next_ns = now + interval
        self._request()

    def _request(self) -> None:
        self._sequence = (self._sequence + 1) % (1 << 32)
        if len(self._outstanding) >= MAX_OUTSTANDING:
            del self._outstanding[next(iter(self._outstanding))]
        need_ns = None if self._min_delay is None else self._min_delay()
        need_us = 0 if need_ns is None else min(-(-need_ns // 1000), (1 << 32) - 1)
        t1 = self.clock.now_ns()  # last, just before it leaves
        request = TimeRequest(self.ssrc, self._sequence, t1 % (1 << 64), max(0, need_us))
        self._outstanding[self._sequence] = request.t1_ns
        self.sent += 1
        self._send(compound(self.ssrc, request), self.source)

    # -- what the source sends ------------------------------------------------------------

    def receive(self, packets: list[RtcpPacket], received_ns: int | None = None) -> None:
        """Take what concerns the timeline from one of the source's RTCP compounds."""
        t4 = self.clock.now_ns() if received_ns is None else received_ns
        try:
            messages = time_messages(packets)
        except InvalidPacket as error:
            log.debug("unreadable time message from %s:%d: %s", *self.source, error)
            return
        for message in messages:
            if isinstance(message, TimeResponse):
                self._response(message, t4)
            elif isinstance(message, GroupDelay):
                self.group_delay_ns = message.delay_ns
        for packet in packets:
            if isinstance(packet, SenderReport):
                self.reports += 1
                self.mapping = RtpClockMapping.from_ntp(
                    packet.ntp_timestamp, packet.rtp_timestamp, self.rate
                )
                if self.reports == 1:
                    self.poll(t4)  # the source keeps a timeline: ask at once

    def _response(self, response: TimeResponse, t4: int) -> None:
        t1 = self._outstanding.get(response.sequence)
        if t1 is None or t1 != response.t1_ns:
            self.stray += 1
            return
        del self._outstanding[response.sequence]
        self.answered += 1
        self.estimator.add(t1, response.t2_ns, response.t3_ns, t4)

    # -- what it knows ------------------------------------------------------------------------

    @property
    def settled(self) -> bool:
        """The clock estimate is good enough to play to (see :data:`SETTLED_SAMPLES`)."""
        estimator = self.estimator
        return estimator.ready and (
            estimator.error_ns <= SETTLED_ERROR_NS or estimator.samples >= SETTLED_SAMPLES
        )

    @property
    def timeline(self) -> Timeline | None:
        """The stream's schedule once a sender report came (the delay 0 if none announced)."""
        if self.mapping is None:
            return None
        return Timeline(self.mapping, self.group_delay_ns or 0)

    def figures(self) -> SyncFigures:
        estimator = self.estimator
        measured = estimator.ready
        return SyncFigures(
            offset_ms=estimator.offset_ns / MS_NS if measured else None,
            error_ms=estimator.error_ns / MS_NS if measured else None,
            drift_ppm=estimator.drift_ppm if measured else None,
            group_delay_ms=None if self.group_delay_ns is None else self.group_delay_ns / MS_NS,
            schedule_error_ms=None if self.schedule_error_ms is None else self.schedule_error_ms(),
        )
