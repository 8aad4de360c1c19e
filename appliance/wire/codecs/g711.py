"""G.711 mu-law (PCMU) and A-law (PCMA): one byte a sample, companded (ITU-T G.711).

Both directions are table lookups built once at import, with the algorithms of the classic
Sun ``g711.c`` (``ulaw2linear``/``alaw2linear`` for 256 codes, ``linear2ulaw``/``linear2alaw``
for all 65536 16-bit samples), written with numpy instead of a loop.

Decoding is exact: the 256 values of ffmpeg's and GStreamer's decoders. Encoding is not
unique across implementations: a sample right at a decision level may get either neighbour
code (ffmpeg picks the nearest level in a 14-bit table, g711.c truncates to 14 bits for mu-law
and 13 for A-law, GStreamer has code of its own), so encoders disagree on 0.2-1.5% of all
16-bit samples, always by one step. Decoding then encoding gives every code back, except
mu-law's negative zero 0x7F, which decodes to 0 and is encoded as the positive zero 0xFF.

Example::

    MULAW.decode(bytes([0x00, 0x7F, 0x80, 0xFF]), channels=1)   # -32124, 0, 32124, 0 (s16le)
    ALAW.encode(np.array([8, -8], "<i2").tobytes(), channels=1)  # b"\\xd5\\x55"
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from appliance.audio.format import Encoding
from appliance.wire.codecs.l16 import SAMPLE_BYTES, whole_frames

_QUANT_MASK = 0x0F
_SEG_MASK = 0x70
_SEG_SHIFT = 4
_SIGN_BIT = 0x80
_ULAW_BIAS = 0x84
_ULAW_CLIP = 8159
"""Largest 14-bit magnitude mu-law encodes; louder samples get the top code."""
_ULAW_SEG_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
"""Top of each segment, 14-bit magnitude plus bias (g711.c ``seg_uend``)."""
_ALAW_SEG_END = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])
"""Top of each segment, 13-bit magnitude (g711.c ``seg_aend``)."""


def ulaw_to_linear(codes: npt.NDArray[np.int64]) -> npt.NDArray[np.int16]:
    """g711.c ``ulaw2linear``: codes are stored complemented, then sign, segment, step."""
    u = ~codes & 0xFF
    t = (((u & _QUANT_MASK) << 3) + _ULAW_BIAS) << ((u & _SEG_MASK) >> _SEG_SHIFT)
    return np.where(u & _SIGN_BIT, _ULAW_BIAS - t, t - _ULAW_BIAS).astype(np.int16)


def alaw_to_linear(codes: npt.NDArray[np.int64]) -> npt.NDArray[np.int16]:
    """g711.c ``alaw2linear``: even bits are inverted (0x55), then sign, segment, step."""
    a = codes ^ 0x55
    seg = (a & _SEG_MASK) >> _SEG_SHIFT
    t = ((a & _QUANT_MASK) << 4) + np.where(seg == 0, 8, 0x108)
    t <<= np.maximum(seg - 1, 0)
    return np.where(a & _SIGN_BIT, t, -t).astype(np.int16)


def linear_to_ulaw(pcm: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]:
    """g711.c ``linear2ulaw``: 14-bit magnitude + bias, segment by search, 4 step bits."""
    pcm = pcm >> 2  # G.711 mu-law takes 14-bit samples
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(pcm), _ULAW_CLIP) + (_ULAW_BIAS >> 2)
    seg = np.searchsorted(_ULAW_SEG_END, magnitude)  # first segment whose end >= magnitude
    in_range = np.minimum(seg, 7)
    code = (in_range << 4) | ((magnitude >> (in_range + 1)) & _QUANT_MASK)
    return (np.where(seg >= 8, 0x7F, code) ^ mask).astype(np.uint8)


def linear_to_alaw(pcm: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]:
    """g711.c ``linear2alaw``: 13-bit sign-magnitude (ones' complement), segment, 4 steps."""
    pcm = pcm >> 3  # G.711 A-law takes 13-bit samples
    negative = pcm < 0
    mask = np.where(negative, 0x55, 0xD5)
    magnitude = np.where(negative, -pcm - 1, pcm)  # -1 -> 0: both signs have a step at 0
    seg = np.searchsorted(_ALAW_SEG_END, magnitude)
    in_range = np.minimum(seg, 7)
    steps = magnitude >> np.maximum(in_range, 1)  # segments 0 and 1 share the finest step
    code = (in_range << 4) | (steps & _QUANT_MASK)
    return (np.where(seg >= 8, 0x7F, code) ^ mask).astype(np.uint8)


_CODES = np.arange(256, dtype=np.int64)
_SAMPLES = np.arange(1 << 16, dtype=np.uint16).view(np.int16).astype(np.int64)
"""Every 16-bit sample, indexed by its bits read as unsigned: the encode tables' order."""


@dataclass(frozen=True, slots=True, eq=False)  # arrays have no single truth value
class G711:
    encoding: Encoding
    to_linear: npt.NDArray[np.int16]
    """256 entries: code -> sample."""
    to_code: npt.NDArray[np.uint8]
    """65536 entries: sample bits (as uint16) -> code."""

    def decode(self, payload: bytes, channels: int) -> bytes:
        codes = np.frombuffer(whole_frames(payload, channels), np.uint8)
        return self.to_linear[codes].astype("<i2").tobytes()

    def encode(self, pcm: bytes, channels: int) -> bytes:
        samples = np.frombuffer(whole_frames(pcm, SAMPLE_BYTES * channels), "<u2")
        codes: npt.NDArray[np.uint8] = self.to_code[samples]
        return codes.tobytes()


MULAW = G711(Encoding.PCMU, ulaw_to_linear(_CODES), linear_to_ulaw(_SAMPLES))
ALAW = G711(Encoding.PCMA, alaw_to_linear(_CODES), linear_to_alaw(_SAMPLES))
