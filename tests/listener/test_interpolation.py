"""interpolation: least-squares autoregressive (LSAR) interpolation of a short gap, alone and as
the Concealer uses it."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from test_concealment import speech_like

from appliance.audio.format import AudioFormat
from appliance.listener.playout import interpolation
from appliance.listener.playout.concealment import Concealer
from appliance.listener.playout.interpolation import (
    can_interpolate,
    interpolate,
    order_for,
    solve_symmetric_toeplitz,
)

Floats = npt.NDArray[np.float64]
Samples = npt.NDArray[np.int16]


def sines(rate: int, n: int, parts: list[tuple[float, float]]) -> Floats:
    """``n`` samples (rounded to integers, as s16 audio is) of a sum of (frequency, amplitude)
    sines, each with its own phase."""
    t = np.arange(n) / rate
    x = sum(
        (a * np.sin(2 * np.pi * f * t + 0.3 * k) for k, (f, a) in enumerate(parts)),
        np.zeros(n),
    )
    return np.rint(x)


def split(x: Floats, rate: int, before_ms: float, gap_ms: float) -> tuple[Floats, Floats, Floats]:
    """``x`` (frames, channels) as the audio before a gap, the gap's truth and the audio after."""
    start = round(rate * before_ms / 1000)
    end = start + round(rate * gap_ms / 1000)
    return x[:start], x[start:end], x[end:]


def fill(x: Floats, rate: int, before_ms: float, gap_ms: float) -> tuple[Floats, Floats]:
    """The gap interpolated and its truth."""
    past, truth, future = split(x, rate, before_ms, gap_ms)
    return interpolate(past, future, truth.shape[0], order_for(rate)), truth


def error_db(truth: Floats, got: Floats) -> float:
    """Energy of the error below the truth's, in dB."""
    error = got - truth
    return float(10 * np.log10(np.sum(truth**2) / np.sum(error**2)))


# -- the model's order and when a gap is interpolated ---------------------------------------------


@pytest.mark.parametrize(("rate", "order"), [(8000, 120), (16000, 240), (44100, 662), (48000, 720)])
def test_the_order_is_15_ms_of_taps(rate: int, order: int) -> None:
    assert order_for(rate) == order


@pytest.mark.parametrize(
    ("rate", "gap", "past", "future", "expected"),
    [
        (8000, 160, 390, 160, True),  # a 20 ms packet, the history before, a packet after
        (8000, 320, 390, 160, True),  # 40 ms: the longest
        (8000, 321, 390, 390, False),  # longer than 40 ms
        (8000, 800, 390, 390, False),  # a burst
        (8000, 160, 120, 120, True),  # 15 ms on each side: just enough
        (8000, 160, 119, 390, False),  # too little before
        (8000, 160, 390, 119, False),  # too little after
        (8000, 0, 390, 390, False),  # no gap
        (16000, 320, 780, 320, True),  # 20 ms
        (16000, 640, 780, 780, True),  # 40 ms at 16 kHz too (Levinson's O(n^2) solve)
        (16000, 641, 780, 780, False),  # longer than 40 ms
        (16000, 320, 780, 239, False),
        (44100, 882, 2205, 2205, False),  # whole packets at 44.1 and 48 kHz: never
        (44100, 441, 2205, 2205, False),
        (44100, 220, 2205, 2205, False),
        (48000, 960, 2340, 2340, False),
        (48000, 480, 2340, 2340, False),
        (48000, 240, 2340, 2340, False),
        (48000, 120, 2340, 2340, False),  # 2.5 ms: 720 taps, above the highest order
        (48000, 48, 2340, 2340, False),  # 1 ms (the rest of a packet half-played): order > 240
        (44100, 10, 2205, 2205, False),
    ],
)
def test_can_interpolate_bounds_the_gap_the_work_and_needs_an_order_on_each_side(
    rate: int, gap: int, past: int, future: int, expected: bool
) -> None:
    assert can_interpolate(rate, gap, past, future) is expected


@pytest.mark.parametrize(("past", "future"), [(119, 200), (200, 119), (0, 0)])
def test_too_little_audio_on_either_side_is_refused(past: int, future: int) -> None:
    x = sines(8000, 600, [(440, 10000.0)])[:, np.newaxis]
    with pytest.raises(ValueError, match="need 120 frames of audio on each side of the gap"):
        interpolate(x[:past], x[past + 160 : past + 160 + future], 160, order_for(8000))


# -- the Toeplitz solve ---------------------------------------------------------------------------


def dense(column: Floats) -> Floats:
    n = column.shape[0]
    return column[np.abs(np.subtract.outer(np.arange(n), np.arange(n)))]


