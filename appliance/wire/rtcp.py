"""RTCP control packets (RFC 3550 section 6): tell them from audio, read reports, say BYE.

A datagram of RTCP is a *compound*: packets back to back, each with a 4-byte header whose
length field counts the 32-bit words after it. :func:`is_rtcp` walks those headers (cheap, no
parsing); :func:`parse_compound` reads every packet into a value. Sender and receiver reports
and BYE are understood; SDES, APP and any other type are kept whole as :class:`UnknownRtcp`.

Padding (P bit) may only be on the *last* packet of a compound (RFC 3550 section 6.4.1, and
appendix A.2's validity check): each packet value carries its ``padding`` like
:class:`~appliance.wire.rtp.RtpPacket` does, and :func:`pack_compound` refuses it anywhere
else. ``pack_compound(parse_compound(d)) == d`` for every valid ``d`` with zero padding bytes.

Example::

    if is_rtcp(datagram):
        for packet in parse_compound(datagram):
            if isinstance(packet, Bye):
                ...  # the sender has stopped
    sock.sendto(bye(ssrc, "stopped"), peer)
"""

from __future__ import annotations

import struct
from collections.abc import Container, Iterable
from dataclasses import dataclass
from typing import TypeAlias, TypeVar

from appliance.wire.rtp import VERSION, InvalidPacket

SR = 200
RR = 201
SDES = 202
BYE = 203
APP = 204
FIRST_TYPES = range(SR, APP + 1)
"""Types a compound may start with (RFC 3550 says SR or RR; RFC 5506 relaxes that)."""
RTCP_TYPES = range(192, 224)
"""Every RTCP packet type lives here: RFC 5761 section 4 keeps it clear of RTP's."""

MAX_COUNT = 31
_HEADER = struct.Struct("!BBH")
_SENDER_INFO = struct.Struct("!IQIII")
_BLOCK = struct.Struct("!IIIIII")
_U32 = 1 << 32
_TYPE_NAMES = {SR: "SR", RR: "RR", SDES: "SDES", BYE: "BYE", APP: "APP"}


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """One reception report: how a receiver hears source ``ssrc`` (RFC 3550 section 6.4.1)."""

    ssrc: int
    fraction_lost: int
    """Lost since the last report, in 1/256ths."""
    packets_lost: int
    """Cumulative; signed 24 bits (duplicates can make it negative)."""
    highest_sequence: int
    """Extended: cycles in the high 16 bits."""
    jitter: int
    lsr: int
    """Middle 32 bits of the NTP time of the last SR from ``ssrc``; 0 if none yet."""
    dlsr: int
    """Delay since that SR, in 1/65536 s."""

    SIZE = _BLOCK.size

    def __post_init__(self) -> None:
        if not 0 <= self.fraction_lost <= 255:
            raise ValueError(f"fraction lost {self.fraction_lost} is not 0-255")
        if not -(1 << 23) <= self.packets_lost < 1 << 23:
            raise ValueError(f"packets lost {self.packets_lost} is not a signed 24-bit value")
        for what in ("ssrc", "highest_sequence", "jitter", "lsr", "dlsr"):
            _check_u32(getattr(self, what), what)

    @classmethod
    def parse(cls, data: bytes, offset: int = 0) -> ReportBlock:
        ssrc, lost_word, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(data, offset)
        lost = lost_word & 0xFFFFFF
        if lost & 0x800000:
            lost -= 1 << 24
        return cls(ssrc, lost_word >> 24, lost, highest, jitter, lsr, dlsr)

    def __bytes__(self) -> bytes:
        lost_word = (self.fraction_lost << 24) | (self.packets_lost & 0xFFFFFF)
        return _BLOCK.pack(
            self.ssrc, lost_word, self.highest_sequence, self.jitter, self.lsr, self.dlsr
        )


