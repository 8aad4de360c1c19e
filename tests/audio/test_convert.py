"""Tests of appliance.audio.convert: channel mixing, streaming resampling, fixed-size blocks."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from appliance.audio.convert import BlockConverter, FormatConverter, convert_channels
from appliance.audio.format import AudioFormat, Encoding

Samples = npt.NDArray[np.int16]

CHUNK_S = 0.020
SIGNAL_S = 2.0
TONE_HZ = 1000.0
AMPLITUDE = 12000.0

RATE_PAIRS = [(48000, 8000), (8000, 48000), (44100, 48000), (48000, 44100)]
CHANNEL_PAIRS = [(1, 1), (2, 2), (1, 2), (2, 1)]


def fmt(rate: int, channels: int) -> AudioFormat:
    return AudioFormat(rate=rate, channels=channels)


def samples_of(pcm: bytes, channels: int = 1) -> Samples:
    """``pcm`` as an array of shape (frames, channels)."""
    return np.frombuffer(pcm, dtype="<i2").reshape(-1, channels)


def sine(rate: int, seconds: float, channels: int = 1, delay_frames: float = 0.0) -> Samples:
    """A 1 kHz sine, shape (frames, channels), starting ``delay_frames`` late (fractional ok)."""
    t = (np.arange(int(rate * seconds)) - delay_frames) / rate
    wave = np.rint(AMPLITUDE * np.sin(2 * np.pi * TONE_HZ * t)).astype("<i2")
    return np.repeat(wave[:, None], channels, axis=1)


def noise(rate: int, seconds: float, channels: int, seed: int) -> Samples:
    rng = np.random.default_rng(seed)
    return rng.integers(-20000, 20000, size=(int(rate * seconds), channels), dtype=np.int16)


def stream_through(converter: FormatConverter, pcm: bytes, chunk_s: float = CHUNK_S) -> bytes:
    """Convert ``pcm`` in pieces of ``chunk_s`` seconds, then flush, as a player would."""
    source = converter.source
    step = source.frames_for(chunk_s) * source.frame_bytes
    pieces = [converter.convert(pcm[i : i + step]) for i in range(0, len(pcm), step)]
    return b"".join([*pieces, converter.flush()])


def estimate_delay(signal: npt.NDArray[np.float64], reference: npt.NDArray[np.float64]) -> float:
    """How many frames ``signal`` lags ``reference``, by cross-correlation (sub-frame).

    Lags are searched within half a period of the tone, where the correlation of two sines has a
    single peak; a parabola through the best lag and its neighbours gives the fraction.
    """
    n = min(len(signal), len(reference))
    a = signal[:n] - signal[:n].mean()
    b = reference[:n] - reference[:n].mean()
    spectrum = np.fft.rfft(a, 2 * n) * np.conj(np.fft.rfft(b, 2 * n))
    corr = np.fft.irfft(spectrum)
    lags = np.concatenate([np.arange(0, n), np.arange(-n, 0)])
    return _parabolic_peak(corr, lags)


def _parabolic_peak(corr: npt.NDArray[np.float64], lags: npt.NDArray[np.int_]) -> float:
    best = int(np.argmax(corr))
    left, mid, right = corr[best - 1], corr[best], corr[(best + 1) % len(corr)]
    denominator = left - 2 * mid + right
    fraction = 0.5 * (left - right) / denominator if denominator else 0.0
    return float(lags[best]) + float(fraction)


# --- convert_channels ---------------------------------------------------------------------------


def test_convert_channels_identity_is_the_same_object() -> None:
    pcm = noise(8000, 0.1, 1, seed=1).tobytes()
    assert convert_channels(pcm, 1, 1) is pcm
    assert convert_channels(pcm, 2, 2) is pcm


def test_mono_to_stereo_duplicates_each_sample() -> None:
    mono = np.array([0, 1, -1, 32767, -32768, 12345], dtype="<i2")
    stereo = samples_of(convert_channels(mono.tobytes(), 1, 2), channels=2)
    assert stereo.tolist() == [[s, s] for s in mono.tolist()]


@pytest.mark.parametrize(
    ("left", "right", "mean"),
    [
        (32767, 32767, 32767),
        (-32768, -32768, -32768),
        (-32768, 32767, 0),  # -0.5 rounds half to even: 0
        (32767, 32766, 32766),  # 32766.5 -> 32766 (even)
        (-32768, -32767, -32768),  # -32767.5 -> -32768 (even)
        (32767, -32768, 0),
        (1, 2, 2),  # 1.5 -> 2
        (1, 0, 0),  # 0.5 -> 0
        (-1, -2, -2),  # -1.5 -> -2
        (-1, 0, 0),  # -0.5 -> 0
        (100, 300, 200),
        (0, 0, 0),
    ],
)
def test_stereo_to_mono_averages_with_rounding(left: int, right: int, mean: int) -> None:
    stereo = np.array([left, right], dtype="<i2").tobytes()
    assert samples_of(convert_channels(stereo, 2, 1)).ravel().tolist() == [mean]


def test_stereo_to_mono_matches_rint_of_the_mean_everywhere() -> None:
    pairs = noise(8000, 2.0, 2, seed=2)
    pairs[:100] = np.array([32767, 32767], dtype=np.int16)  # the extremes too
    pairs[100:200] = np.array([-32768, -32768], dtype=np.int16)
    expected = np.rint(pairs.astype(np.float64).mean(axis=1)).astype(np.int16)
    assert np.array_equal(samples_of(convert_channels(pairs.tobytes(), 2, 1)).ravel(), expected)


def test_convert_channels_rejects_partial_frames_and_other_counts() -> None:
    with pytest.raises(ValueError, match="whole number"):
        convert_channels(b"\x00\x00\x00", 2, 1)
    with pytest.raises(ValueError, match="mono and stereo"):
        convert_channels(b"", 1, 3)


# --- FormatConverter ----------------------------------------------------------------------------


def test_identity_converter_is_bit_exact_and_makes_no_resampler(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_soxr(*args: object, **kwargs: object) -> None:
        raise AssertionError("an identity converter must not create a resampler")

    monkeypatch.setattr("soxr.ResampleStream", no_soxr)
    converter = FormatConverter(fmt(48000, 2), AudioFormat(48000, 2, ptime_ms=40))
    pcm = noise(48000, 0.02, 2, seed=3).tobytes()
    assert converter.is_identity
    assert not converter.resamples
    assert converter.convert(pcm) is pcm
    assert converter.flush() == b""


def test_channel_only_converter_needs_no_resampler(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_soxr(*args: object, **kwargs: object) -> None:
        raise AssertionError("same rates: no resampler")

    monkeypatch.setattr("soxr.ResampleStream", no_soxr)
    mono = noise(8000, 0.5, 1, seed=4).tobytes()
    up = FormatConverter(fmt(8000, 1), fmt(8000, 2))
    assert not up.is_identity
    assert up.convert(mono) == convert_channels(mono, 1, 2)
    down = FormatConverter(fmt(8000, 2), fmt(8000, 1))
    stereo = convert_channels(mono, 1, 2)
    assert down.convert(stereo) == mono
    assert up.flush() == down.flush() == b""


def test_converter_properties() -> None:
    source, target = fmt(8000, 1), fmt(48000, 2)
    converter = FormatConverter(source, target)
    assert converter.source is source
    assert converter.target is target
    assert not converter.is_identity
    assert converter.resamples


@pytest.mark.parametrize("encoding", [Encoding.S16BE, Encoding.PCMU, Encoding.PCMA])
def test_converter_takes_only_s16le(encoding: Encoding) -> None:
    with pytest.raises(ValueError, match="not s16le"):
        FormatConverter(AudioFormat(8000, 1, encoding), fmt(48000, 1))
    with pytest.raises(ValueError, match="not s16le"):
        FormatConverter(fmt(48000, 1), AudioFormat(8000, 1, encoding))


def test_converter_rejects_partial_frames() -> None:
    converter = FormatConverter(fmt(44100, 2), fmt(48000, 2))
    with pytest.raises(ValueError, match="whole number"):
        converter.convert(b"\x00" * 6)


@pytest.mark.parametrize(("from_channels", "to_channels"), CHANNEL_PAIRS)
@pytest.mark.parametrize(("from_rate", "to_rate"), RATE_PAIRS)
def test_streamed_output_length_follows_the_rate_ratio(
    from_rate: int, to_rate: int, from_channels: int, to_channels: int
) -> None:
    source, target = fmt(from_rate, from_channels), fmt(to_rate, to_channels)
    pcm = sine(from_rate, SIGNAL_S, from_channels).tobytes()
    out = stream_through(FormatConverter(source, target), pcm)
    assert len(out) % target.frame_bytes == 0
    exact = source.frames_in(len(pcm)) * to_rate / from_rate
    assert abs(target.frames_in(len(out)) - exact) <= 2


@pytest.mark.parametrize(("from_channels", "to_channels"), CHANNEL_PAIRS)
@pytest.mark.parametrize(("from_rate", "to_rate"), RATE_PAIRS)
def test_resampled_sine_keeps_its_frequency_and_shape(
    from_rate: int, to_rate: int, from_channels: int, to_channels: int
) -> None:
    source, target = fmt(from_rate, from_channels), fmt(to_rate, to_channels)
    pcm = sine(from_rate, SIGNAL_S, from_channels).tobytes()
    out = samples_of(stream_through(FormatConverter(source, target), pcm), to_channels)
    # The first and last 100 ms hold the filter's response to the tone starting and stopping.
    edge = to_rate // 10
    for channel in range(to_channels):
        played = out[edge:-edge, channel].astype(np.float64)
        spectrum = np.abs(np.fft.rfft(played * np.hanning(len(played))))
        peak_hz = np.fft.rfftfreq(len(played), 1 / to_rate)[np.argmax(spectrum)]
        assert abs(peak_hz - TONE_HZ) <= to_rate / len(played)

        direct = sine(to_rate, SIGNAL_S)[edge:-edge, 0].astype(np.float64)
        delay = estimate_delay(played, direct)
        aligned = sine(to_rate, SIGNAL_S, delay_frames=delay)[edge:-edge, 0].astype(np.float64)
        assert np.corrcoef(played, aligned)[0, 1] > 0.99
        # soxr compensates its filter's delay: the tone comes out where it went in.
        assert abs(delay) < 1.0


@pytest.mark.parametrize(("from_rate", "to_rate"), RATE_PAIRS)
def test_an_impulse_comes_out_in_place(from_rate: int, to_rate: int) -> None:
    """The converter shifts nothing: latency comes from buffering, not from a delayed output."""
    ratio_step = from_rate // np.gcd(from_rate, to_rate)  # source frames per whole target frame
    position = ratio_step * (from_rate // (2 * ratio_step))  # about 0.5 s, maps to a whole frame
    impulse = np.zeros(from_rate, dtype="<i2")
    impulse[position] = 30000
    converter = FormatConverter(fmt(from_rate, 1), fmt(to_rate, 1))
    out = samples_of(stream_through(converter, impulse.tobytes()))
    assert int(np.argmax(np.abs(out[:, 0]))) == position * to_rate // from_rate


def test_output_does_not_depend_on_the_piece_sizes() -> None:
    source, target = fmt(8000, 1), fmt(44100, 2)
    pcm = noise(8000, 1.0, 1, seed=5).tobytes()
    by_20ms = stream_through(FormatConverter(source, target), pcm)
    by_7ms = stream_through(FormatConverter(source, target), pcm, chunk_s=0.007)
    converter = FormatConverter(source, target)
    at_once = converter.convert(pcm) + converter.flush()
    assert by_20ms == by_7ms == at_once


def test_flush_ends_the_stream_and_the_next_one_starts_clean() -> None:
    source, target = fmt(48000, 2), fmt(8000, 1)
    pcm = noise(48000, 0.5, 2, seed=6).tobytes()
    converter = FormatConverter(source, target)
    first = converter.convert(pcm) + converter.flush()
    second = converter.convert(pcm) + converter.flush()
    assert first == second


def test_reset_forgets_the_held_audio() -> None:
    source, target = fmt(8000, 1), fmt(48000, 1)
    fresh = FormatConverter(source, target)
    expected = stream_through(fresh, sine(8000, 0.5).tobytes())
    converter = FormatConverter(source, target)
    converter.convert(noise(8000, 0.3, 1, seed=7).tobytes())
    converter.reset()
    assert stream_through(converter, sine(8000, 0.5).tobytes()) == expected


def test_empty_input_gives_empty_output() -> None:
    assert FormatConverter(fmt(8000, 1), fmt(48000, 2)).convert(b"") == b""


# --- BlockConverter -----------------------------------------------------------------------------


class Source:
    """A pull function over a fixed signal, padding with silence past its end like the buffer."""

    def __init__(self, pcm: bytes, frame_bytes: int) -> None:
        self.pcm = pcm
        self.frame_bytes = frame_bytes
        self.position = 0
        self.requests: list[int] = []

    def read(self, n_frames: int) -> bytes:
        self.requests.append(n_frames)
        start = self.position * self.frame_bytes
        chunk = self.pcm[start : start + n_frames * self.frame_bytes]
        self.position += n_frames
        return chunk + bytes(n_frames * self.frame_bytes - len(chunk))


def odd_sizes(count: int, seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    fixed = [1, 2, 3, 7, 13, 127, 160, 441, 480, 511, 882, 960, 1023, 1024, 4099]
    return fixed + [int(n) for n in rng.integers(1, 3000, size=count)]


@pytest.mark.parametrize(("from_channels", "to_channels"), CHANNEL_PAIRS)
@pytest.mark.parametrize(("from_rate", "to_rate"), RATE_PAIRS)
def test_block_converter_returns_exact_sizes_and_the_one_shot_output(
    from_rate: int, to_rate: int, from_channels: int, to_channels: int
) -> None:
    source, target = fmt(from_rate, from_channels), fmt(to_rate, to_channels)
    sizes = odd_sizes(40, seed=from_rate + to_rate)
    total = sum(sizes)
    # Enough signal that the one-shot conversion covers every frame the blocks asked for.
    signal = noise(from_rate, total / to_rate + 0.5, from_channels, seed=8).tobytes()
    pull = Source(signal, source.frame_bytes)
    blocks = BlockConverter(FormatConverter(source, target), pull.read)

    rendered = []
    for n in sizes:
        block = blocks.render(n)
        assert len(block) == n * target.frame_bytes
        rendered.append(block)

    one_shot_converter = FormatConverter(source, target)
    padded = signal + bytes(source.frames_for(1.0) * source.frame_bytes)
    one_shot = one_shot_converter.convert(padded) + one_shot_converter.flush()
    got = samples_of(b"".join(rendered), to_channels).astype(np.float64)
    want = samples_of(one_shot, to_channels)[:total].astype(np.float64)
    delay = round(estimate_delay(got[:, 0], want[:, 0]))
    assert delay == 0
    assert np.array_equal(got, want)
    # It pulled about what it played, not more than a resampler block ahead.
    pulled_s = sum(pull.requests) / from_rate
    assert pulled_s - total / to_rate < 0.25


@pytest.mark.parametrize(("from_rate", "to_rate"), RATE_PAIRS)
def test_block_converter_keeps_a_sine_continuous(from_rate: int, to_rate: int) -> None:
    source, target = fmt(from_rate, 1), fmt(to_rate, 2)
    pull = Source(sine(from_rate, SIGNAL_S + 1.0).tobytes(), source.frame_bytes)
    blocks = BlockConverter(FormatConverter(source, target), pull.read)
    block_frames = target.frames_for(CHUNK_S)
    n_blocks = int(SIGNAL_S / CHUNK_S)
    out = samples_of(b"".join(blocks.render(block_frames) for _ in range(n_blocks)), 2)
    assert np.array_equal(out[:, 0], out[:, 1])
    steps = np.abs(np.diff(out[block_frames:, 0].astype(np.int32)))  # past the tone's onset
    clean = np.abs(np.diff(sine(to_rate, SIGNAL_S)[:, 0].astype(np.int32))).max()
    assert steps.max() <= clean * 1.01 + 2


def test_identity_block_converter_is_the_read_function() -> None:
    f = fmt(48000, 2)
    pcm = noise(48000, 0.5, 2, seed=9).tobytes()
    direct = Source(pcm, f.frame_bytes)
    through = Source(pcm, f.frame_bytes)
    blocks = BlockConverter(FormatConverter(f, f), through.read)
    for n in odd_sizes(20, seed=10)[:25]:
        assert blocks.render(n) == direct.read(n)
    assert through.requests == direct.requests
    assert blocks.buffered_frames == 0


def test_block_converter_rejects_a_short_read() -> None:
    blocks = BlockConverter(FormatConverter(fmt(8000, 1), fmt(48000, 1)), lambda n: bytes(n))
    with pytest.raises(ValueError, match="exactly the frames"):
        blocks.render(960)


def test_block_converter_reset_drops_the_surplus() -> None:
    source, target = fmt(8000, 1), fmt(48000, 1)
    pull = Source(sine(8000, 1.0).tobytes(), source.frame_bytes)
    blocks = BlockConverter(FormatConverter(source, target), pull.read)
    blocks.render(100)
    assert blocks.buffered_frames > 0
    blocks.reset()
    assert blocks.buffered_frames == 0
    assert blocks.render(0) == b""
    with pytest.raises(ValueError, match="cannot render"):
        blocks.render(-1)