@pytest.mark.parametrize(
    ("n", "taps", "seed"),
    [(1, 1, 0), (2, 2, 1), (3, 1, 2), (57, 10, 3), (320, 121, 4), (640, 241, 5), (640, 640, 6)],
)
def test_the_toeplitz_solve_equals_a_dense_solve(n: int, taps: int, seed: int) -> None:
    """Random symmetric positive definite Toeplitz systems, banded as the interpolation's (the
    autocorrelation of a random filter of ``taps`` taps: zero beyond) or full."""
    rng = np.random.default_rng(seed)
    a = np.concatenate([[1.0], rng.normal(0.0, 0.3, taps - 1)])
    column = np.zeros(n)
    column[: min(n, taps)] = np.correlate(a, a, mode="full")[taps - 1 :][:n]
    column[0] *= 1.01  # strictly positive definite, as WHITE_NOISE makes the interpolation's
    rhs = rng.normal(0.0, 1000.0, n)
    expected = np.linalg.solve(dense(column), rhs)
    got = solve_symmetric_toeplitz(column, rhs)
    assert got.shape == (n,)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9 * float(np.max(np.abs(expected))))


def test_the_toeplitz_solve_of_nothing_is_nothing() -> None:
    assert solve_symmetric_toeplitz(np.zeros(0), np.zeros(0)).shape == (0,)


