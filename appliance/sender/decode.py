"""Any audio file, decoded by PyAV (FFmpeg's libraries, in binary wheels): :class:`Decoder`.

MP3, AAC/M4A, FLAC, Ogg Vorbis and Opus, ALAC, WAV and AIFF of any rate, sample width
(8/16/24/32-bit integer, float) and channel count, and the audio of a video file: whatever
FFmpeg reads. The first audio stream is decoded; its samples go through three steps to the
s16le PCM the sender sends (:meth:`Decoder.pcm`):

1. libswresample (PyAV's ``AudioResampler``), at the file's own rate: any sample format to
   32-bit float, and any channel layout mixed to the mono or stereo that is sent (5.1 to stereo
   with the standard downmix matrix; centre and surround at -3 dB);
2. libsoxr (:func:`~appliance.audio.convert.float_resampler`) to the rate that is sent, if it
   differs;
3. float to s16, rounded, not dithered (:func:`~appliance.audio.convert.float_to_s16`): a
   16-bit file sent at its own rate and channels stays bit-exact.

A file FFmpeg cannot read, with no audio stream, or whose first packets do not decode, is a
:class:`~appliance.errors.SourceError` at once (the first frame is decoded on opening): never
noise on the wire.

Example::

    with Decoder("song.flac", "song.flac") as decoder:
        print(decoder.describe())              # 44100 Hz stereo FLAC
        for chunk in decoder.pcm(AudioFormat(48000, 2)):
            ...
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import BinaryIO

import av
import av.audio.frame
import av.audio.stream
import numpy as np
import numpy.typing as npt

from appliance.audio.convert import float_resampler, float_to_s16
from appliance.audio.format import AudioFormat, channel_word
from appliance.errors import SourceError

CODEC_NAMES = {
    "mp3": "MP3",
    "mp3float": "MP3",
    "mp2": "MP2",
    "aac": "AAC",
    "alac": "ALAC",
    "flac": "FLAC",
    "vorbis": "Vorbis",
    "libvorbis": "Vorbis",
    "opus": "Opus",
    "libopus": "Opus",
    "pcm_alaw": "A-law",
    "pcm_mulaw": "mu-law",
}
CONTAINER_NAMES = {"wav": "WAV", "aiff": "AIFF", "w64": "Wave64", "caf": "CAF"}
LAYOUTS = {1: "mono", 2: "stereo"}
TEXT_FORMATS = frozenset({"tty"})
"""FFmpeg's demuxer for text shown as video (ANSI art): a text file opens as one."""
PCM_CODEC = re.compile(r"pcm_(?P<kind>[suf])(?P<bits>\d+)(?:[lb]e)?(?:_planar)?")


class NotAudioError(SourceError):
    """FFmpeg reads no known format in it at all (text, random bytes)."""


def _error_text(error: av.FFmpegError) -> str:
    """FFmpeg's reason without the file name PyAV appends (the message names the file)."""
    return str(error.strerror or error).rstrip(".")


class Decoder:
    """The first audio stream of ``source`` (a path, or a readable binary stream), decoded.

    ``name`` is how messages call it. Raises :class:`SourceError` when it is not audio.
    """

    def __init__(self, source: str | BinaryIO, name: str) -> None:
        self.name = name
        try:
            self._container = av.open(source, "r")
        except av.FFmpegError as error:
            raise NotAudioError(f"{name}: not an audio file ({_error_text(error)})") from None
        try:
            self._stream = self._audio_stream()
            context = self._stream.codec_context
            self.rate: int = context.sample_rate
            """The file's sample rate (Hz), any: 96000 and 12000 are fine."""
            self.channels: int = context.channels
            """The file's channel count, any: 5.1 is 6."""
            self.kind = self._kind()
            """What it is, in words: ``"FLAC"``, ``"24-bit PCM WAV"``, ``"MP3"``."""
            self._frames = self._container.decode(self._stream)
            self._first: av.audio.frame.AudioFrame | None = self._next_frame()
            if self._first is None:
                raise SourceError(f"{name}: has no audio ({self.describe()}, 0 samples)")
        except BaseException:
            self._container.close()
            raise

    def _audio_stream(self) -> av.audio.stream.AudioStream:
        if self._container.format.name in TEXT_FORMATS:
            raise NotAudioError(f"{self.name}: not an audio file (it is text)")
        streams = self._container.streams.audio
        if not streams:
            what = ", ".join(s.type for s in self._container.streams) or "nothing"
            raise SourceError(f"{self.name}: has no audio stream (it holds {what})")
        stream = streams[0]
        if not stream.codec_context.sample_rate or not stream.codec_context.channels:
            raise SourceError(f"{self.name}: its audio stream cannot be decoded")
        return stream

    def _kind(self) -> str:
        codec = self._stream.codec_context.name
        container = self._container.format.name.split(",")[0]
        pcm = PCM_CODEC.fullmatch(codec)
        if pcm is not None:  # pcm_s24le: 24-bit PCM; pcm_f32le: 32-bit float
            number = "float" if pcm["kind"] == "f" else "PCM"
            where = CONTAINER_NAMES.get(container, container.upper())
            return f"{pcm['bits']}-bit {number} {where}"
        return CODEC_NAMES.get(codec, codec.upper())

    def describe(self) -> str:
        """``"44100 Hz stereo FLAC"``."""
        return f"{self.rate} Hz {channel_word(self.channels)} {self.kind}"

    @property
    def duration_s(self) -> float | None:
        """The length the file says it has, or None when it does not say."""
        stream = self._stream
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        if self._container.duration is not None:
            return self._container.duration / av.time_base
        return None

    def _next_frame(self) -> av.audio.frame.AudioFrame | None:
        try:
            return next(self._frames, None)
        except av.FFmpegError as error:
            raise SourceError(f"{self.name}: cannot decode it: {_error_text(error)}") from None

    def _decoded(self) -> Iterator[av.audio.frame.AudioFrame]:
        frame, self._first = self._first, None
        while frame is not None:
            yield frame
            frame = self._next_frame()

    def pcm(self, target: AudioFormat) -> Iterator[bytes]:
        """The whole file as s16le PCM at ``target``'s rate and channels, in pieces."""
        mixer = av.AudioResampler(format="flt", layout=LAYOUTS[target.channels], rate=self.rate)
        resampler = (
            float_resampler(self.rate, target.rate, target.channels)
            if target.rate != self.rate
            else None
        )

        def convert(samples: npt.NDArray[np.float32], last: bool = False) -> bytes:
            if resampler is not None:
                samples = resampler.resample_chunk(samples, last=last)
            return float_to_s16(samples).tobytes()

        for frame in self._decoded():
            for mixed in mixer.resample(frame):
                if pcm := convert(_interleaved(mixed, target.channels)):
                    yield pcm
        tail = [_interleaved(mixed, target.channels) for mixed in mixer.resample(None)]
        samples = np.concatenate(tail) if tail else np.zeros((0, target.channels), np.float32)
        if pcm := convert(samples, last=True):
            yield pcm

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> Decoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _interleaved(frame: av.audio.frame.AudioFrame, channels: int) -> npt.NDArray[np.float32]:
    """A packed float frame as a ``(frames, channels)`` float32 array."""
    samples: npt.NDArray[np.float32] = frame.to_ndarray().astype(np.float32, copy=False)
    return samples.reshape(-1, channels)
