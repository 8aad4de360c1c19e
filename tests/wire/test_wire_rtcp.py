"""RTCP: captured ffmpeg/GStreamer compounds, reports, BYE, padding, and telling RTCP from PCM."""

from __future__ import annotations

import random
import re
import struct

import numpy as np
import pytest
from rtp_captures import datagrams, sawtooth

from appliance.wire.rtcp import (
    SDES,
    Bye,
    ReceiverReport,
    ReportBlock,
    RtcpPacket,
    SenderReport,
    UnknownRtcp,
    bye,
    cname_sdes,
    is_rtcp,
    pack_compound,
    parse_compound,
)
from appliance.wire.rtp import InvalidPacket, RtpPacket

FFMPEG_SSRC_S16BE = 0xB874949F
FFMPEG_SSRC_MULAW = 0x7B6B722A


def sdes_items(packet: UnknownRtcp) -> dict[int, bytes]:
    """The items of a one-chunk SDES packet, by type."""
    body = packet.body[4:]
    items = {}
    while body[0]:
        items[body[0]] = body[2 : 2 + body[1]]
        body = body[2 + body[1] :]
    return items


def test_ffmpeg_lone_sender_report() -> None:
    datagram = datagrams("ffmpeg_rtcp.hex")[0]
    first_rtp = RtpPacket.parse(datagrams("ffmpeg_pcm_s16be.hex")[0])
    assert is_rtcp(datagram)
    [report] = parse_compound(datagram)
    assert isinstance(report, SenderReport)
    assert report.ssrc == first_rtp.ssrc == FFMPEG_SSRC_S16BE
    assert report.rtp_timestamp == first_rtp.timestamp
    assert (report.packet_count, report.octet_count, report.reports) == (0, 0, ())
    assert report.ntp_timestamp >> 32 > 3_900_000_000  # seconds since 1900: after 2023
    assert SenderReport.parse(datagram) == report
    assert bytes(report) == datagram


def test_ffmpeg_sender_report_with_cname_and_bye() -> None:
    start, end = datagrams("ffmpeg_rtcp.hex")[1:]
    first_rtp = RtpPacket.parse(datagrams("ffmpeg_pcm_mulaw.hex")[0])
    report, sdes = parse_compound(start)
    assert isinstance(report, SenderReport) and isinstance(sdes, UnknownRtcp)
    assert (report.ssrc, report.rtp_timestamp) == (first_rtp.ssrc, first_rtp.timestamp)
    assert (sdes.packet_type, sdes.count) == (SDES, 1)
    assert sdes_items(sdes) == {1: b"appliance-test"}
    assert sdes == cname_sdes(FFMPEG_SSRC_MULAW, "appliance-test")

    final, sdes_again, goodbye = parse_compound(end)
    assert isinstance(final, SenderReport)
    assert (final.packet_count, final.octet_count) == (25, 8000)  # 1 s of 8 kHz mu-law
    assert sdes_again == sdes
    assert goodbye == Bye((FFMPEG_SSRC_MULAW,), None)
    for datagram in (start, end):
        assert is_rtcp(datagram)
        assert pack_compound(parse_compound(datagram)) == datagram


def test_gstreamer_sender_and_receiver_reports() -> None:
    sender, receiver = datagrams("gst_rtcp.hex")
    report, sdes = parse_compound(sender)
    assert isinstance(report, SenderReport) and isinstance(sdes, UnknownRtcp)
    items = sdes_items(sdes)
    assert items[1].startswith(b"user") and items[6] == b"GStreamer"  # CNAME, TOOL
    empty, sdes_again = parse_compound(receiver)
    assert empty == ReceiverReport(report.ssrc)
    assert sdes_again == sdes
    for datagram in (sender, receiver):
        assert is_rtcp(datagram)
        assert pack_compound(parse_compound(datagram)) == datagram


BLOCK = ReportBlock(
    ssrc=0x01020304,
    fraction_lost=25,
    packets_lost=-1,
    highest_sequence=(3 << 16) | 65000,
    jitter=42,
    lsr=0x12345678,
    dlsr=65536,
)


def test_report_block_layout() -> None:
    assert bytes(BLOCK) == bytes.fromhex("01020304 19ffffff 0003fde8 0000002a 12345678 00010000")
    assert ReportBlock.parse(bytes(BLOCK)) == BLOCK