@dataclass(frozen=True, slots=True)
class SenderReport:
    ssrc: int
    ntp_timestamp: int
    """64-bit NTP time: seconds since 1900 in the high 32 bits, fraction in the low 32."""
    rtp_timestamp: int
    """The same instant on the stream's RTP clock."""
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()
    extension: bytes = b""
    """Profile-specific extension words after the report blocks (RFC 3550 section 6.4.1)."""
    padding: int = 0

    def __post_init__(self) -> None:
        for what in ("ssrc", "rtp_timestamp", "packet_count", "octet_count"):
            _check_u32(getattr(self, what), what)
        if not 0 <= self.ntp_timestamp < 1 << 64:
            raise ValueError(f"NTP timestamp {self.ntp_timestamp} is not a 64-bit value")
        _check_reports(self.reports, self.extension, self.padding, _SENDER_INFO.size)

    @classmethod
    def parse(cls, data: bytes) -> SenderReport:
        """One SR packet occupying the whole of ``data``."""
        return _only(_parse(data, (SR,)), SenderReport)

    def __bytes__(self) -> bytes:
        info = _SENDER_INFO.pack(
            self.ssrc, self.ntp_timestamp, self.rtp_timestamp, self.packet_count, self.octet_count
        )
        body = info + b"".join(bytes(r) for r in self.reports) + self.extension
        return _pack(SR, len(self.reports), body, self.padding)


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    ssrc: int
    reports: tuple[ReportBlock, ...] = ()
    extension: bytes = b""
    padding: int = 0

    def __post_init__(self) -> None:
        _check_u32(self.ssrc, "ssrc")
        _check_reports(self.reports, self.extension, self.padding, 4)

    @classmethod
    def parse(cls, data: bytes) -> ReceiverReport:
        """One RR packet occupying the whole of ``data``."""
        return _only(_parse(data, (RR,)), ReceiverReport)

    def __bytes__(self) -> bytes:
        body = struct.pack("!I", self.ssrc) + b"".join(bytes(r) for r in self.reports)
        return _pack(RR, len(self.reports), body + self.extension, self.padding)


@dataclass(frozen=True, slots=True)
class Bye:
    """Sources leaving the session, with an optional UTF-8 reason (RFC 3550 section 6.6)."""

    ssrcs: tuple[int, ...]
    reason: str | None = None
    padding: int = 0

    def __post_init__(self) -> None:
        if len(self.ssrcs) > MAX_COUNT:
            raise ValueError(f"BYE of {len(self.ssrcs)} sources: at most {MAX_COUNT} fit")
        for ssrc in self.ssrcs:
            _check_u32(ssrc, "ssrc")
        reason = 0 if self.reason is None else len(self.reason.encode())
        if reason > 255:
            raise ValueError("BYE reason is longer than 255 bytes of UTF-8")
        reason_words = 0 if self.reason is None else (reason + 4) // 4  # length byte + text
        _check_padding(self.padding, 4 * (len(self.ssrcs) + reason_words))

    @classmethod
    def parse(cls, data: bytes) -> Bye:
        """One BYE packet occupying the whole of ``data``."""
        return _only(_parse(data, (BYE,)), Bye)

    def __bytes__(self) -> bytes:
        body = struct.pack(f"!{len(self.ssrcs)}I", *self.ssrcs)
        if self.reason is not None:
            text = self.reason.encode()
            reason = bytes([len(text)]) + text
            body += reason + bytes(-len(reason) % 4)  # zeros to the next 32-bit boundary
        return _pack(BYE, len(self.ssrcs), body, self.padding)


@dataclass(frozen=True, slots=True)
class UnknownRtcp:
    """Any other packet (SDES, APP, feedback...): its header fields and body, kept as is."""

    packet_type: int
    count: int
    """The 5-bit field after the P bit: item count or subtype, depending on the type."""
    body: bytes
    padding: int = 0

    def __post_init__(self) -> None:
        if self.packet_type not in RTCP_TYPES:
            raise ValueError(f"packet type {self.packet_type} is not RTCP (192-223)")
        if not 0 <= self.count <= MAX_COUNT:
            raise ValueError(f"count {self.count} is not 0-{MAX_COUNT}")
        _check_padding(self.padding, len(self.body))

    def __bytes__(self) -> bytes:
        return _pack(self.packet_type, self.count, self.body, self.padding)


RtcpPacket: TypeAlias = SenderReport | ReceiverReport | Bye | UnknownRtcp


