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

The group delay is either given (``appliance send --delay-ms``) or **agreed** when the stream
goes to several targets: every listener says in its time requests the smallest delay it can
meet (its latency target, its output's latency, ...); the group's is the largest of them plus
:data:`AGREE_MARGIN_US`, rounded up to a millisecond, once every target has said, or every
target that joined the timeline by :data:`JOIN_WAIT_NS` (the others are not appliance
listeners), or at the latest :data:`AGREE_TIMEOUT_NS` after the first packet
(:data:`DEFAULT_GROUP_DELAY_MS` if none said); and at least the time that took plus
:data:`AGREE_REACTION_US`, so that the listeners, holding the stream's start meanwhile, lose
none of it. Until then the reports announce 0 and
the listeners wait. Once agreed it never changes for the stream: moving it would shift every
listener already playing. One target and no ``--delay-ms``: no group, nothing announced.
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
AGREE_TIMEOUT_NS = 1_000_000_000
"""How long after the first packet the group waits for every target to say what it can meet
(a target that is no appliance listener, or a silent one, never says)."""
AGREE_MARGIN_US = 5_000
"""Added to the largest need: what a listener says is measured (its output's latency over its
first callbacks), and measures move a little (by a few ms, seen here)."""
AGREE_REACTION_US = 200_000
"""The group delay is at least the time agreeing took plus this: a listener hears the delay (a
ms on a LAN), its clock estimate settles (a few exchanges 20 ms apart, if not yet), its next
callback comes (a period or two: PortAudio's come in pairs here) and plays what is due an
output latency later (up to 80 ms through PulseAudio here). 120 ms lost 10-20 ms of a
stream's start in the rig; less, and the first samples are due before any listener can play
them (they waited for the delay with the start in hand), and are lost."""
JOIN_WAIT_NS = 150_000_000
"""An appliance listener replies at once to a stream's first packet (it joins the timeline):
this long after the first packet, the group is every target that joined, and the delay is
agreed as soon as each of those has said its need. The others (ffmpeg, GStreamer, the seed's
client) never will; waiting :data:`AGREE_TIMEOUT_NS` for them would make the listeners lose
that much of the stream's start."""
DEFAULT_GROUP_DELAY_MS = 250
"""The group's delay when no listener said what it can meet in time (none is ours)."""
_U32 = 1 << 32


class TimeServer:
    """Answers time requests and builds sender reports for one RTP stream (SSRC ``ssrc``)."""

    def __init__(
        self,
        clock: Clock,
        ssrc: int,
        *,
        group_delay_us: int | None = None,
        agree_among: int = 0,
        cname: str | None = None,
    ) -> None:
        """``agree_among``: the number of targets, when the delay is to be agreed among them
        (no ``group_delay_us``, two or more targets)."""
        self.clock = clock
        self.ssrc = ssrc
        self.agreeing = group_delay_us is None and agree_among >= 2
        self._targets = agree_among
        self.group_delay_us = 0 if self.agreeing else group_delay_us
        """The playout delay announced to the group (None: none announced; 0: not agreed
        yet)."""
        self.needs_us: dict[int, int] = {}
        """What each target (by index) said it can meet, latest first."""
        self.agreed_needs_us: dict[int, int] = {}
        """Those the agreement was made from."""
        self.agreed_after_us = 0
        """How long after the first packet it was agreed."""
        self._first_sent_ns: int | None = None
        self._warned: set[int] = set()
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

    def note(self, target: int, request: TimeRequest) -> int | None:
        """What target ``target`` says it can meet; the group delay it needs, once, if that
        is more than the group's agreed one (it may drop out: the caller says so)."""
        need = request.min_delay_us
        if not self.agreeing or not need:
            return None
        self.needs_us[target] = need
        delay = self.group_delay_us
        if delay and need > delay and target not in self._warned:
            self._warned.add(target)
            return need
        return None

    def agree(self, now_ns: int) -> bool:
        """Agree the group delay if it is time (see the module docstring); True when it was
        just agreed (every joined target should hear it at once)."""
        if not self.agreeing or self.group_delay_us:
            return False
        since = None if self._first_sent_ns is None else now_ns - self._first_sent_ns
        everyone = len(self.needs_us) >= self._targets
        joined_said = (
            since is not None
            and since >= JOIN_WAIT_NS
            and bool(self._joined)
            and self._joined <= self.needs_us.keys()
        )
        waited = since is not None and since >= AGREE_TIMEOUT_NS
        if not (everyone or joined_said or waited):
            return False
        self.agreed_needs_us = dict(self.needs_us)
        self.agreed_after_us = 0 if since is None else since // 1000
        if self.needs_us:
            delay = max(self.needs_us.values()) + AGREE_MARGIN_US
        else:
            delay = DEFAULT_GROUP_DELAY_MS * 1000
        # The listeners waited for it with the stream's start in hand: the first sample must
        # still be due after they hear the delay and their outputs can play it.
        if since is not None:
            delay = max(delay, self.agreed_after_us + AGREE_REACTION_US)
        self.group_delay_us = -(-delay // 1000) * 1000  # up to a whole ms
        return True

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
        if self._first_sent_ns is None:
            self._first_sent_ns = due_ns

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
