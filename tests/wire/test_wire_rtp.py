"""RTP packets: captured ffmpeg/GStreamer datagrams, hand-made edge cases, counter arithmetic."""

from __future__ import annotations

import itertools
import re

import pytest
from rtp_captures import datagrams

from appliance.wire.rtcp import is_rtcp
from appliance.wire.rtp import (
    HEADER_SIZE,
    InvalidPacket,
    RtpExtension,
    RtpPacket,
    SequenceUnwrapper,
    TimestampUnwrapper,
    Unwrapper,
    looks_like_rtp,
    seq_delta,
    ts_delta,
)

# (file, payload type, bytes a sample frame, marker on the first packet, payload bytes)
CAPTURES = [
    ("ffmpeg_pcm_s16be.hex", 97, 2, False, 640),
    ("ffmpeg_pcm_mulaw.hex", 0, 1, False, 320),
    ("gst_rtpL16pay.hex", 96, 4, True, 1388),
    ("gst_rtppcmapay.hex", 8, 1, True, 1388),
    ("gst_rtppcmapay_ntp64.hex", 8, 1, True, 160),
]


@pytest.mark.parametrize(("name", "pt", "frame_bytes", "first_marker", "size"), CAPTURES)
def test_captured_packets_parse(
    name: str, pt: int, frame_bytes: int, first_marker: bool, size: int
) -> None:
    packets = [RtpPacket.parse(d) for d in datagrams(name)]
    assert len(packets) >= 2
    assert {p.payload_type for p in packets} == {pt}
    assert len({p.ssrc for p in packets}) == 1
    assert [p.marker for p in packets] == [first_marker] + [False] * (len(packets) - 1)
    assert all(len(p.payload) == size for p in packets)
    assert all(not p.csrcs and not p.padding for p in packets)
    for older, newer in itertools.pairwise(packets):
        assert seq_delta(older.sequence, newer.sequence) == 1
        # The timestamp counts sample frames: it moves on by the frames of the payload.
        assert ts_delta(older.timestamp, newer.timestamp) == len(older.payload) // frame_bytes


@pytest.mark.parametrize("name", [c[0] for c in CAPTURES])
def test_captured_packets_round_trip_exactly(name: str) -> None:
    for datagram in datagrams(name):
        packet = RtpPacket.parse(datagram)
        assert bytes(packet) == datagram
        assert RtpPacket.parse(bytes(packet)) == packet
        assert looks_like_rtp(datagram)
        assert not is_rtcp(datagram)


def test_ffmpeg_first_packet_fields() -> None:
    packet = RtpPacket.parse(datagrams("ffmpeg_pcm_s16be.hex")[0])
    assert (packet.payload_type, packet.sequence, packet.timestamp) == (97, 3744, 2789297542)
    assert packet.ssrc == 0xB874949F
    assert packet.extension is None
    assert packet.payload[:4] == bytes.fromhex("8000814b")  # -32768, -32437: the sawtooth


def test_gstreamer_ntp64_header_extension() -> None:
    first, second, *_ = (RtpPacket.parse(d) for d in datagrams("gst_rtppcmapay_ntp64.hex"))
    # RFC 8285 one-byte form: id 1, 8 bytes (0 = no NTP time known), then zero padding.
    assert first.extension == RtpExtension(0xBEDE, bytes.fromhex("17" + "00" * 8 + "000000"))
    assert second.extension is None
    assert len(first.payload) == len(second.payload) == 160


def test_hand_made_packet_layout() -> None:
    packet = RtpPacket(
        payload_type=96,
        sequence=1,
        timestamp=2,
        ssrc=3,
        payload=b"ab",
        marker=True,
        csrcs=(4, 5),
        extension=RtpExtension(0xBEDE, bytes.fromhex("10ff0000")),
        padding=4,
    )
    expected = (
        "b2e0 0001 00000002 00000003"  # V=2 P X CC=2, M PT=96, seq, ts, ssrc
        "00000004 00000005"  # CSRCs
        "bede 0001 10ff0000"  # extension: profile, 1 word, data
        "6162 000000 04"  # payload, padding ending in its count
    )
    assert bytes(packet) == bytes.fromhex(expected)
    assert RtpPacket.parse(bytes(packet)) == packet