def is_rtcp(data: bytes) -> bool:
    """Whether ``data`` is a well-formed RTCP compound, judged on its headers only.

    Every packet must be version 2 with a type in 192-223, the first one SR, RR, SDES, BYE or
    APP; only the last may be padded, with a count that fits; and the lengths must add up to
    exactly ``len(data)``. Random bytes pass all of that very rarely. The bodies are not
    read: :func:`parse_compound` can still refuse a compound that passes.
    """
    # The common case on a listener's port is an RTP packet: turn it away in three
    # comparisons, before the walk (which raises, and so formats, a message for it).
    if len(data) < _HEADER.size or data[0] >> 6 != VERSION or data[1] not in FIRST_TYPES:
        return False
    try:
        _walk(data, FIRST_TYPES)
    except InvalidPacket:
        return False
    return True


def parse_compound(data: bytes) -> list[RtcpPacket]:
    """Every packet of the compound in ``data``; :class:`InvalidPacket` if one is malformed."""
    return _parse(data, FIRST_TYPES)


def _parse(data: bytes, first_types: Container[int]) -> list[RtcpPacket]:
    return [
        _parse_one(ptype, count, bytes(data[start:end]), padding, start - _HEADER.size)
        for ptype, count, start, end, padding in _walk(data, first_types)
    ]


def pack_compound(packets: Iterable[RtcpPacket]) -> bytes:
    """The datagram of ``packets`` back to back; only the last may be padded."""
    packets = list(packets)
    if any(p.padding for p in packets[:-1]):
        raise ValueError("only the last packet of an RTCP compound may be padded")
    return b"".join(bytes(p) for p in packets)


def bye(ssrc: int, reason: str | None = None, cname: str | None = None) -> bytes:
    """A compound saying source ``ssrc`` leaves: an empty RR, an SDES CNAME if given, a BYE.

    RFC 3550 section 6.1 wants every compound to start with a report, even an empty one, so
    receivers that validate the first packet type (appendix A.2) accept it.
    """
    packets: list[RtcpPacket] = [ReceiverReport(ssrc)]
    if cname is not None:
        packets.append(cname_sdes(ssrc, cname))
    packets.append(Bye((ssrc,), reason))
    return pack_compound(packets)


def cname_sdes(ssrc: int, cname: str) -> UnknownRtcp:
    """An SDES packet of one chunk with a CNAME item (RFC 3550 section 6.5.1)."""
    text = cname.encode()
    if len(text) > 255:
        raise ValueError("CNAME is longer than 255 bytes of UTF-8")
    chunk = struct.pack("!IBB", ssrc, 1, len(text)) + text
    chunk += bytes(4 - len(chunk) % 4)  # the item list ends with 1-4 zero bytes
    return UnknownRtcp(SDES, 1, chunk)


def _walk(data: bytes, first_types: Container[int]) -> list[tuple[int, int, int, int, int]]:
    """(type, count, body start, body end, padding) of each packet; the headers checked."""
    size = len(data)
    if size < _HEADER.size:
        raise InvalidPacket(f"datagram of {size} bytes is shorter than an RTCP header")
    packets = []
    at = 0
    while at < size:
        if at + _HEADER.size > size:
            raise InvalidPacket(f"RTCP header at byte {at} is cut off by the end of the datagram")
        first, ptype, words = _HEADER.unpack_from(data, at)
        version = first >> 6
        if version != VERSION:
            raise InvalidPacket(f"RTCP version {version}, not {VERSION}, at byte {at}")
        if at == 0 and ptype not in first_types:
            raise InvalidPacket(f"first packet type {ptype} is not {_names(first_types)}")
        if ptype not in RTCP_TYPES:
            raise InvalidPacket(f"packet type {ptype} at byte {at} is not RTCP (192-223)")
        start = at + _HEADER.size
        end = start + 4 * words
        if end > size:
            raise InvalidPacket(
                f"RTCP packet of {end - at} bytes at byte {at} is longer than the "
                f"{size}-byte datagram"
            )
        padding = 0
        if first & 0x20:
            if end != size:
                raise InvalidPacket(
                    f"padding on the RTCP packet at byte {at}: only the last packet of a "
                    "compound may be padded"
                )
            padding = data[end - 1] if end > start else 0
            if not 0 < padding <= end - start:
                raise InvalidPacket(
                    f"padding count {padding} does not fit the {end - start}-byte RTCP body"
                )
        packets.append((ptype, first & 0x1F, start, end - padding, padding))
        at = end
    return packets


def _names(types: Container[int]) -> str:
    names = [name for ptype, name in _TYPE_NAMES.items() if ptype in types]
    return " or ".join(", ".join(names).rsplit(", ", 1))


