"""How far, and how fast, another clock runs from ours: from request/response time exchanges.

One exchange (NTP's, RFC 5905 section 8; Snapcast's) gives four times: ``t1`` we send, ``t2``
the peer receives, ``t3`` the peer answers, ``t4`` we receive (t1, t4 on our clock; t2, t3 on
the peer's). Then::

    offset = ((t2 - t1) + (t3 - t4)) / 2     # peer clock minus ours
    rtt    = (t4 - t1) - (t3 - t2)           # time on the network (and in queues)

The one unknowable thing is how the round trip splits between the two ways: if it all went
one way the offset would be wrong by ``rtt / 2``, and never by more. So the estimator trusts
the exchanges that were quickest (NTP's clock filter), and is robust to the rest:

* a bounded window (:data:`WINDOW`) of recent exchanges; an exchange whose rtt is far above the
  window's best (a late answer, a Wi-Fi retry: :data:`OUTLIER_RTT_FACTOR`) is counted and not
  used;
* of the others, the quicker half (at least :data:`MIN_SAMPLES`) is used (all of them if the
  quicker half bunches within :data:`MIN_DRIFT_SPAN_NS` while the rest spread further);
* the offset moves with drift (two crystals differ by up to +-100 ppm; a laptop's clock is
  slewed by NTP): a least-squares line of offset against our time through the used exchanges
  gives offset and drift; exchanges whose residual is far beyond the median residual (Snapcast's
  median filter, in spirit) are dropped and the line fitted again. Over a span shorter than
  :data:`MIN_DRIFT_SPAN_NS` drift cannot be told from jitter: the offset is then the median of
  the used exchanges and drift 0.

:meth:`ClockEstimator.to_remote` and :meth:`ClockEstimator.to_local` extrapolate along that
line, so between exchanges (a second apart) a +-500 ppm drift costs nothing.

Example::

    estimator = ClockEstimator()
    estimator.add(t1, t2, t3, t4)
    if estimator.ready:
        due_here = estimator.to_local(due_at_sender_ns)
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass, replace

from appliance.sync.clock import MS_NS, PPM, SECOND_NS

WINDOW = 64
"""Exchanges kept: a minute at one a second (the drift fit sees that far back)."""
MIN_SAMPLES = 4
"""Exchanges needed before the estimate is :attr:`ClockEstimator.ready`."""
OUTLIER_RTT_FACTOR = 3
OUTLIER_RTT_FLOOR_NS = 2 * MS_NS
"""An exchange is an outlier when its rtt exceeds the window's best rtt times
:data:`OUTLIER_RTT_FACTOR` plus this (on a LAN the best is well under 1 ms; 200 ms is late)."""
MIN_DRIFT_SPAN_NS = SECOND_NS
"""Drift is fitted only over exchanges spread at least this far apart."""
JITTER_BINS = 8
DRIFT_SIGNIFICANCE = 3.0
"""A fitted drift is used only when it is this many standard errors from zero..."""
MAX_DRIFT = 1000 / PPM
"""...and no more than 1000 ppm: two quartz clocks differ by 100 at most, a laptop slewed by
NTP by 500; more is jitter read as drift."""
RESIDUAL_FACTOR = 3
RESIDUAL_FLOOR_NS = 50_000
"""A used exchange whose residual exceeds this many times the median residual (and this
floor) is dropped from the fit."""


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request and its answer: the offset it implies and its round trip, at our time."""

    local_ns: int
    """Our time half-way between send and receive: where the offset was measured."""
    offset_ns: int
    rtt_ns: int

    @classmethod
    def of(cls, t1: int, t2: int, t3: int, t4: int) -> Exchange:
        # Integer halves: at most half a nanosecond off, never a float rounding of 1e14.
        return cls((t1 + t4) // 2, ((t2 - t1) + (t3 - t4)) // 2, (t4 - t1) - (t3 - t2))


@dataclass(frozen=True, slots=True)
class _Fit:
    origin_ns: int
    """Our time the line is anchored at (the newest used exchange)."""
    offset_ns: float
    slope: float
    """Drift: peer nanoseconds gained per nanosecond of ours."""
    residual_ns: float
    used: int


class ClockEstimator:
    """Offset and drift of a peer's clock against ours (see the module docstring)."""

    def __init__(self, window: int = WINDOW, min_samples: int = MIN_SAMPLES) -> None:
        if window < min_samples or min_samples < 1:
            raise ValueError("the window must hold at least min_samples >= 1 exchanges")
        self._samples: deque[Exchange] = deque(maxlen=window)
        self._min_samples = min_samples
        self._fit: _Fit | None = None
        self.exchanges = 0
        """Exchanges offered (all of them)."""
        self.rejected = 0
        """Of them, outliers (rtt far above the best) and impossible ones (negative rtt)."""

    # -- input ------------------------------------------------------------------------------

    def add(self, t1: int, t2: int, t3: int, t4: int) -> bool:
        """Take one exchange; False if it was rejected (it does not move the estimate)."""
        self.exchanges += 1
        exchange = Exchange.of(t1, t2, t3, t4)
        if exchange.rtt_ns < 0 or t4 < t1:
            self.rejected += 1
            return False
        # Kept even when it is an outlier: as the window moves on, a lasting change of the
        # path (a longer rtt for good) becomes the new normal instead of being refused forever.
        self._samples.append(exchange)
        usable = exchange.rtt_ns <= self._outlier_rtt()
        if not usable:
            self.rejected += 1
        self._fit = self._compute()
        return usable

    def _outlier_rtt(self) -> int:
        best = min(s.rtt_ns for s in self._samples)
        return best * OUTLIER_RTT_FACTOR + OUTLIER_RTT_FLOOR_NS

    # -- the estimate ----------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Enough exchanges (:data:`MIN_SAMPLES`) were used for the estimate to be trusted."""
        return self._fit is not None and self._fit.used >= self._min_samples

    @property
    def samples(self) -> int:
        """Exchanges in the window."""
        return len(self._samples)

    @property
    def samples_used(self) -> int:
        return 0 if self._fit is None else self._fit.used

    @property
    def best_rtt_ns(self) -> int | None:
        return min((s.rtt_ns for s in self._samples), default=None)

    @property
    def offset_ns(self) -> int:
        """Peer minus ours, at the newest exchange used (0 before any)."""
        return 0 if self._fit is None else round(self._fit.offset_ns)

    @property
    def drift_ppm(self) -> float:
        """How much faster the peer's clock runs than ours, in parts per million."""
        return 0.0 if self._fit is None else self._fit.slope * PPM

    @property
    def error_ns(self) -> int:
        """A bound on the offset's error: half the best rtt (the split of the round trip is
        unknown) plus how far the used exchanges lie from the fitted line."""
        fit, best = self._fit, self.best_rtt_ns
        if fit is None or best is None:
            return 0
        return best // 2 + round(fit.residual_ns)

    def offset_at(self, local_ns: int) -> int:
        """The offset at our time ``local_ns`` (along the drift)."""
        fit = self._fit
        if fit is None:
            return 0
        return round(fit.offset_ns + fit.slope * (local_ns - fit.origin_ns))

    def to_remote(self, local_ns: int) -> int:
        """What the peer's clock reads when ours reads ``local_ns``."""
        return local_ns + self.offset_at(local_ns)

    def to_local(self, remote_ns: int) -> int:
        """What our clock reads when the peer's reads ``remote_ns`` (the inverse line)."""
        fit = self._fit
        if fit is None:
            return remote_ns
        # remote = local + offset + slope * (local - origin)  =>  solve for local.
        at_origin = fit.origin_ns + fit.offset_ns
        return fit.origin_ns + round((remote_ns - at_origin) / (1 + fit.slope))

    # -- fitting ----------------------------------------------------------------------------

    def _compute(self) -> _Fit:
        limit_rtt = self._outlier_rtt()
        samples = sorted((s for s in self._samples if s.rtt_ns <= limit_rtt), key=_rtt)
        if len(samples) < self._min_samples:
            return self._quickest()
        quick = samples[: max(self._min_samples, (len(samples) + 1) // 2)]
        if _span(quick) < MIN_DRIFT_SPAN_NS <= _span(samples):
            # The quick ones bunch together in time (a busy spell made the others slow):
            # the drift needs the spread, so all usable exchanges go into the fit.
            quick = samples
        fit = _fit(quick)
        residuals = [abs(_residual(fit, s)) for s in quick]
        limit = max(statistics.median(residuals) * RESIDUAL_FACTOR, RESIDUAL_FLOOR_NS)
        kept = [s for s, r in zip(quick, residuals, strict=True) if r <= limit]
        if len(kept) < len(quick) and len(kept) >= min(self._min_samples, len(quick)):
            fit = _fit(kept)
        return fit

    def _quickest(self) -> _Fit:
        """Behind heavy jitter (a path that is quick only now and then) too few exchanges
        come near the best: the line goes through the quickest exchange of each of
        :data:`JITTER_BINS` stretches of the window instead (its lower edge, as NTP's clock
        filter takes the quickest of the last eight), so that the drift still shows across
        the window; then through the quickest exchange of all."""
        ordered = sorted(self._samples, key=lambda s: s.local_ns)
        size = -(-len(ordered) // JITTER_BINS)  # ceiling
        picks = [min(ordered[i : i + size], key=_rtt) for i in range(0, len(ordered), size)]
        if len(picks) < self._min_samples:
            picks = sorted(ordered, key=_rtt)[: self._min_samples]
        fit = _fit(picks)
        # Each pick is still late by up to half its rtt on one way; the quickest of all is
        # nearly exact: the line is moved to go through it.
        best = min(ordered, key=_rtt)
        return replace(fit, offset_ns=fit.offset_ns + _residual(fit, best))


def _span(samples: list[Exchange]) -> int:
    return max(s.local_ns for s in samples) - min(s.local_ns for s in samples)


def _rtt(sample: Exchange) -> int:
    return sample.rtt_ns


def _residual(fit: _Fit, sample: Exchange) -> float:
    return sample.offset_ns - (fit.offset_ns + fit.slope * (sample.local_ns - fit.origin_ns))


def _fit(samples: list[Exchange]) -> _Fit:
    """Least squares of offset on our time, anchored at the newest sample (small numbers:
    offsets relative to the first, times relative to the origin, so floats lose nothing).

    A drift the exchanges do not show clearly (less than :data:`DRIFT_SIGNIFICANCE` times its
    standard error: a short span, a jittery path) is not used: extrapolated, a slope read
    from noise costs more than it gains (30 ms of one-way jitter read as 6000 ppm, 18 ms off
    within seconds). The offset is then the quickest exchange's, as NTP's clock filter takes
    it: the one that can be least wrong."""
    origin = max(s.local_ns for s in samples)
    base = samples[0].offset_ns
    xs = [float(s.local_ns - origin) for s in samples]
    ys = [float(s.offset_ns - base) for s in samples]
    span = max(xs) - min(xs)
    slope = 0.0
    if len(samples) >= 3 and span >= MIN_DRIFT_SPAN_NS:
        mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
        sxx = sum((x - mean_x) ** 2 for x in xs)
        sxy = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
        fitted = sxy / sxx
        offset = mean_y - fitted * mean_x
        squares = sum((y - offset - fitted * x) ** 2 for x, y in zip(xs, ys, strict=True))
        error = math.sqrt(squares / (len(samples) - 2) / sxx) if len(samples) > 2 else math.inf
        if DRIFT_SIGNIFICANCE * error <= abs(fitted) <= MAX_DRIFT:
            slope = fitted
    if slope == 0.0:
        offset = ys[min(range(len(samples)), key=lambda i: samples[i].rtt_ns)]
    residual = max(abs(y - (offset + slope * x)) for x, y in zip(xs, ys, strict=True))
    return _Fit(origin, base + offset, slope, residual, len(samples))