@pytest.mark.parametrize(
    "packet",
    [
        RtpPacket(0, 0, 0, 0),
        RtpPacket(127, 65535, 2**32 - 1, 2**32 - 1, b"x" * 160, marker=True),
        RtpPacket(8, 7, 8, 9, csrcs=tuple(range(15))),
        RtpPacket(10, 7, 8, 9, b"pcm", extension=RtpExtension(1, b"")),
        RtpPacket(11, 7, 8, 9, b"", padding=1),
        RtpPacket(96, 7, 8, 9, b"abc", padding=255),
        RtpPacket(97, 7, 8, 9, b"\x00" * 4, True, (1,), RtpExtension(0x1000, b"\xff" * 8), 3),
    ],
)
def test_hand_made_packets_round_trip(packet: RtpPacket) -> None:
    assert RtpPacket.parse(bytes(packet)) == packet


def test_padding_bytes_are_skipped_and_written_as_zeros() -> None:
    # The RFC leaves the padding's content open; only its count byte means anything.
    datagram = bytes(RtpPacket(0, 1, 2, 3, b"audio")) + b"\xaa\xbb\x03"
    datagram = bytes([datagram[0] | 0x20]) + datagram[1:]
    packet = RtpPacket.parse(datagram)
    assert (packet.payload, packet.padding) == (b"audio", 3)
    assert bytes(packet) == datagram[:-3] + b"\x00\x00\x03"


def header(first: int = 0x80, second: int = 0, *, size: int = HEADER_SIZE) -> bytes:
    return (bytes([first, second]) + bytes(10) + bytes(size))[:size]


@pytest.mark.parametrize(
    ("datagram", "message"),
    [
        (b"", "datagram of 0 bytes is shorter than the 12-byte RTP header"),
        (header()[:11], "datagram of 11 bytes is shorter than the 12-byte RTP header"),
        (header(0x00), "RTP version 0, not 2"),
        (header(0x40), "RTP version 1, not 2"),
        (header(0xC0), "RTP version 3, not 2"),
        (
            header(0x82, size=14),
            "RTP header of 12 bytes + 2 CSRCs is longer than the 14-byte datagram",
        ),
        (
            header(0x8F, size=70),
            "RTP header of 12 bytes + 15 CSRCs is longer than the 70-byte datagram",
        ),
        (
            header(0x90, size=14),
            "header extension at byte 12 is cut off by the end of the 14-byte datagram",
        ),
        (
            header(0x90, size=12) + bytes.fromhex("bede0002 00000000"),
            "header extension of 2 words at byte 16 is longer than the 20-byte datagram",
        ),
        (
            header(0x80 | 0x20) + b"pcm\x00",
            "padding count 0: the P bit needs at least the count byte",
        ),
        (
            header(0x80 | 0x20) + b"pcm" + bytes([200]),
            "padding count 200 is larger than the 4-byte payload",
        ),
        (header(0x80 | 0x20) + b"\x01", None),  # the count alone: valid, empty payload
        (header(0x80, 72), "payload type 72 is reserved for RTCP (RFC 5761 section 4)"),
        (header(0x80, 0x80 | 76), "payload type 76 is reserved for RTCP (RFC 5761 section 4)"),
        (header(0x80, 200), "payload type 72 is reserved for RTCP (RFC 5761 section 4)"),
    ],
)
def test_malformed_datagrams(datagram: bytes, message: str | None) -> None:
    if message is None:
        assert RtpPacket.parse(datagram).payload == b""
        return
    with pytest.raises(InvalidPacket, match=f"^{re.escape(message)}$"):
        RtpPacket.parse(datagram)


