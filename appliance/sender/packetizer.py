"""Packet streams: what the :class:`~appliance.sender.sender.Sender` puts on the wire.

A :class:`PacketStream` is the datagrams of one stream, their pace, and the datagrams that end
it. Two wires:

* :class:`RawStream`: the seed's raw wire (:mod:`appliance.wire.raw`): 320-byte datagrams of
  8000 Hz mono s16le, ended by one empty datagram, exactly as the seed-compatible sender always
  did.
* :class:`RtpStream`: RTP (RFC 3550) with an RFC 3551 audio payload, L16 (16-bit big-endian)
  by default. One packet carries 20 ms (``ptime`` 20: 160 frames at 8 kHz, 882 at 44.1 kHz,
  960 at 48 kHz). As RFC 3550 section 5.1 asks, the SSRC, the first sequence number and the
  first timestamp are random (a restarted sender is a new source, and known-plaintext is not
  handed out). The first packet has the marker bit (the start of a talkspurt, RFC 3551
  section 4.1). The sequence number goes up by one per packet modulo 2^16, the timestamp by
  the packet's sample frames modulo 2^32. The stream ends with an RTCP BYE for its SSRC, sent
  twice (:data:`BYE_COPIES`): a lost BYE would leave the listener waiting for ``--timeout``.

Example::

    with open_source("song.wav") as source:            # 48000 Hz stereo
        stream = RtpStream(source.chunks(), source.format, payload_type=127)
        report = Sender(("192.168.1.20", 5005)).send(stream)
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

from appliance.audio.format import AudioFormat, Encoding
from appliance.wire import Wire, rtcp
from appliance.wire.codecs import codec_for
from appliance.wire.raw import END_OF_STREAM, RAW_FORMAT, RawDatagram, cut_packets
from appliance.wire.rtp import RtpPacket

SEQUENCE_MODULO = 1 << 16
TIMESTAMP_MODULO = 1 << 32
SSRC_BITS = 32

BYE_COPIES = 2
"""How many RTCP BYEs end an RTP stream: a second one is a cheap hedge against losing the
first (the sender waits :data:`BYE_GAP_S` between them, so one burst of loss does not take
both)."""
BYE_GAP_S = 0.05


@dataclass(frozen=True, slots=True)
class WirePacket:
    """One datagram and how many bytes of audio payload it carries (for the report)."""

    datagram: bytes
    payload_bytes: int


@runtime_checkable
class PacketStream(Protocol):
    """What :meth:`Sender.send <appliance.sender.sender.Sender.send>` sends."""

    @property
    def wire(self) -> Wire: ...

    @property
    def wire_format(self) -> AudioFormat:
        """The audio as it is on the wire (its encoding sizes :attr:`WirePacket.payload_bytes`)."""
        ...

    @property
    def payload_type(self) -> int | None:
        """The RTP payload type, None on the raw wire."""
        ...

    @property
    def interval_s(self) -> float:
        """Audio per full packet, in seconds: the pace of the stream."""
        ...

    def __iter__(self) -> Iterator[WirePacket]: ...

    def goodbye(self) -> list[bytes]:
        """The datagrams that end the stream, sent :data:`BYE_GAP_S` apart."""
        ...


def packet_interval_s(audio_format: AudioFormat) -> float:
    """Seconds of audio in one packet of ``audio_format``: whole frames, so not always its
    nominal ptime (11025 Hz: 220 frames, 19.95 ms). Pacing at the nominal 20 ms would send
    slower than real time and the listener would run dry every few seconds."""
    return audio_format.packet_frames / audio_format.rate


class RawStream:
    """Raw datagrams (see :func:`appliance.wire.raw.frame_pcm`), ended by the empty datagram."""

    wire: Wire = Wire.RAW
    payload_type: int | None = None

    def __init__(
        self, datagrams: Iterable[RawDatagram], audio_format: AudioFormat = RAW_FORMAT
    ) -> None:
        self._datagrams = datagrams
        self.wire_format = audio_format
        self.interval_s = packet_interval_s(audio_format)

    def __iter__(self) -> Iterator[WirePacket]:
        for datagram in self._datagrams:
            yield WirePacket(bytes(datagram), len(datagram.payload))

    def goodbye(self) -> list[bytes]:
        return [bytes(END_OF_STREAM)]


def random_bits(bits: int) -> int:
    return secrets.randbits(bits)


class RtpStream:
    """PCM chunks (s16le in ``source_format``) as RTP packets of ``payload_type``.

    :param encoding: the payload's sample encoding; L16 (:attr:`Encoding.S16BE`) unless the
        payload type says otherwise (PCMU/PCMA are possible, not used by ``send``).
    :param ssrc, first_sequence, first_timestamp: fixed values for tests; random by default.
    """

    wire: Wire = Wire.RTP

    def __init__(
        self,
        chunks: Iterable[bytes],
        source_format: AudioFormat,
        payload_type: int,
        *,
        encoding: Encoding = Encoding.S16BE,
        ssrc: int | None = None,
        first_sequence: int | None = None,
        first_timestamp: int | None = None,
    ) -> None:
        if source_format.encoding is not Encoding.S16LE:
            raise ValueError(f"the source must be s16le PCM, not {source_format.encoding}")
        if not 0 <= payload_type <= 127:
            raise ValueError(f"RTP payload type {payload_type} is not 0-127")
        self._chunks = chunks
        self.source_format = source_format
        self.payload_type: int | None = payload_type
        self._payload_type = payload_type
        self.wire_format = replace(source_format, encoding=encoding)
        self.interval_s = packet_interval_s(source_format)
        self._codec = codec_for(encoding)
        self.ssrc = random_bits(SSRC_BITS) if ssrc is None else ssrc
        self.first_sequence = (
            random_bits(16) if first_sequence is None else first_sequence % SEQUENCE_MODULO
        )
        self.first_timestamp = (
            random_bits(32) if first_timestamp is None else first_timestamp % TIMESTAMP_MODULO
        )

    def packets(self) -> Iterator[RtpPacket]:
        """The RTP packets, as values (``bytes(packet)`` is the datagram)."""
        fmt = self.source_format
        sequence, timestamp = self.first_sequence, self.first_timestamp
        first = True
        for pcm in cut_packets(self._chunks, fmt.packet_bytes, fmt.frame_bytes):
            payload = self._codec.encode(pcm, fmt.channels)
            yield RtpPacket(
                self._payload_type, sequence, timestamp, self.ssrc, payload, marker=first
            )
            first = False
            sequence = (sequence + 1) % SEQUENCE_MODULO
            timestamp = (timestamp + fmt.frames_in(len(pcm))) % TIMESTAMP_MODULO

    def __iter__(self) -> Iterator[WirePacket]:
        for packet in self.packets():
            yield WirePacket(bytes(packet), len(packet.payload))

    def goodbye(self) -> list[bytes]:
        return [rtcp.bye(self.ssrc)] * BYE_COPIES
