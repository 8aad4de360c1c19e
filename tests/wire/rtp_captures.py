"""The captured datagrams of tests/data/rtp/ and the audio they were made from.

Example::

    packets = [RtpPacket.parse(d) for d in datagrams("ffmpeg_pcm_s16be.hex")]
    source = sawtooth(8000)     # the s16le the sender read
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CAPTURES = Path(__file__).resolve().parent.parent / "data" / "rtp"


def datagrams(name: str) -> list[bytes]:
    """The datagrams of a capture file: one hex line each, ``#`` lines are comments."""
    lines = (CAPTURES / name).read_text().splitlines()
    return [bytes.fromhex(line) for line in lines if line.strip() and not line.startswith("#")]


def sawtooth(samples: int) -> bytes:
    """The captures' source: s16le sample i = ((i * 331) % 65536) - 32768 (all 16-bit values)."""
    i = np.arange(samples, dtype=np.int64)
    return (((i * 331) % 65536) - 32768).astype("<i2").tobytes()
