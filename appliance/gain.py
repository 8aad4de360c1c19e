"""Software volume: scale s16le samples by a factor, clipping instead of wrapping around.

At a factor of exactly 1.0 the bytes pass through untouched, so what is played stays
bit-identical to what was sent.
"""

from __future__ import annotations

import sys
from array import array

SAMPLE_MIN = -32768
SAMPLE_MAX = 32767
UNITY = 1.0


def apply_gain(pcm: bytes, factor: float) -> bytes:
    if factor == UNITY:
        return pcm
    samples = array("h", pcm)
    if sys.byteorder == "big":  # the wire is little-endian whatever the host is
        samples.byteswap()
    scaled = array(
        "h", (max(SAMPLE_MIN, min(SAMPLE_MAX, round(s * factor))) for s in samples)
    )
    if sys.byteorder == "big":
        scaled.byteswap()
    return scaled.tobytes()
