import itertools

import numpy as np
import numpy.typing as npt
import pytest

from appliance.audio.format import AudioFormat, Encoding
from appliance.listener.playout import interpolation
from appliance.listener.playout.concealment import Concealer

Samples = npt.NDArray[np.int16]
RATES = (8000, 16000, 44100, 48000)


def sine(freq: float, rate: int, n: int, amplitude: float = 10000.0, start: int = 0) -> Samples:
    """``n`` samples of a sine, from sample ``start`` of it."""
    t = np.arange(start, start + n)
    return np.rint(amplitude * np.sin(2 * np.pi * freq * t / rate)).astype("<i2")


def harmonics(
    period_s: float, rate: int, n: int, amplitudes: list[float], start: int = 0
) -> Samples:
    """A voiced-like periodic signal: harmonics of 1/``period_s`` with these amplitudes."""
    t = np.arange(start, start + n) / rate
    f0 = 1 / period_s
    signal = np.zeros_like(t)
    for k, a in enumerate(amplitudes, start=1):
        signal += a * np.sin(2 * np.pi * k * f0 * t + 0.7 * k)
    return np.rint(signal).astype("<i2")


def stereo(left: Samples, right: Samples) -> Samples:
    return np.column_stack([left, right]).reshape(-1).astype("<i2")


def pcm(samples: Samples) -> bytes:
    return samples.astype("<i2").tobytes()


def samples(data: bytes, channels: int = 1) -> npt.NDArray[np.float64]:
    """As float64, shape (frames, channels)."""
    return np.frombuffer(data, dtype="<i2").astype(np.float64).reshape(-1, channels)


