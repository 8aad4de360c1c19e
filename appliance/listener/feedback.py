"""Reports back to a stream's source: the listener says what it does with the stream.

A sender cannot hear a speaker. The listener tells it, in the stream's own wire
(:mod:`appliance.wire.reply` has the bytes):

* **playing**: at once when a session starts (accepted, buffering to play), then about once a
  second (:data:`REPORT_INTERVAL_S`) while packets come: the buffer depth, the audio played,
  lost packets and concealed audio. On RTP an RTCP receiver report (RFC 3550 section 6.4.2)
  with one report block for the sender's SSRC (fraction lost, cumulative lost, extended
  highest sequence number, interarrival jitter; LSR and DLSR 0, as no sender reports are
  used), an SDES CNAME and an APP packet ``APLR`` with the state and figures.
* **busy**: to a source that is ignored because another session owns the listener, at most
  once a second per source (:data:`BUSY_INTERVAL_S`).
* **stopped**: when the session ends, with its totals.

Replies go to the address the stream's packets come from, from the listener's own socket (RTCP
is multiplexed on the RTP port here). They are sent from the thread that handles the datagram
(a session that times out: the session timer's), never blocking (``MSG_DONTWAIT``: a full
socket buffer drops the reply, counted), and are counted in :class:`FeedbackCounters`.

Example::

    feedback = Feedback(lambda data, address: sock.sendto(data, address) > 0)
    feedback.started(source, figures, now)
"""

from __future__ import annotations

import logging
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass

from appliance.wire import Wire
from appliance.wire.reply import ListenerReply, ReplyState, app_packet
from appliance.wire.rtcp import (
    ReceiverReport,
    ReportBlock,
    RtcpPacket,
    cname_sdes,
    is_rtcp,
    pack_compound,
)
from appliance.wire.rtp import looks_like_rtp

log = logging.getLogger(__name__)

Address = tuple[str, int]
SendReply = Callable[[bytes, Address], bool]
"""Sends one reply datagram without blocking; False if it could not be sent."""

REPORT_INTERVAL_S = 1.0
BUSY_INTERVAL_S = 1.0
MAX_BUSY_SOURCES = 64
"""Sources remembered for the busy rate limit (older ones are forgotten first)."""
_U32 = 1 << 32
_LOST_MIN, _LOST_MAX = -(1 << 23), (1 << 23) - 1


@dataclass(frozen=True, slots=True)
class StreamFigures:
    """A session's figures at one moment, as a report carries them."""

    session: int
    wire: Wire
    buffer_ms: int
    played_ms: int
    concealed_ms: int
    sender_ssrc: int | None = None
    """The RTP stream's SSRC (None on the raw wire)."""
    highest_sequence: int = 0
    """Extended highest sequence number received (RTP)."""
    expected: int = 0
    received: int = 0
    jitter: int = 0
    """RFC 3550 interarrival jitter, in RTP timestamp units."""

    @property
    def lost(self) -> int:
        return self.expected - self.received


@dataclass(slots=True)
class FeedbackCounters:
    sent: int = 0
    """Replies sent (every state)."""
    busy: int = 0
    """Of them, busy replies."""
    failed: int = 0
    """Replies the socket would not take at once (dropped, never waited for)."""
    suppressed: int = 0
    """Busy replies not sent because of the rate limit."""


