"""A session's schedule (listener/schedule.py): its state follows what the sender said and
what the time client measured; a position's due time is the sender's schedule, plus the group
delay, on our clock, in ``time.monotonic()`` seconds."""

from __future__ import annotations

import time

import pytest

from appliance.listener.playout.schedule import ScheduleState
from appliance.listener.schedule import SessionSchedule
from appliance.listener.timesync import TimeClient
from appliance.sync.clock import MS_NS, SECOND_NS, ManualClock
from appliance.sync.schedule import ns_to_ntp
from appliance.wire.rtcp import RtcpPacket, SenderReport, parse_compound
from appliance.wire.timesync import GroupDelay, TimeRequest, TimeResponse, time_messages

SOURCE = ("127.0.0.1", 5004)
SSRC = 0xABCD
RATE = 8000
OFFSET_NS = 5 * SECOND_NS
"""The sender's clock reads this much more than ours (no drift here)."""
FIRST_TIMESTAMP = 2**32 - 800
"""The stream's first RTP timestamp (placed at buffer position 0): it wraps 0.1 s in."""


class Session:
    def __init__(self) -> None:
        self.clock = ManualClock(100 * SECOND_NS)
        self.sent: list[bytes] = []
        self.client = TimeClient(self._send, SOURCE, 0x1111, rate=RATE, clock=self.clock)
        self.schedule = SessionSchedule(self.client, self.timestamp_of)

    @staticmethod
    def timestamp_of(position: int) -> int:
        return (FIRST_TIMESTAMP + position) % 2**32

    def _send(self, datagram: bytes, address: tuple[str, int]) -> bool:
        self.sent.append(datagram)
        return True

    def report(self, rtp_timestamp: int, delay_us: int | None) -> None:
        """A sender report: ``rtp_timestamp`` is due now on the sender's clock."""
        sender_now = self.clock.now_ns() + OFFSET_NS
        report = SenderReport(SSRC, ns_to_ntp(sender_now), rtp_timestamp, 1, 320)
        packets: list[RtcpPacket] = [report]
        if delay_us is not None:
            packets.append(GroupDelay(SSRC, delay_us).app())
        self.client.receive(packets)

    def answer_requests(self, count: int) -> None:
        """Answer ``count`` requests over a symmetric 0.1 ms path."""
        for _ in range(count):
            self.clock.advance(20 * MS_NS)
            self.client.poll()
            [request] = time_messages(parse_compound(self.sent[-1]))
            assert isinstance(request, TimeRequest)
            t2 = request.t1_ns + OFFSET_NS + 100_000
            response = TimeResponse(SSRC, request.sequence, request.t1_ns, t2, t2 + 10_000)
            self.client.receive([response.app()], request.t1_ns + 210_000)


def test_no_group_announced_means_no_schedule() -> None:
    session = Session()
    assert session.schedule.state is ScheduleState.OFF
    session.report(FIRST_TIMESTAMP, None)  # one target: reports, no group delay
    session.answer_requests(6)
    assert session.schedule.state is ScheduleState.OFF


def test_a_group_is_pending_until_the_delay_is_agreed_and_the_clock_measured() -> None:
    session = Session()
    states = [session.schedule.state]
    session.report(FIRST_TIMESTAMP, 0)  # the group is forming
    states.append(session.schedule.state)
    session.answer_requests(6)
    assert session.client.settled
    states.append(session.schedule.state)
    session.report(FIRST_TIMESTAMP, 250_000)
    states.append(session.schedule.state)
    assert states == [ScheduleState.OFF, *[ScheduleState.PENDING] * 2, ScheduleState.READY]


def test_a_position_is_due_at_the_senders_time_plus_the_delay_on_our_clock() -> None:
    session = Session()
    reported_at = session.clock.now_ns()
    session.report(FIRST_TIMESTAMP, 250_000)  # position 0 due at the sender's now
    session.answer_requests(6)
    assert session.schedule.state is ScheduleState.READY
    for position in (0, 800, 8000):  # across the timestamp's wrap
        due_ns = reported_at + position * SECOND_NS // RATE + 250 * MS_NS
        # On time.monotonic(): this manual clock is as far from it as it is from now.
        in_ns = due_ns - session.clock.now_ns()
        expected = time.monotonic() + in_ns / SECOND_NS
        assert session.schedule.due_s(position) == pytest.approx(expected, abs=1e-3)
