"""Datagrams in, positioned frames out: the listener's depacketizing stage.

A :class:`Frame` carries s16le PCM, its :class:`~appliance.audio.format.AudioFormat` and its
``position``: the index of its first sample frame on the listener's own timeline, which runs
on across sessions. A raw stream is positioned back to back in arrival order; an RTP stream
by its timestamps, so that the playout buffer sees gaps and reordering through positions.

Which of the two a stream is, is decided from its first datagrams by :class:`StreamDetector`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from appliance.audio.format import AudioFormat
from appliance.listener.reception import SequenceTracker
from appliance.wire import Wire
from appliance.wire.codecs import codec_for
from appliance.wire.payload import PayloadMap
from appliance.wire.raw import RAW_FORMAT, InvalidDatagram, RawDatagram
from appliance.wire.rtp import (
    HEADER_SIZE,
    InvalidPacket,
    RtpPacket,
    TimestampUnwrapper,
    looks_like_rtp,
    read_plain,
    seq_delta,
)

MAX_DETECTION_SEQ_GAP = 100
"""The second datagram of an RTP stream may be up to this many sequence numbers away from the
first (either way: Wi-Fi reorders, and loses packets in bursts, at the start of a stream too:
2 s of 20 ms packets). Raw PCM cannot meet the test by chance: it would also need the same
32-bit SSRC and the same payload type byte in both."""


@dataclass(frozen=True, slots=True)
class Frame:
    position: int
    """Index of the first sample frame on the listener's timeline."""
    payload: bytes
    """Signed 16-bit little-endian interleaved samples."""
    format: AudioFormat = RAW_FORMAT
    samples: int = field(init=False, compare=False)
    """Sample frames (one sample of every channel) in the payload."""
    end: int = field(init=False, compare=False)
    """Position just after the last sample frame."""

    def __post_init__(self) -> None:
        # Stored once: the buffer reads them several times per packet, under its lock.
        samples = len(self.payload) // self.format.frame_bytes
        object.__setattr__(self, "samples", samples)
        object.__setattr__(self, "end", self.position + samples)

    def after(self, position: int) -> Frame:
        """The part of this frame from ``position`` on (within it)."""
        skip = min(max(0, position - self.position), self.samples)
        payload = self.payload[skip * self.format.frame_bytes :]
        return Frame(self.position + skip, payload, self.format)


class Depacketizer(Protocol):
    @property
    def wire(self) -> Wire: ...

    @property
    def wire_format(self) -> AudioFormat:
        """The stream's format on the wire."""
        ...

    @property
    def format(self) -> AudioFormat:
        """The stream's format as played (s16le)."""
        ...

    @property
    def ssrc(self) -> int | None:
        """The RTP stream's synchronization source (None for raw)."""
        ...

    @property
    def sequence(self) -> SequenceTracker | None:
        """The RTP stream's sequence accounting (None for raw)."""
        ...

    def depacketize(self, data: bytes) -> Frame | None:
        """The datagram's audio (None when it carries none, or repeats a packet already
        received); raises ``ValueError`` for junk."""
        ...


class RawDepacketizer:
    """Positions raw-PCM datagrams back to back, in arrival order (the seed's wire)."""

    wire = Wire.RAW
    wire_format = RAW_FORMAT
    format = RAW_FORMAT
    ssrc = None
    sequence = None

    def __init__(self, start_position: int = 0) -> None:
        self._next_position = start_position

    def depacketize(self, data: bytes) -> Frame | None:
        datagram = RawDatagram.parse(data)
        if datagram.is_end_of_stream:
            return None
        frame = Frame(self._next_position, datagram.payload, RAW_FORMAT)
        self._next_position = frame.end
        return frame


