"""The raw wire: one UDP datagram carries PCM and nothing else (the seed's format).

:data:`RAW_FORMAT` is its whole definition: 8000 Hz, signed 16-bit little-endian, mono, 20 ms
(320 bytes) a datagram, sent to port :data:`DEFAULT_PORT`. No other module assumes any of it.

``RawDatagram.parse(bytes(d)) == d`` for every valid datagram. An empty datagram is this
project's end-of-stream marker: it carries no audio, the seed's listener ignores it
(``if len(data)``), and ours uses it to end the session at once instead of after
``--timeout`` seconds of silence.

Example::

    for datagram in frame_pcm([pcm_bytes]):
        sock.sendto(bytes(datagram), ("127.0.0.1", DEFAULT_PORT))
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from appliance.audio.format import AudioFormat, Encoding

RAW_FORMAT = AudioFormat(rate=8000, channels=1, encoding=Encoding.S16LE, ptime_ms=20)
"""The seed's stream: 8 kHz s16le mono, 320-byte datagrams."""

DEFAULT_PORT = 5005

MAX_PAYLOAD_BYTES = 5 * RAW_FORMAT.packet_bytes
"""Largest datagram accepted as raw audio (100 ms). Larger ones are not what any ptime-based
sender emits; they are counted as invalid rather than allowed to blow up latency."""


class InvalidDatagram(ValueError):
    """A datagram that is not audio in our format; counted and dropped, never played."""


@dataclass(frozen=True, slots=True)
class RawDatagram:
    payload: bytes

    @classmethod
    def parse(cls, data: bytes) -> RawDatagram:
        if len(data) > MAX_PAYLOAD_BYTES:
            raise InvalidDatagram(
                f"datagram of {len(data)} bytes is larger than the {MAX_PAYLOAD_BYTES}-byte maximum"
            )
        if len(data) % RAW_FORMAT.frame_bytes:
            raise InvalidDatagram(
                f"datagram of {len(data)} bytes is not whole {RAW_FORMAT.sample_bytes * 8}-bit "
                "samples"
            )
        return cls(bytes(data))

    def __bytes__(self) -> bytes:
        return self.payload

    @property
    def is_end_of_stream(self) -> bool:
        return not self.payload


END_OF_STREAM = RawDatagram(b"")


def frame_pcm(
    chunks: Iterable[bytes], audio_format: AudioFormat = RAW_FORMAT
) -> Iterator[RawDatagram]:
    """Cut a stream of PCM chunks of any sizes into datagrams of one packet of the format.

    The last datagram may be shorter (like the seed's), but always holds whole sample frames;
    a stray partial frame at the very end is dropped because it cannot be played.
    """
    for payload in cut_packets(chunks, audio_format.packet_bytes, audio_format.frame_bytes):
        yield RawDatagram(payload)


def cut_packets(chunks: Iterable[bytes], packet_bytes: int, frame_bytes: int) -> Iterator[bytes]:
    """Chunks of any sizes in, ``packet_bytes`` pieces out (the last one shorter, whole frames)."""
    pending = bytearray()
    for chunk in chunks:
        pending += chunk
        whole = len(pending) - len(pending) % packet_bytes
        for start in range(0, whole, packet_bytes):
            yield bytes(pending[start : start + packet_bytes])
        del pending[:whole]
    tail = len(pending) - len(pending) % frame_bytes
    if tail:
        yield bytes(pending[:tail])
