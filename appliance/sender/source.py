"""Audio sources for the sender: any audio file, raw PCM, or standard input (:func:`open_source`).

Every source yields signed 16-bit little-endian interleaved PCM in :attr:`PcmSource.format`
(an :class:`~appliance.audio.format.AudioFormat`, ``ptime`` 20 ms) and says what it was in
:attr:`PcmSource.origin`. What it is opened as:

* **a WAV file of 16-bit PCM**, mono or stereo at a supported rate: read straight from the
  file (the fast path: bit-exact, nothing decoded);
* **any other audio file** (MP3, AAC/M4A, FLAC, Ogg Vorbis/Opus, WAV or AIFF of any rate,
  width and channel count...): decoded by PyAV (:mod:`appliance.sender.decode`);
* **raw PCM**: a file named ``.raw``, ``.pcm``, ``.s16`` or ``.sln``, or any non-WAV file when
  ``--rate``, ``--channels`` or ``--format`` is given. It has no header to say what it is, so
  it is 8000 Hz mono s16le unless those options say otherwise;
* **standard input** (``-``): a WAV stream if it starts with a RIFF header (``espeak-ng
  --stdout``, ``ffmpeg ... -f wav -``; unknown sizes are read to the end), a compressed stream
  PyAV recognises by its first bytes (MP3, FLAC, Ogg), else raw PCM as above.

Anything else (a text file, random bytes named ``.m4a``, an empty file, a video without sound,
a directory) is a :class:`~appliance.errors.SourceError` naming the file: never noise.

What is sent is decided later, once the listener is known (:mod:`appliance.sender.conversion`):
:attr:`PcmSource.format` starts as the best the source can be sent as (its own rate and
channels if the appliance plays them); :meth:`PcmSource.convert_to` changes it before
:meth:`PcmSource.chunks` is called, and the conversion then happens on the fly (libsoxr).

Example::

    with open_source("song.flac") as source:
        print(source.origin.describe(), source.format)   # 44100 Hz stereo FLAC, 44100 Hz stereo
        source.convert_to(AudioFormat(48000, 2))
        for chunk in source.chunks():
            ...
    open_source("-", raw_format=raw_pcm_format(rate=16000, channels=2))
"""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO

import numpy as np

from appliance.audio.convert import FormatConverter
from appliance.audio.format import MAX_CHANNELS, AudioFormat, Encoding, channel_word, check_rate
from appliance.errors import SourceError, UsageError
from appliance.sender.conversion import sendable_format
from appliance.sender.decode import Decoder, NotAudioError
from appliance.sender.wav import RIFF_HEADER, is_riff_wave, read_wav_header
from appliance.wire.raw import RAW_FORMAT

log = logging.getLogger(__name__)

STDIN_NAME = "-"
READ_SIZE = 64 * 1024
PACKET_MS = 20.0
"""Packet time of every source (VoIP's ptime 20): the sender cuts packets of this length."""

DEFAULT_RAW_FORMAT = RAW_FORMAT
"""What a headerless source is taken to be: the raw wire's 8000 Hz mono s16le."""

RAW_SUFFIXES = frozenset({".raw", ".pcm", ".s16", ".sln"})
"""File names that say "headerless PCM" (``.sln``: Asterisk's signed linear)."""

UNKNOWN_SIZES = frozenset({0, 0xFFFFFFFF, 0x7FFFF000})
"""Data sizes streaming writers leave in a WAV header (ffmpeg to a pipe; espeak-ng --stdout)."""

COMPRESSED_SIGNATURES = (b"ID3", b"\xff\xfb", b"\xff\xf3", b"\xff\xf2", b"fLaC", b"OggS", b"FORM")
"""First bytes of streams that standard input hands to PyAV rather than taking as raw PCM."""


class RawSampleFormat(StrEnum):
    """Sample formats of raw PCM (``send --format``), with ffmpeg's names."""

    S16LE = "s16le"
    S16BE = "s16be"
    U8 = "u8"
    S32LE = "s32le"
    F32LE = "f32le"

    @property
    def sample_bytes(self) -> int:
        return {"u8": 1, "s32le": 4, "f32le": 4}.get(self.value, 2)

    def to_s16le(self, data: bytes) -> bytes:
        """Whole samples of this format as s16le (rounded, not dithered, clipped)."""
        if self is RawSampleFormat.S16LE:
            return data
        if self is RawSampleFormat.S16BE:
            return np.frombuffer(data, ">i2").astype("<i2").tobytes()
        if self is RawSampleFormat.U8:
            return ((np.frombuffer(data, np.uint8).astype("<i2") - 128) << 8).tobytes()
        if self is RawSampleFormat.S32LE:
            wide = np.frombuffer(data, "<i4").astype(np.int64)
            return bytes(np.clip((wide + (1 << 15)) >> 16, -32768, 32767).astype("<i2").tobytes())
        floats = np.frombuffer(data, "<f4").astype(np.float64) * 32768.0
        return bytes(np.clip(np.rint(floats), -32768, 32767).astype("<i2").tobytes())