def test_payload_types_next_to_the_rtcp_range_are_rtp() -> None:
    for pt in (71, 77):
        assert RtpPacket.parse(header(0x80, 0x80 | pt)).payload_type == pt


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"payload_type": 128}, "payload type 128 is not 0-127"),
        ({"payload_type": -1}, "payload type -1 is not 0-127"),
        ({"payload_type": 73}, "payload type 73 collides with RTCP (RFC 5761)"),
        ({"sequence": 65536}, "sequence number 65536 is not 0-65535"),
        ({"timestamp": 2**32}, "timestamp 4294967296 is not a 32-bit value"),
        ({"ssrc": -1}, "SSRC -1 is not a 32-bit value"),
        ({"csrcs": tuple(range(16))}, "16 CSRCs: RTP carries at most 15"),
        ({"csrcs": (2**32,)}, "CSRC 4294967296 is not a 32-bit value"),
        ({"padding": 256}, "padding of 256 bytes is not 0-255"),
    ],
)
def test_field_ranges(fields: dict[str, int], message: str) -> None:
    values = {"payload_type": 0, "sequence": 0, "timestamp": 0, "ssrc": 0, **fields}
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        RtpPacket(**values)  # type: ignore[arg-type]


def test_extension_must_be_whole_words() -> None:
    with pytest.raises(ValueError, match="extension data of 3 bytes is not whole 32-bit words"):
        RtpExtension(0xBEDE, b"abc")
    with pytest.raises(ValueError, match="extension profile 65536 is not a 16-bit value"):
        RtpExtension(65536, b"")


def test_looks_like_rtp() -> None:
    assert looks_like_rtp(header(0x80, 0))
    assert looks_like_rtp(header(0x80, 64))  # PT 64 without the marker: second byte 64
    assert not looks_like_rtp(header(0x80, 0)[:11])
    assert not looks_like_rtp(header(0x40, 0))
    for rtcp_type in (192, 200, 201, 204, 223):
        assert not looks_like_rtp(header(0x80, rtcp_type))
    assert looks_like_rtp(header(0x80, 224))  # marker + PT 96


@pytest.mark.parametrize(
    ("older", "newer", "delta"),
    [
        (0, 1, 1),
        (1, 0, -1),
        (65535, 0, 1),
        (0, 65535, -1),
        (65530, 5, 11),
        (0, 32767, 32767),
        (0, 32768, -32768),
        (100, 100, 0),
    ],
)
def test_seq_delta(older: int, newer: int, delta: int) -> None:
    assert seq_delta(older, newer) == delta


@pytest.mark.parametrize(
    ("older", "newer", "delta"),
    [
        (2**32 - 1, 0, 1),
        (0, 2**32 - 1, -1),
        (2**32 - 160, 160, 320),
        (0, 2**31 - 1, 2**31 - 1),
        (0, 2**31, -(2**31)),
    ],
)
def test_ts_delta(older: int, newer: int, delta: int) -> None:
    assert ts_delta(older, newer) == delta


def test_sequence_unwrapper_counts_on_past_the_wrap() -> None:
    unwrap = SequenceUnwrapper()
    assert [unwrap.unwrap(s) for s in (65533, 65534, 65535, 0, 1, 2)] == [
        65533,
        65534,
        65535,
        65536,
        65537,
        65538,
    ]


def test_sequence_unwrapper_reordering_across_the_wrap_goes_back() -> None:
    unwrap = SequenceUnwrapper()
    assert [unwrap.unwrap(s) for s in (65534, 0, 65535, 1, 65533)] == [
        65534,
        65536,
        65535,
        65537,
        65533,
    ]


def test_sequence_unwrapper_can_go_below_the_first_value() -> None:
    unwrap = SequenceUnwrapper()
    assert [unwrap.unwrap(s) for s in (0, 65535, 1)] == [0, -1, 1]


def test_timestamp_unwrapper_counts_on_past_the_wrap() -> None:
    unwrap = TimestampUnwrapper()
    steps = [2**32 - 320, 2**32 - 160, 0, 160, 0, 320]
    assert [unwrap.unwrap(t) for t in steps] == [
        2**32 - 320,
        2**32 - 160,
        2**32,
        2**32 + 160,
        2**32,
        2**32 + 320,
    ]


def test_unwrapper_many_wraps_and_other_widths() -> None:
    unwrap = Unwrapper(8)
    assert [unwrap.unwrap(v % 256) for v in range(0, 2000, 100)] == list(range(0, 2000, 100))
    with pytest.raises(ValueError, match="256 is not a 8-bit counter value"):
        unwrap.unwrap(256)
    with pytest.raises(ValueError, match="65536 is not a 16-bit counter value"):
        SequenceUnwrapper().unwrap(65536)