def _parse_one(ptype: int, count: int, body: bytes, padding: int, at: int) -> RtcpPacket:
    name = _TYPE_NAMES.get(ptype, str(ptype))
    where = f"{name} at byte {at}" if at else name
    try:
        if ptype == SR:
            need = _SENDER_INFO.size + count * ReportBlock.SIZE
            _need(body, need, where, count)
            ssrc, ntp, rtp_ts, packets, octets = _SENDER_INFO.unpack_from(body)
            reports = _blocks(body, _SENDER_INFO.size, count)
            return SenderReport(ssrc, ntp, rtp_ts, packets, octets, reports, body[need:], padding)
        if ptype == RR:
            need = 4 + count * ReportBlock.SIZE
            _need(body, need, where, count)
            (ssrc,) = struct.unpack_from("!I", body)
            return ReceiverReport(ssrc, _blocks(body, 4, count), body[need:], padding)
        if ptype == BYE:
            return _parse_bye(body, count, padding, where)
        return UnknownRtcp(ptype, count, body, padding)
    except ValueError as exc:  # a field out of range or misaligned, from __post_init__
        if isinstance(exc, InvalidPacket):
            raise
        raise InvalidPacket(f"{where}: {exc}") from exc


def _parse_bye(body: bytes, count: int, padding: int, where: str) -> Bye:
    need = 4 * count
    _need(body, need, where, count)
    ssrcs = struct.unpack_from(f"!{count}I", body)
    rest = body[need:]
    if not rest:
        return Bye(ssrcs, None, padding)
    length = rest[0]
    text = rest[1 : 1 + length]
    if len(text) < length:
        raise InvalidPacket(f"{where}: reason of {length} bytes is cut off")
    # The reason is followed by zeros up to a word boundary, and by nothing else.
    if len(rest) != 1 + length + (-(1 + length) % 4) or any(rest[1 + length :]):
        raise InvalidPacket(
            f"{where}: {len(rest)} bytes after the SSRCs are not a {length}-byte reason "
            "and its zero padding"
        )
    try:
        return Bye(ssrcs, text.decode(), padding)
    except UnicodeDecodeError as exc:
        raise InvalidPacket(f"{where}: reason is not UTF-8") from exc


def _need(body: bytes, need: int, where: str, count: int) -> None:
    if len(body) < need:
        raise InvalidPacket(f"{where} with count {count} needs {need} bytes, has {len(body)}")


def _blocks(body: bytes, offset: int, count: int) -> tuple[ReportBlock, ...]:
    return tuple(ReportBlock.parse(body, offset + i * ReportBlock.SIZE) for i in range(count))


def _pack(ptype: int, count: int, body: bytes, padding: int) -> bytes:
    first = (VERSION << 6) | (0x20 if padding else 0) | count
    tail = bytes(padding - 1) + bytes([padding]) if padding else b""
    words = (len(body) + padding) // 4
    return _HEADER.pack(first, ptype, words) + body + tail


_P = TypeVar("_P", SenderReport, ReceiverReport, Bye)


def _only(packets: list[RtcpPacket], kind: type[_P]) -> _P:
    packet = packets[0]  # _walk never returns an empty list
    if len(packets) != 1 or not isinstance(packet, kind):
        raise InvalidPacket(f"expected one {kind.__name__}, got {len(packets)} RTCP packets")
    return packet


def _check_reports(
    reports: tuple[ReportBlock, ...], extension: bytes, padding: int, fixed: int
) -> None:
    if len(reports) > MAX_COUNT:
        raise ValueError(f"{len(reports)} report blocks: at most {MAX_COUNT} fit")
    if len(extension) % 4:
        raise ValueError(f"{len(extension)}-byte extension is not whole 32-bit words")
    _check_padding(padding, fixed + len(reports) * ReportBlock.SIZE + len(extension))


def _check_padding(padding: int, body_size: int) -> None:
    # The length field counts words, so body and padding together must fill whole words.
    if not 0 <= padding <= 255:
        raise ValueError(f"padding of {padding} bytes is not 0-255")
    if (body_size + padding) % 4:
        raise ValueError(
            f"{body_size}-byte body + {padding} bytes of padding is not whole 32-bit words"
        )


def _check_u32(value: int, what: str) -> None:
    if not 0 <= value < _U32:
        raise ValueError(f"{what} {value} is not a 32-bit value")
