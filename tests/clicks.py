"""A click track, and the skew between two players read back from one mono recording of both.

Issue 12's proof: two listeners play one click track into ONE sink; the recording shows each
click twice (the distance between the two is the skew) or, when they are closer than a click is
wide, once at double height (the skew is then read from the merged shape).

The click is a Gaussian-windowed 1.5 kHz cosine, sigma 0.25 ms (about 1.5 ms from edge to
edge): band-limited well inside 4 kHz, so it passes an 8 kHz s16 path (PulseAudio's null sink,
PortAudio) unchanged, and it can be evaluated at any fractional delay. The carrier is what makes
small skews measurable: two copies d apart add up to about ``2 cos(pi f d)`` times one copy, so
0.1 ms already lowers the merged peak by 11 %, and a least-squares fit of two equal copies
recovers d from the merged shape to a few microseconds (0.03 ms with 1 % noise). Near
d = 1 / (2 f) = 0.33 ms the copies nearly cancel; the fit still reads them (tested), but the
merged click is then only about half as high as one copy.

Clicks repeat every ``period_s``, all alike; which click is which comes from the order. Two
copies of a click are paired when they are less than half a period apart, so :func:`skews`
resolves skews from 0 up to ``period_s / 2`` minus a click's width (245 ms at the default
0.5 s period). The sign of the skew (which player is ahead) cannot be read from a mono mix of
one stream, only its size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

CLICK_FREQ_HZ = 1500.0
CLICK_SIGMA_S = 0.00025
CLICK_HALF_WIDTH_S = 4 * CLICK_SIGMA_S
"""Beyond 4 sigma the click is below 1/3000 of its peak: that is its edge."""

DEFAULT_AMPLITUDE = 12000
"""Two merged clicks (24000) stay below s16's 32767 even with noise on top."""

DEFAULT_PERIOD_S = 0.5
DEFAULT_LEAD_S = 0.25
"""Silence before the first click: a stream's first milliseconds may be concealed or cut."""

DEFAULT_TAIL_S = 0.5
"""Silence after the last click: PortAudio's ALSA stop drops the last ~2 periods."""

MERGE_WINDOW_S = 0.003
"""Copies closer than this are fitted together as one merged shape (they overlap, or nearly:
two separate peak positions would be pulled towards each other)."""

COARSE_STEP_S = 0.00003125
"""The merged-shape fit's first grid (1/4 sample at 8 kHz), refined twice by 8: 0.5 us."""

CANDIDATES = 8
"""Best points of the first grid refined each (see :func:`_merged_skew`)."""

SAMPLE_BYTES = 2
Samples = npt.NDArray[np.float64]


def click_shape(t_samples: Samples, rate: int) -> Samples:
    """One click of height 1, centred on t = 0, at times ``t_samples`` (in samples, any real)."""
    t = t_samples / rate
    return np.exp(-0.5 * (t / CLICK_SIGMA_S) ** 2) * np.cos(2 * math.pi * CLICK_FREQ_HZ * t)


def click_positions(
    rate: int,
    seconds: float,
    period_s: float = DEFAULT_PERIOD_S,
    *,
    lead_s: float = DEFAULT_LEAD_S,
    tail_s: float = DEFAULT_TAIL_S,
) -> list[int]:
    """The sample index of each click's centre in :func:`click_track`'s output."""
    if period_s <= 2 * (CLICK_HALF_WIDTH_S + MERGE_WINDOW_S):
        raise ValueError(f"a period of {period_s} s is too short for clicks to be told apart")
    total = int(seconds * rate)
    step = round(period_s * rate)
    first = round(lead_s * rate)
    last = total - round(tail_s * rate)
    return list(range(first, last + 1, step))


def click_track(
    rate: int,
    channels: int,
    seconds: float,
    period_s: float = DEFAULT_PERIOD_S,
    *,
    amplitude: int = DEFAULT_AMPLITUDE,
    delay_samples: int | None = None,
    lead_s: float = DEFAULT_LEAD_S,
    tail_s: float = DEFAULT_TAIL_S,
) -> bytes:
    """``seconds`` of s16le PCM (``channels`` identical, interleaved) with a click at each of
    :func:`click_positions`. ``delay_samples``: each click also again that many samples later,
    at the same height: a mix of two players exactly that far apart (the rig's ground truth)."""
    total = int(seconds * rate)
    mono = np.zeros(total, dtype=np.float64)
    half = math.ceil(CLICK_HALF_WIDTH_S * rate)
    offsets = np.arange(-half, half + 1, dtype=np.float64)
    pulse = amplitude * click_shape(offsets, rate)
    lags = [0] if delay_samples is None else [0, delay_samples]
    for centre in click_positions(rate, seconds, period_s, lead_s=lead_s, tail_s=tail_s):
        for lag in lags:
            start = centre + lag - half
            if start >= 0 and start + len(pulse) <= total:
                mono[start : start + len(pulse)] += pulse
    samples = np.clip(np.rint(mono), -32768, 32767).astype("<i2")
    return np.repeat(samples, channels).tobytes()


