"""What the network did to a stream: lost, duplicated and reordered packets, and jitter.

:class:`SequenceTracker` keeps RFC 3550's accounting of one RTP stream's sequence numbers
(appendix A.1 and A.3): the highest extended sequence number, packets received, and from them
the packets lost (expected minus received, never counting a duplicate twice). Duplicates are
recognised over a bounded window of recent sequence numbers and dropped before they reach the
buffer. :class:`InterarrivalJitter` is RFC 3550's interarrival jitter (section 6.4.1), kept in
sample frames and reported in milliseconds; raw streams have it too, from their positions.
"""

from __future__ import annotations

from collections import deque

from appliance.wire.rtp import SequenceUnwrapper

DUPLICATE_WINDOW = 1024
"""Recent sequence numbers remembered to recognise a duplicate (20 s of 20 ms packets)."""


class SequenceTracker:
    """One RTP stream's sequence numbers: received, lost, duplicated, reordered."""

    def __init__(self) -> None:
        self._unwrap = SequenceUnwrapper()
        self._first: int | None = None
        self._highest = -1
        self._recent: set[int] = set()
        self._order: deque[int] = deque()
        self.received = 0
        """Distinct packets received."""
        self.duplicates = 0
        self.reordered = 0
        """Packets that arrived after one with a higher sequence number."""

    def observe(self, sequence: int) -> bool:
        """Count a packet; False when it is a duplicate (it must not be played twice)."""
        index = self._unwrap.unwrap(sequence)
        if index in self._recent:
            self.duplicates += 1
            return False
        self._recent.add(index)
        self._order.append(index)
        if len(self._order) > DUPLICATE_WINDOW:
            self._recent.discard(self._order.popleft())
        if self._first is None:
            self._first = index
        elif index < self._highest:
            self.reordered += 1
        self._first = min(self._first, index)
        self._highest = max(self._highest, index)
        self.received += 1
        return True

    @property
    def expected(self) -> int:
        return 0 if self._first is None else self._highest - self._first + 1

    @property
    def highest(self) -> int:
        """The extended highest sequence number received (RFC 3550: cycles in the high bits);
        -1 before the first packet."""
        return self._highest

    @property
    def lost(self) -> int:
        """Packets never received (so far: one still on its way counts until it comes)."""
        return max(0, self.expected - self.received)


class InterarrivalJitter:
    """RFC 3550's interarrival jitter: the smoothed |difference of transit times| of packets."""

    def __init__(self, rate: int) -> None:
        self._rate = rate
        self._transit: float | None = None
        self._jitter = 0.0
        """In sample frames, as RFC 3550 keeps it in timestamp units."""

    def observe(self, arrival_s: float, position: int) -> None:
        transit = arrival_s * self._rate - position
        if self._transit is not None:
            self._jitter += (abs(transit - self._transit) - self._jitter) / 16
        self._transit = transit

    @property
    def jitter_units(self) -> int:
        """The jitter in sample frames: RTP timestamp units for the payloads played here."""
        return int(self._jitter)

    @property
    def jitter_ms(self) -> float:
        return self._jitter * 1000 / self._rate
