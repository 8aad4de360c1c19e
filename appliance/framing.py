"""The wire format: one UDP datagram carries raw PCM, nothing else (the seed's format).

``RawDatagram.parse(bytes(d)) == d`` for every valid datagram. An empty datagram is this
project's end-of-stream marker: it carries no audio, the seed's listener ignores it
(``if len(data)``), and ours uses it to end the session at once instead of after
``--timeout`` seconds of silence.

Example::

    for datagram in frame_pcm(pcm_bytes):
        sock.sendto(bytes(datagram), ("127.0.0.1", DEFAULT_PORT))
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from appliance.audio_format import FRAME_BYTES, MAX_PAYLOAD_BYTES, SAMPLE_WIDTH


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
        if len(data) % SAMPLE_WIDTH:
            raise InvalidDatagram(
                f"datagram of {len(data)} bytes is not whole {SAMPLE_WIDTH * 8}-bit samples"
            )
        return cls(bytes(data))

    def __bytes__(self) -> bytes:
        return self.payload

    @property
    def is_end_of_stream(self) -> bool:
        return not self.payload


END_OF_STREAM = RawDatagram(b"")


def frame_pcm(chunks: Iterable[bytes], frame_bytes: int = FRAME_BYTES) -> Iterator[RawDatagram]:
    """Cut a stream of PCM chunks of any sizes into datagrams of exactly ``frame_bytes``.

    The last datagram may be shorter (like the seed's), but always holds whole samples; a stray
    odd byte at the very end is dropped because it cannot be half a sample of anything.
    """
    pending = bytearray()
    for chunk in chunks:
        pending += chunk
        whole = len(pending) - len(pending) % frame_bytes
        for start in range(0, whole, frame_bytes):
            yield RawDatagram(bytes(pending[start : start + frame_bytes]))
        del pending[:whole]
    tail = len(pending) - len(pending) % SAMPLE_WIDTH
    if tail:
        yield RawDatagram(bytes(pending[:tail]))
