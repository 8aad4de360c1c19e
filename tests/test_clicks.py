"""The click track and the skew reader (clicks.py) on synthetic mixes of two players with known
offsets, gains and noise: what the rig's recordings will be read with must be right first."""

from __future__ import annotations

import numpy as np
import pytest
from clicks import (
    DEFAULT_AMPLITUDE,
    Samples,
    click_positions,
    click_shape,
    click_track,
    find_clicks,
    skews,
    to_mono,
)

RATE = 8000
SECONDS = 3.0  # clicks at 0.25, 0.75, ... 2.25 s: five


def two_players(
    skew_ms: float, *, gain: float = 1.0, noise: float = 0.0, seed: int = 1, rate: int = RATE
) -> bytes:
    """The mix two players of the click track make ``skew_ms`` apart (any fraction of a
    sample), at ``gain``, plus Gaussian noise of ``noise`` s16 units RMS, as s16le."""
    n = np.arange(int(SECONDS * rate), dtype=np.float64)
    lag = skew_ms * rate / 1000
    mix: Samples = np.zeros(len(n))
    for centre in click_positions(rate, SECONDS):
        mix += click_shape(n - centre, rate) + click_shape(n - centre - lag, rate)
    mix = gain * DEFAULT_AMPLITUDE * mix + np.random.default_rng(seed).normal(0, noise, len(n))
    return np.clip(np.rint(mix), -32768, 32767).astype("<i2").tobytes()


def test_the_track_has_a_click_of_the_given_height_at_each_position() -> None:
    track = click_track(RATE, 1, SECONDS)
    positions = click_positions(RATE, SECONDS)
    assert positions == [2000, 6000, 10000, 14000, 18000]
    samples = to_mono(track)
    assert [int(samples[p]) for p in positions] == [DEFAULT_AMPLITUDE] * 5
    found = find_clicks(track, RATE)
    assert [round(c.position, 3) for c in found] == positions
    assert all(abs(c.height - DEFAULT_AMPLITUDE) < 2 for c in found)


def test_channels_are_identical_and_interleaved() -> None:
    stereo = to_mono(click_track(RATE, 2, SECONDS), channels=1)
    assert np.array_equal(stereo[0::2], stereo[1::2])
    assert np.array_equal(stereo[0::2], to_mono(click_track(RATE, 1, SECONDS)))


@pytest.mark.parametrize("skew_ms", [0.0, 0.1, 0.33, 0.5, 1.0, 2.0, 5.0, 20.0])
def test_a_clean_mix_gives_the_skew_to_a_hundredth_of_a_millisecond(skew_ms: float) -> None:
    found = skews(two_players(skew_ms), RATE)
    assert [s.index for s in found] == [0, 1, 2, 3, 4]
    assert all(abs(s.skew_ms - skew_ms) <= 0.01 for s in found), found
    # Overlapping copies (under MERGE_WINDOW_S) are read from the merged shape, also at
    # 0.33 ms, half a period of the carrier, where the two nearly cancel.
    assert all(s.merged == (skew_ms < 3) for s in found)
    assert all(abs(s.height - DEFAULT_AMPLITUDE) < 0.01 * DEFAULT_AMPLITUDE for s in found)


@pytest.mark.parametrize("skew_ms", [0.0, 0.1, 0.33, 0.5, 1.0, 2.0, 5.0, 20.0])
def test_a_noisy_mix_at_another_gain_gives_the_skew_to_fifty_microseconds(skew_ms: float) -> None:
    # Half height, noise 40 dB under one copy (about 1 % of the peak, 100 s16 units RMS).
    found = skews(two_players(skew_ms, gain=0.5, noise=100.0, seed=int(skew_ms * 10)), RATE)
    assert [s.index for s in found] == [0, 1, 2, 3, 4]
    assert all(abs(s.skew_ms - skew_ms) <= 0.05 for s in found), found
    assert all(abs(s.height - DEFAULT_AMPLITUDE / 2) < 0.03 * DEFAULT_AMPLITUDE for s in found)


def test_whole_sample_skews_far_apart_are_exact() -> None:
    # 110 ms, the baseline's expected skew (40 vs 150 ms buffers): 880 samples, exactly.
    assert {s.skew_ms for s in skews(two_players(110.0, noise=50.0), RATE)} == {110.0}


def test_a_merged_click_shows_at_double_height() -> None:
    found = find_clicks(two_players(0.0), RATE)
    assert len(found) == 5
    assert all(abs(c.height - 2 * DEFAULT_AMPLITUDE) < 0.01 * DEFAULT_AMPLITUDE for c in found)


def test_a_click_from_one_player_only_fits_as_two_copies_at_half_height() -> None:
    # One player alone: each "pair" reads as 0 ms at half height, which tells it from a merge.
    found = skews(click_track(RATE, 1, SECONDS), RATE)
    assert all(s.skew_ms <= 0.01 and s.merged for s in found)
    assert all(abs(s.height - DEFAULT_AMPLITUDE / 2) < 0.01 * DEFAULT_AMPLITUDE for s in found)


def test_delayed_copies_in_the_track_are_the_ground_truth() -> None:
    for delay in (1, 4, 40):
        found = skews(click_track(RATE, 1, SECONDS, delay_samples=delay), RATE)
        assert len(found) == 5
        assert all(abs(s.skew_ms - delay / 8) <= 0.01 for s in found), (delay, found)


def test_skews_up_to_almost_half_a_period_are_paired_right() -> None:
    found = skews(two_players(240.0), RATE)
    assert [(s.index, s.skew_ms) for s in found] == [(i, 240.0) for i in range(5)]


def test_a_missing_first_copy_does_not_shift_the_pairs() -> None:
    # The recording starts between the two copies of click 0: that copy stands alone.
    recording = two_players(110.0)[2 * 2100 :]
    found = skews(recording, RATE)
    assert [s.skew_ms for s in found[1:]] == [110.0] * 4
    assert found[0].merged and abs(found[0].height - DEFAULT_AMPLITUDE / 2) < 100


def test_other_rates_work_alike() -> None:
    found = skews(two_players(0.5, rate=48000), 48000)
    assert len(found) == 5
    assert all(abs(s.skew_ms - 0.5) <= 0.01 for s in found)


def test_silence_has_no_clicks_and_short_periods_are_refused() -> None:
    assert find_clicks(bytes(16000), RATE) == []
    assert skews(b"", RATE) == []
    with pytest.raises(ValueError, match="too short"):
        click_positions(RATE, 1.0, period_s=0.005)
