"""Audio sources for the sender: a raw PCM file, a 16-bit PCM WAV file, or standard input.

Every source yields signed 16-bit little-endian interleaved PCM and says what it is in
:attr:`PcmSource.format` (an :class:`~appliance.audio.format.AudioFormat`, ``ptime`` 20 ms):

* a WAV file of 16-bit PCM, mono or stereo, at one of
  :data:`~appliance.audio.format.SUPPORTED_RATES`, carries its own rate and channels;
* raw PCM (a file without a WAV header, or ``-`` for standard input) has no header to say,
  so it is 8000 Hz mono unless the caller says otherwise (``send --rate/--channels``).

Anything else (8/24/32-bit or float WAV, A-law, more than two channels, other rates, MP3,
FLAC...) is refused up front with one line that names what the file is and gives the
``ffmpeg`` command that converts it, rather than being streamed as noise. Converting here is
a later step.

Example::

    with open_source("song.wav") as source:
        print(source.format)           # 48000 Hz stereo s16le
        for chunk in source.chunks():
            ...
    open_source("-", raw_format=raw_pcm_format(rate=16000, channels=2))
"""

from __future__ import annotations

import logging
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from appliance.audio.format import (
    MAX_CHANNELS,
    SUPPORTED_RATES,
    AudioFormat,
    Encoding,
    channel_word,
    check_rate,
)
from appliance.errors import SourceError, UsageError
from appliance.wire.raw import RAW_FORMAT

log = logging.getLogger(__name__)

STDIN_NAME = "-"
READ_SIZE = 64 * 1024
PACKET_MS = 20.0
"""Packet time of every source (VoIP's ptime 20): the sender cuts packets of this length."""

SAMPLE_BITS = 16
"""The only sample size sent: the raw wire's and RTP L16's."""

DEFAULT_RAW_FORMAT = RAW_FORMAT
"""What a headerless source is taken to be: the raw wire's 8000 Hz mono s16le."""

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

HINT_RATE = 44100
HINT_CHANNELS = 2
"""What a compressed file is converted to in the hint: CD audio, RTP's static payload type 10,
which any RTP L16 receiver plays (most music is 44.1 kHz, so usually no resampling)."""

# Leading bytes of files people plausibly hand us by mistake.
FOREIGN_SIGNATURES = (
    (b"ID3", "an MP3 file"),
    (b"\xff\xfb", "an MP3 file"),
    (b"\xff\xf3", "an MP3 file"),
    (b"fLaC", "a FLAC file"),
    (b"OggS", "an Ogg file"),
    (b"FORM", "an AIFF file"),
)


def raw_pcm_format(rate: int | None = None, channels: int | None = None) -> AudioFormat:
    """The format of headerless PCM: 16-bit little-endian at ``rate`` Hz with ``channels``
    (default 8000 Hz mono). Raises :class:`UsageError` naming ``--rate``/``--channels``."""
    if rate is not None:
        check_rate(rate, "--rate")
    if channels is not None and not 1 <= channels <= MAX_CHANNELS:
        raise UsageError(f"--channels: {channels} is not 1 (mono) or 2 (stereo)")
    return AudioFormat(
        rate=DEFAULT_RAW_FORMAT.rate if rate is None else rate,
        channels=DEFAULT_RAW_FORMAT.channels if channels is None else channels,
        encoding=Encoding.S16LE,
        ptime_ms=PACKET_MS,
    )


def accepted_formats_text() -> str:
    """In words, for messages: what a WAV file must be."""
    *first, last = (str(rate) for rate in SUPPORTED_RATES)
    return f"16-bit PCM, mono or stereo, at {', '.join(first)} or {last} Hz"


@dataclass(frozen=True, slots=True)
class WavFormat:
    format_tag: int
    channels: int
    sample_rate: int
    bits_per_sample: int

    def is_sendable(self) -> bool:
        return (
            self.format_tag == WAVE_FORMAT_PCM
            and 1 <= self.channels <= MAX_CHANNELS
            and self.sample_rate in SUPPORTED_RATES
            and self.bits_per_sample == SAMPLE_BITS
        )

    def audio_format(self) -> AudioFormat:
        """As an :class:`AudioFormat` (only for a sendable WAV)."""
        return AudioFormat(self.sample_rate, self.channels, Encoding.S16LE, PACKET_MS)

    def __str__(self) -> str:
        kind = WAVE_FORMAT_NAMES.get(self.format_tag, f"format {self.format_tag:#06x}")
        return (
            f"{self.sample_rate} Hz, {self.bits_per_sample}-bit, "
            f"{channel_word(self.channels)} {kind}"
        )