@dataclass(frozen=True, slots=True)
class RawFormat:
    """What raw PCM is: rate, channels, sample format (``--rate``, ``--channels``,
    ``--format``)."""

    audio: AudioFormat = DEFAULT_RAW_FORMAT
    sample: RawSampleFormat = RawSampleFormat.S16LE

    @property
    def frame_bytes(self) -> int:
        return self.sample.sample_bytes * self.audio.channels


def raw_pcm_format(
    rate: int | None = None, channels: int | None = None, sample: str | None = None
) -> RawFormat:
    """The format of headerless PCM: ``sample`` (default s16le) at ``rate`` Hz with
    ``channels`` (default 8000 Hz mono). Raises :class:`UsageError` naming the flag."""
    if rate is not None:
        check_rate(rate, "--rate")
    if channels is not None and not 1 <= channels <= MAX_CHANNELS:
        raise UsageError(f"--channels: {channels} is not 1 (mono) or 2 (stereo)")
    try:
        sample_format = RawSampleFormat(sample or RawSampleFormat.S16LE)
    except ValueError:
        names = ", ".join(f.value for f in RawSampleFormat)
        raise UsageError(f"--format: {sample!r} is not one of {names}") from None
    audio = AudioFormat(
        rate=DEFAULT_RAW_FORMAT.rate if rate is None else rate,
        channels=DEFAULT_RAW_FORMAT.channels if channels is None else channels,
        encoding=Encoding.S16LE,
        ptime_ms=PACKET_MS,
    )
    return RawFormat(audio, sample_format)


@dataclass(frozen=True, slots=True)
class Origin:
    """What a source was before anything was converted: ``44100 Hz stereo FLAC``."""

    rate: int
    channels: int
    kind: str
    """``"16-bit PCM WAV"``, ``"FLAC"``, ``"raw s16le PCM"``..."""

    def describe(self) -> str:
        return f"{self.rate} Hz {channel_word(self.channels)} {self.kind}"


Produce = Callable[[AudioFormat], Iterator[bytes]]
"""Yields the whole source as s16le PCM in the given format."""


class PcmSource:
    """16-bit little-endian PCM in :attr:`format`, from a file, a pipe or a decoder.

    Made by :func:`open_source`. ``produce(fmt)`` yields the audio converted to ``fmt``;
    ``frames`` is the source's length in its own frames (at ``origin.rate``), None if unknown.
    """

    live: bool = False
    """A live source (an input device, :mod:`appliance.sender.capture`) yields audio as its own
    clock captures it: the sender sends each packet as soon as it exists, never on a schedule
    of its own. Files and pipes are not live: they are paced by :mod:`appliance.sender.pacing`."""

    def __init__(
        self,
        name: str,
        origin: Origin,
        produce: Produce,
        frames: int | None,
        *,
        close: Callable[[], None] = lambda: None,
        is_wav: bool = False,
        exact: bool = False,
    ) -> None:
        self.name = name
        self.origin = origin
        self.format = sendable_format(origin.rate, origin.channels).with_ptime(PACKET_MS)
        """The rate and channels :meth:`chunks` yields (always s16le, 20 ms packets)."""
        self.is_wav = is_wav
        """It is a WAV file (its header says what it is: --rate/--channels must agree)."""
        self.exact = exact
        """It is s16le PCM already: at its own rate and channels it is sent bit-exact."""
        self._produce = produce
        self._frames = frames
        self._close = close

    @property
    def total_bytes(self) -> int | None:
        """Audio bytes :meth:`chunks` will yield (estimated if converted), None when unknown."""
        if self._frames is None:
            return None
        return round(self._frames * self.format.rate / self.origin.rate) * self.format.frame_bytes

    @property
    def duration_s(self) -> float | None:
        if self._frames is None:
            return None
        return self._frames / self.origin.rate

    @property
    def converted(self) -> bool:
        """Whether what is sent differs from the source's own samples (decoded, resampled,
        mixed): then the sender says so in one line."""
        same = (self.origin.rate, self.origin.channels) == (self.format.rate, self.format.channels)
        return not (same and self.exact)

    def convert_to(self, fmt: AudioFormat) -> None:
        """Send at ``fmt``'s rate and channels instead (before :meth:`chunks`)."""
        self.format = AudioFormat(fmt.rate, fmt.channels, Encoding.S16LE, PACKET_MS)

    def chunks(self) -> Iterator[bytes]:
        """The audio as s16le PCM in :attr:`format`, in pieces of any size."""
        return self._produce(self.format)

    def close(self) -> None:
        self._close()

    def __enter__(self) -> PcmSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_pcm(stream: BinaryIO, total: int | None, raw: RawFormat) -> Iterator[bytes]:
    """Whole frames of s16le from ``stream`` (``total`` bytes, or to the end), any format."""
    remaining = total
    pending = b""
    while remaining is None or remaining > 0:
        size = READ_SIZE if remaining is None else min(READ_SIZE, remaining)
        chunk = stream.read(size)
        if not chunk:
            break
        if remaining is not None:
            remaining -= len(chunk)
        data = pending + chunk
        whole = len(data) - len(data) % raw.frame_bytes
        pending = data[whole:]
        if whole:
            yield raw.sample.to_s16le(data[:whole])
    if pending:
        log.warning(
            "the last %d byte(s) are not a whole %s sample frame: dropped",
            len(pending),
            channel_word(raw.audio.channels),
        )


