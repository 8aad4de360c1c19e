"""The sender's side of the shared timeline (issue 12): it answers the listeners' time
requests and tells them when each sample is due.

* A time request (``TIMQ``, :mod:`appliance.wire.timesync`) is answered at once with ``TIMR``:
  ``t2`` is the sender's clock when the request was read off the socket, ``t3`` its clock just
  before the answer leaves.
* An appliance listener (one that replied with its ``APLR`` report, or asked for the time) gets
  an RTCP sender report (RFC 3550 section 6.4.1) at once and then every
  :data:`REPORT_INTERVAL_NS`:
  the RTP timestamp of the latest packet and the instant its pacing schedule made it due, with
  the packet and octet counts sent to it; and, when a group delay is set, an ``APGD`` packet
  with it. The first report is what starts the listener's time requests. Receivers that do
  neither (ffmpeg, GStreamer, the seed's client) get no reports, so nothing changes for them.

The sender's clock is a :class:`~appliance.sync.clock.Clock` of monotonic nanoseconds, never
the wall clock. The sender report's "NTP" field carries that clock in NTP's 32.32 format
(:func:`~appliance.sync.schedule.ns_to_ntp`): seconds since the clock's arbitrary zero, not
since 1900. Only the listeners' time exchange gives it meaning, which is all they need; an
RFC 3550 receiver that reads it as wall time only misreads the report's age (LSR/DLSR still
work, they echo the field).

The group delay is a number given to :class:`TimeServer` (``appliance send --delay-ms``);
finding the smallest one every listener can meet is the seam for what comes next: set
:attr:`TimeServer.group_delay_us` from the listeners' replies.
"""

from __future__ import annotations

import logging
import socket

from appliance.sync.clock import Clock
from appliance.sync.schedule import ns_to_ntp
from appliance.wire.rtcp import (
    RtcpPacket,
    SenderReport,
    cname_sdes,
    is_rtcp,
    pack_compound,
    parse_compound,
)
from appliance.wire.rtp import InvalidPacket
from appliance.wire.timesync import GroupDelay, TimeRequest, TimeResponse, compound, time_messages

log = logging.getLogger(__name__)

REPORT_INTERVAL_NS = 1_000_000_000
"""Sender reports once a second (and at once to a listener that starts asking)."""
_U32 = 1 << 32


class TimeServer:
    """Answers time requests and builds sender reports for one RTP stream (SSRC ``ssrc``)."""

    def __init__(
        self,
        clock: Clock,
        ssrc: int,
        *,
        group_delay_us: int | None = None,
        cname: str | None = None,
    ) -> None:
        self.clock = clock
        self.ssrc = ssrc
        self.group_delay_us = group_delay_us
        """The playout delay announced to the group (None: none announced)."""
        self.cname = cname or f"appliance-send@{socket.gethostname()}"[:255]
        self.answered = 0
        """Time requests answered."""
        self.reports = 0
        """Sender reports built."""
        self._joined: set[int] = set()
        self._latest: tuple[int, int] | None = None
        self._next_report_ns: int | None = None

    # -- time requests -----------------------------------------------------------------------

    def requests(self, data: bytes) -> list[TimeRequest]:
        """The time requests in an (unprotected) datagram from a listener; none if it holds
        none, or is not RTCP we can read."""
        if not is_rtcp(data):
            return []
        try:
            return [m for m in time_messages(parse_compound(data)) if isinstance(m, TimeRequest)]
        except InvalidPacket:
            return []

    def answer(self, request: TimeRequest, received_ns: int) -> bytes:
        """The ``TIMR`` compound for ``request`` read at ``received_ns``; ``t3`` is read last,
        just before the caller sends it."""
        self.answered += 1
        t3 = self.clock.now_ns()
        response = TimeResponse(
            self.ssrc, request.sequence, request.t1_ns, received_ns % (1 << 64), t3 % (1 << 64)
        )
        return compound(self.ssrc, response)

    def join(self, target: int) -> bool:
        """Target ``target`` is an appliance listener: it follows the timeline from now on.
        True the first time (it should get a sender report at once)."""
        if target in self._joined:
            return False
        self._joined.add(target)
        return True

    @property
    def joined(self) -> frozenset[int]:
        """The targets that follow the timeline (they get sender reports)."""
        return frozenset(self._joined)

    # -- sender reports ----------------------------------------------------------------------

    def sent(self, due_ns: int, rtp_timestamp: int) -> None:
        """A packet whose first sample has RTP timestamp ``rtp_timestamp`` left, due at
        ``due_ns`` by the pacing (the sender's clock)."""
        self._latest = (due_ns, rtp_timestamp)

    def reports_due(self, now_ns: int) -> bool:
        """Time for the periodic sender reports (to every joined target)."""
        if not self._joined or self._latest is None:
            return False
        if self._next_report_ns is not None and now_ns < self._next_report_ns:
            return False
        self._next_report_ns = now_ns + REPORT_INTERVAL_NS
        return True

    def report(self, packets: int, octets: int) -> bytes | None:
        """SR (+ SDES CNAME + APGD if a delay is set) for the latest packet, with the counts
        sent to one target; None before the first packet."""
        if self._latest is None:
            return None
        due_ns, rtp_timestamp = self._latest
        self.reports += 1
        rtcp: list[RtcpPacket] = [
            SenderReport(
                self.ssrc, ns_to_ntp(due_ns), rtp_timestamp, packets % _U32, octets % _U32
            ),
            cname_sdes(self.ssrc, self.cname),
        ]
        if self.group_delay_us is not None:
            rtcp.append(GroupDelay(self.ssrc, self.group_delay_us).app())
        return pack_compound(rtcp)
