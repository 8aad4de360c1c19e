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

Cost: the system is ``gap x gap``, per channel, in the audio callback. It is symmetric Toeplitz,
so :func:`solve_symmetric_toeplitz` solves it exactly by Levinson's recursion (N. Levinson, "The
Wiener RMS error criterion in filter design and prediction", J. Math. Phys. 25, 1947; G. H.
Golub, C. F. Van Loan, "Matrix Computations", 4th ed., algorithm 4.7.2): O(gap^2) arithmetic in
``gap`` numpy steps, where a dense LU solve costs O(gap^3) and, through a multi-threaded BLAS on
a shared 2-core machine, stalled for 100 to 200 ms when other processes ran. That lets
:func:`can_interpolate` take gaps of up to :data:`MAX_GAP_MS` at up to :data:`MAX_ORDER` taps
(8 and 16 kHz: 40 ms; 44.1 and 48 kHz: never). At 16 kHz 40 ms instead of 20 ms won 0.05 PESQ
(wide band) on the bursty rows of the listener's simulated benchmark (``tests/sim_playout.py``,
8 seeds each). Measured on the 2-core x86 CI machine while other jobs loaded it (load average
6.6; best of 5): 1.6 ms for a 20 ms gap at 8 kHz mono, 2.7 ms for 40 ms at 8 kHz, 3.4 ms for
20 ms at 16 kHz, 5.8 ms for 40 ms at 16 kHz (the solve alone: 4.5 ms), against 180 to 220 ms
for the dense solve of the same 16 kHz systems at that load. No Pi was available to measure on:
at 10 times more, a 40 ms gap at 16 kHz would take about two 30 ms output periods there.

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
"""Longest gap interpolated: beyond two packets the prediction fades in the middle of the gap
(60 ms at 8 kHz scored no better), and the solve's cost grows with the square of the gap."""

MAX_ORDER = 240
"""Highest order (16 kHz): above it, the Levinson-Durbin steps and the solve of a 40 ms gap cost
too much in the audio callback, and gaps at 44.1 and 48 kHz are left to the pitch-based
concealment."""

WHITE_NOISE = 1e-4
"""Added to the zero-lag autocorrelation (relative): keeps Levinson-Durbin stable on audio that
is nearly periodic or nearly silent (a -40 dB noise floor)."""

Floats = npt.NDArray[np.float64]


def order_for(rate: int) -> int:
    """The prediction order at ``rate`` Hz (:data:`ORDER_MS` of taps)."""
    return max(1, round(rate * ORDER_MS / 1000))


def max_gap_frames(rate: int) -> int:
    """The longest gap interpolated at ``rate`` Hz: :data:`MAX_GAP_MS`, or 0 above
    :data:`MAX_ORDER`."""
    if order_for(rate) > MAX_ORDER:
        return 0
    return int(rate * MAX_GAP_MS / 1000)


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
    return solve_symmetric_toeplitz(c, -g)


def solve_symmetric_toeplitz(column: Floats, rhs: Floats) -> Floats:
    """The ``x`` of ``T x = rhs``, ``T[i, j] = column[|i - j|]`` symmetric positive definite
    (as the interpolation's ``R``, a filter's autocorrelation), by Levinson's recursion (Golub &
    Van Loan, algorithm 4.7.2). Raises ValueError if ``T`` turns out not positive definite.

    Step ``k`` extends the solution of the leading ``k x k`` system to ``k + 1`` with the
    forward vector ``f`` (``T_k f = e_1``, scaled); as ``T`` is symmetric the backward vector is
    ``f`` reversed, kept here reversed in place (``backward``) so that no step copies it. Each
    step is a few numpy operations on vectors of length ``k``: O(n^2) arithmetic, no BLAS
    threads (see the module's description)."""
    n = rhs.shape[0]
    if column.shape[0] != n:
        raise ValueError(f"a {n}-unknown system needs {n} Toeplitz coefficients")
    if n == 0:
        return np.zeros(0)
    if column[0] <= 0.0:
        raise ValueError("the Toeplitz system is not positive definite")
    reversed_column = column[::-1].copy()  # reversed_column[n - 1 - j] == column[j]
    forward = np.zeros(n)
    # At step k (f of length k) the slice backward[n - 1 - k:] is 0 followed by f reversed,
    # and forward[: k + 1] is f followed by 0: both updated in place.
    backward = np.zeros(n)
    x = np.zeros(n)
    forward[0] = backward[n - 1] = 1.0 / column[0]
    x[0] = rhs[0] / column[0]
    scratch = np.empty(n)
    for k in range(1, n):
        near = reversed_column[n - 1 - k : n - 1]  # column[k], ..., column[1]
        mismatch = float(np.dot(near, forward[:k]))
        denominator = 1.0 - mismatch * mismatch
        if denominator <= 0.0:
            raise ValueError("the Toeplitz system is not positive definite")
        head = forward[: k + 1]  # f then 0 (forward[k] is still 0)
        tail = backward[n - 1 - k :]  # 0 then f reversed
        np.multiply(tail, mismatch, out=scratch[: k + 1])
        tail -= mismatch * head
        head -= scratch[: k + 1]
        scale = 1.0 / denominator
        head *= scale
        tail *= scale
        residual = rhs[k] - float(np.dot(near, x[:k]))
        x[: k + 1] += residual * tail
    return x


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
