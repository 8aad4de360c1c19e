"""The time exchange's RTCP APP packets (TIMQ, TIMR, APGD): bytes, round trips, and clear
errors for malformed ones."""

from __future__ import annotations

import pytest

from appliance.wire.reply import ListenerReply, ReplyState, app_packet
from appliance.wire.rtcp import APP, ReceiverReport, UnknownRtcp, parse_compound
from appliance.wire.rtp import InvalidPacket
from appliance.wire.timesync import (
    GroupDelay,
    TimeRequest,
    TimeResponse,
    compound,
    time_messages,
)

# Written out by hand from RFC 3550 section 6.7 (V=2, P=0, subtype 0, PT=204, length in words
# minus one, SSRC, name, data): what the listener and the sender put on the wire.
TIMQ_BYTES = bytes.fromhex(
    "80cc0006"  # APP, 7 words (the length field counts them minus one)
    "0a0b0c0d"  # the listener's SSRC
    "54494d51"  # "TIMQ"
    "00000007"  # seq 7
    "000000e8d4a51000"  # t1: 1000 s in ns
    "0001a5e0"  # the smallest group delay it can meet: 108 ms in us
)
TIMR_BYTES = bytes.fromhex(
    "80cc0009"
    "cafef00d"  # the sender's SSRC
    "54494d52"  # "TIMR"
    "00000007"
    "000000e8d4a51000"  # t1 echoed
    "000009184e72a000"  # t2: 10000 s
    "000009184e72b388"  # t3: 5 us later
)
APGD_BYTES = bytes.fromhex("80cc0003" "cafef00d" "41504744" "00013880")  # 80 ms
EMPTY_RR = bytes.fromhex("80c90001" "0a0b0c0d")


def test_captured_bytes_parse_and_pack_back() -> None:
    request = TimeRequest(0x0A0B0C0D, 7, 1_000_000_000_000, 108_000)
    response = TimeResponse(0xCAFEF00D, 7, 1_000_000_000_000, 10**13, 10**13 + 5000)
    delay = GroupDelay(0xCAFEF00D, 80_000)
    for message, data in ((request, TIMQ_BYTES), (response, TIMR_BYTES), (delay, APGD_BYTES)):
        assert bytes(message) == data
        assert type(message).parse(data) == message
    assert delay.delay_ns == 80_000_000


def test_a_request_goes_after_an_empty_receiver_report() -> None:
    request = TimeRequest(0x0A0B0C0D, 7, 1_000_000_000_000, 108_000)
    datagram = compound(0x0A0B0C0D, request)
    assert datagram == EMPTY_RR + TIMQ_BYTES
    packets = parse_compound(datagram)
    assert packets[0] == ReceiverReport(0x0A0B0C0D)
    assert time_messages(packets) == [request]


def test_other_applications_app_packets_are_skipped() -> None:
    reply = app_packet(0x0A0B0C0D, ListenerReply(ReplyState.PLAYING, 80, 1000))
    other = UnknownRtcp(APP, 3, bytes.fromhex("0000000158595a5a"))  # "XYZZ", no data
    packets = parse_compound(EMPTY_RR + bytes(reply) + bytes(other) + APGD_BYTES)
    assert time_messages(packets) == [GroupDelay(0xCAFEF00D, 80_000)]
    assert TimeRequest.of_app(reply) is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (TIMQ_BYTES[:-4], "RTCP packet of 28 bytes at byte 0 is longer than the 24-byte"),
        (bytes.fromhex("80cc0003" "0a0b0c0d" "54494d51" "00000007"),
         "APP TIMQ: 4 bytes of data, expected 16"),
        # Part 1's request, without the delay it can meet: refused, not misread.
        (bytes.fromhex("80cc0005" "0a0b0c0d" "54494d51" "00000007" "000000e8d4a51000"),
         "APP TIMQ: 12 bytes of data, expected 16"),
        (bytes([0x81]) + TIMQ_BYTES[1:], "APP TIMQ: subtype 1, expected 0"),
        (EMPTY_RR + TIMQ_BYTES, "expected one APP TIMQ packet, got 2 RTCP"),
        (APGD_BYTES, "APP packet is not named TIMQ"),
        (b"\x80\xcc", "datagram of 2 bytes is shorter than an RTCP header"),
    ],
)
def test_malformed_requests_say_what_is_wrong(data: bytes, message: str) -> None:
    with pytest.raises(InvalidPacket, match=message):
        TimeRequest.parse(data)


def test_malformed_responses_and_delays_say_what_is_wrong() -> None:
    with pytest.raises(InvalidPacket, match="APP TIMR: 16 bytes of data, expected 28"):
        TimeResponse.parse(bytes.fromhex("80cc0006") + TIMR_BYTES[4:28])
    with pytest.raises(InvalidPacket, match="APP APGD: 8 bytes of data, expected 4"):
        GroupDelay.parse(bytes.fromhex("80cc0004") + APGD_BYTES[4:] + bytes(4))
    # In a compound, one of ours malformed makes the lookup fail the same way.
    bad = bytes.fromhex("80cc0003" "0a0b0c0d" "54494d52" "00000007")
    with pytest.raises(InvalidPacket, match="APP TIMR: 4 bytes of data, expected 28"):
        time_messages(parse_compound(EMPTY_RR + bad))


def test_values_out_of_range_are_refused_when_made() -> None:
    with pytest.raises(ValueError, match="sequence 4294967296 is not a 32-bit value"):
        TimeRequest(1, 2**32, 0)
    with pytest.raises(ValueError, match="t3 -1 is not a 64-bit value"):
        TimeResponse(1, 1, 0, 0, -1)
    with pytest.raises(ValueError, match="delay_us 4294967296 is not a 32-bit value"):
        GroupDelay(1, 2**32)
    with pytest.raises(ValueError, match="min_delay 4294967296 is not a 32-bit value"):
        TimeRequest(1, 1, 0, 2**32)


def test_round_trips_at_the_limits() -> None:
    for message in (
        TimeRequest(0, 0, 0),
        TimeRequest(2**32 - 1, 2**32 - 1, 2**64 - 1),
        TimeResponse(2**32 - 1, 2**32 - 1, 2**64 - 1, 2**64 - 1, 2**64 - 1),
        GroupDelay(0, 2**32 - 1),
    ):
        assert type(message).parse(bytes(message)) == message
        assert time_messages(parse_compound(compound(5, message))) == [message]