def _stream_source(
    stream: BinaryIO,
    name: str,
    raw: RawFormat,
    total: int | None,
    kind: str,
    *,
    close: Callable[[], None],
    is_wav: bool = False,
) -> PcmSource:
    """A source read from ``stream`` (raw PCM, or a 16-bit WAV's data), converted on the fly."""
    native = raw.audio

    def produce(fmt: AudioFormat) -> Iterator[bytes]:
        converter = FormatConverter(native, fmt)
        for chunk in _read_pcm(stream, total, raw):
            if out := converter.convert(chunk):
                yield out
        if tail := converter.flush():
            yield tail

    frames = None if total is None else total // raw.frame_bytes
    origin = Origin(native.rate, native.channels, kind)
    return PcmSource(
        name,
        origin,
        produce,
        frames,
        close=close,
        is_wav=is_wav,
        exact=raw.sample is RawSampleFormat.S16LE,
    )


def _decoded_source(decoder: Decoder, name: str, close: Callable[[], None]) -> PcmSource:
    duration = decoder.duration_s
    frames = None if duration is None else round(duration * decoder.rate)
    origin = Origin(decoder.rate, decoder.channels, decoder.kind)

    def close_both() -> None:
        decoder.close()
        close()

    return PcmSource(name, origin, decoder.pcm, frames, close=close_both)


def open_source(spec: str | Path, raw_format: RawFormat | None = None) -> PcmSource:
    """Open ``spec``: a path to an audio file or raw PCM, or ``-`` for standard input.

    ``raw_format`` is what raw PCM is (``--rate``/``--channels``/``--format``; default 8000 Hz
    mono s16le); given for a file, it makes the file raw PCM unless it is a WAV file, whose
    header must then agree with it (a :class:`UsageError` if not: the user said one thing and
    the file another). Raises :class:`SourceError` for anything that is not audio.
    """
    if str(spec) == STDIN_NAME:
        return _open_stdin(raw_format)
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
        source = _open_file(stream, path, raw_format)
    except BaseException:
        stream.close()
        raise
    if source.is_wav and raw_format is not None and not _agrees(raw_format, source):
        source.close()
        raise UsageError(
            f"{path}: is a {source.origin.describe()} file; --rate, --channels and --format "
            "are only for raw PCM"
        )
    return source


def _agrees(raw: RawFormat, source: PcmSource) -> bool:
    return raw.sample is RawSampleFormat.S16LE and (raw.audio.rate, raw.audio.channels) == (
        source.origin.rate,
        source.origin.channels,
    )


def _open_file(stream: BinaryIO, path: Path, raw_format: RawFormat | None) -> PcmSource:
    name = str(path)
    size = path.stat().st_size
    if size == 0:
        raise SourceError(f"{path}: is empty, not an audio file")
    head = stream.read(RIFF_HEADER.size)
    if is_riff_wave(head):
        header = read_wav_header(stream, name)
        if header.format.is_plain_pcm():
            raw = RawFormat(header.format.audio_format(PACKET_MS))
            available = size - stream.tell()
            total = available if header.data_size in UNKNOWN_SIZES else header.data_size
            total = min(total, available)
            total -= total % raw.frame_bytes
            if not total:
                raise SourceError(f"{path}: has no audio ({header.format.describe()}, 0 samples)")
            return _stream_source(
                stream, name, raw, total, "16-bit PCM WAV", close=stream.close, is_wav=True
            )
    elif raw_format is not None or path.suffix.lower() in RAW_SUFFIXES:
        return _raw_file(stream, path, size, raw_format or RawFormat())
    stream.seek(0)
    try:
        source = _decoded_source(Decoder(stream, name), name, stream.close)
    except NotAudioError as error:
        raise SourceError(
            f"{error}; raw PCM must be named .raw or .pcm, or sent with --rate/--channels"
        ) from None
    source.is_wav = is_riff_wave(head)
    return source


