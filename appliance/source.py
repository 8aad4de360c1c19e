"""Audio sources for the sender: a raw PCM file, a WAV file in our format, or standard input.

Only the appliance's own format is accepted (see :mod:`appliance.audio_format`); anything
else is refused up front with a message that names what the file is and how to convert it,
rather than being streamed as noise.

Example::

    with open_source("speech.wav") as source:
        for chunk in source.chunks():
            ...
"""

from __future__ import annotations

import logging
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from appliance.audio_format import (
    BYTES_PER_SECOND,
    CHANNELS,
    SAMPLE_RATE,
    SAMPLE_WIDTH,
    describe,
)
from appliance.errors import SourceError

log = logging.getLogger(__name__)

STDIN_NAME = "-"
READ_SIZE = 64 * 1024

WAVE_FORMAT_PCM = 0x0001
WAVE_FORMAT_IEEE_FLOAT = 0x0003
WAVE_FORMAT_ALAW = 0x0006
WAVE_FORMAT_MULAW = 0x0007
WAVE_FORMAT_EXTENSIBLE = 0xFFFE
WAVE_FORMAT_NAMES = {
    WAVE_FORMAT_PCM: "PCM",
    WAVE_FORMAT_IEEE_FLOAT: "floating-point",
    WAVE_FORMAT_ALAW: "A-law",
    WAVE_FORMAT_MULAW: "mu-law",
}
RIFF_HEADER = struct.Struct("<4sI4s")
CHUNK_HEADER = struct.Struct("<4sI")
FMT_CHUNK = struct.Struct("<HHIIHH")
UNKNOWN_SIZE = (0, 0xFFFFFFFF)
"""Data sizes a streaming writer (ffmpeg to a pipe) leaves in the header: read to the end."""

# Leading bytes of files people plausibly hand us by mistake.
FOREIGN_SIGNATURES = (
    (b"ID3", "an MP3 file"),
    (b"\xff\xfb", "an MP3 file"),
    (b"\xff\xf3", "an MP3 file"),
    (b"fLaC", "a FLAC file"),
    (b"OggS", "an Ogg file"),
    (b"FORM", "an AIFF file"),
)


@dataclass(frozen=True, slots=True)
class WavFormat:
    format_tag: int
    channels: int
    sample_rate: int
    bits_per_sample: int

    def is_ours(self) -> bool:
        return (
            self.format_tag == WAVE_FORMAT_PCM
            and self.channels == CHANNELS
            and self.sample_rate == SAMPLE_RATE
            and self.bits_per_sample == SAMPLE_WIDTH * 8
        )

    def __str__(self) -> str:
        kind = WAVE_FORMAT_NAMES.get(self.format_tag, f"format {self.format_tag:#06x}")
        layout = {1: "mono", 2: "stereo"}.get(self.channels, f"{self.channels}-channel")
        return f"{self.sample_rate} Hz, {self.bits_per_sample}-bit, {layout} {kind}"


class PcmSource:
    """Raw PCM bytes in the appliance's format from an open binary stream."""

    def __init__(
        self, stream: BinaryIO, name: str, total_bytes: int | None, *, owns_stream: bool = True
    ) -> None:
        self._stream = stream
        self.name = name
        self.total_bytes = total_bytes
        """Audio bytes the source will yield, or None when unknown (standard input)."""
        self._owns_stream = owns_stream

    @property
    def duration_s(self) -> float | None:
        return None if self.total_bytes is None else self.total_bytes / BYTES_PER_SECOND

    def chunks(self) -> Iterator[bytes]:
        remaining = self.total_bytes
        while remaining is None or remaining > 0:
            size = READ_SIZE if remaining is None else min(READ_SIZE, remaining)
            chunk = self._stream.read(size)
            if not chunk:
                return
            if remaining is not None:
                remaining -= len(chunk)
            yield chunk

    def close(self) -> None:
        if self._owns_stream:
            self._stream.close()

    def __enter__(self) -> PcmSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_source(spec: str | Path) -> PcmSource:
    """Open ``spec``: a path to raw PCM or WAV, or ``-`` for raw PCM on standard input."""
    if str(spec) == STDIN_NAME:
        return PcmSource(sys.stdin.buffer, "standard input", None, owns_stream=False)
    path = Path(spec)
    try:
        stream = path.open("rb")
    except FileNotFoundError:
        raise SourceError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise SourceError(f"{path}: is a directory, not an audio file") from None
    except OSError as error:
        raise SourceError(f"{path}: cannot read: {error.strerror}") from None
    try:
        return _identify(stream, path)
    except BaseException:
        stream.close()
        raise


def _identify(stream: BinaryIO, path: Path) -> PcmSource:
    head = stream.read(RIFF_HEADER.size)
    if head[:4] == b"RIFF":
        if len(head) < RIFF_HEADER.size or head[8:12] != b"WAVE":
            raise SourceError(f"{path}: a RIFF file but not WAV audio")
        return _open_wav(stream, path)
    for signature, kind in FOREIGN_SIGNATURES:
        if head.startswith(signature):
            raise SourceError(
                f"{path}: looks like {kind}; send raw PCM or a WAV file ({describe()}). "
                f"Convert with: {conversion_hint(path)}"
            )
    size = path.stat().st_size
    if size % SAMPLE_WIDTH:
        log.warning("%s: odd size (%d bytes); its last byte is not a whole sample", path, size)
    stream.seek(0)
    return PcmSource(stream, str(path), size - size % SAMPLE_WIDTH)


def _open_wav(stream: BinaryIO, path: Path) -> PcmSource:
    wav_format: WavFormat | None = None
    while True:
        header = stream.read(CHUNK_HEADER.size)
        if len(header) < CHUNK_HEADER.size:
            raise SourceError(f"{path}: WAV file has no audio data chunk")
        chunk_id, chunk_size = CHUNK_HEADER.unpack(header)
        if chunk_id == b"fmt ":
            wav_format = _read_fmt(stream.read(chunk_size), path)
            stream.read(chunk_size % 2)  # RIFF chunks are padded to even sizes
        elif chunk_id == b"data":
            if wav_format is None:
                raise SourceError(f"{path}: WAV file has audio data before its format chunk")
            if not wav_format.is_ours():
                raise SourceError(
                    f"{path}: WAV is {wav_format}; the appliance needs {describe()}. "
                    f"Convert with: {conversion_hint(path)}"
                )
            size = None if chunk_size in UNKNOWN_SIZE else chunk_size - chunk_size % SAMPLE_WIDTH
            return PcmSource(stream, str(path), size)
        else:
            stream.seek(chunk_size + chunk_size % 2, 1)


def _read_fmt(body: bytes, path: Path) -> WavFormat:
    if len(body) < FMT_CHUNK.size:
        raise SourceError(f"{path}: WAV format chunk is truncated")
    tag, channels, rate, _byte_rate, _block_align, bits = FMT_CHUNK.unpack_from(body)
    if tag == WAVE_FORMAT_EXTENSIBLE and len(body) >= FMT_CHUNK.size + 10:
        # The real format tag is the first two bytes of the sub-format GUID.
        (tag,) = struct.unpack_from("<H", body, FMT_CHUNK.size + 8)
    return WavFormat(tag, channels, rate, bits)


def conversion_hint(path: Path) -> str:
    return f"ffmpeg -i {path} -ar {SAMPLE_RATE} -ac {CHANNELS} -c:a pcm_s16le {path.stem}-8k.wav"
