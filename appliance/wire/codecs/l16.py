"""16-bit linear PCM: RTP's L16 (big-endian, RFC 3551 section 4.5.11) and plain s16le.

L16 only needs its bytes swapped, done by numpy for a whole packet at once. s16le is the
listener's own PCM, so its codec only trims partial frames.

Example::

    L16.decode(bytes.fromhex("0102 fffe"), channels=1)   # b"\\x02\\x01\\xfe\\xff"
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from appliance.audio.format import Encoding

SAMPLE_BYTES = 2


@dataclass(frozen=True, slots=True)
class Linear16:
    encoding: Encoding
    """S16BE (byte-swapped) or S16LE (as is)."""

    def decode(self, payload: bytes, channels: int) -> bytes:
        return self._convert(payload, channels)

    def encode(self, pcm: bytes, channels: int) -> bytes:
        return self._convert(pcm, channels)

    def _convert(self, data: bytes, channels: int) -> bytes:
        # Swapping is its own inverse, so one conversion serves both directions.
        whole = whole_frames(data, SAMPLE_BYTES * channels)
        if self.encoding is Encoding.S16LE:
            return whole
        return np.frombuffer(whole, ">i2").astype("<i2").tobytes()


def whole_frames(data: bytes, frame_bytes: int) -> bytes:
    """``data`` without a trailing partial frame."""
    if frame_bytes < 1:
        raise ValueError(f"frames of {frame_bytes} bytes: channels must be 1 or more")
    extra = len(data) % frame_bytes
    return bytes(data[: len(data) - extra])


L16 = Linear16(Encoding.S16BE)
S16LE = Linear16(Encoding.S16LE)
