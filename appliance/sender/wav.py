"""The WAV header, read without seeking (a file or a pipe), for the sender's fast path.

16-bit PCM WAV, mono or stereo at a supported rate, is the appliance's own format: it is sent
straight from the file, bit-exact, and so is a WAV on standard input (``espeak-ng --stdout``,
``ffmpeg ... -f wav -``), whose sizes a streaming writer cannot know and leaves as 0,
0xFFFFFFFF or (espeak-ng) 0x7FFFF000: the data is then read to its end. Every other WAV
(24-bit, float, A-law, 96 kHz, 5.1...) is decoded by PyAV (:mod:`appliance.sender.decode`).

Example::

    header = read_wav_header(stream, "song.wav")     # after the 12-byte RIFF/WAVE header
    if header.format.is_plain_pcm():
        pcm = stream.read(header.data_size)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Protocol

from appliance.audio.format import (
    MAX_CHANNELS,
    SUPPORTED_RATES,
    AudioFormat,
    Encoding,
    channel_word,
)
from appliance.errors import SourceError


class Readable(Protocol):
    """What the header reader needs: ``read`` (a file, a pipe, a recording wrapper)."""

    def read(self, size: int = -1, /) -> bytes: ...


RIFF_HEADER = struct.Struct("<4sI4s")
CHUNK_HEADER = struct.Struct("<4sI")
FMT_CHUNK = struct.Struct("<HHIIHH")
WAVE_FORMAT_PCM = 0x0001
WAVE_FORMAT_EXTENSIBLE = 0xFFFE
PLAIN_BITS = 16
SKIP_BLOCK = 64 * 1024


def is_riff_wave(head: bytes) -> bool:
    """Whether ``head`` (the first 12 bytes) starts a RIFF WAVE file."""
    return len(head) >= RIFF_HEADER.size and head[:4] == b"RIFF" and head[8:12] == b"WAVE"


@dataclass(frozen=True, slots=True)
class WavFormat:
    """The ``fmt `` chunk: the real format tag (WAVE_FORMAT_EXTENSIBLE's sub-format)."""

    format_tag: int
    channels: int
    sample_rate: int
    bits_per_sample: int

    def is_plain_pcm(self) -> bool:
        """16-bit PCM, mono or stereo, at a supported rate: sent as it is."""
        return (
            self.format_tag == WAVE_FORMAT_PCM
            and 1 <= self.channels <= MAX_CHANNELS
            and self.sample_rate in SUPPORTED_RATES
            and self.bits_per_sample == PLAIN_BITS
        )

    def describe(self) -> str:
        """``"8000 Hz mono 16-bit PCM WAV"`` (only for :meth:`is_plain_pcm`)."""
        return f"{self.sample_rate} Hz {channel_word(self.channels)} 16-bit PCM WAV"

    def audio_format(self, ptime_ms: float) -> AudioFormat:
        """As an :class:`AudioFormat` (only for :meth:`is_plain_pcm`)."""
        return AudioFormat(self.sample_rate, self.channels, Encoding.S16LE, ptime_ms)


@dataclass(frozen=True, slots=True)
class WavHeader:
    format: WavFormat
    data_size: int
    """The data chunk's size as written: not to be trusted from a streaming writer."""


def read_wav_header(stream: Readable, name: str) -> WavHeader:
    """Read chunks up to the start of the audio data (the RIFF header already read).

    Raises :class:`SourceError` naming ``name`` for a truncated or malformed header.
    """
    wav_format: WavFormat | None = None
    while True:
        header = stream.read(CHUNK_HEADER.size)
        if len(header) < CHUNK_HEADER.size:
            raise SourceError(f"{name}: WAV file has no audio data chunk")
        chunk_id, chunk_size = CHUNK_HEADER.unpack(header)
        if chunk_id == b"data":
            if wav_format is None:
                raise SourceError(f"{name}: WAV file has audio data before its format chunk")
            return WavHeader(wav_format, chunk_size)
        if chunk_id == b"fmt ":
            wav_format = _parse_fmt(stream.read(chunk_size), name)
            _skip(stream, chunk_size % 2)  # RIFF chunks are padded to even sizes
        else:
            _skip(stream, chunk_size + chunk_size % 2)


def _skip(stream: Readable, size: int) -> None:
    while size > 0:
        got = len(stream.read(min(size, SKIP_BLOCK)))
        if not got:
            return
        size -= got


def _parse_fmt(body: bytes, name: str) -> WavFormat:
    if len(body) < FMT_CHUNK.size:
        raise SourceError(f"{name}: WAV format chunk is truncated")
    tag, channels, rate, _byte_rate, _block_align, bits = FMT_CHUNK.unpack_from(body)
    if tag == WAVE_FORMAT_EXTENSIBLE and len(body) >= FMT_CHUNK.size + 10:
        # The real format tag is the first two bytes of the sub-format GUID.
        (tag,) = struct.unpack_from("<H", body, FMT_CHUNK.size + 8)
    return WavFormat(tag, channels, rate, bits)