@dataclass(frozen=True, slots=True)
class Click:
    """A click found in a recording: its centre (in samples, sub-sample) and its height (in
    s16 units; two copies merged at the same moment show as one click of twice the height)."""

    position: float
    height: float


@dataclass(frozen=True, slots=True)
class Skew:
    """Click ``index`` (0 = the first click recorded) heard from two players ``skew_ms`` apart.

    ``merged``: the copies overlapped and ``skew_ms`` comes from a two-copy fit of the merged
    shape; else they were found apart. ``height``: one copy's height (the fit's or the mean of
    the two), so that a click played by one player only (fitted as two copies at 0 ms, each at
    half height) can be told from two merged ones by comparing with the known height.
    """

    index: int
    skew_ms: float
    merged: bool
    height: float


def to_mono(recording: bytes, channels: int = 1) -> Samples:
    """s16le PCM as floats; of interleaved channels, the first."""
    usable = len(recording) - len(recording) % (SAMPLE_BYTES * channels)
    samples = np.frombuffer(recording[:usable], dtype="<i2").astype(np.float64)
    return samples[::channels]


def _envelope(signal: Samples, rate: int) -> Samples:
    """The matched filter's envelope: about the height of a click centred at each sample."""
    half = math.ceil(CLICK_HALF_WIDTH_S * rate)
    offsets = np.arange(-half, half + 1, dtype=np.float64)
    t = offsets / rate
    window = np.exp(-0.5 * (t / CLICK_SIGMA_S) ** 2)
    in_phase = window * np.cos(2 * math.pi * CLICK_FREQ_HZ * t)
    quadrature = window * np.sin(2 * math.pi * CLICK_FREQ_HZ * t)
    energy = float(np.dot(in_phase, in_phase))
    c = np.correlate(signal, in_phase, mode="same")
    s = np.correlate(signal, quadrature, mode="same")
    envelope: Samples = np.sqrt(c * c + s * s) / energy
    return envelope


def _fit(
    signal: Samples, rate: int, centres: Samples, lags: Samples | None, keep: int = 1
) -> list[tuple[float, float, float, float]]:
    """Least squares of ``signal`` against height * (click(t - c) + click(t - c - d)) over the
    grids ``centres`` x ``lags`` (``lags`` None: one click, height * click(t - c)); returns
    the ``keep`` best as (score, c, d, height), best first."""
    pair = lags is not None
    if lags is None:
        lags = np.zeros(1)
    half = math.ceil((CLICK_HALF_WIDTH_S + MERGE_WINDOW_S) * rate) + 2
    lo = max(0, math.floor(float(centres.min())) - half)
    hi = min(len(signal), math.ceil(float(centres.max() + lags.max())) + half + 1)
    n = np.arange(lo, hi, dtype=np.float64)
    x = signal[lo:hi]
    c_grid, d_grid = np.meshgrid(centres, lags, indexing="ij")
    c_flat, d_flat = c_grid.ravel(), d_grid.ravel()
    first = click_shape(n[None, :] - c_flat[:, None], rate)
    second = click_shape(n[None, :] - c_flat[:, None] - d_flat[:, None], rate)
    model = first + second if pair else first
    projection = model @ x
    norm = np.einsum("ij,ij->i", model, model)
    score = projection * projection / norm
    best = np.argsort(score)[::-1][:keep]
    return [
        (float(score[i]), float(c_flat[i]), float(d_flat[i]), float(projection[i] / norm[i]))
        for i in best
    ]


def _refine(
    signal: Samples, rate: int, centre: float, lag: float | None, step: float, span: float
) -> tuple[float, float, float]:
    """:func:`_fit` on a grid of ``step`` samples, ``span`` samples either side of a guess."""
    centres = centre + np.arange(-span, span + step / 2, step)
    lags = None if lag is None else lag + np.arange(-span, span + step / 2, step)
    _, c, d, height = _fit(signal, rate, centres, None if lags is None else lags[lags >= 0])[0]
    return c, d, height