def _raw_file(stream: BinaryIO, path: Path, size: int, raw: RawFormat) -> PcmSource:
    if size % raw.frame_bytes:
        log.warning(
            "%s: odd size (%d bytes); its last %d byte(s) are not a whole %s sample",
            path,
            size,
            size % raw.frame_bytes,
            channel_word(raw.audio.channels),
        )
    stream.seek(0)
    if looks_like_text(stream.read(TEXT_SNIFF_BYTES)):
        raise SourceError(f"{path}: is text, not audio")
    stream.seek(0)
    total = size - size % raw.frame_bytes
    return _stream_source(
        stream, str(path), raw, total, f"raw {raw.sample} PCM", close=stream.close
    )


class _Recording:
    """Reads from a stream and keeps what it read (a WAV header, to give back to PyAV)."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.seen = b""

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self.seen += data
        return data


class _Replay(io.RawIOBase):
    """A non-seekable stream that first gives back the bytes already read from it."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        super().__init__()
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        if self._head:
            n = min(len(view), len(self._head))
            view[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(view))
        view[: len(data)] = data
        return len(data)


def _open_stdin(raw_format: RawFormat | None) -> PcmSource:
    name = "standard input"
    stdin = sys.stdin.buffer
    head = stdin.read(RIFF_HEADER.size)
    if not head:
        raise SourceError(f"{name}: is empty, no audio")
    if is_riff_wave(head):
        recording = _Recording(stdin)
        header = read_wav_header(recording, name)
        if header.format.is_plain_pcm():
            raw = RawFormat(header.format.audio_format(PACKET_MS))
            source = _stream_source(
                stdin, name, raw, None, "16-bit PCM WAV", close=lambda: None, is_wav=True
            )
        else:  # the header read so far is given back to PyAV, which decodes the rest
            replay = io.BufferedReader(_Replay(head + recording.seen, stdin))
            source = _decoded_source(Decoder(replay, name), name, lambda: None)
            source.is_wav = True
        if raw_format is not None and not _agrees(raw_format, source):
            raise UsageError(
                f"{name}: is a {source.origin.describe()} stream; --rate, --channels and "
                "--format are only for raw PCM"
            )
        return source
    if raw_format is None and head.startswith(COMPRESSED_SIGNATURES):
        replay_stream = io.BufferedReader(_Replay(head, stdin))
        return _decoded_source(Decoder(replay_stream, name), name, lambda: None)
    raw = raw_format or RawFormat()
    # Looked at, not consumed (a buffered pipe, which standard input is, can peek).
    ahead = stdin.peek(TEXT_SNIFF_BYTES) if isinstance(stdin, io.BufferedReader) else b""
    if looks_like_text(head + ahead[:TEXT_SNIFF_BYTES]):
        raise SourceError(f"{name}: is text, not audio")
    replayed = io.BufferedReader(_Replay(head, stdin))
    return _stream_source(replayed, name, raw, None, f"raw {raw.sample} PCM", close=lambda: None)


TEXT_SNIFF_BYTES = 4096
"""Bytes of headerless input looked at before it is taken for raw PCM."""
TEXT_MIN_BYTES = 32
TEXT_PRINTABLE_SHARE = 0.95
"""Text: valid UTF-8 with at least this share of printable characters or white space. Raw
PCM never is: quiet audio is full of 0x00 and 0xFF bytes, loud audio is random bytes, of
which about 37 % are printable ASCII."""


def looks_like_text(data: bytes) -> bool:
    """Whether ``data`` (the start of a headerless input) is text rather than PCM."""
    if len(data) < TEXT_MIN_BYTES:
        return False
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.start < len(data) - 3:  # only a character cut at the end is forgiven
            return False
        text = data[: error.start].decode("utf-8")
    printable = sum(1 for c in text if c.isprintable() or c in "\t\n\r")
    return printable >= TEXT_PRINTABLE_SHARE * len(text)
