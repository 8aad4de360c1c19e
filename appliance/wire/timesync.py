"""The time exchange and the group delay, as RTCP APP packets (RFC 3550 section 6.7).

Three APP packets of ours, all integers big-endian, each after APP's header (V=2, subtype 0,
PT=204, length) and the SSRC of who sends it::

    TIMQ  listener -> sender   seq u32, t1 u64, min delay us u32   (16 bytes of data)
    TIMR  sender -> listener   seq u32, t1 u64 (echoed), t2 u64, t3 u64   (28 bytes)
    APGD  sender -> listener   group playout delay, microseconds, u32      (4 bytes)

``t1`` is the listener's clock when it sent the request, ``t2`` and ``t3`` the sender's when
it received it and when it answered, all in nanoseconds of each side's monotonic clock
(:mod:`appliance.sync.offset` turns them into offset and drift). The request also carries the
smallest group delay the listener can meet (0 until it knows: its output has not said its
latency yet), from which the sender agrees the group's. APGD rides with each sender report;
0 means the group is forming (listeners hold their start until the delay comes).

Being RTCP, they share the RTP port and socket with the listener's replies
(:mod:`appliance.wire.reply`) and, with a key, are protected as SRTCP like every other RTCP
packet. A request or a response goes as a compound of an empty receiver report and the APP
(:func:`compound`): RFC 3550 section 6.1 wants every compound to start with a report, and a
third-party peer that validates that (appendix A.2) then reads it as a valid compound and
skips the APP it does not know. (Our own parser also takes APP first, as RFC 5506 allows.)

Example::

    request = TimeRequest(ssrc=listener_ssrc, sequence=1, t1_ns=clock.now_ns())
    sock.send(compound(listener_ssrc, request))
    for message in time_messages(parse_compound(datagram)):
        if isinstance(message, TimeResponse): ...
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, fields
from typing import ClassVar, Self, TypeAlias

from appliance.wire.rtcp import (
    APP,
    ReceiverReport,
    RtcpPacket,
    UnknownRtcp,
    pack_compound,
    parse_compound,
)
from appliance.wire.rtp import InvalidPacket

SUBTYPE = 0
_SSRC_NAME = struct.Struct("!I4s")
_U32 = 1 << 32
_U64 = 1 << 64


def _check(value: int, bound: int, what: str) -> None:
    if not 0 <= value < bound:
        bits = 32 if bound == _U32 else 64
        raise ValueError(f"{what} {value} is not a {bits}-bit value")


def _app_data(packet: UnknownRtcp, name: bytes, size: int) -> tuple[int, bytes] | None:
    """(SSRC, data) of an APP packet named ``name``; None for another name or type;
    :class:`InvalidPacket` if it is ours and malformed."""
    body = packet.body
    if packet.packet_type != APP or len(body) < _SSRC_NAME.size:
        return None
    ssrc, found = _SSRC_NAME.unpack_from(body)
    if found != name:
        return None
    label = name.decode()
    if packet.count != SUBTYPE:
        raise InvalidPacket(f"APP {label}: subtype {packet.count}, expected {SUBTYPE}")
    data = body[_SSRC_NAME.size :]
    if len(data) != size:
        raise InvalidPacket(f"APP {label}: {len(data)} bytes of data, expected {size}")
    return ssrc, bytes(data)


def _parse_app(data: bytes, name: bytes) -> UnknownRtcp:
    """The one APP packet that ``data`` is (else :class:`InvalidPacket`)."""
    packets = parse_compound(data)
    packet = packets[0]
    if len(packets) != 1 or not isinstance(packet, UnknownRtcp) or packet.packet_type != APP:
        raise InvalidPacket(f"expected one APP {name.decode()} packet, got {len(packets)} RTCP")
    return packet


class _AppMessage:
    """What the three messages share: their fields after ``ssrc`` are the APP data, packed by
    the class's ``_DATA`` in declaration order."""

    __slots__ = ()
    NAME: ClassVar[bytes]
    _DATA: ClassVar[struct.Struct]
    ssrc: int

    @classmethod
    def of_app(cls, packet: UnknownRtcp) -> Self | None:
        """The message ``packet`` is, None if it is not an APP packet of this name."""
        found = _app_data(packet, cls.NAME, cls._DATA.size)
        if found is None:
            return None
        return cls(found[0], *cls._DATA.unpack(found[1]))  # type: ignore[call-arg]  # subclasses are dataclasses

    @classmethod
    def parse(cls, data: bytes) -> Self:
        """The message that ``data`` (one APP packet) is; :class:`InvalidPacket` if not."""
        message = cls.of_app(_parse_app(data, cls.NAME))
        if message is None:
            raise InvalidPacket(f"APP packet is not named {cls.NAME.decode()}")
        return message

    def app(self) -> UnknownRtcp:
        values = [getattr(self, f.name) for f in fields(self)[1:]]  # type: ignore[arg-type]  # a dataclass
        data = _SSRC_NAME.pack(self.ssrc, self.NAME) + self._DATA.pack(*values)
        return UnknownRtcp(APP, SUBTYPE, data)

    def __bytes__(self) -> bytes:
        return bytes(self.app())