@pytest.mark.parametrize(
    "packet",
    [
        SenderReport(1, 2**64 - 1, 2**32 - 1, 3, 4),
        SenderReport(1, 0xE000000080000000, 5, 6, 7, (BLOCK, BLOCK), b"prof"),
        ReceiverReport(9),
        ReceiverReport(9, (BLOCK,) * 31),
        Bye(()),
        Bye((1, 2, 3)),
        Bye((1,), ""),
        Bye((1,), "bye"),
        Bye((1,), "four"),
        Bye((1,), "stream ended \u00e9"),
        UnknownRtcp(204, 5, b"nameDATA"),
    ],
)
def test_packets_round_trip(packet: SenderReport | ReceiverReport | Bye | UnknownRtcp) -> None:
    datagram = bytes(packet)
    assert len(datagram) % 4 == 0
    assert is_rtcp(datagram)
    assert parse_compound(datagram) == [packet]


@pytest.mark.parametrize("reason", ["", "a", "ab", "abc", "abcd", "abcdefgh"])
def test_bye_reason_is_padded_to_whole_words(reason: str) -> None:
    datagram = bytes(Bye((7,), reason))
    # header + SSRC + length byte + text, zeros up to the next word.
    assert len(datagram) == 8 + 4 * ((len(reason) + 4) // 4)
    assert Bye.parse(datagram) == Bye((7,), reason)


def test_bye_convenience_starts_with_an_empty_report() -> None:
    assert parse_compound(bye(0xDEADBEEF)) == [ReceiverReport(0xDEADBEEF), Bye((0xDEADBEEF,))]
    assert parse_compound(bye(5, "done", cname="me@pi")) == [
        ReceiverReport(5),
        cname_sdes(5, "me@pi"),
        Bye((5,), "done"),
    ]
    assert bye(1, "x") == bytes.fromhex("80c90001 00000001 81cb0002 00000001 01780000")


def test_padding_on_the_last_packet() -> None:
    compound: list[RtcpPacket] = [ReceiverReport(1), Bye((1,), "end", padding=8)]
    datagram = pack_compound(compound)
    assert datagram.endswith(bytes(7) + b"\x08")
    assert is_rtcp(datagram)
    assert parse_compound(datagram) == compound
    assert datagram[8] == 0x80 | 0x20 | 1  # the BYE has the P bit, the RR not


def test_padding_on_another_packet_is_refused() -> None:
    with pytest.raises(ValueError, match="only the last packet"):
        pack_compound([ReceiverReport(1, padding=4), Bye((1,))])
    datagram = bytes(ReceiverReport(1, padding=4)) + bytes(Bye((1,)))
    assert not is_rtcp(datagram)
    with pytest.raises(InvalidPacket, match="only the last packet of a compound may be padded"):
        parse_compound(datagram)


def test_padding_must_end_on_a_word() -> None:
    with pytest.raises(ValueError, match="4-byte body \\+ 3 bytes of padding"):
        ReceiverReport(1, padding=3)
    with pytest.raises(ValueError, match="5-byte body \\+ 0 bytes of padding"):
        UnknownRtcp(204, 0, b"12345")
    assert bytes(UnknownRtcp(204, 0, b"12345", padding=3)).endswith(b"12345\x00\x00\x03")


@pytest.mark.parametrize(
    ("datagram", "message"),
    [
        (b"\x80\xc9\x00", "datagram of 3 bytes is shorter than an RTCP header"),
        (bytes.fromhex("40c90001 00000001"), "RTCP version 1, not 2, at byte 0"),
        (
            bytes.fromhex("80cd0001 00000001"),
            "first packet type 205 is not SR, RR, SDES, BYE or APP",
        ),
        (
            bytes.fromhex("80c90001 00000001 80600000"),
            "packet type 96 at byte 8 is not RTCP (192-223)",
        ),
        (
            bytes.fromhex("80c90002 00000001"),
            "RTCP packet of 12 bytes at byte 0 is longer than the 8-byte datagram",
        ),
        (bytes.fromhex("80c90001 00000001 81"), "RTCP header at byte 8 is cut off"),
        (bytes.fromhex("a0c90001 00000000"), "padding count 0 does not fit the 4-byte RTCP body"),
        (bytes.fromhex("a0c90001 00000009"), "padding count 9 does not fit the 4-byte RTCP body"),
        (bytes.fromhex("81c90001 00000001"), "RR with count 1 needs 28 bytes, has 4"),
        (bytes.fromhex("80c80001 00000001"), "SR with count 0 needs 24 bytes, has 4"),
        (
            bytes.fromhex("80c90001 00000001 82cb0001 00000001"),
            "BYE at byte 8 with count 2 needs 8 bytes, has 4",
        ),
        (
            bytes.fromhex("81cb0002 00000001 09414243"),
            "BYE: reason of 9 bytes is cut off",
        ),
        (
            bytes.fromhex("81cb0002 00000001 02414243"),
            "BYE: 4 bytes after the SSRCs are not a 2-byte reason and its zero padding",
        ),
        (
            bytes.fromhex("81cb0003 00000001 01410000 00000000"),
            "BYE: 8 bytes after the SSRCs are not a 1-byte reason and its zero padding",
        ),
        (bytes.fromhex("81cb0002 00000001 01ff0000"), "BYE: reason is not UTF-8"),
        (
            bytes.fromhex("a0c90002 00000001 00000003"),
            "RR: 1-byte extension is not whole 32-bit words",
        ),
    ],
)
def test_malformed_compounds(datagram: bytes, message: str) -> None:
    with pytest.raises(InvalidPacket, match=f"^{re.escape(message)}"):
        parse_compound(datagram)


def test_single_packet_parse_wants_that_packet_only() -> None:
    with pytest.raises(InvalidPacket, match=r"^first packet type 201 is not SR$"):
        SenderReport.parse(bytes(ReceiverReport(1)))
    with pytest.raises(InvalidPacket, match="expected one ReceiverReport, got 2 RTCP packets"):
        ReceiverReport.parse(bye(1))


@pytest.mark.parametrize(
    "name",
    [
        "ffmpeg_pcm_s16be.hex",
        "ffmpeg_pcm_mulaw.hex",
        "gst_rtpL16pay.hex",
        "gst_rtppcmapay.hex",
        "gst_rtppcmapay_ntp64.hex",
    ],
)
def test_rtp_is_not_rtcp(name: str) -> None:
    assert not any(is_rtcp(d) for d in datagrams(name))


def test_raw_pcm_is_not_rtcp() -> None:
    rng = np.random.default_rng(20240611)
    noise = rng.integers(-32768, 32768, size=8000, dtype=np.int16).tobytes()
    pcm = [bytes(320), sawtooth(8000), noise]
    chunks = [whole[i : i + 320] for whole in pcm for i in range(0, len(whole), 320)]
    assert not any(is_rtcp(chunk) for chunk in chunks)


def test_random_datagrams_are_not_rtcp_unless_truly_valid() -> None:
    rng = random.Random(5005)
    valid = []
    for _ in range(1000):
        datagram = rng.randbytes(320)
        if is_rtcp(datagram):
            valid.append(parse_compound(datagram))  # must then really be a compound
    assert valid == []


def test_random_datagrams_with_an_rtcp_first_header_are_still_refused() -> None:
    # Even starting like an RR, random bytes must also get every later length right.
    rng = random.Random(3550)
    passed = 0
    for _ in range(1000):
        body = rng.randbytes(316)
        datagram = struct.pack("!BBH", 0x80, 201, rng.randrange(0, 79)) + body
        assert is_rtcp(datagram) == _lengths_add_up(datagram)
        passed += is_rtcp(datagram)
    assert passed < 50  # about 1 in 79: the first length covering all 320 bytes


def _lengths_add_up(datagram: bytes) -> bool:
    """A second, plainer reading of is_rtcp's rules, as an oracle."""
    pos = 0
    while pos < len(datagram):
        if pos + 4 > len(datagram):
            return False
        first, ptype, words = struct.unpack_from("!BBH", datagram, pos)
        end = pos + 4 + 4 * words
        if first >> 6 != 2 or not 192 <= ptype <= 223 or end > len(datagram):
            return False
        if first & 0x20 and (end != len(datagram) or not 0 < datagram[end - 1] <= 4 * words):
            return False
        pos = end
    return True


def test_compound_sr_and_sdes_is_rtcp() -> None:
    datagram = pack_compound(
        [SenderReport(1, 2, 3, 4, 5, (BLOCK,)), cname_sdes(1, "listener@raspberrypi")]
    )
    assert is_rtcp(datagram)
    assert not is_rtcp(datagram[:-4])
    assert not is_rtcp(datagram + bytes(4))