def correlation(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> float:
    return float(np.dot(a, b) / np.sqrt(np.dot(a, a) * np.dot(b, b)))


def rms(a: npt.NDArray[np.float64]) -> float:
    return float(np.sqrt(np.mean(np.square(a))))


def noise(rate: int, channels: int, ms: int = 60, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    n = rate * ms // 1000 * channels
    return pcm(rng.integers(-8000, 8000, n).astype("<i2"))


# -- lengths and identity ------------------------------------------------------------------


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("channels", [1, 2])
def test_conceal_returns_exactly_the_frames_asked(rate: int, channels: int) -> None:
    fmt = AudioFormat(rate=rate, channels=channels)
    concealer = Concealer(fmt)
    concealer.played(noise(rate, channels))
    for n in (1, 3, 7, 160, 441, 1001, 1440, 5000):
        assert len(concealer.conceal(n)) == n * fmt.frame_bytes
    fresh = Concealer(fmt)  # no history
    for n in (1, 3, 7, 160, 441, 1001):
        assert len(fresh.conceal(n)) == n * fmt.frame_bytes


def test_conceal_of_no_frames_is_empty_and_changes_nothing() -> None:
    concealer = Concealer(AudioFormat())
    concealer.played(noise(8000, 1))
    assert concealer.conceal(0) == b""
    assert (concealer.erasures, concealer.concealed_frames) == (0, 0)
    audio = noise(8000, 1, seed=1)
    assert concealer.played(audio) is audio


def test_bad_arguments_are_refused() -> None:
    concealer = Concealer(AudioFormat(channels=2))
    with pytest.raises(ValueError):
        concealer.played(b"\x00\x00")  # half a stereo frame
    with pytest.raises(ValueError):
        concealer.conceal(-1)


def test_format_is_the_decoded_pcm_format() -> None:
    concealer = Concealer(AudioFormat(rate=44100, channels=2, encoding=Encoding.S16BE))
    assert concealer.format == AudioFormat(rate=44100, channels=2)
    assert concealer.format.encoding is Encoding.S16LE


@pytest.mark.parametrize("rate", RATES)
def test_history_is_48_75_ms(rate: int) -> None:
    assert Concealer(AudioFormat(rate=rate)).history_frames == round(rate * 0.04875)


@pytest.mark.parametrize("channels", [1, 2])
def test_played_returns_the_same_object_when_nothing_is_to_blend(channels: int) -> None:
    concealer = Concealer(AudioFormat(rate=48000, channels=channels))
    for seed, ms in enumerate((20, 1, 100, 20)):
        audio = noise(48000, channels, ms, seed)
        copy = bytes(bytearray(audio))
        assert concealer.played(audio) is audio
        assert audio == copy
    empty = b""
    assert concealer.played(empty) is empty


def test_played_returns_the_same_object_again_once_the_blend_is_over() -> None:
    concealer = Concealer(AudioFormat())
    concealer.played(pcm(sine(200, 8000, 400)))
    concealer.conceal(80)
    first = pcm(sine(200, 8000, 160, start=480))
    assert concealer.played(first) is not first
    second = pcm(sine(200, 8000, 160, start=640))
    assert concealer.played(second) is second


# -- no history ----------------------------------------------------------------------------


def test_no_history_conceals_silence_and_the_audio_after_it_is_not_blended() -> None:
    concealer = Concealer(AudioFormat(rate=16000, channels=2))
    assert concealer.conceal(320) == bytes(320 * 4)
    assert concealer.conceal(7) == bytes(7 * 4)
    audio = noise(16000, 2)
    assert concealer.played(audio) is audio
    assert (concealer.erasures, concealer.concealed_frames) == (1, 327)


def test_interrupt_forgets_the_history() -> None:
    concealer = Concealer(AudioFormat())
    concealer.played(pcm(sine(200, 8000, 800)))
    concealer.interrupt()
    assert concealer.conceal(160) == bytes(320)
    audio = pcm(sine(200, 8000, 160))
    assert concealer.played(audio) is audio


def test_interrupt_during_a_gap_cancels_its_blend() -> None:
    concealer = Concealer(AudioFormat())
    concealer.played(pcm(sine(200, 8000, 800)))
    assert concealer.conceal(160) != bytes(320)
    assert concealer.blending
    concealer.interrupt()
    assert not concealer.blending
    audio = pcm(sine(200, 8000, 160, start=960))
    assert concealer.played(audio) is audio


def test_a_short_history_is_continued_too() -> None:
    concealer = Concealer(AudioFormat(rate=8000))
    concealer.played(pcm(sine(250, 8000, 96)))  # 12 ms, 3 periods of 4 ms
    concealed = samples(concealer.conceal(80))[:, 0]
    truth = samples(pcm(sine(250, 8000, 80, start=96)))[:, 0]
    assert correlation(concealed, truth) > 0.9


@pytest.mark.parametrize("level", [0, 1, 3])
def test_silent_or_very_quiet_history_is_harmless(level: int) -> None:
    concealer = Concealer(AudioFormat(rate=48000, channels=2))
    rng = np.random.default_rng(level)
    quiet = rng.integers(-level, level + 1, 2 * 2880).astype("<i2")
    concealer.played(pcm(quiet))
    concealed = samples(concealer.conceal(4800), 2)
    # the junction may add the step between the last sample and the one a period before
    assert np.all(np.abs(concealed) <= 3 * level)
    if level == 0:
        assert not concealed.any()
    after = samples(concealer.played(pcm(quiet)), 2)
    assert np.all(np.abs(after) <= 3 * level)


def test_full_scale_audio_is_clipped_not_wrapped() -> None:
    concealer = Concealer(AudioFormat())
    square = np.where(sine(100, 8000, 800) >= 0, 32767, -32768).astype("<i2")
    concealer.played(pcm(square))
    concealed = samples(concealer.conceal(80))[:, 0]
    truth = np.where(sine(100, 8000, 80, start=800) >= 0, 32767, -32768).astype(np.float64)
    assert correlation(concealed, truth) > 0.9


# -- what is concealed ---------------------------------------------------------------------


def test_a_sine_is_continued_at_8k() -> None:
    concealer = Concealer(AudioFormat(rate=8000))
    concealer.played(pcm(sine(200, 8000, 800)))
    concealed = samples(concealer.conceal(160))[:, 0]
    truth = samples(pcm(sine(200, 8000, 160, start=800)))[:, 0]
    assert correlation(concealed, truth) > 0.9
    assert rms(concealed) > rms(truth) / 2
    assert concealer.pitch in (40, 80, 120)  # 5 ms, or a multiple in the 5..15 ms range


@pytest.mark.parametrize("rate", RATES)
def test_the_first_concealed_sample_continues_the_last_played_one(rate: int) -> None:
    concealer = Concealer(AudioFormat(rate=rate))
    history = sine(173.3, rate, rate // 10)  # not a whole number of samples a period
    concealer.played(pcm(history))
    concealed = samples(concealer.conceal(rate // 100))[:, 0]
    slope = 2 * np.pi * 173.3 / rate * 10000  # the sine's largest step between samples
    assert abs(concealed[0] - float(history[-1])) <= 1.5 * slope + 2


def test_a_voiced_signal_is_continued_at_48k_stereo_on_both_channels() -> None:
    rate, period = 48000, 0.007
    left_amps = [6000.0, 3000.0, 2000.0, 1500.0, 800.0, 500.0]
    right_amps = [2000.0, 5000.0, 1000.0, 0.0, 1200.0]
    played = stereo(
        harmonics(period, rate, 4800, left_amps), harmonics(period, rate, 4800, right_amps)
    )
    concealer = Concealer(AudioFormat(rate=rate, channels=2))
    concealer.played(pcm(played))
    concealed = samples(concealer.conceal(960), 2)
    truth = [harmonics(period, rate, 960, amps, start=4800) for amps in (left_amps, right_amps)]
    for channel in (0, 1):
        expected = truth[channel].astype(np.float64)
        assert correlation(concealed[:, channel], expected) > 0.9
        assert rms(concealed[:, channel]) > rms(expected) / 2
    assert concealer.pitch in (336, 672)


def test_stereo_channels_are_concealed_from_their_own_samples() -> None:
    concealer = Concealer(AudioFormat(rate=16000, channels=2))
    left = sine(200, 16000, 1600)
    concealer.played(pcm(stereo(left, np.zeros_like(left))))
    concealed = samples(concealer.conceal(1600), 2)
    assert not concealed[:, 1].any()
    assert rms(concealed[:160, 0]) > 5000
    truth = sine(200, 16000, 320, start=1600).astype(np.float64)
    assert correlation(concealed[:320, 0], truth) > 0.9
    # and the other way round
    concealer = Concealer(AudioFormat(rate=16000, channels=2))
    concealer.played(pcm(stereo(np.zeros_like(left), left)))
    concealed = samples(concealer.conceal(320), 2)
    assert not concealed[:, 0].any()
    assert correlation(concealed[:, 1], truth) > 0.9


@pytest.mark.parametrize("rate", RATES)
def test_a_gap_fades_out_by_60_ms_and_is_silent_after(rate: int) -> None:
    concealer = Concealer(AudioFormat(rate=rate))
    concealer.played(pcm(sine(210, rate, rate // 10)))
    step = rate // 100  # 10 ms
    concealed = samples(concealer.conceal(10 * step))[:, 0]
    levels = [rms(concealed[i * step : (i + 1) * step]) for i in range(10)]
    assert levels[0] > 5000
    assert all(a > b for a, b in itertools.pairwise(levels[:6]))
    assert not concealed[6 * step :].any()
    assert concealer.conceal(step) == bytes(2 * step)  # and it stays silent


@pytest.mark.parametrize("channels", [1, 2])
def test_a_gap_continues_across_calls_of_any_size(channels: int) -> None:
    fmt = AudioFormat(rate=44100, channels=channels)
    history = noise(44100, channels, 30) + pcm(
        np.repeat(sine(150, 44100, 2205), channels).astype("<i2")
    )
    whole = Concealer(fmt)
    whole.played(history)
    expected = whole.conceal(3000)
    pieces = Concealer(fmt)
    pieces.played(history)
    got = b"".join(pieces.conceal(n) for n in (1, 2, 440, 441, 7, 1000, 109, 1000))
    assert got == expected


# -- the end of a gap ----------------------------------------------------------------------


def test_blend_length_follows_appendix_i() -> None:
    concealer = Concealer(AudioFormat(rate=8000))
    assert concealer.blend_frames(1, 40) == 10  # a quarter period
    assert concealer.blend_frames(80, 40) == 10
    assert concealer.blend_frames(81, 40) == 10 + 32  # + 4 ms per further 10 ms (or part)
    assert concealer.blend_frames(160, 100) == 25 + 32
    assert concealer.blend_frames(240, 40) == 10 + 64
    assert concealer.blend_frames(240, 120) == 80  # at most 10 ms
    assert Concealer(AudioFormat(rate=48000)).blend_frames(960, 336) == 84 + 192


def test_audio_after_a_gap_is_blended_from_the_concealment() -> None:
    concealer = Concealer(AudioFormat(rate=8000))
    concealer.played(pcm(sine(200, 8000, 800)))
    concealed = samples(concealer.conceal(160))[:, 0]
    real = pcm(sine(200, 8000, 160, start=960))
    out = concealer.played(real)
    assert len(out) == len(real)
    length = concealer.blend_frames(160, concealer.pitch)
    assert length == concealer.pitch // 4 + 32
    blended = samples(out)[:, 0]
    slope = 2 * np.pi * 200 / 8000 * 10000
    assert abs(blended[0] - concealed[-1]) <= 1.1 * slope  # no step
    assert out[: 2 * length] != real[: 2 * length]  # the concealment was quieter: it shows
    assert out[2 * length :] == real[2 * length :]
    assert not concealer.blending


def test_the_blend_weights_are_linear() -> None:
    # After the fade reached silence the blend is a fade-in of the real audio, 10 ms long.
    concealer = Concealer(AudioFormat(rate=8000))
    concealer.played(pcm(sine(200, 8000, 800)))
    concealer.conceal(800)  # 100 ms
    real = sine(200, 8000, 160, start=1600)
    out = samples(concealer.played(pcm(real)))[:, 0]
    weights = np.arange(1, 81) / 80
    assert np.array_equal(out[:80], np.rint(real[:80] * weights))
    assert np.array_equal(out[80:], real[80:])


def test_a_blend_goes_on_across_played_calls() -> None:
    def run(sizes: list[int]) -> bytes:
        concealer = Concealer(AudioFormat(rate=16000, channels=2))
        concealer.played(pcm(np.repeat(sine(180, 16000, 1600), 2).astype("<i2")))
        concealer.conceal(480)
        real = pcm(np.repeat(sine(180, 16000, 320, start=2080), 2).astype("<i2"))
        parts = []
        offset = 0
        for n in sizes:
            parts.append(concealer.played(real[offset : offset + 4 * n]))
            offset += 4 * n
        return b"".join(parts)

    assert run([3, 0, 5, 1, 11, 100, 200]) == run([320])


def test_a_gap_during_a_blend_is_a_new_gap() -> None:
    concealer = Concealer(AudioFormat(rate=8000))
    concealer.played(pcm(sine(200, 8000, 800)))
    concealer.conceal(160)
    concealer.played(pcm(sine(200, 8000, 5, start=960)))  # part of the blend
    assert concealer.blending
    concealed = samples(concealer.conceal(80))[:, 0]
    assert concealer.erasures == 2
    truth = sine(200, 8000, 80, start=965).astype(np.float64)
    assert correlation(concealed, truth) > 0.9


def test_counters() -> None:
    concealer = Concealer(AudioFormat(rate=8000, channels=2))
    assert (concealer.erasures, concealer.concealed_frames) == (0, 0)
    concealer.conceal(5)  # at the start: a gap (of silence)
    concealer.played(noise(8000, 2, 20, 1))
    concealer.conceal(160)
    concealer.conceal(161)  # the same gap
    concealer.played(b"")  # nothing played: still the same gap
    concealer.conceal(1)
    assert (concealer.erasures, concealer.concealed_frames) == (2, 327)
    concealer.played(noise(8000, 2, 20, 2))
    concealer.conceal(1000)  # 125 ms: silence from 60 ms on counts too
    concealer.interrupt()
    concealer.conceal(3)
    assert (concealer.erasures, concealer.concealed_frames) == (4, 1330)


# -- quality -------------------------------------------------------------------------------


def speech_like(rate: int, seconds: float) -> Samples:
    """Voiced speech, roughly: harmonics of a pitch gliding 110..170 Hz, a syllabic envelope."""
    t = np.arange(int(rate * seconds)) / rate
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)
    signal = np.zeros_like(t)
    for k in range(1, 25):
        formants = 1 + 2 * np.exp(-(((k * 140 - 600) / 300) ** 2))  # a bump near 600 Hz
        signal += formants / k * np.sin(k * phase) * (k * f0 < rate / 2 - 500)
    return np.rint(signal * envelope * 4000).astype("<i2")


def snr_db(reference: Samples, got: Samples) -> float:
    error = reference.astype(np.float64) - got.astype(np.float64)
    return float(10 * np.log10(np.sum(np.square(reference.astype(np.float64))) / np.sum(error**2)))


@pytest.mark.parametrize("rate", [8000, 48000])
def test_concealment_beats_silence_on_speech_like_audio(rate: int) -> None:
    original = speech_like(rate, 4.0)
    frame = rate // 50  # 20 ms
    n_frames = original.size // frame
    rng = np.random.default_rng(7)
    lost = set(rng.choice(np.arange(5, n_frames), size=n_frames // 20, replace=False).tolist())
    concealer = Concealer(AudioFormat(rate=rate))
    concealed, zero_filled = [], []
    for i in range(n_frames):
        piece = original[i * frame : (i + 1) * frame]
        if i in lost:
            concealed.append(np.frombuffer(concealer.conceal(frame), dtype="<i2"))
            zero_filled.append(np.zeros(frame, dtype="<i2"))
        else:
            concealed.append(np.frombuffer(concealer.played(pcm(piece)), dtype="<i2"))
            zero_filled.append(piece)
    played = original[: n_frames * frame]
    with_concealment = snr_db(played, np.concatenate(concealed))
    with_silence = snr_db(played, np.concatenate(zero_filled))
    assert concealer.erasures == len(lost)
    assert with_concealment > with_silence + 3


# -- interpolation: the audio after the gap is known -----------------------------------------


def test_a_gap_with_the_audio_after_it_known_is_interpolated_into_it() -> None:
    rate, gap = 8000, 160  # a 20 ms packet lost between two known stretches
    signal = sine(200, rate, 2000)
    before, lost, after = signal[:800], signal[800 : 800 + gap], signal[800 + gap :]
    concealer = Concealer(AudioFormat(rate=rate))
    concealer.played(pcm(before))
    assert concealer.min_following_frames == 280  # 35 ms: what the pitch search reads
    filled = samples(
        concealer.conceal(gap, gap_frames=gap, following=pcm(after[: concealer.history_frames]))
    )[:, 0]
    following = pcm(after)
    assert concealer.played(following) is following  # it ends where the real audio starts
    assert correlation(filled, lost.astype(np.float64)) > 0.99
    # Continuous at both ends: no step larger than the sine's own.
    largest_step = float(np.max(np.abs(np.diff(signal.astype(np.float64)))))
    assert abs(filled[0] - float(before[-1])) <= largest_step * 1.5
    assert abs(float(after[0]) - filled[-1]) <= largest_step * 1.5


@pytest.mark.parametrize("ahead_ms", [40, 60])
def test_interpolation_beats_extrapolation_on_speech_like_audio(ahead_ms: int) -> None:
    rate = 8000
    original = speech_like(rate, 4.0)
    frame = rate // 50
    n_frames = original.size // frame
    rng = np.random.default_rng(3)
    lost = set(rng.choice(np.arange(5, n_frames - 5), size=n_frames // 20, replace=False).tolist())
    outputs: dict[bool, list[Samples]] = {False: [], True: []}
    for interpolate in (False, True):
        concealer = Concealer(AudioFormat(rate=rate))
        i = 0
        while i < n_frames:
            if i not in lost:
                piece = original[i * frame : (i + 1) * frame]
                outputs[interpolate].append(np.frombuffer(concealer.played(pcm(piece)), "<i2"))
                i += 1
                continue
            j = i
            while j in lost:
                j += 1
            gap = (j - i) * frame
            ahead = original[j * frame : j * frame + rate * ahead_ms // 1000]
            following = pcm(ahead) if interpolate and not lost & set(range(j, j + 3)) else b""
            filled = concealer.conceal(gap, gap_frames=gap, following=following)
            outputs[interpolate].append(np.frombuffer(filled, "<i2"))
            i = j
    played = original[: n_frames * frame]
    extrapolated = snr_db(played, np.concatenate(outputs[False]))
    interpolated = snr_db(played, np.concatenate(outputs[True]))
    assert interpolated > extrapolated + 1


def test_too_little_audio_after_a_gap_is_extrapolated_as_without_it() -> None:
    signal = harmonics(0.007, 8000, 1200, [6000, 3000, 1500])
    order = interpolation.order_for(8000)
    assert order == 120  # 15 ms: what the least-squares interpolation needs on each side
    results = []
    for following in (b"", pcm(signal[600 : 600 + order - 1])):  # 14.9 ms < 15 ms
        concealer = Concealer(AudioFormat(rate=8000))
        concealer.played(pcm(signal[:440]))
        results.append(concealer.conceal(160, gap_frames=160, following=following))
        assert concealer.blending  # and blended back into the real audio
    assert results[0] == results[1]


@pytest.mark.parametrize("ahead", [120, 200, 279])
def test_15_to_35_ms_after_a_short_gap_is_enough_to_interpolate_it(ahead: int) -> None:
    """From 15 ms after the gap (the prediction order) on: the least-squares interpolation,
    though the pitch-based one needs 35 ms (min_following_frames)."""
    signal = harmonics(0.007, 8000, 1200, [6000, 3000, 1500])
    truth = signal[440:600].astype(np.float64)
    following = pcm(signal[600 : 600 + ahead])
    concealer = Concealer(AudioFormat(rate=8000))
    assert ahead < concealer.min_following_frames == 280
    concealer.played(pcm(signal[:440]))
    filled = concealer.conceal(160, gap_frames=160, following=following)
    past = samples(pcm(signal[:440]))[-concealer.history_frames :]
    expected = interpolation.interpolate(past, samples(following), 160, order=120)
    assert filled == pcm(np.clip(np.rint(expected[:, 0]), -32768, 32767).astype("<i2"))
    assert concealer.played(following) is following  # it ends where the real audio starts
    error = samples(filled)[:, 0] - truth
    assert float(np.sum(error**2)) < 0.01 * float(np.sum(truth**2))  # within -20 dB