class PcmSource:
    """16-bit little-endian PCM in :attr:`format` from an open binary stream."""

    def __init__(
        self,
        stream: BinaryIO,
        name: str,
        total_bytes: int | None,
        *,
        owns_stream: bool = True,
        audio_format: AudioFormat = DEFAULT_RAW_FORMAT,
        is_wav: bool = False,
    ) -> None:
        self._stream = stream
        self.name = name
        self.total_bytes = total_bytes
        """Audio bytes the source will yield, or None when unknown (standard input)."""
        self.format = audio_format
        """Rate and channels of the PCM (always s16le, 20 ms packets)."""
        self.is_wav = is_wav
        """The format came from a WAV header (rather than being assumed or given)."""
        self._owns_stream = owns_stream

    @property
    def duration_s(self) -> float | None:
        if self.total_bytes is None:
            return None
        return self.total_bytes / self.format.bytes_per_second

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


def open_source(spec: str | Path, raw_format: AudioFormat | None = None) -> PcmSource:
    """Open ``spec``: a path to raw PCM or WAV, or ``-`` for raw PCM on standard input.

    ``raw_format`` is the format of raw PCM (default 8000 Hz mono, see :func:`raw_pcm_format`);
    given for a WAV file, it must agree with the file's header (a :class:`UsageError` if not:
    the user said one thing and the file another).
    """
    fmt = raw_format or DEFAULT_RAW_FORMAT
    if str(spec) == STDIN_NAME:
        return PcmSource(
            sys.stdin.buffer, "standard input", None, owns_stream=False, audio_format=fmt
        )
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
        source = _identify(stream, path, fmt)
    except BaseException:
        stream.close()
        raise
    if source.is_wav and raw_format is not None and not raw_format.same_pcm(source.format):
        source.close()
        raise UsageError(
            f"{path}: is a {source.format.rate} Hz {channel_word(source.format.channels)} WAV "
            "file; --rate and --channels are only for raw PCM"
        )
    return source


def _identify(stream: BinaryIO, path: Path, raw_format: AudioFormat) -> PcmSource:
    head = stream.read(RIFF_HEADER.size)
    if head[:4] == b"RIFF":
        if len(head) < RIFF_HEADER.size or head[8:12] != b"WAVE":
            raise SourceError(f"{path}: a RIFF file but not WAV audio")
        return _open_wav(stream, path)
    for signature, kind in FOREIGN_SIGNATURES:
        if head.startswith(signature):
            raise SourceError(
                f"{path}: looks like {kind}; send raw PCM or a WAV file "
                f"({accepted_formats_text()}). Convert with: {conversion_hint(path)}"
            )
    size = path.stat().st_size
    frame_bytes = raw_format.frame_bytes
    if size % frame_bytes:
        log.warning(
            "%s: odd size (%d bytes); its last %d byte(s) are not a whole %s sample",
            path,
            size,
            size % frame_bytes,
            channel_word(raw_format.channels),
        )
    stream.seek(0)
    return PcmSource(stream, str(path), size - size % frame_bytes, audio_format=raw_format)


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
            if not wav_format.is_sendable():
                raise SourceError(
                    f"{path}: WAV is {wav_format}; the appliance sends "
                    f"{accepted_formats_text()}. Convert with: {conversion_hint(path, wav_format)}"
                )
            fmt = wav_format.audio_format()
            size = None if chunk_size in UNKNOWN_SIZE else chunk_size - chunk_size % fmt.frame_bytes
            return PcmSource(stream, str(path), size, audio_format=fmt, is_wav=True)
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


def hint_rate(rate: int) -> int:
    """The supported rate a WAV at ``rate`` Hz is best converted to: the same if supported,
    else the next one up (no audio band lost), else 44100 or 48000 by which divides it."""
    if rate in SUPPORTED_RATES:
        return rate
    higher = [r for r in SUPPORTED_RATES if r > rate]
    if higher:
        return higher[0]
    return 44100 if rate % 44100 == 0 else 48000


def conversion_hint(path: Path, wav_format: WavFormat | None = None) -> str:
    """The ``ffmpeg`` command that turns ``path`` into a WAV the sender accepts.

    For a WAV only what is wrong changes (a 16-bit 44.1 kHz 5.1 file keeps its rate); any other
    file becomes :data:`HINT_RATE` Hz stereo, whatever it was.
    """
    options = []
    if wav_format is None:
        options += ["-ar", str(HINT_RATE), "-ac", str(HINT_CHANNELS)]
    else:
        if wav_format.sample_rate not in SUPPORTED_RATES:
            options += ["-ar", str(hint_rate(wav_format.sample_rate))]
        if not 1 <= wav_format.channels <= MAX_CHANNELS:
            options += ["-ac", str(MAX_CHANNELS)]
    return f"ffmpeg -i {path} {' '.join([*options, '-c:a', 'pcm_s16le'])} {path.stem}-s16.wav"