@dataclass(frozen=True, slots=True)
class TimeRequest(_AppMessage):
    """A listener asks the sender for its time (``t1``: when it asked, on its own clock), and
    says the smallest group delay it can meet (``min_delay_us``; 0: it does not know yet)."""

    ssrc: int
    sequence: int
    t1_ns: int
    min_delay_us: int = 0

    NAME: ClassVar[bytes] = b"TIMQ"
    _DATA: ClassVar[struct.Struct] = struct.Struct("!IQI")

    def __post_init__(self) -> None:
        _check(self.ssrc, _U32, "ssrc")
        _check(self.sequence, _U32, "sequence")
        _check(self.t1_ns, _U64, "t1")
        _check(self.min_delay_us, _U32, "min_delay")


@dataclass(frozen=True, slots=True)
class TimeResponse(_AppMessage):
    """The sender's answer: the request's ``sequence`` and ``t1`` echoed, and its own clock
    when it received the request (``t2``) and when it answered (``t3``)."""

    ssrc: int
    sequence: int
    t1_ns: int
    t2_ns: int
    t3_ns: int

    NAME: ClassVar[bytes] = b"TIMR"
    _DATA: ClassVar[struct.Struct] = struct.Struct("!IQQQ")

    def __post_init__(self) -> None:
        _check(self.ssrc, _U32, "ssrc")
        _check(self.sequence, _U32, "sequence")
        for what in ("t1_ns", "t2_ns", "t3_ns"):
            _check(getattr(self, what), _U64, what.removesuffix("_ns"))


@dataclass(frozen=True, slots=True)
class GroupDelay(_AppMessage):
    """The playout delay common to the group: every listener plays a sample this long after
    the sender's schedule sent it (the sender reports say when that was). 0: the group is
    forming and the delay is not agreed yet; wait for it."""

    ssrc: int
    delay_us: int

    NAME: ClassVar[bytes] = b"APGD"
    _DATA: ClassVar[struct.Struct] = struct.Struct("!I")

    def __post_init__(self) -> None:
        _check(self.ssrc, _U32, "ssrc")
        _check(self.delay_us, _U32, "delay_us")

    @property
    def delay_ns(self) -> int:
        return self.delay_us * 1000


TimeMessage: TypeAlias = TimeRequest | TimeResponse | GroupDelay
_KINDS: tuple[type[TimeRequest], type[TimeResponse], type[GroupDelay]] = (
    TimeRequest,
    TimeResponse,
    GroupDelay,
)


def time_messages(packets: list[RtcpPacket]) -> list[TimeMessage]:
    """Our APP packets among a parsed compound's (:class:`InvalidPacket` if one of ours is
    malformed; other applications' APP packets are skipped)."""
    found: list[TimeMessage] = []
    for packet in packets:
        if isinstance(packet, UnknownRtcp) and packet.packet_type == APP:
            for kind in _KINDS:
                message = kind.of_app(packet)
                if message is not None:
                    found.append(message)
                    break
    return found


def compound(ssrc: int, *messages: TimeMessage) -> bytes:
    """An empty receiver report from ``ssrc`` and the messages' APP packets: one datagram."""
    packets: list[RtcpPacket] = [ReceiverReport(ssrc)]
    packets += [message.app() for message in messages]
    return pack_compound(packets)