class RtpDepacketizer:
    """Decodes one RTP stream (one SSRC, one payload type) and positions it by timestamp.

    The first packet's timestamp is placed at ``start_position``; every other packet at
    ``start_position`` plus its timestamp's distance from the first (wrap-around included), in
    sample frames, since every payload the listener plays is clocked at its sample rate.
    """

    wire = Wire.RTP

    def __init__(
        self, first: RtpPacket, wire_format: AudioFormat, start_position: int = 0
    ) -> None:
        self.ssrc = first.ssrc
        self.payload_type = first.payload_type
        self.wire_format = wire_format
        self.format = wire_format.decoded()
        self._codec = codec_for(wire_format.encoding)
        self._channels = wire_format.channels
        self._timestamps = TimestampUnwrapper()
        self._origin = self._timestamps.unwrap(first.timestamp) - start_position
        self.sequence: SequenceTracker = SequenceTracker()

    def depacketize(self, data: bytes) -> Frame | None:
        plain = read_plain(data)
        if plain is not None and plain[0] == self.payload_type and plain[3] == self.ssrc:
            if not self.sequence.observe(plain[1]):
                return None
            return self._frame(data[HEADER_SIZE:], plain[2])
        return self.frame_of(RtpPacket.parse(data))

    def frame_of(self, packet: RtpPacket) -> Frame | None:
        if packet.ssrc != self.ssrc:
            raise InvalidPacket(
                f"RTP SSRC {packet.ssrc:#010x} is not the stream's {self.ssrc:#010x}"
            )
        if packet.payload_type != self.payload_type:
            raise InvalidPacket(
                f"RTP payload type {packet.payload_type} is not the stream's {self.payload_type}"
            )
        if not self.sequence.observe(packet.sequence):
            return None
        return self._frame(packet.payload, packet.timestamp)

    def timestamp_of(self, position: int) -> int:
        """The RTP timestamp of the sample frame at ``position`` (the inverse of placing)."""
        return (self._origin + position) % (1 << 32)

    def _frame(self, payload: bytes, timestamp: int) -> Frame | None:
        if not payload:
            return None
        pcm = self._codec.decode(payload, self._channels)  # drops a partial sample frame
        if not pcm:
            return None
        position = self._timestamps.unwrap(timestamp) - self._origin
        return Frame(position, pcm, self.format)


MAX_HELD_REPEATS = 2
"""Copies of a stream's first datagram waited out before deciding (a raw stream may repeat a
datagram, a constant tone; it is then decided at the next one, and nothing is lost)."""


@dataclass(frozen=True, slots=True)
class Detection:
    """What a stream's first datagrams turned out to be."""

    wire: Wire
    datagrams: tuple[bytes, ...]
    """Every datagram held for the decision, in arrival order, to be played now."""
    first_rtp: RtpPacket | None = None
    duplicates: int = 0
    """Copies of the first RTP packet that were dropped (the network duplicated it)."""


class StreamDetector:
    """Decides from a new stream's first datagrams whether it is RTP or raw PCM.

    A datagram that cannot be an RTP packet makes the stream raw at once. One that can is
    held until the next one: the stream is RTP only if that is an RTP packet of the same SSRC
    and payload type with a nearby sequence number. Raw PCM (speech, noise, silence, the
    seed's stream) cannot pass that by chance (it would need 32 equal bits where the SSRC is),
    and nothing is lost: the held datagram is played either way.
    """

    def __init__(self) -> None:
        self._held: bytes | None = None
        self._held_packet: RtpPacket | None = None
        self._repeats: tuple[bytes, ...] = ()
        """Copies of the held datagram that came next (a duplicated first packet)."""

    @property
    def holding(self) -> bool:
        return self._held is not None

    def offer(self, data: bytes) -> Detection | None:
        """The decision, or None while the first datagram is held for it."""
        held, packet = self._held, self._held_packet
        if held is None or packet is None:
            first = _as_rtp(data)
            if first is None:
                return Detection(Wire.RAW, (data,))
            self._held, self._held_packet = data, first
            return None
        if data == held and len(self._repeats) < MAX_HELD_REPEATS:
            # The network duplicated the first packet: it says nothing either way.
            self._repeats += (data,)
            return None
        repeats, self._repeats = self._repeats, ()
        self._held = self._held_packet = None
        second = _as_rtp(data)
        if second is not None and _same_stream(packet, second):
            return Detection(Wire.RTP, (held, data), packet, duplicates=len(repeats))
        return Detection(Wire.RAW, (held, *repeats, data))


def _as_rtp(data: bytes) -> RtpPacket | None:
    if not looks_like_rtp(data):
        return None
    try:
        return RtpPacket.parse(data)
    except InvalidPacket:
        return None


def _same_stream(first: RtpPacket, second: RtpPacket) -> bool:
    gap = abs(seq_delta(first.sequence, second.sequence))
    return (
        second.ssrc == first.ssrc
        and second.payload_type == first.payload_type
        and 0 < gap <= MAX_DETECTION_SEQ_GAP
    )


def rtp_depacketizer(
    first: RtpPacket, payload_map: PayloadMap, start_position: int
) -> RtpDepacketizer:
    """The depacketizer for an RTP stream, or :class:`InvalidDatagram` if its type is unknown."""
    wire_format = payload_map.format_for(first.payload_type)
    if wire_format is None:
        raise InvalidDatagram(
            f"RTP payload type {first.payload_type} is not one this listener plays "
            f"(see --payload-map)"
        )
    return RtpDepacketizer(first, wire_format, start_position)
