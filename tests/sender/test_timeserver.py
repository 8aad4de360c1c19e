"""The sender's time server agreeing a group delay (issue 12): from what each listener says it
can meet, on a manual clock."""

from __future__ import annotations

from appliance.sender.timeserver import (
    AGREE_MARGIN_US,
    AGREE_REACTION_US,
    AGREE_TIMEOUT_NS,
    DEFAULT_GROUP_DELAY_MS,
    JOIN_WAIT_NS,
    TimeServer,
)
from appliance.sync.clock import MS_NS, SECOND_NS, ManualClock
from appliance.wire.rtcp import parse_compound
from appliance.wire.timesync import GroupDelay, TimeRequest, time_messages

SSRC = 0xCAFE


def request(need_us: int) -> TimeRequest:
    return TimeRequest(0x1111, 1, 0, need_us)


def announced(server: TimeServer) -> int | None:
    """The group delay in the sender report it would send now (None: none)."""
    server.sent(server.clock.now_ns(), 160)
    report = server.report(1, 320)
    assert report is not None
    delays = [m for m in time_messages(parse_compound(report)) if isinstance(m, GroupDelay)]
    return delays[0].delay_us if delays else None


def test_one_target_without_a_delay_announces_none() -> None:
    server = TimeServer(ManualClock(SECOND_NS), SSRC, agree_among=1)
    assert not server.agreeing
    assert server.note(0, request(105_000)) is None
    assert not server.agree(2 * SECOND_NS)
    assert announced(server) is None


def test_a_given_delay_is_announced_as_given() -> None:
    server = TimeServer(ManualClock(SECOND_NS), SSRC, group_delay_us=312_500, agree_among=3)
    assert not server.agreeing
    assert announced(server) == 312_500


def test_the_group_waits_for_every_target_then_takes_the_largest_need() -> None:
    clock = ManualClock(SECOND_NS)
    server = TimeServer(clock, SSRC, agree_among=2)
    assert announced(server) == 0  # forming: the listeners wait
    server.note(0, request(0))  # its output has not said its latency yet
    server.note(0, request(105_300))
    assert not server.agree(clock.now_ns()) and announced(server) == 0
    server.note(1, request(213_100))
    assert server.agree(clock.now_ns())
    expected = 213_100 + AGREE_MARGIN_US
    assert announced(server) == -(-expected // 1000) * 1000 == 219_000
    assert server.agreed_needs_us == {0: 105_300, 1: 213_100}
    assert not server.agree(clock.now_ns())  # agreed once


def test_a_late_larger_need_does_not_move_the_group_and_is_said_once() -> None:
    clock = ManualClock(SECOND_NS)
    server = TimeServer(clock, SSRC, agree_among=2)
    server.note(0, request(100_000))
    server.note(1, request(100_000))
    assert server.agree(clock.now_ns())
    assert server.note(1, request(150_000)) == 150_000
    assert server.note(1, request(160_000)) is None
    assert announced(server) == 105_000


def test_targets_that_never_say_are_waited_for_a_second() -> None:
    clock = ManualClock(SECOND_NS)
    server = TimeServer(clock, SSRC, agree_among=3)
    server.sent(clock.now_ns(), 0)  # the first packet
    server.note(0, request(120_000))
    clock.advance(AGREE_TIMEOUT_NS - MS_NS)
    assert not server.agree(clock.now_ns())
    clock.advance(MS_NS)
    assert server.agree(clock.now_ns())
    # The listeners held the stream's start for a second: it must still be due after that.
    assert announced(server) == (AGREE_TIMEOUT_NS // 1000 + AGREE_REACTION_US) == 1_200_000


def test_no_target_said_anything_the_default_delay() -> None:
    clock = ManualClock(SECOND_NS)
    server = TimeServer(clock, SSRC, agree_among=2)
    server.sent(clock.now_ns(), 0)
    clock.advance(AGREE_TIMEOUT_NS)
    assert server.agree(clock.now_ns())
    assert DEFAULT_GROUP_DELAY_MS * 1000 < AGREE_TIMEOUT_NS // 1000 + AGREE_REACTION_US
    assert announced(server) == AGREE_TIMEOUT_NS // 1000 + AGREE_REACTION_US


def test_a_target_that_never_joined_is_not_waited_for_past_the_join_wait() -> None:
    """ffmpeg among the targets: it never replies, never joins the timeline, never says."""
    clock = ManualClock(SECOND_NS)
    server = TimeServer(clock, SSRC, agree_among=3)
    server.sent(clock.now_ns(), 0)
    for target, need in ((0, 120_000), (1, 140_000)):
        server.join(target)
        server.note(target, request(need))
    clock.advance(JOIN_WAIT_NS - MS_NS)
    assert not server.agree(clock.now_ns())  # another appliance listener may yet reply
    clock.advance(MS_NS)
    assert server.agree(clock.now_ns())
    # 140 + 5 ms: due before the listeners, holding the start 150 ms, could play it.
    assert announced(server) == JOIN_WAIT_NS // 1000 + AGREE_REACTION_US == 350_000


def test_a_joined_target_that_has_not_said_is_waited_for() -> None:
    clock = ManualClock(SECOND_NS)
    server = TimeServer(clock, SSRC, agree_among=2)
    server.sent(clock.now_ns(), 0)
    server.join(0)
    server.join(1)
    server.note(0, request(120_000))
    clock.advance(2 * JOIN_WAIT_NS)
    assert not server.agree(clock.now_ns())  # its output has not said its latency yet
    assert 2 * JOIN_WAIT_NS // 1000 + AGREE_REACTION_US < 535_000
    server.note(1, request(530_000))
    assert server.agree(clock.now_ns())
    assert announced(server) == 535_000  # more than the 300 ms it took plus the reaction