class Feedback:
    """Builds and sends the replies; called under the session lock (not thread-safe itself)."""

    def __init__(
        self,
        send: SendReply,
        *,
        interval_s: float = REPORT_INTERVAL_S,
        busy_interval_s: float = BUSY_INTERVAL_S,
        ssrc: int | None = None,
        cname: str | None = None,
    ) -> None:
        self._send = send
        self._interval_s = interval_s
        self._busy_interval_s = busy_interval_s
        self.ssrc = secrets.randbits(32) if ssrc is None else ssrc
        """The listener's own SSRC, the sender of its RTCP reports."""
        self.cname = cname or f"appliance@{socket.gethostname()}"[:255]
        self.counters = FeedbackCounters()
        self._last_report = 0.0
        self._prior_expected = 0
        self._prior_received = 0
        self._busy_sent: dict[Address, float] = {}

    # -- a session's own source -----------------------------------------------------------

    def due(self, now: float) -> bool:
        """A periodic report is due (cheap: checked after every datagram)."""
        return now - self._last_report >= self._interval_s

    def started(self, source: Address, figures: StreamFigures, now: float) -> None:
        """A session began: say so at once."""
        self._prior_expected = self._prior_received = 0
        self.report(source, figures, now)

    def report(
        self,
        source: Address,
        figures: StreamFigures,
        now: float,
        state: ReplyState = ReplyState.PLAYING,
    ) -> None:
        """Send a report of ``state`` (playing: the periodic one) to the session's source."""
        self._last_report = now
        self._deliver(self._reply(figures, state), source)

    def ended(self, source: Address, figures: StreamFigures, now: float) -> None:
        """The session ended: its totals, as ``stopped``."""
        self.report(source, figures, now, ReplyState.STOPPED)

    def send_datagram(self, datagram: bytes, address: Address) -> bool:
        """Send another RTCP datagram the replies' way (SRTCP with a key), uncounted: the
        time client's requests (:mod:`appliance.listener.timesync`)."""
        return self._send(datagram, address)

    # -- anyone else ------------------------------------------------------------------------

    def busy(self, source: Address, data: bytes, now: float) -> None:
        """``source`` is ignored (another session owns the listener): say so, rate-limited."""
        last = self._busy_sent.get(source)
        if last is not None and now - last < self._busy_interval_s:
            self.counters.suppressed += 1
            return
        if len(self._busy_sent) >= MAX_BUSY_SOURCES:
            oldest = min(self._busy_sent, key=self._busy_sent.__getitem__)
            del self._busy_sent[oldest]
        self._busy_sent[source] = now
        reply = ListenerReply(ReplyState.BUSY)
        rtp = looks_like_rtp(data) or is_rtcp(data)
        datagram = self._compound(reply, None) if rtp else bytes(reply)
        self.counters.busy += 1
        self._deliver(datagram, source)

    # -- bytes ------------------------------------------------------------------------------

    def _reply(self, figures: StreamFigures, state: ReplyState) -> bytes:
        reply = ListenerReply(
            state,
            buffer_ms=min(max(figures.buffer_ms, 0), 0xFFFF),
            played_ms=min(max(figures.played_ms, 0), _U32 - 1),
            lost=min(max(figures.lost, 0), _U32 - 1),
            concealed_ms=min(max(figures.concealed_ms, 0), _U32 - 1),
            session=figures.session % _U32,
        )
        if figures.wire is not Wire.RTP or figures.sender_ssrc is None:
            return bytes(reply)
        return self._compound(reply, self._block(figures))

    def _block(self, figures: StreamFigures) -> ReportBlock:
        """RFC 3550 section 6.4.1 and appendix A.3: the report block for the sender."""
        assert figures.sender_ssrc is not None
        expected_interval = figures.expected - self._prior_expected
        received_interval = figures.received - self._prior_received
        self._prior_expected, self._prior_received = figures.expected, figures.received
        lost_interval = expected_interval - received_interval
        fraction = 0
        if expected_interval > 0 and lost_interval > 0:
            fraction = min(255, (lost_interval << 8) // expected_interval)
        return ReportBlock(
            ssrc=figures.sender_ssrc,
            fraction_lost=fraction,
            packets_lost=min(max(figures.lost, _LOST_MIN), _LOST_MAX),
            highest_sequence=figures.highest_sequence % _U32,
            jitter=min(max(figures.jitter, 0), _U32 - 1),
            lsr=0,
            dlsr=0,
        )

    def _compound(self, reply: ListenerReply, block: ReportBlock | None) -> bytes:
        packets: list[RtcpPacket] = [
            ReceiverReport(self.ssrc, () if block is None else (block,)),
            cname_sdes(self.ssrc, self.cname),
            app_packet(self.ssrc, reply),
        ]
        return pack_compound(packets)

    def _deliver(self, datagram: bytes, address: Address) -> None:
        if self._send(datagram, address):
            self.counters.sent += 1
        else:
            self.counters.failed += 1
            if self.counters.failed == 1:
                log.debug("a reply to %s:%d could not be sent at once: dropped", *address)
