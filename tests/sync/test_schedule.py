"""Due times: NTP 32.32 <-> ns exactly, RTP timestamps unwrapped around 2^32, and the mapping
arithmetic in integers (no float anywhere)."""

from __future__ import annotations

import random

import pytest

from appliance.sync.clock import MS_NS, SECOND_NS, ManualClock, SkewedClock
from appliance.sync.offset import ClockEstimator
from appliance.sync.schedule import RtpClockMapping, Timeline, ns_to_ntp, ntp_to_ns


def test_ntp_format_round_trips_every_nanosecond_exactly() -> None:
    rng = random.Random(12)
    values = [0, 1, SECOND_NS - 1, SECOND_NS, 37 * SECOND_NS + 123_456, (1 << 32) * SECOND_NS - 1]
    values += [rng.randrange((1 << 32) * SECOND_NS) for _ in range(20_000)]
    for ns in values:
        assert ntp_to_ns(ns_to_ntp(ns)) == ns
    assert ns_to_ntp(SECOND_NS + 500_000_000) == (1 << 32) | (1 << 31)  # 1.5 s
    with pytest.raises(ValueError, match="before the clock's zero"):
        ns_to_ntp(-1)
    with pytest.raises(ValueError, match="does not fit NTP's 32 bits of seconds"):
        ns_to_ntp((1 << 32) * SECOND_NS)


def test_timestamps_are_read_nearest_the_mapping_across_the_wrap() -> None:
    mapping = RtpClockMapping(sender_ns=1_000 * SECOND_NS, rtp_timestamp=2**32 - 480, rate=48000)
    assert mapping.extend(2**32 - 480) == 2**32 - 480
    assert mapping.extend(480) == 2**32 + 480  # wrapped after the report: 960 later
    assert mapping.due_remote_ns(480) == 1_000 * SECOND_NS + 20 * MS_NS
    before = RtpClockMapping(sender_ns=1_000 * SECOND_NS, rtp_timestamp=480, rate=48000)
    assert before.extend(2**32 - 480) == -480  # before a report that followed the wrap
    assert before.due_remote_ns(2**32 - 480) == 1_000 * SECOND_NS - 20 * MS_NS
    assert before.rtp_at(1_000 * SECOND_NS - 20 * MS_NS) == 2**32 - 480


def test_the_mapping_is_exact_in_integers_at_awkward_rates() -> None:
    # 44100 Hz: one frame is 22675.7369... ns; 441 frames are exactly 10 ms.
    mapping = RtpClockMapping(sender_ns=5 * SECOND_NS, rtp_timestamp=123, rate=44100)
    assert mapping.due_remote_ns(123 + 441) == 5 * SECOND_NS + 10 * MS_NS
    assert mapping.due_remote_ns(124) == 5 * SECOND_NS + 22676  # 22675.74 rounded
    assert mapping.due_remote_ns(123 + 44100 * 3600) == 3605 * SECOND_NS  # an hour: no drift
    # 11025 Hz, a day of frames from a random start wraps the 32 bits: still exact.
    start = 2**32 - 5
    mapping = RtpClockMapping(sender_ns=0, rtp_timestamp=start, rate=11025)
    a_day = 11025 * 86400
    assert mapping.due_remote_ns((start + a_day) % 2**32) == 86400 * SECOND_NS
    for frames in range(0, 20000, 7):
        ts = (start + frames) % 2**32
        assert mapping.rtp_at(mapping.due_remote_ns(ts)) == ts


def test_a_sender_report_maps_through_ntp_to_the_same_instant() -> None:
    sender_ns = 12_345 * SECOND_NS + 678_901_234
    mapping = RtpClockMapping.from_ntp(ns_to_ntp(sender_ns), 4_000_000_000, 8000)
    assert mapping.sender_ns == sender_ns
    assert mapping.due_remote_ns(4_000_000_160) == sender_ns + 20 * MS_NS
    with pytest.raises(ValueError, match="RTP timestamp 4294967296 is not a 32-bit value"):
        RtpClockMapping(0, 2**32, 8000)
    with pytest.raises(ValueError, match="RTP clock rate 0 is not positive"):
        RtpClockMapping(0, 0, 0)


def test_the_timeline_adds_the_group_delay_and_converts_to_the_local_clock() -> None:
    local = ManualClock(0)
    sender = SkewedClock(local, offset_ns=37 * SECOND_NS, ppm=0)
    estimator = ClockEstimator()
    for k in range(4):  # symmetric 1 ms each way: an exact offset
        t1 = k * SECOND_NS
        t2 = sender.at(t1 + MS_NS)
        estimator.add(t1, t2, t2, t1 + 2 * MS_NS)
    assert estimator.ready and estimator.offset_ns == 37 * SECOND_NS
    mapping = RtpClockMapping(sender_ns=40 * SECOND_NS, rtp_timestamp=1000, rate=8000)
    timeline = Timeline(mapping, delay_ns=80 * MS_NS)
    assert timeline.due_remote_ns(1160) == 40 * SECOND_NS + 100 * MS_NS
    assert timeline.due_local_ns(1160, estimator) == 3 * SECOND_NS + 100 * MS_NS
