"""The one audio format the appliance speaks, and the wire constants derived from it.

The seed program's format is the compatibility baseline: raw signed 16-bit little-endian PCM,
8000 Hz, mono, in 320-byte UDP datagrams (20 ms each, VoIP "ptime 20") sent to port 5005.
"""

from __future__ import annotations

SAMPLE_RATE = 8000
"""Samples per second."""

SAMPLE_WIDTH = 2
"""Bytes per sample (signed 16-bit little-endian)."""

CHANNELS = 1

FORMAT_NAME = "s16le"

FRAME_MS = 20
"""Duration of one frame: the audio carried by one full datagram, and one player callback."""

SAMPLES_PER_FRAME = SAMPLE_RATE * FRAME_MS // 1000
FRAME_BYTES = SAMPLES_PER_FRAME * SAMPLE_WIDTH * CHANNELS
"""320 bytes: one 20 ms datagram."""

BYTES_PER_SECOND = SAMPLE_RATE * SAMPLE_WIDTH * CHANNELS

DEFAULT_PORT = 5005

MAX_PAYLOAD_BYTES = 5 * FRAME_BYTES
"""Largest datagram accepted as audio (100 ms). Larger ones are not what any ptime-based
sender emits; they are counted as invalid rather than allowed to blow up latency."""


def describe() -> str:
    """The format in words, for messages and ``--help``."""
    return f"{SAMPLE_RATE} Hz, {SAMPLE_WIDTH * 8}-bit signed little-endian, mono"


def bytes_to_seconds(n_bytes: int) -> float:
    return n_bytes / BYTES_PER_SECOND


def seconds_to_bytes(seconds: float) -> int:
    """Whole samples' worth of bytes for a duration (rounded down to a sample boundary)."""
    samples = int(seconds * SAMPLE_RATE)
    return samples * SAMPLE_WIDTH * CHANNELS
