"""Sample-rate and channel conversion of s16le PCM, on the fly, for outputs that refuse a format.

When the output device does not take a stream's rate or channel count, it is opened in a format
it does take and every block of audio is converted in the audio callback's thread, about 20 ms at
a time. Three pieces:

* :func:`convert_channels` -- mono to stereo (each sample twice) and stereo to mono (the mean of
  the two, rounded half to even).
* :class:`FormatConverter` -- a streaming converter from one :class:`AudioFormat` to another:
  feed it PCM in pieces of any size, it keeps the resampler's state between them.
* :class:`BlockConverter` -- answers "exactly N frames in the target format" by pulling as much
  source audio as needed from a ``read(n_frames)`` function (the playout buffer) and keeping what
  is left over for the next call.

All three pass audio that needs no conversion through untouched: same object, bit-exact.

Example::

    source = AudioFormat(rate=8000, channels=1)        # what the stream carries
    target = AudioFormat(rate=48000, channels=2)       # what the device takes
    converter = FormatConverter(source, target)
    pcm_48k = converter.convert(pcm_8k)                # any number of whole frames
    tail = converter.flush()                           # end of stream: what is still held

    blocks = BlockConverter(FormatConverter(source, target), read=playout.read)
    block = blocks.render(960)                         # exactly 960 frames = 3840 bytes
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import soxr  # type: ignore[import-untyped]  # no stubs or py.typed in python-soxr 1.1

from appliance.audio.format import MAX_CHANNELS, AudioFormat, Encoding
from appliance.audio.pcm import S16LE, SAMPLE_MAX, SAMPLE_MIN

RESAMPLE_QUALITY = "MQ"
"""libsoxr's recipe for every rate conversion (``quality=`` overrides it per converter).

CPU per second of audio, converted in 20 ms pieces by :class:`FormatConverter` (channel mixing
and Python overhead included), measured on the 2-core x86 (AMD EPYC) machine CI uses; no Pi was
available to measure on:

===============================  =======  =======  =======
conversion                       VHQ      HQ       MQ
===============================  =======  =======  =======
44100 -> 48000 Hz stereo         1.39 ms  1.15 ms  1.13 ms
48000 -> 44100 Hz stereo         1.47 ms  1.19 ms  1.15 ms
8000 mono -> 48000 Hz stereo     0.73 ms  0.69 ms  0.70 ms
48000 stereo -> 8000 Hz mono     1.56 ms  1.50 ms  1.51 ms
===============================  =======  =======  =======