def find_clicks(
    recording: bytes, rate: int, *, channels: int = 1, min_height: float | None = None
) -> list[Click]:
    """Every click in ``recording`` (s16le), in order, with a sub-sample position and height.

    A click is a peak of the matched filter's envelope above ``min_height`` (default: a
    quarter of the highest peak), at least a click's half-width from a higher one. Two copies
    closer than about 1 ms make one peak; :func:`skews` takes them apart.
    """
    signal = to_mono(recording, channels)
    if len(signal) == 0:
        return []
    envelope = _envelope(signal, rate)
    threshold = 0.25 * float(envelope.max()) if min_height is None else min_height
    if threshold <= 0:
        return []
    is_peak = (
        (envelope[1:-1] >= threshold)
        & (envelope[1:-1] >= envelope[:-2])
        & (envelope[1:-1] > envelope[2:])
    )
    above = np.flatnonzero(is_peak) + 1
    # Of peaks closer than a half-width (ripples of one click), keep the highest.
    keep: list[int] = []
    min_gap = CLICK_HALF_WIDTH_S * rate
    for peak in above.tolist():
        if keep and peak - keep[-1] < min_gap:
            if envelope[peak] > envelope[keep[-1]]:
                keep[-1] = peak
            continue
        keep.append(peak)
    clicks = []
    for peak in keep:
        coarse, _, _ = _refine(signal, rate, float(peak), None, 0.25, 1.5)
        position, _, height = _refine(signal, rate, coarse, None, 1 / 32, 0.25)
        clicks.append(Click(position=position, height=height))
    return clicks


def _merged_skew(signal: Samples, rate: int, centre: float) -> tuple[float, float, float]:
    """Two copies that overlap around ``centre``: (first copy's centre, lag, height), lag in
    samples, from a coarse grid over the whole merge window and a fine one around its best."""
    window = MERGE_WINDOW_S * rate
    step = COARSE_STEP_S * rate
    # Copies nearly cancelling show two lobes, and the peak found may be either one.
    reach = window / 2 + 2 * rate / 8000
    centres = centre + np.arange(-reach, reach + step / 2, step)
    lags = np.arange(0.0, window + step, step)
    # Near half a carrier period apart the copies nearly cancel and the best coarse point
    # may lie in the wrong valley: refine the best few and keep the best refined.
    fits = []
    for _, c, d, _ in _fit(signal, rate, centres, lags, keep=CANDIDATES):
        c, d, _ = _refine(signal, rate, c, d, step / 8, step)
        centres_fine = c + np.arange(-step / 8, step / 8 + step / 128, step / 64)
        lags_fine = d + np.arange(-step / 8, step / 8 + step / 128, step / 64)
        fits.append(_fit(signal, rate, centres_fine, lags_fine[lags_fine >= 0])[0])
    _, c, d, height = max(fits)
    return c, d, height


def skews(
    recording: bytes,
    rate: int,
    period_s: float = DEFAULT_PERIOD_S,
    *,
    channels: int = 1,
    min_height: float | None = None,
) -> list[Skew]:
    """For each click of a recording of two players: how far apart they played it.

    Clicks less than half a period apart are two copies of one click; copies closer than
    :data:`MERGE_WINDOW_S` (or one merged click) are fitted as two equal copies of the click
    shape, to 1 microsecond; copies further apart are measured between their centres.
    ``index`` counts periods from the first click recorded.
    """
    signal = to_mono(recording, channels)
    clicks = find_clicks(recording, rate, channels=channels, min_height=min_height)
    half_period = period_s * rate / 2
    merge = MERGE_WINDOW_S * rate
    result: list[Skew] = []
    first: float | None = None
    i = 0
    while i < len(clicks):
        click = clicks[i]
        partner = clicks[i + 1] if i + 1 < len(clicks) else None
        paired = partner is not None and partner.position - click.position < half_period
        if first is None:
            first = click.position
        index = round((click.position - first) / (period_s * rate))
        if partner is not None and paired and partner.position - click.position >= merge:
            lag = partner.position - click.position
            height = (click.height + partner.height) / 2
            result.append(Skew(index, 1000 * lag / rate, False, height))
        else:
            centre = click.position
            if partner is not None and paired:
                centre = (click.position + partner.position) / 2
            _, lag, height = _merged_skew(signal, rate, centre)
            result.append(Skew(index, 1000 * lag / rate, True, height))
        i += 2 if paired else 1
    return result


def copies_heard(found: list[Skew], height: float = DEFAULT_AMPLITUDE) -> int:
    """How many copies of clicks ``found`` holds: two per click heard apart or merged at full
    ``height`` each, one per click standing alone (fitted as two copies at half height)."""
    return sum(1 if s.merged and s.height < 0.75 * height else 2 for s in found)
