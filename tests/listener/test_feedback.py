"""The listener reports back to the stream's source (appliance.listener.feedback): real UDP on
127.0.0.1 to an in-process listener writing a WAV file."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from listener_fixtures import ListenerFactory

from appliance.listener.listener import Listener
from appliance.wire import rtcp
from appliance.wire.reply import ListenerReply, ReplyState, is_reply, reply_in_compound
from appliance.wire.rtcp import ReceiverReport, UnknownRtcp, parse_compound
from appliance.wire.rtp import RtpPacket

SSRC = 0x5EED1234
FIRST_SEQUENCE = 65_530
"""Close to the wrap: the extended highest sequence number must count the cycle."""
PACKETS = 50
SKIPPED = {FIRST_SEQUENCE + 10, FIRST_SEQUENCE + 20, FIRST_SEQUENCE + 21}
"""Lost on purpose (as extended numbers: 4, 14 and 15 after the wrap)."""
L16_8K_MONO = 112
PAYLOAD = bytes(range(256)) + bytes(64)  # 320 bytes: 20 ms of L16 8000 Hz mono


@pytest.fixture
def source() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        yield sock


def started(make_listener: ListenerFactory, tmp_path: Path) -> Listener:
    listener = make_listener(output_file=tmp_path / "played.wav")
    listener.start()
    return listener


def rtp(index: int) -> bytes:
    return bytes(
        RtpPacket(L16_8K_MONO, index % 65536, index * 160 % (1 << 32), SSRC, PAYLOAD, index == 0)
    )


def replies_until_stopped(sock: socket.socket) -> list[bytes]:
    received = []
    while True:
        data = sock.recv(65536)
        received.append(data)
        reply = ListenerReply.parse(data) if is_reply(data) else reply_in_compound(data)
        if reply is not None and reply.state is ReplyState.STOPPED:
            return received


def test_rtp_gets_receiver_reports_with_the_loss_counted(
    make_listener: ListenerFactory, tmp_path: Path, source: socket.socket
) -> None:
    listener = started(make_listener, tmp_path)
    target = ("127.0.0.1", listener.port)
    for index in range(FIRST_SEQUENCE, FIRST_SEQUENCE + PACKETS):
        if index not in SKIPPED:
            source.sendto(rtp(index), target)
            time.sleep(0.002)
    source.sendto(rtcp.bye(SSRC), target)
    replies = replies_until_stopped(source)
    assert len(replies) == 2  # at the start, and at the end (well within a second)
    first, last = (parse_compound(r) for r in replies)
    for packets in (first, last):
        report, sdes, app = packets
        assert isinstance(report, ReceiverReport)
        assert isinstance(sdes, UnknownRtcp) and sdes.packet_type == rtcp.SDES
        assert isinstance(app, UnknownRtcp) and app.packet_type == rtcp.APP
        assert listener.feedback is not None and report.ssrc == listener.feedback.ssrc
        (block,) = report.reports
        assert (block.ssrc, block.lsr, block.dlsr) == (SSRC, 0, 0)
    start_block, end_block = first[0].reports[0], last[0].reports[0]  # type: ignore[union-attr]
    # Reported as the session starts: the two packets that decided it was RTP.
    assert (start_block.fraction_lost, start_block.packets_lost) == (0, 0)
    assert start_block.highest_sequence == FIRST_SEQUENCE + 1
    # At the end: 3 of the 48 expected since then were lost; the sequence wrapped once.
    assert end_block.packets_lost == 3
    assert end_block.fraction_lost == 3 * 256 // 48
    assert end_block.highest_sequence == FIRST_SEQUENCE + PACKETS - 1 == (1 << 16) + 43
    assert end_block.jitter >= 0
    reply = reply_in_compound(replies[1])
    assert reply is not None
    assert (reply.state, reply.lost, reply.played_ms, reply.session) == (
        ReplyState.STOPPED, 3, (PACKETS - 3) * 20, 1
    )
    counters = listener.feedback.counters  # type: ignore[union-attr]
    deadline = time.monotonic() + 5  # counted just after the send that we have received
    while counters.sent < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (counters.sent, counters.busy, counters.failed) == (2, 0, 0)


def test_raw_streams_get_the_raw_reply(
    make_listener: ListenerFactory, tmp_path: Path, source: socket.socket
) -> None:
    listener = started(make_listener, tmp_path)
    for _ in range(10):
        source.sendto(bytes(320), ("127.0.0.1", listener.port))
    source.sendto(b"", ("127.0.0.1", listener.port))
    first, last = (ListenerReply.parse(r) for r in replies_until_stopped(source))
    assert first.state is ReplyState.PLAYING
    assert (last.state, last.played_ms, last.lost, last.session) == (ReplyState.STOPPED, 200, 0, 1)


def test_a_second_source_hears_busy_once_a_second(
    make_listener: ListenerFactory, tmp_path: Path, source: socket.socket
) -> None:
    # The owner stays silent from here: no takeover by the others during the test.
    listener = make_listener(output_file=tmp_path / "played.wav", takeover_s=5.0)
    listener.start()
    target = ("127.0.0.1", listener.port)
    for _ in range(3):  # three equal datagrams: a raw session belongs to `source` now
        source.sendto(bytes(320), target)
    assert ListenerReply.parse(source.recv(65536)).state is ReplyState.PLAYING
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
        other.settimeout(5)
        for _ in range(5):
            other.sendto(bytes(320), target)
        busy = ListenerReply.parse(other.recv(65536))
        assert busy == ListenerReply(ReplyState.BUSY)
        other.settimeout(0.3)
        with pytest.raises(TimeoutError):
            other.recv(65536)  # the four others within the second: no reply
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as third:
        third.settimeout(5)
        third.sendto(rtp(0), target)  # RTP: busy as an RTCP compound, with no report block
        compound = third.recv(65536)
    report = parse_compound(compound)[0]
    assert report == ReceiverReport(listener.feedback.ssrc)  # type: ignore[union-attr]
    assert reply_in_compound(compound) == ListenerReply(ReplyState.BUSY)
    counters = listener.feedback.counters  # type: ignore[union-attr]
    assert (counters.busy, counters.suppressed) == (2, 4)
