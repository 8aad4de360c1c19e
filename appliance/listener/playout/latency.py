"""The latency target: how much audio the playout buffer holds, following the network.

A packet's *slack* is how long before its first sample is due to be played it arrives: the
distance from the play cursor to its position, when it is pushed into the buffer. A packet with
negative slack came too late (its place was already played, concealed). Jitter shows as spread in
the slack; the target is set so that nearly all packets come in time:

* every :data:`UPDATE_S`, the :data:`ON_TIME` quantile (the 1st percentile) of the slack over
  the last :data:`WINDOW_S` is compared with :data:`MARGIN_MS` (0: on time);
* below it, the target rises at once by the shortfall, at most :data:`MAX_RAISE_MS` at a time;
  a buffer that ran dry mid-stream raises it by :data:`UNDERRUN_STEP_MS` too. One late packet in
  a hundred is left to the concealment: a short gap interpolated from both sides is nearly
  inaudible, while every move of the target shifts the timeline (a pause stretched), which
  PESQ scores worse than a concealed packet;
* above it by more than :data:`LOWER_HYSTERESIS_MS` for a whole window, and nothing having moved
  the target for :data:`CALM_S` (from the stream's first packet on), the target comes down by a
  quarter of the spare (at least :data:`LOWER_STEP_MS`): slowly, as WebRTC's NetEq does, since a
  brief calm is no promise;
* always within ``[floor_ms, ceiling_ms]``.

This is the percentile-of-delays rule of WebRTC's NetEq (its delay manager keeps the 97th
percentile of packet delays relative to the fastest packet) expressed against the play cursor,
which folds in what NetEq adds separately: the packet size and the output's period. A fixed
target (``adaptive=False``) never moves.

Not thread-safe: the playout buffer calls it under its lock.
"""

from __future__ import annotations

from collections import deque

import numpy as np

WINDOW_S = 10.0
"""Slack observations kept (and the least time between two steps down)."""
MAX_OBSERVATIONS = 2000
"""Bound on the observations kept, whatever the packet rate (10 s of 5 ms packets)."""
UPDATE_S = 1.0
ON_TIME = 0.01
"""The slack quantile that must keep the margin: 99 % of packets on time."""
MARGIN_MS = 0.0
"""Room asked beyond "on time". None: a packet that misses its time (a busy Pi wakes the
receiving thread late now and then) is concealed, which with a short gap's interpolation is
nearly inaudible; moving the target shifts the timeline (a pause stretched or shortened), which
PESQ scores worse than a concealed packet. The target rises when more than 1 % are late."""
MIN_OBSERVATIONS = 20
UNDERRUN_STEP_MS = 10.0
MAX_RAISE_MS = 40.0
LOWER_HYSTERESIS_MS = 10.0
LOWER_STEP_MS = 5.0
CALM_S = 2 * WINDOW_S
"""The target comes down only after this long with no move (and from a stream's first packet):
a stream's first seconds are no promise of calm, and every move shifts the timeline."""


class LatencyTarget:
    """The playout buffer's target depth in milliseconds, adapted to the slack of arrivals."""

    def __init__(
        self, start_ms: float, floor_ms: float, ceiling_ms: float, *, adaptive: bool = True
    ) -> None:
        if not 0 < floor_ms <= ceiling_ms:
            raise ValueError("need 0 < floor_ms <= ceiling_ms")
        self.floor_ms = floor_ms
        self.ceiling_ms = ceiling_ms
        self.adaptive = adaptive
        self.start_ms = self._clamp(start_ms)
        self.target_ms = self.start_ms
        self._slack: deque[tuple[float, float]] = deque(maxlen=MAX_OBSERVATIONS)
        self._next_update = 0.0
        self._last_change: float | None = None
        self.raises = 0
        self.lowerings = 0

    def _clamp(self, value_ms: float) -> float:
        return min(self.ceiling_ms, max(self.floor_ms, value_ms))

    def restart(self) -> None:
        """A new stream: start again from the starting target, with no observations."""
        self.target_ms = self.start_ms
        self._slack.clear()
        self._next_update = 0.0
        self._last_change = None

    def observe(self, slack_ms: float, now: float) -> None:
        """A packet arrived ``slack_ms`` before its first sample is due (negative: too late)."""
        if self.adaptive:
            self._slack.append((now, slack_ms))
            if self._last_change is None:
                self._last_change = now

    def underrun(self, now: float) -> None:
        """The buffer ran dry mid-stream: more latency is needed."""
        if self.adaptive:
            self._set(self.target_ms + UNDERRUN_STEP_MS, now)

    def update(self, now: float, pending_ms: float = 0.0) -> bool:
        """Re-evaluate (cheap unless :data:`UPDATE_S` has passed); True if the target moved.

        ``pending_ms``: how far the buffer's depth still is below the target (negative: above),
        on its way there; the slack seen so far grows by that much once it gets there, so it is
        counted, or each update would raise the target again for the same shortfall.
        """
        if not self.adaptive or now < self._next_update:
            return False
        self._next_update = now + UPDATE_S
        slack = self._slack
        while slack and slack[0][0] < now - WINDOW_S:
            slack.popleft()
        if len(slack) < MIN_OBSERVATIONS:
            return False
        values = np.fromiter((s for _, s in slack), dtype=np.float64, count=len(slack))
        low = float(np.quantile(values, ON_TIME)) + pending_ms
        if low < MARGIN_MS:
            # At most MAX_RAISE_MS at once: one stall of the network (every packet of 300 ms
            # late) is not a new normal; if the shortfall stays, the next update raises again.
            return self._set(self.target_ms + min(MARGIN_MS - low, MAX_RAISE_MS), now)
        spare = low - MARGIN_MS
        window_full = now - slack[0][0] >= WINDOW_S * 0.9
        if (
            spare > LOWER_HYSTERESIS_MS
            and window_full
            and self._last_change is not None
            and now - self._last_change >= CALM_S
        ):
            # A quarter of the spare, at least LOWER_STEP_MS: far above what is needed (after a
            # stall) comes down in a few windows, near it in small steps.
            step = min(max(LOWER_STEP_MS, spare / 4), spare - LOWER_HYSTERESIS_MS)
            return self._set(self.target_ms - step, now)
        return False

    def _set(self, value_ms: float, now: float) -> bool:
        new = self._clamp(value_ms)
        if abs(new - self.target_ms) < 0.5:
            return False
        if new > self.target_ms:
            self.raises += 1
        else:
            self.lowerings += 1
        self.target_ms = new
        self._last_change = now
        # What was seen before the move says nothing about the slack after it.
        self._slack.clear()
        return True
