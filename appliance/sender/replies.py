"""What a sender hears back from each listener it sends to, and what it makes of it.

An appliance listener reports to the stream's source (:mod:`appliance.listener.feedback`; the
bytes are :mod:`appliance.wire.reply`): playing (with its buffer depth, loss and the audio
played), busy with another source, or stopped (with the total played). The sender reads those
replies between packets (:class:`~appliance.sender.sender.Sender` with ``listen=True``) into
one :class:`TargetState` per destination, which decides:

* **busy**: the target fails at once: ``kitchen (192.168.1.50:5005) is busy playing another
  stream``;
* **port unreachable** (ICMP, seen as ``ConnectionRefusedError`` on the connected socket):
  the target fails: ``nothing listens at 127.0.0.1:5005 (port unreachable)``;
* **no report** within :data:`REPORT_WAIT_S` of the first packet: a listener found by name
  (an appliance listener, which reports) fails; an address, where anything may listen (the
  seed's client never answers), gets one warning line and the stream goes on;
* at the end, the stopped report says what was played: :meth:`TargetState.played_line`.

Example::

    state = TargetState(("127.0.0.1", 5005), "127.0.0.1:5005")
    state.receive(datagram, ssrc=None)
    if state.failure:
        print(state.failure)
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.audio.format import AudioFormat
from appliance.wire.raw import RAW_FORMAT
from appliance.wire.reply import ListenerReply, ReplyState, is_reply, reply_of_app
from appliance.wire.rtcp import (
    ReceiverReport,
    ReportBlock,
    SenderReport,
    UnknownRtcp,
    is_rtcp,
    parse_compound,
)
from appliance.wire.rtp import InvalidPacket

Address = tuple[str, int]

REPORT_WAIT_S = 1.0
"""A listener that reports does so at once when a stream starts: no report this long after the
first packet means that nothing plays the stream (or that what listens does not report)."""
FINAL_WAIT_S = 1.0
"""After the stream's end, how long to wait for the listener's stopped report (only from a
listener that has reported before; it comes within milliseconds on a LAN)."""


@dataclass(slots=True)
class TargetState:
    """One destination: what was sent to it and what its listener said."""

    destination: Address
    name: str
    """How it is named in messages: ``"kitchen (192.168.1.50:5005)"`` or ``"1.2.3.4:5005"``."""
    required: bool = False
    """It must report (an appliance listener found by name): silence fails it."""
    packets: int = 0
    audio_bytes: int = 0
    """Audio payload bytes sent to it."""
    first_sent_at: float | None = None
    reports: int = 0
    """Replies received (any state, and RTCP reports without our APP packet)."""
    last: ListenerReply | None = None
    final: ListenerReply | None = None
    """The stopped report, once the listener has ended the session."""
    block: ReportBlock | None = None
    """The latest RTCP report block about our stream (RTP only)."""
    failure: str | None = None
    """Why it was dropped (one line), None while it is fine."""
    warning: str | None = None

    @property
    def live(self) -> bool:
        return self.failure is None

    @property
    def lost(self) -> int:
        """Packets the listener says it lost (RTCP's cumulative count when there is one)."""
        if self.block is not None:
            return max(0, self.block.packets_lost)
        return 0 if self.last is None else self.last.lost

    def receive(self, data: bytes, ssrc: int | None = None) -> None:
        """Take in one datagram from the listener (anything else is ignored)."""
        reply: ListenerReply | None = None
        try:
            if is_reply(data):
                reply = ListenerReply.parse(data)
            elif is_rtcp(data):
                for packet in parse_compound(data):
                    if isinstance(packet, ReceiverReport | SenderReport):
                        for block in packet.reports:
                            if ssrc is None or block.ssrc == ssrc:
                                self.block = block
                    elif isinstance(packet, UnknownRtcp):
                        reply = reply_of_app(packet) or reply
            else:
                return
        except InvalidPacket:
            return
        self.reports += 1
        if reply is None:
            return
        self.last = reply
        if reply.state is ReplyState.BUSY:
            self.fail(f"{self.name} is busy playing another stream")
        elif reply.state is ReplyState.STOPPED:
            self.final = reply
        else:
            self.final = None  # playing (again): a stopped report before was not the end

    def refused(self) -> None:
        """ICMP port unreachable came back (not a failure once the listener has said that it
        stopped: a ``listen --once`` closes its port after the stream)."""
        if self.final is None:
            self.fail(f"nothing listens at {self.name} (port unreachable)")

    def fail(self, why: str) -> None:
        if self.failure is None:
            self.failure = why

    def check(self, now: float) -> str | None:
        """Judge the silence of a target that never reported; a new warning line, if any."""
        if self.reports or self.first_sent_at is None or self.failure is not None:
            return None
        if now - self.first_sent_at < REPORT_WAIT_S:
            return None
        if self.required:
            self.fail(f"no report from {self.name}: it is not playing this stream")
            return None
        if self.warning is None:
            host, port = self.destination
            self.warning = f"no report from {host}:{port}: playback cannot be confirmed"
            return self.warning
        return None

    def played_line(self, audio_format: AudioFormat = RAW_FORMAT, rtp: bool = False) -> str:
        """``listener played 5.20 s of 5.21 s sent; 0 lost``; '' without a stopped report."""
        if self.final is None:
            return ""
        sent_s = self.audio_bytes / audio_format.bytes_per_second
        line = f"listener played {self.final.played_s:.2f} s of {sent_s:.2f} s sent"
        if rtp:
            line += f"; {self.final.lost} lost"
        return line
