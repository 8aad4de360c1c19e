"""Sample arithmetic on s16le PCM, vectorised with numpy (no per-sample Python loops).

:func:`apply_gain` is the software volume: it scales by a factor, clipping instead of
wrapping around. At a factor of exactly 1.0 the bytes pass through untouched, so what is
played stays bit-identical to what was sent.
"""

from __future__ import annotations

import numpy as np

SAMPLE_MIN = -32768
SAMPLE_MAX = 32767
UNITY = 1.0
S16LE = np.dtype("<i2")
"""The listener's internal sample type, explicitly little-endian whatever the host is."""


def apply_gain(pcm: bytes, factor: float) -> bytes:
    if factor == UNITY:
        return pcm
    samples = np.frombuffer(pcm, dtype=S16LE).astype(np.float32)
    samples *= factor
    # rint rounds half to even, like Python's round(): the same result as before numpy.
    np.rint(samples, out=samples)
    np.clip(samples, SAMPLE_MIN, SAMPLE_MAX, out=samples)
    return samples.astype(S16LE).tobytes()