@pytest.mark.parametrize(
    ("column", "message"),
    [
        ([0.0, 0.0], "the Toeplitz system is not positive definite"),
        ([1.0, 1.0], "the Toeplitz system is not positive definite"),  # singular
        ([1.0, 2.0], "the Toeplitz system is not positive definite"),
        ([1.0], "a 2-unknown system needs 2 Toeplitz coefficients"),
    ],
)
def test_a_system_it_cannot_solve_is_refused(column: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        solve_symmetric_toeplitz(np.array(column), np.ones(2))


def test_a_40_ms_gap_at_16_khz_is_interpolated_in_its_exact_length() -> None:
    """Two lost 20 ms packets at 16 kHz: filled by least squares (no longer by the pitch-based
    interpolation), exactly 640 frames, ending where the real audio starts."""
    rate, gap = 16000, 640
    signal = sines(rate, 4000, [(180, 6000.0), (360, 3000.0), (540, 1500.0)]).astype("<i2")
    concealer = Concealer(AudioFormat(rate=rate))
    history = concealer.history_frames
    concealer.played(signal[:1600].tobytes())
    following = signal[1600 + gap : 1600 + gap + history].tobytes()
    filled = concealer.conceal(gap, gap_frames=gap, following=following)
    assert len(filled) == gap * 2
    assert concealer.planned
    past = signal[1600 - history : 1600].astype(np.float64)[:, np.newaxis]
    future = signal[1600 + gap : 1600 + gap + history].astype(np.float64)[:, np.newaxis]
    expected = interpolate(past, future, gap, order_for(rate))[:, 0]
    assert filled == np.clip(np.rint(expected), -32768, 32767).astype("<i2").tobytes()
    rest = signal[1600 + gap :].tobytes()
    assert concealer.played(rest) is rest  # no blend: it ends where the real audio starts
    truth = signal[1600 : 1600 + gap].astype(np.float64)
    assert error_db(truth, np.frombuffer(filled, "<i2").astype(np.float64)) > 20


# -- what it fills -------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [8000, 16000])
@pytest.mark.parametrize(
    "parts", [[(440.0, 10000.0)], [(300.0, 6000.0), (1250.0, 3000.0)]], ids=["tone", "two-sines"]
)
def test_a_sum_of_sines_is_filled_almost_exactly(
    rate: int, parts: list[tuple[float, float]]
) -> None:
    """AR-predictable audio with enough of it on both sides (150 ms) to estimate the model:
    a 20 ms gap comes back within 1 % of the amplitude."""
    n = round(rate * 0.32)
    x = sines(rate, n, parts)[:, np.newaxis]
    filled, truth = fill(x, rate, 150, 20)
    assert filled.shape == (rate // 50, 1)
    assert filled.dtype == np.float64
    amplitude = max(a for _, a in parts)
    assert float(np.max(np.abs(filled - truth))) < 0.01 * amplitude


@pytest.mark.parametrize("rate", [8000, 16000])
def test_stereo_channels_are_filled_each_by_its_own_model(rate: int) -> None:
    n = round(rate * 0.32)
    left = sines(rate, n, [(440.0, 10000.0)])
    right = sines(rate, n, [(300.0, 6000.0), (1250.0, 3000.0)])
    filled, truth = fill(np.column_stack([left, right]), rate, 150, 20)
    assert filled.shape == (rate // 50, 2)
    for channel, amplitude in ((0, 10000.0), (1, 6000.0)):
        assert float(np.max(np.abs(filled[:, channel] - truth[:, channel]))) < 0.01 * amplitude
        alone, _ = fill(np.column_stack([left, right])[:, [channel]], rate, 150, 20)
        assert np.array_equal(filled[:, channel], alone[:, 0])  # nothing of the other channel


@pytest.mark.parametrize("rate", [8000, 16000])
def test_with_the_audio_a_concealer_holds_the_fill_is_close_and_improves_with_more(
    rate: int,
) -> None:
    """The concealer passes its history (48.75 ms) and what the buffer holds after the gap (a
    20 ms packet at least): the model is estimated from little audio, the fill is within
    20 dB; it gets closer with more audio on both sides."""
    x = sines(rate, round(rate * 0.5), [(300.0, 6000.0), (1250.0, 3000.0)])[:, np.newaxis]
    start = round(rate * 0.2)
    gap = rate // 50
    truth = x[start : start + gap]

    def within(before_ms: float, after_ms: float) -> float:
        past = x[start - round(rate * before_ms / 1000) : start]
        future = x[start + gap : start + gap + round(rate * after_ms / 1000)]
        return error_db(truth, interpolate(past, future, gap, order_for(rate)))

    least = within(48.75, 20)
    assert least > 20
    assert least < within(48.75, 48.75) < within(100, 100) < within(150, 150)


def test_silence_on_both_sides_gives_zeros() -> None:
    silence = np.zeros((400, 2))
    filled = interpolate(silence[:200], silence[200:], 160, order_for(8000))
    assert filled.shape == (160, 2)
    assert not filled.any()


def test_a_silent_channel_stays_silent_beside_a_loud_one() -> None:
    loud = sines(8000, 720, [(440.0, 10000.0)])
    x = np.column_stack([loud, np.zeros_like(loud)])
    filled, _ = fill(x, 8000, 48.75, 20)
    assert not filled[:, 1].any()
    assert filled[:, 0].any()


# -- through the Concealer: a lost packet with the next one in hand ------------------------------


def conceal_lost_packets(rate: int, after_ms: float) -> tuple[Floats, Floats]:
    """One 20 ms packet in 7 of 4 s of speech-like audio lost, each concealed by a Concealer
    that was played the audio before it and is given ``after_ms`` of the audio after it; the
    concealed packets and their truth, end to end. Every gap must end where the real audio
    starts (nothing blended) when ``after_ms`` is given."""
    signal = speech_like(rate, 4.0)
    packet = rate // 50
    after = round(rate * after_ms / 1000)
    got: list[bytes] = []
    truth: list[Samples] = []
    for index in range(5, signal.size // packet - 5, 7):
        start = index * packet
        concealer = Concealer(AudioFormat(rate=rate))
        concealer.played(signal[start - 3 * packet : start].tobytes())
        following = signal[start + packet : start + packet + after].tobytes()
        got.append(concealer.conceal(packet, gap_frames=packet, following=following))
        if following:
            assert concealer.played(following) is following  # no blend: the gap ends there
        truth.append(signal[start : start + packet])
    concealed = np.frombuffer(b"".join(got), dtype="<i2").astype(np.float64)
    return concealed, np.concatenate(truth).astype(np.float64)


@pytest.mark.parametrize("rate", [8000, 16000])
def test_a_lost_packet_with_the_next_one_known_is_interpolated_closer_than_extrapolated(
    rate: int,
) -> None:
    """With only the next 20 ms packet in hand the pitch-based interpolation (35 ms needed) is
    out of reach: the least-squares one replaces an extrapolation blended back in."""
    interpolated, truth = conceal_lost_packets(rate, after_ms=20)
    extrapolated, _ = conceal_lost_packets(rate, after_ms=0)
    assert error_db(truth, interpolated) > error_db(truth, extrapolated) + 2


@pytest.mark.parametrize("rate", [8000, 16000])
def test_with_one_packet_after_the_gap_it_is_as_close_as_the_pitch_based_one_with_more(
    rate: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same losses: least squares with only the next 20 ms packet known, against the
    pitch-based interpolation (least squares disabled) given the history's length after each
    gap (it needs 35 ms). On this speech-like audio they are within 1 dB of each other (8 kHz:
    least squares 0.6 dB behind, 16 kHz: 0.3 dB ahead): not closer at both rates."""
    least_squares, truth = conceal_lost_packets(rate, after_ms=20)
    monkeypatch.setattr(interpolation, "can_interpolate", lambda *args: False)
    pitch_based, _ = conceal_lost_packets(rate, after_ms=48.75)
    assert abs(error_db(truth, least_squares) - error_db(truth, pitch_based)) < 1