So CPU does not decide it: even VHQ is about 0.15 % of a core here, and a Pi core 10 to 20
times slower would still spend only a few percent. What differs is (1) precision a 16-bit
output can carry: images and aliases measured at -195 dB (VHQ), -137 dB (HQ) and -120 dB (MQ),
all below s16's -96 dB floor, with a flat passband (MQ: -0.02 dB at 3.7 kHz from 8 kHz, -0.13 dB
at 19 kHz from 44.1 kHz; LQ, by contrast, is -13 dB at 3.5 kHz from 8 kHz: it would dull
speech), and (2) latency: libsoxr works in blocks and holds output back until a block is full.
Converting 8 kHz to 48 kHz (the appliance's default stream on an HDMI or USB output) it holds up
to 170 ms (VHQ), 175 ms (HQ) but 92 ms (MQ); 44.1 <-> 48 kHz holds about 20 ms with all three.
MQ is transparent for s16 output and has the least latency of the transparent recipes.
"""

PULL_MARGIN_FRAMES = 2
"""Extra source frames pulled beyond the exact ratio, so rounding never leaves a block one short."""

MAX_PULL_SECONDS = 2.0
"""A render() that has pulled this much source audio without filling its block is a bug."""

Samples = npt.NDArray[np.int16]

_FLOAT_SCALE = 32768.0
"""s16 <-> float: divide by 2**15 so that every s16 value maps exactly to a float32 and back."""


def float_to_s16(samples: npt.NDArray[np.float32]) -> Samples:
    """Float samples (full scale +-1.0, any shape) as interleaved s16: times 2**15, rounded
    half to even and clipped, without dither.

    Rounding by hand rather than letting soxr write int16: soxr's int16 output adds random
    dither, which would make the output differ from run to run and with the piece sizes. Every
    s16 value divided by 2**15 comes back exactly, so s16 -> float -> s16 is bit-exact.
    """
    out = samples.reshape(-1) * np.float32(_FLOAT_SCALE)
    np.rint(out, out=out)
    np.clip(out, SAMPLE_MIN, SAMPLE_MAX, out=out)
    result: Samples = out.astype(S16LE)
    return result


def float_resampler(from_rate: int, to_rate: int, channels: int) -> soxr.ResampleStream:
    """A streaming libsoxr resampler of float32 samples (``(frames, channels)`` arrays), with
    the same recipe as every other rate conversion here (:data:`RESAMPLE_QUALITY`). Any rates:
    a decoded file may be at 96 kHz or 12 kHz."""
    return soxr.ResampleStream(
        from_rate, to_rate, channels, dtype="float32", quality=RESAMPLE_QUALITY
    )


def _check_channels(channels: int) -> None:
    if not 1 <= channels <= MAX_CHANNELS:
        raise ValueError(f"{channels} channels: only mono and stereo are converted")


def _check_whole_frames(pcm: bytes, channels: int) -> None:
    frame_bytes = S16LE.itemsize * channels
    if len(pcm) % frame_bytes:
        raise ValueError(
            f"PCM length {len(pcm)} is not a whole number of {frame_bytes}-byte frames"
        )


def _mono_to_stereo(samples: Samples) -> Samples:
    return np.repeat(samples, 2)


def _stereo_to_mono(samples: Samples) -> Samples:
    # int32 so that the sum of two int16 cannot overflow.
    pair_sum = samples.reshape(-1, 2).astype(np.int32).sum(axis=1, dtype=np.int32)
    # sum / 2 rounded half to even, in integers: floor(sum / 2), plus one when sum is odd and
    # the floor is odd. Unbiased (no DC creeps in) and the same as numpy's rint.
    floor_half = pair_sum >> 1
    mean: Samples = (floor_half + (pair_sum & floor_half & 1)).astype(S16LE)
    return mean


def convert_channels(pcm: bytes, from_channels: int, to_channels: int) -> bytes:
    """``pcm`` (s16le, interleaved) with ``from_channels`` channels as ``to_channels``.

    Mono to stereo plays each sample on both channels; stereo to mono is the mean of the two,
    rounded half to even (``(-32768 + 32767) / 2`` gives 0). Equal channel counts return
    ``pcm`` itself.
    """
    _check_channels(from_channels)
    _check_channels(to_channels)
    if from_channels == to_channels:
        return pcm
    _check_whole_frames(pcm, from_channels)
    samples = np.frombuffer(pcm, dtype=S16LE)
    if to_channels == 2:
        return _mono_to_stereo(samples).tobytes()
    return _stereo_to_mono(samples).tobytes()


def _check_s16le(fmt: AudioFormat, what: str) -> None:
    if fmt.encoding is not Encoding.S16LE:
        raise ValueError(f"{what} format {fmt} is not s16le: decode it before converting")


class FormatConverter:
    """Streaming conversion of s16le PCM from ``source`` to ``target`` (rate and channels).

    :meth:`convert` takes and returns whole frames, in pieces of any size, and keeps the
    resampler's state between calls, so consecutive pieces join without a click. The
    resampler holds some audio back (see :data:`RESAMPLE_QUALITY`): :meth:`flush` returns it at
    the end of a stream, :meth:`reset` drops it before an unrelated one.

    The resampler runs on the side with fewer channels: stereo is mixed to mono before
    resampling, mono is resampled before it is doubled to stereo, so no work is done twice.
    Resampling goes through float32 without dither: the output is a pure function of the input,
    the same whatever the piece sizes.
    """

    def __init__(
        self, source: AudioFormat, target: AudioFormat, *, quality: str = RESAMPLE_QUALITY
    ) -> None:
        _check_s16le(source, "source")
        _check_s16le(target, "target")
        self._source = source
        self._target = target
        self._quality = quality
        self._resampler_channels = min(source.channels, target.channels)
        self._resampler: soxr.ResampleStream | None = None
        if source.rate != target.rate:
            self._resampler = soxr.ResampleStream(
                source.rate,
                target.rate,
                self._resampler_channels,
                dtype="float32",
                quality=quality,
            )

    @property
    def source(self) -> AudioFormat:
        return self._source

    @property
    def target(self) -> AudioFormat:
        return self._target

    @property
    def is_identity(self) -> bool:
        """Same rate and channels: :meth:`convert` returns its input untouched."""
        return self._source.same_pcm(self._target)

    @property
    def resamples(self) -> bool:
        """Whether the rates differ (a resampler holds state between calls)."""
        return self._resampler is not None

    def convert(self, pcm: bytes) -> bytes:
        """The next piece of the stream, converted; may be shorter or empty while priming."""
        if self.is_identity:
            return pcm
        _check_whole_frames(pcm, self._source.channels)
        if not pcm:
            return b""
        samples = np.frombuffer(pcm, dtype=S16LE)
        if self._source.channels > self._target.channels:
            samples = _stereo_to_mono(samples)
        if self._resampler is not None:
            samples = self._resample(samples, last=False)
        if self._source.channels < self._target.channels:
            samples = _mono_to_stereo(samples)
        return samples.tobytes()

    def flush(self) -> bytes:
        """End of stream: the audio the resampler still holds, converted.

        The converter is then ready for a new stream, as after :meth:`reset`.
        """
        if self._resampler is None:
            return b""
        samples = self._resample(np.zeros(0, dtype=S16LE), last=True)
        self._resampler.clear()
        if self._source.channels < self._target.channels:
            samples = _mono_to_stereo(samples)
        return samples.tobytes()

    def reset(self) -> None:
        """Forget the stream so far (held audio included): the next piece starts a new one."""
        if self._resampler is not None:
            self._resampler.clear()

    def _resample(self, samples: Samples, *, last: bool) -> Samples:
        assert self._resampler is not None
        channels = self._resampler_channels
        floats = samples.astype(np.float32)
        floats *= 1.0 / _FLOAT_SCALE
        if channels > 1:
            floats = floats.reshape(-1, channels)
        out: npt.NDArray[np.float32] = self._resampler.resample_chunk(floats, last=last)
        return float_to_s16(out)

    def __repr__(self) -> str:
        return f"FormatConverter({self._source} -> {self._target}, quality={self._quality})"


ReadFrames = Callable[[int], bytes]
"""``read(n)``: exactly ``n`` source frames, s16le (the playout buffer pads with silence)."""


class BlockConverter:
    """Exactly ``n`` target frames per :meth:`render`, converted from audio pulled on demand.

    An audio callback asks for a fixed number of device frames; the stream's frames do not
    divide into it evenly, and the resampler releases output in bursts. This class pulls source
    audio with ``read(n_source_frames)`` in chunks of about one block (the exact ratio rounded up,
    plus :data:`PULL_MARGIN_FRAMES`), converts it, and keeps any surplus in a FIFO for the next
    block, so the output is one continuous stream cut into blocks. It never returns short.

    With an identity converter, ``render(n)`` is ``read(n)`` itself.
    """

    def __init__(self, converter: FormatConverter, read: ReadFrames) -> None:
        self._converter = converter
        self._read = read
        self._fifo = bytearray()
        # Read once: render() runs in the audio callback, 50 times a second.
        self._source_rate = converter.source.rate
        self._target_rate = converter.target.rate
        self._source_frame_bytes = converter.source.frame_bytes
        self._target_frame_bytes = converter.target.frame_bytes
        self._pull_limit = converter.source.frames_for(MAX_PULL_SECONDS)
        self._rendered = 0
        """Target frames rendered, and source frames pulled, since the start (or reset)."""
        self._pulled = 0

    @property
    def converter(self) -> FormatConverter:
        return self._converter

    @property
    def buffered_frames(self) -> int:
        """Target frames converted ahead and waiting for the next render()."""
        return len(self._fifo) // self._target_frame_bytes

    def render(self, n_target_frames: int) -> bytes:
        """Exactly ``n_target_frames`` frames of converted audio (``n * target.frame_bytes``).

        Source audio is pulled at the exact rate ratio (the running totals are kept, so no
        rounding accumulates): a steady trickle from the playout buffer, whatever bursts the
        resampler releases. Only when the FIFO cannot cover a block (before :meth:`prime`, or
        if it was never called) is more pulled at once.
        """
        if n_target_frames < 0:
            raise ValueError(f"cannot render {n_target_frames} frames")
        if self._converter.is_identity and not self._fifo:
            return self._pull(n_target_frames)
        wanted_bytes = n_target_frames * self._target_frame_bytes
        self._rendered += n_target_frames
        due = -(-self._rendered * self._source_rate // self._target_rate)  # ceiling
        if due > self._pulled:
            self._fifo += self._converter.convert(self._pull(due - self._pulled))
            self._pulled = due
        # Whole blocks' worth at a time, not just what is missing: the resampler releases its
        # output in bursts, and topping up by the shortfall would call it several times a block.
        chunk_frames = (
            math.ceil(n_target_frames * self._source_rate / self._target_rate) + PULL_MARGIN_FRAMES
        )
        pulled_frames = 0
        while len(self._fifo) < wanted_bytes:
            if pulled_frames > self._pull_limit:
                raise RuntimeError(
                    f"{self._converter!r} gave {len(self._fifo)} of {wanted_bytes} bytes "
                    f"after {pulled_frames} source frames"
                )
            self._fifo += self._converter.convert(self._pull(chunk_frames))
            pulled_frames += chunk_frames
            self._pulled += chunk_frames
        block = bytes(self._fifo[:wanted_bytes])
        del self._fifo[:wanted_bytes]
        return block

    def prime(self) -> None:
        """Fill the FIFO with converted silence up to the resampler's first release.

        The resampler holds its first output back until an internal block is full (up to about
        90 ms); without priming, the first render() would pull all of that from the playout
        buffer at once and run it dry. Primed, every render() pulls one block's worth. The cost
        is that much latency, only on outputs that needed converting.
        """
        if self._converter.is_identity:
            return
        chunk = max(1, self._converter.source.frames_for(0.02))
        silence = bytes(chunk * self._source_frame_bytes)
        fed = 0
        while not self._fifo:
            if fed > self._pull_limit:
                raise RuntimeError(f"{self._converter!r} released nothing while priming")
            self._fifo += self._converter.convert(silence)
            fed += chunk

    def reset(self) -> None:
        """Drop the converted surplus and the converter's state: the next render starts afresh."""
        self._fifo.clear()
        self._converter.reset()
        self._rendered = self._pulled = 0

    def _pull(self, n_source_frames: int) -> bytes:
        pcm = self._read(n_source_frames)
        expected = n_source_frames * self._source_frame_bytes
        if len(pcm) != expected:
            raise ValueError(
                f"read({n_source_frames}) returned {len(pcm)} bytes, not {expected}: "
                "the pull function must return exactly the frames asked for"
            )
        return pcm
