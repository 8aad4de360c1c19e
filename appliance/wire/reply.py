"""The listener's reply to a stream's source: what it is doing with the stream, as bytes.

A listener tells the source of a stream whether it plays it, is busy with another one, or has
stopped, with the figures a sender can show (:mod:`appliance.listener.feedback` decides when).
One format, :class:`ListenerReply`, travels two ways:

* **Raw wire**: the datagram is the reply itself, 24 bytes, all integers big-endian::

      0   4  magic  b"APLR"
      4   1  version (1)
      5   1  state: 1 playing, 2 busy (another source owns the listener), 3 stopped
      6   2  buffer depth, ms (what is queued to play)
      8   4  audio played, ms (accepted for playout since the session started)
      12  4  packets lost (RTP: expected minus received; 0 on the raw wire, which cannot tell)
      16  4  audio concealed, ms
      20  4  the listener's session number (0 with ``busy``)

  A datagram that short, starting with ``APLR``, is never audio a listener would send; the
  seed's sender never reads its socket, so it ignores the reply. Later versions may append
  fields: :meth:`ListenerReply.parse` reads these 24 bytes of any version >= 1.

* **RTP**: an RTCP compound (RFC 3550 section 6.1): a receiver report (RR) with a report block
  for the sender's SSRC (none with ``busy``), an SDES CNAME, and an APP packet (section 6.7)
  of name ``APLR``, subtype = the state, whose application data are the reply's bytes after the
  magic (20 bytes, whole 32-bit words): :func:`app_packet`, :func:`reply_in_compound`.

Example::

    reply = ListenerReply(ReplyState.PLAYING, buffer_ms=85, played_ms=5200)
    assert ListenerReply.parse(bytes(reply)) == reply
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from appliance.wire.rtcp import APP, UnknownRtcp, parse_compound
from appliance.wire.rtp import InvalidPacket

MAGIC = b"APLR"
VERSION = 1
_FIELDS = struct.Struct("!BBHIIII")
SIZE = len(MAGIC) + _FIELDS.size
"""24 bytes."""
APP_NAME = MAGIC
"""The RTCP APP packet's 4-character name."""
_U32 = (1 << 32) - 1


class ReplyState(IntEnum):
    PLAYING = 1
    """The stream is accepted and playing (or buffering to play)."""
    BUSY = 2
    """Another source owns the listener: this stream is ignored."""
    STOPPED = 3
    """The stream's session has ended; the figures are its totals."""


@dataclass(frozen=True, slots=True)
class ListenerReply:
    """One reply (see the module docstring for the layout)."""

    state: ReplyState
    buffer_ms: int = 0
    played_ms: int = 0
    lost: int = 0
    concealed_ms: int = 0
    session: int = 0
    version: int = VERSION

    def __post_init__(self) -> None:
        if not 0 <= self.buffer_ms <= 0xFFFF:
            raise ValueError(f"buffer depth {self.buffer_ms} ms is not 0-65535")
        for what in ("played_ms", "lost", "concealed_ms", "session"):
            value = getattr(self, what)
            if not 0 <= value <= _U32:
                raise ValueError(f"{what} {value} is not a 32-bit value")

    @classmethod
    def parse(cls, data: bytes) -> ListenerReply:
        """The reply in ``data``; :class:`InvalidPacket` if it is not one."""
        if len(data) < SIZE or data[: len(MAGIC)] != MAGIC:
            raise InvalidPacket(f"{len(data)}-byte datagram is not a listener reply")
        return cls._fields(bytes(data[len(MAGIC) : SIZE]))

    @classmethod
    def _fields(cls, data: bytes) -> ListenerReply:
        version, state, buffer_ms, played, lost, concealed, session = _FIELDS.unpack(data)
        if version < 1:
            raise InvalidPacket(f"listener reply version {version}")
        try:
            known = ReplyState(state)
        except ValueError:
            raise InvalidPacket(f"listener reply state {state} is unknown") from None
        return cls(known, buffer_ms, played, lost, concealed, session, version)

    def fields(self) -> bytes:
        """The 20 bytes after the magic (the APP packet's data)."""
        return _FIELDS.pack(
            self.version,
            self.state,
            self.buffer_ms,
            self.played_ms,
            self.lost,
            self.concealed_ms,
            self.session,
        )

    def __bytes__(self) -> bytes:
        return MAGIC + self.fields()

    @property
    def played_s(self) -> float:
        return self.played_ms / 1000


def is_reply(data: bytes) -> bool:
    """Whether ``data`` looks like a raw-wire reply (magic and length only)."""
    return len(data) >= SIZE and data[: len(MAGIC)] == MAGIC


def app_packet(ssrc: int, reply: ListenerReply) -> UnknownRtcp:
    """The RTCP APP packet carrying ``reply`` from the listener's SSRC (subtype = state)."""
    return UnknownRtcp(APP, int(reply.state), struct.pack("!I", ssrc) + APP_NAME + reply.fields())


def reply_of_app(packet: UnknownRtcp) -> ListenerReply | None:
    """The reply an APP packet carries, None if it is another application's."""
    body = packet.body
    if packet.packet_type != APP or len(body) < 8 + _FIELDS.size or body[4:8] != APP_NAME:
        return None
    return ListenerReply._fields(bytes(body[8 : 8 + _FIELDS.size]))


def reply_in_compound(data: bytes) -> ListenerReply | None:
    """The reply in an RTCP compound's APP packet, if it has one (:class:`InvalidPacket` if the
    compound is malformed)."""
    for packet in parse_compound(data):
        if isinstance(packet, UnknownRtcp):
            reply = reply_of_app(packet)
            if reply is not None:
                return reply
    return None
