"""When is a sample due: RTP timestamps on the sender's clock, and on ours.

A sender report (RFC 3550 section 6.4.1) pairs an instant on the sender's clock with the RTP
timestamp of the sample due then: an :class:`RtpClockMapping`. Every other timestamp of the
stream follows from it and the stream's rate. RTP timestamps are 32 bits and wrap (every 24.9
hours at 48 kHz, sooner from a random start): :meth:`RtpClockMapping.extend` reads a timestamp
as the one nearest the mapping's (within +-2^31), so a wrap between the report and the packet
changes nothing. Everything is integer nanoseconds, rounded once, to the nearest.

A :class:`Timeline` adds the group's playout delay (the same for every listener: that is what
puts them in step) and, with a :class:`~appliance.sync.offset.ClockEstimator`, says when the
sample is due on the listener's own clock.

Example::

    mapping = RtpClockMapping.from_ntp(report.ntp_timestamp, report.rtp_timestamp, 48000)
    timeline = Timeline(mapping, delay_ns=60 * MS_NS)
    leave_dac_at = timeline.due_local_ns(packet.timestamp, estimator)
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.sync.clock import SECOND_NS
from appliance.sync.offset import ClockEstimator

RTP_MODULO = 1 << 32
HALF_RTP = 1 << 31
NTP_FRACTION = 1 << 32


def ns_to_ntp(ns: int) -> int:
    """Nanoseconds as NTP's 64-bit 32.32 fixed point (seconds, fraction), the fraction
    rounded down. :func:`ntp_to_ns` gives ``ns`` back exactly (a fraction unit is 0.23 ns)."""
    if ns < 0:
        raise ValueError(f"{ns} ns is before the clock's zero: NTP time is unsigned")
    seconds, rest = divmod(ns, SECOND_NS)
    if seconds >= NTP_FRACTION:
        raise ValueError(f"{ns} ns does not fit NTP's 32 bits of seconds")
    return (seconds << 32) | (rest << 32) // SECOND_NS


def ntp_to_ns(ntp: int) -> int:
    """NTP 32.32 to nanoseconds, rounded to the nearest."""
    seconds, fraction = ntp >> 32, ntp & (NTP_FRACTION - 1)
    return seconds * SECOND_NS + (fraction * SECOND_NS + NTP_FRACTION // 2) // NTP_FRACTION


def _divide_rounded(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded to the nearest integer (halves up), exactly."""
    return (2 * numerator + denominator) // (2 * denominator)


@dataclass(frozen=True, slots=True)
class RtpClockMapping:
    """RTP timestamp ``rtp_timestamp`` is due at ``sender_ns`` on the sender's clock; the
    stream's clock runs at ``rate`` timestamps a second."""

    sender_ns: int
    rtp_timestamp: int
    rate: int

    def __post_init__(self) -> None:
        if not 0 <= self.rtp_timestamp < RTP_MODULO:
            raise ValueError(f"RTP timestamp {self.rtp_timestamp} is not a 32-bit value")
        if self.rate <= 0:
            raise ValueError(f"RTP clock rate {self.rate} is not positive")

    @classmethod
    def from_ntp(cls, ntp_timestamp: int, rtp_timestamp: int, rate: int) -> RtpClockMapping:
        """A sender report's pair (its NTP field holding the sender clock's ns)."""
        return cls(ntp_to_ns(ntp_timestamp), rtp_timestamp, rate)

    def extend(self, rtp_timestamp: int) -> int:
        """``rtp_timestamp`` unwrapped: the value nearest the mapping's, so it may be below 0
        or above 2^32 when the 32 bits wrapped in between."""
        delta = (rtp_timestamp - self.rtp_timestamp) % RTP_MODULO
        if delta >= HALF_RTP:
            delta -= RTP_MODULO
        return self.rtp_timestamp + delta

    def due_remote_ns(self, rtp_timestamp: int) -> int:
        """When the sample is due on the sender's clock (its pacing schedule)."""
        frames = self.extend(rtp_timestamp) - self.rtp_timestamp
        return self.sender_ns + _divide_rounded(frames * SECOND_NS, self.rate)

    def rtp_at(self, sender_ns: int) -> int:
        """The 32-bit RTP timestamp due at ``sender_ns`` (the sample then, rounded)."""
        frames = _divide_rounded((sender_ns - self.sender_ns) * self.rate, SECOND_NS)
        return (self.rtp_timestamp + frames) % RTP_MODULO


@dataclass(frozen=True, slots=True)
class Timeline:
    """A stream's schedule: the mapping, and the group's playout delay after it."""

    mapping: RtpClockMapping
    delay_ns: int = 0
    """Every listener plays a sample this long after the sender's schedule sent it."""

    def due_remote_ns(self, rtp_timestamp: int) -> int:
        """When the sample must be heard, on the sender's clock."""
        return self.mapping.due_remote_ns(rtp_timestamp) + self.delay_ns

    def due_local_ns(self, rtp_timestamp: int, estimator: ClockEstimator) -> int:
        """When the sample must be heard, on our clock (``estimator``: ours against the
        sender's)."""
        return estimator.to_local(self.due_remote_ns(rtp_timestamp))
