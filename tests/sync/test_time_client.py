"""The listener's time client on a manual clock: when it asks, what it takes as an answer,
and when it stops asking. (The same client on real sockets: test_time_exchange.py.)"""

from __future__ import annotations

from appliance.listener.timesync import MAX_OUTSTANDING, MAX_UNANSWERED, TimeClient
from appliance.sync.clock import MS_NS, SECOND_NS, ManualClock, SkewedClock
from appliance.sync.schedule import ns_to_ntp
from appliance.wire.rtcp import ReceiverReport, SenderReport, parse_compound
from appliance.wire.timesync import GroupDelay, TimeRequest, TimeResponse, time_messages

SOURCE = ("127.0.0.1", 5004)
SENDER_SSRC = 0xABCD


class Peer:
    """Records what the client sends; answers it (or not) on a skewed clock."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.sender_clock = SkewedClock(clock, 5 * SECOND_NS, 100)
        self.requests: list[tuple[int, TimeRequest]] = []

    def send(self, datagram: bytes, address: tuple[str, int]) -> bool:
        assert address == SOURCE
        packets = parse_compound(datagram)
        assert isinstance(packets[0], ReceiverReport)  # a compound starts with a report
        [request] = time_messages(packets)
        assert isinstance(request, TimeRequest)
        self.requests.append((self.clock.now_ns(), request))
        return True

    def answer(self, request: TimeRequest, one_way_ns: int) -> list[TimeResponse]:
        t2 = self.sender_clock.at(request.t1_ns + one_way_ns)
        return [TimeResponse(SENDER_SSRC, request.sequence, request.t1_ns, t2, t2 + 10_000)]


def sender_report(peer: Peer) -> SenderReport:
    return SenderReport(SENDER_SSRC, ns_to_ntp(peer.sender_clock.now_ns()), 160, 1, 320)


def test_it_asks_only_once_the_source_keeps_a_timeline_quickly_until_settled_then_4_hz_then_1_hz(
) -> None:
    clock = ManualClock(SECOND_NS)
    peer = Peer(clock)
    client = TimeClient(peer.send, SOURCE, 0x1111, rate=8000, clock=clock)
    for _ in range(100):  # a plain RTP sender: never asked
        clock.advance(10 * MS_NS)
        client.poll()
    assert peer.requests == []
    started = clock.now_ns()
    client.receive([sender_report(peer), GroupDelay(SENDER_SSRC, 60_000).app()])
    assert client.group_delay_ns == 60 * MS_NS and client.mapping is not None
    while clock.now_ns() < started + 5 * SECOND_NS:
        clock.advance(10 * MS_NS)
        client.poll()
        for _, request in peer.requests[client.answered :]:
            client.receive([], clock.now_ns())  # nothing of ours: ignored
            # 0.4 ms out, 0.4 ms back (the client is told when it received the answer).
            [answer] = peer.answer(request, 400_000)
            client.receive([answer.app()], request.t1_ns + 810_000)
    times = [(at - started) // MS_NS for at, _ in peer.requests]
    # Every 20 ms until 4 answers settle the estimate (a group waits for it), every 250 ms
    # until 2 s, then every second.
    settled = [0, 20, 40, 60, 80]
    assert times == [*settled, *range(330, 2000, 250), 2080, 3080, 4080]
    assert client.answered == client.sent == len(times)
    assert client.estimator.ready and client.stray == 0
    now = clock.now_ns()
    # Symmetric legs: exact but for the drift over one leg and the hold (100 ppm of 0.4 ms).
    assert abs(client.estimator.to_remote(now) - peer.sender_clock.at(now)) < 1_000


def test_answers_to_no_request_of_ours_are_counted_and_ignored() -> None:
    clock = ManualClock(0)
    peer = Peer(clock)
    client = TimeClient(peer.send, SOURCE, 0x1111, rate=8000, clock=clock)
    client.receive([sender_report(peer)])
    [(_, request)] = peer.requests
    forged = TimeResponse(SENDER_SSRC, request.sequence, request.t1_ns + 1, 5, 6)
    unknown = TimeResponse(SENDER_SSRC, request.sequence + 7, request.t1_ns, 5, 6)
    client.receive([forged.app(), unknown.app()])
    assert (client.stray, client.answered, client.estimator.exchanges) == (2, 0, 0)
    client.receive([peer.answer(request, 100_000)[0].app()])
    client.receive([peer.answer(request, 100_000)[0].app()])  # a duplicate: already answered
    assert (client.stray, client.answered) == (3, 1)


def test_a_source_that_never_answers_is_asked_five_times_and_old_requests_are_forgotten() -> (
    None
):
    clock = ManualClock(0)
    peer = Peer(clock)
    client = TimeClient(peer.send, SOURCE, 0x1111, rate=8000, clock=clock)
    client.receive([sender_report(peer)])
    for _ in range(1000):
        clock.advance(10 * MS_NS)
        client.poll()
    assert len(peer.requests) == MAX_UNANSWERED and client.gave_up
    # One that answers is asked on; unanswered requests are remembered up to a bound.
    answering = TimeClient(peer.send, SOURCE, 0x2222, rate=8000, clock=clock)
    peer.requests.clear()
    answering.receive([sender_report(peer)])
    answering.receive([peer.answer(peer.requests[0][1], 100_000)[0].app()])
    for _ in range(3000):
        clock.advance(10 * MS_NS)
        answering.poll()
    assert not answering.gave_up and answering.sent == len(peer.requests) > 20
    first_unanswered = peer.requests[1][1]
    answering.receive([peer.answer(first_unanswered, 100_000)[0].app()])
    assert answering.stray == 1  # forgotten: beyond the last MAX_OUTSTANDING
    recent = peer.requests[-MAX_OUTSTANDING][1]
    answering.receive([peer.answer(recent, 100_000)[0].app()])
    assert answering.answered == 2


def test_each_request_says_the_smallest_delay_the_listener_can_meet_in_us_rounded_up() -> None:
    clock = ManualClock(0)
    peer = Peer(clock)
    needs: list[int | None] = [None, 105_000_001, 0, 2**32 * 1000]
    client = TimeClient(
        peer.send, SOURCE, 0x1111, rate=8000, clock=clock, min_delay=lambda: needs.pop(0)
    )
    client.receive([sender_report(peer)])  # the first request: its output has not said yet
    while needs:
        clock.advance(20 * MS_NS)
        client.poll()
    # Unknown: 0; 105 ms and 1 ns: 105001 us (never less than it needs); beyond u32: capped.
    said = [request.min_delay_us for _, request in peer.requests]
    assert said == [0, 105_001, 0, 2**32 - 1]
    # Without a callable (part 1's listener, a test rig): always 0, "not known".
    plain = TimeClient(peer.send, SOURCE, 0x2222, rate=8000, clock=clock)
    plain.receive([sender_report(peer)])
    assert peer.requests[-1][1].min_delay_us == 0
