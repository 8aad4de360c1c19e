"""RTP data packets (RFC 3550 section 5.1), and the modular arithmetic of their counters.

:class:`RtpPacket` is one datagram as a value: ``RtpPacket.parse(bytes(p)) == p`` for every
packet, and ``bytes(RtpPacket.parse(d)) == d`` for every valid datagram whose padding bytes
are zeros (the RFC leaves their content open; every sender we know writes zeros). The header
extension is kept as opaque words (RFC 3550 section 5.3.1): the listener needs none of them,
but must step over them to find the payload.

Sequence numbers (16 bits) and timestamps (32 bits) wrap around. :func:`seq_delta` and
:func:`ts_delta` give the signed distance between two of them; the unwrappers turn a stream
of them into plain integers that keep counting past the wrap.

Example::

    packet = RtpPacket.parse(datagram)
    packet.payload_type, packet.sequence, packet.timestamp    # (97, 3744, 2789297542)
    bytes(packet) == datagram                                  # True
    seq_delta(65535, 0)                                        # 1: the next packet
    unwrap = SequenceUnwrapper()
    [unwrap.unwrap(s) for s in (65534, 65535, 0, 1)]           # [65534, 65535, 65536, 65537]
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

VERSION = 2
HEADER_SIZE = 12
"""The fixed header: V/P/X/CC, M/PT, sequence, timestamp, SSRC."""

MAX_CSRCS = 15
RTCP_COLLIDING_TYPES = range(72, 77)
"""Payload types that, with the marker bit set, read as RTCP SR..APP (200-204): RFC 5761
section 4 forbids them, so a datagram carrying one is taken for RTCP, never for audio."""

_FIXED = struct.Struct("!BBHII")
_EXTENSION_HEADER = struct.Struct("!HH")
_U16 = 1 << 16
_U32 = 1 << 32


class InvalidPacket(ValueError):
    """A datagram that is not a well-formed RTP (or RTCP) packet; counted and dropped."""


@dataclass(frozen=True, slots=True)
class RtpExtension:
    """The header extension: a profile-defined 16-bit id and whole 32-bit words of data."""

    profile: int
    data: bytes

    def __post_init__(self) -> None:
        if not 0 <= self.profile < _U16:
            raise ValueError(f"extension profile {self.profile} is not a 16-bit value")
        if len(self.data) % 4:
            raise ValueError(f"extension data of {len(self.data)} bytes is not whole 32-bit words")
        if len(self.data) // 4 >= _U16:
            raise ValueError(f"extension data of {len(self.data)} bytes is too long for RTP")


@dataclass(frozen=True, slots=True)
class RtpPacket:
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrcs: tuple[int, ...] = ()
    extension: RtpExtension | None = None
    padding: int = 0
    """Padding bytes after the payload, the count byte included; 0 = P bit clear."""

    def __post_init__(self) -> None:
        if not 0 <= self.payload_type <= 127:
            raise ValueError(f"payload type {self.payload_type} is not 0-127")
        if self.payload_type in RTCP_COLLIDING_TYPES:
            # Allowed to build, such a packet would not parse back: refuse it here already.
            raise ValueError(f"payload type {self.payload_type} collides with RTCP (RFC 5761)")
        if not 0 <= self.sequence < _U16:
            raise ValueError(f"sequence number {self.sequence} is not 0-65535")
        _check_u32(self.timestamp, "timestamp")
        _check_u32(self.ssrc, "SSRC")
        if len(self.csrcs) > MAX_CSRCS:
            raise ValueError(f"{len(self.csrcs)} CSRCs: RTP carries at most {MAX_CSRCS}")
        for csrc in self.csrcs:
            _check_u32(csrc, "CSRC")
        if not 0 <= self.padding <= 255:
            raise ValueError(f"padding of {self.padding} bytes is not 0-255")

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """The packet in ``data``; :class:`InvalidPacket` says what is wrong with it."""
        size = len(data)
        if size < HEADER_SIZE:
            raise InvalidPacket(
                f"datagram of {size} bytes is shorter than the {HEADER_SIZE}-byte RTP header"
            )
        first, second, sequence, timestamp, ssrc = _FIXED.unpack_from(data)
        version = first >> 6
        if version != VERSION:
            raise InvalidPacket(f"RTP version {version}, not {VERSION}")
        payload_type = second & 0x7F
        if payload_type in RTCP_COLLIDING_TYPES:
            raise InvalidPacket(
                f"payload type {payload_type} is reserved for RTCP (RFC 5761 section 4)"
            )
        csrc_count = first & 0x0F
        pos = HEADER_SIZE + 4 * csrc_count
        if pos > size:
            raise InvalidPacket(
                f"RTP header of {HEADER_SIZE} bytes + {csrc_count} CSRCs is longer than the "
                f"{size}-byte datagram"
            )
        csrcs = struct.unpack_from(f"!{csrc_count}I", data, HEADER_SIZE)
        extension = None
        if first & 0x10:
            if pos + _EXTENSION_HEADER.size > size:
                raise InvalidPacket(
                    f"header extension at byte {pos} is cut off by the end of the "
                    f"{size}-byte datagram"
                )
            profile, words = _EXTENSION_HEADER.unpack_from(data, pos)
            start = pos + _EXTENSION_HEADER.size
            pos = start + 4 * words
            if pos > size:
                raise InvalidPacket(
                    f"header extension of {words} words at byte {start} is longer than the "
                    f"{size}-byte datagram"
                )
            extension = RtpExtension(profile, bytes(data[start:pos]))
        end = size
        padding = 0
        if first & 0x20:
            # The last byte counts the padding, itself included (RFC 3550 section 5.1).
            padding = data[-1]
            if padding == 0:
                raise InvalidPacket("padding count 0: the P bit needs at least the count byte")
            if padding > size - pos:
                raise InvalidPacket(
                    f"padding count {padding} is larger than the {size - pos}-byte payload"
                )
            end = size - padding
        return cls(
            payload_type=payload_type,
            sequence=sequence,
            timestamp=timestamp,
            ssrc=ssrc,
            payload=bytes(data[pos:end]),
            marker=bool(second & 0x80),
            csrcs=csrcs,
            extension=extension,
            padding=padding,
        )

    def __bytes__(self) -> bytes:
        first = (
            (VERSION << 6)
            | (0x20 if self.padding else 0)
            | (0x10 if self.extension is not None else 0)
            | len(self.csrcs)
        )
        second = (0x80 if self.marker else 0) | self.payload_type
        parts = [
            _FIXED.pack(first, second, self.sequence, self.timestamp, self.ssrc),
            struct.pack(f"!{len(self.csrcs)}I", *self.csrcs),
        ]
        if self.extension is not None:
            ext = self.extension
            parts += [_EXTENSION_HEADER.pack(ext.profile, len(ext.data) // 4), ext.data]
        parts.append(self.payload)
        if self.padding:
            parts.append(bytes(self.padding - 1) + bytes([self.padding]))
        return b"".join(parts)


PLAIN_FIRST_BYTE = VERSION << 6
"""Version 2, no padding, no extension, no CSRC: the first byte of nearly every audio packet."""


def read_plain(data: bytes) -> tuple[int, int, int, int] | None:
    """``(payload type, sequence number, timestamp, SSRC)`` of a packet whose header is the
    fixed 12 bytes and nothing else (its payload is ``data[12:]``), read without building an
    :class:`RtpPacket`; None for any other datagram, for :meth:`RtpPacket.parse` to judge.

    The listener's fast path: it runs for every packet of a stream.
    """
    if len(data) < HEADER_SIZE or data[0] != PLAIN_FIRST_BYTE:
        return None
    _first, second, sequence, timestamp, ssrc = _FIXED.unpack_from(data)
    payload_type = second & 0x7F
    if payload_type in RTCP_COLLIDING_TYPES:
        return None
    return payload_type, sequence, timestamp, ssrc


def looks_like_rtp(data: bytes) -> bool:
    """Cheap test to sort RTP from RTCP and other traffic on one port; not a full parse.

    The second byte of RTCP is its packet type, 192-223 (RFC 5761 section 4); in RTP it is
    the marker bit and payload type, which never take those values (types 64-95 are unused).
    """
    return len(data) >= HEADER_SIZE and data[0] >> 6 == VERSION and not 192 <= data[1] <= 223


def seq_delta(older: int, newer: int) -> int:
    """``newer - older`` for 16-bit sequence numbers, in [-32768, 32767]: 65535 -> 0 is +1."""
    return _wrapped_delta(older, newer, 16)


def ts_delta(older: int, newer: int) -> int:
    """``newer - older`` for 32-bit RTP timestamps, in [-2**31, 2**31 - 1]."""
    return _wrapped_delta(older, newer, 32)


def _wrapped_delta(older: int, newer: int, bits: int) -> int:
    half = 1 << (bits - 1)
    return ((newer - older + half) & ((1 << bits) - 1)) - half


class Unwrapper:
    """Turns a wrapping ``bits``-bit counter into a plain integer that keeps counting.

    The first value is returned as is; each later one is the previous result plus the signed
    modular step from the previous raw value. A value that went backwards (reordering) gives
    a smaller result, across a wrap too, and may go below zero right after the start.
    """

    def __init__(self, bits: int) -> None:
        if bits < 2:
            raise ValueError(f"a {bits}-bit counter cannot wrap meaningfully")
        self.bits = bits
        self._raw: int | None = None
        self._extended = 0

    def unwrap(self, value: int) -> int:
        if not 0 <= value < 1 << self.bits:
            raise ValueError(f"{value} is not a {self.bits}-bit counter value")
        if self._raw is None:
            self._extended = value
        else:
            self._extended += _wrapped_delta(self._raw, value, self.bits)
        self._raw = value
        return self._extended


class SequenceUnwrapper(Unwrapper):
    """RTP sequence numbers (16 bits) as ever-growing packet indexes."""

    def __init__(self) -> None:
        super().__init__(16)


class TimestampUnwrapper(Unwrapper):
    """RTP timestamps (32 bits) as ever-growing sample-frame positions."""

    def __init__(self) -> None:
        super().__init__(32)


def _check_u32(value: int, what: str) -> None:
    if not 0 <= value < _U32:
        raise ValueError(f"{what} {value} is not a 32-bit value")
