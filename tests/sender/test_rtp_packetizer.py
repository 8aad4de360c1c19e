"""RtpStream: 20 ms packets, big-endian L16, random start, marker, wraps, BYE; RawStream."""

from __future__ import annotations

import struct

import pytest

from appliance.audio.format import SUPPORTED_RATES, AudioFormat, Encoding
from appliance.sender.packetizer import (
    BYE_COPIES,
    RawStream,
    RtpStream,
    packet_interval_s,
)
from appliance.wire import rtcp
from appliance.wire.raw import RAW_FORMAT, frame_pcm
from appliance.wire.rtp import RtpPacket


def pcm_frames(n_frames: int, channels: int) -> bytes:
    """Distinct little-endian samples (so a byte swap or a lost sample shows)."""
    count = n_frames * channels
    return struct.pack(f"<{count}h", *((i * 7 + 1) % 65536 - 32768 for i in range(count)))


def swap_to_big_endian(pcm: bytes) -> bytes:
    count = len(pcm) // 2
    return struct.pack(f">{count}h", *struct.unpack(f"<{count}h", pcm))


FORMATS = [AudioFormat(rate, channels) for rate in SUPPORTED_RATES for channels in (1, 2)]


@pytest.mark.parametrize("fmt", FORMATS, ids=str)
def test_packets_are_20_ms_of_big_endian_l16(fmt: AudioFormat) -> None:
    pcm = pcm_frames(fmt.packet_frames * 3 + 5, fmt.channels)  # three packets and a bit
    stream = RtpStream([pcm], fmt, payload_type=127, ssrc=1, first_sequence=0, first_timestamp=0)
    packets = [RtpPacket.parse(p.datagram) for p in stream]
    assert [len(p.payload) for p in packets] == [fmt.packet_bytes] * 3 + [5 * fmt.frame_bytes]
    assert b"".join(p.payload for p in packets) == swap_to_big_endian(pcm)
    assert [p.timestamp for p in packets] == [0, *(fmt.packet_frames * k for k in (1, 2, 3))]
    assert stream.interval_s == fmt.packet_frames / fmt.rate


def test_the_frame_counts_of_the_brief() -> None:
    assert AudioFormat(48000, 2).packet_frames == 960
    assert AudioFormat(48000, 2).packet_bytes == 3840
    assert AudioFormat(44100, 1).packet_frames == 882
    # 11025 Hz has no whole 20 ms: the pace follows the whole frames actually sent.
    assert packet_interval_s(AudioFormat(11025, 1)) == pytest.approx(220 / 11025)


def test_header_fields_and_marker_on_the_first_packet_only() -> None:
    fmt = AudioFormat(48000, 2)
    stream = RtpStream(
        [pcm_frames(960 * 4, 2)], fmt, 127, ssrc=0xDEADBEEF, first_sequence=10, first_timestamp=99
    )
    packets = list(stream.packets())
    assert [p.marker for p in packets] == [True, False, False, False]
    assert [p.sequence for p in packets] == [10, 11, 12, 13]
    assert [p.timestamp for p in packets] == [99, 1059, 2019, 2979]
    assert {(p.payload_type, p.ssrc, p.csrcs, p.padding) for p in packets} == {
        (127, 0xDEADBEEF, (), 0)
    }
    assert [bytes(p) for p in packets] == [
        w.datagram
        for w in RtpStream(
            [pcm_frames(960 * 4, 2)],
            fmt,
            127,
            ssrc=0xDEADBEEF,
            first_sequence=10,
            first_timestamp=99,
        )
    ]


def test_sequence_and_timestamp_wrap() -> None:
    fmt = AudioFormat(8000, 1)
    stream = RtpStream(
        [pcm_frames(160 * 4, 1)],
        fmt,
        112,
        ssrc=5,
        first_sequence=65534,
        first_timestamp=2**32 - 200,
    )
    packets = list(stream.packets())
    assert [p.sequence for p in packets] == [65534, 65535, 0, 1]
    assert [p.timestamp for p in packets] == [2**32 - 200, 2**32 - 40, 120, 280]


def test_chunks_of_any_size_make_the_same_packets() -> None:
    fmt = AudioFormat(44100, 2)
    pcm = pcm_frames(882 * 5 + 1, 2)
    whole = [
        p.datagram for p in RtpStream([pcm], fmt, 10, ssrc=1, first_sequence=1, first_timestamp=1)
    ]
    pieces = [pcm[i : i + 1001] for i in range(0, len(pcm), 1001)]  # odd sizes, split frames
    split = [
        p.datagram for p in RtpStream(pieces, fmt, 10, ssrc=1, first_sequence=1, first_timestamp=1)
    ]
    assert split == whole


def test_a_partial_frame_at_the_end_is_dropped() -> None:
    fmt = AudioFormat(16000, 2)
    stream = RtpStream([pcm_frames(10, 2) + b"\x01\x02\x03"], fmt, 117, ssrc=1)
    [packet] = list(stream.packets())
    assert len(packet.payload) == 40


def test_ssrc_sequence_and_timestamp_start_at_random() -> None:
    starts = {
        (s.ssrc, s.first_sequence, s.first_timestamp)
        for s in (RtpStream([], AudioFormat(), 112) for _ in range(20))
    }
    assert len(starts) == 20
    assert all(
        0 <= ssrc < 2**32 and 0 <= seq < 2**16 and 0 <= ts < 2**32 for ssrc, seq, ts in starts
    )


def test_the_stream_ends_with_rtcp_byes_for_its_ssrc() -> None:
    stream = RtpStream([], AudioFormat(), 112, ssrc=0x01020304)
    goodbye = stream.goodbye()
    assert len(goodbye) == BYE_COPIES == 2
    for datagram in goodbye:
        assert rtcp.is_rtcp(datagram)
        byes = [p for p in rtcp.parse_compound(datagram) if isinstance(p, rtcp.Bye)]
        assert [b.ssrcs for b in byes] == [(0x01020304,)]


def test_stream_description() -> None:
    stream = RtpStream([], AudioFormat(48000, 2), 127)
    assert (stream.wire, stream.payload_type, stream.wire_format.encoding) == ("rtp", 127, "s16be")
    assert stream.wire_format.same_pcm(AudioFormat(48000, 2))


def test_bad_arguments_are_programming_errors() -> None:
    with pytest.raises(ValueError, match="payload type 128"):
        RtpStream([], AudioFormat(), 128)
    with pytest.raises(ValueError, match="s16le"):
        RtpStream([], AudioFormat(encoding=Encoding.S16BE), 112)


def test_raw_stream_is_the_seed_wire_ended_by_an_empty_datagram() -> None:
    pcm = bytes(range(256)) * 3
    stream = RawStream(frame_pcm([pcm]))
    assert [(len(p.datagram), p.payload_bytes) for p in stream] == [
        (320, 320),
        (320, 320),
        (128, 128),
    ]
    assert stream.goodbye() == [b""]
    assert (stream.wire, stream.payload_type, stream.wire_format) == ("raw", None, RAW_FORMAT)
    assert stream.interval_s == 0.02
