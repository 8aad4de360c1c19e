import pytest

from appliance.audio.format import AudioFormat
from appliance.wire.raw import (
    DEFAULT_PORT,
    END_OF_STREAM,
    MAX_PAYLOAD_BYTES,
    RAW_FORMAT,
    InvalidDatagram,
    RawDatagram,
    frame_pcm,
)

FRAME_BYTES = 320


def test_the_seed_wire_is_8k_mono_s16le_in_320_byte_datagrams_to_port_5005() -> None:
    assert (RAW_FORMAT.rate, RAW_FORMAT.channels, str(RAW_FORMAT.encoding)) == (8000, 1, "s16le")
    assert (RAW_FORMAT.packet_frames, RAW_FORMAT.packet_bytes) == (160, FRAME_BYTES)
    assert (DEFAULT_PORT, MAX_PAYLOAD_BYTES) == (5005, 1600)


def test_frame_pcm_cuts_any_format_into_its_packets_of_whole_frames() -> None:
    cd = AudioFormat(48000, 2)
    datagrams = list(frame_pcm([bytes(3840 * 2 + 7)], cd))
    assert [len(d.payload) for d in datagrams] == [3840, 3840, 4]


def test_full_datagram_round_trips() -> None:
    data = bytes(range(256)) + bytes(64)
    datagram = RawDatagram.parse(data)
    assert bytes(datagram) == data
    assert RawDatagram.parse(bytes(datagram)) == datagram
    assert not datagram.is_end_of_stream


def test_short_even_datagram_is_audio() -> None:
    assert RawDatagram.parse(b"\x01\x02" * 7).payload == b"\x01\x02" * 7


def test_empty_datagram_is_the_end_of_stream_marker() -> None:
    assert RawDatagram.parse(b"") == END_OF_STREAM
    assert END_OF_STREAM.is_end_of_stream


def test_odd_length_is_rejected_with_reason() -> None:
    with pytest.raises(InvalidDatagram) as caught:
        RawDatagram.parse(bytes(321))
    assert str(caught.value) == "datagram of 321 bytes is not whole 16-bit samples"


def test_oversized_datagram_is_rejected_with_reason() -> None:
    with pytest.raises(InvalidDatagram) as caught:
        RawDatagram.parse(bytes(MAX_PAYLOAD_BYTES + 2))
    assert str(caught.value) == (
        f"datagram of {MAX_PAYLOAD_BYTES + 2} bytes is larger than the "
        f"{MAX_PAYLOAD_BYTES}-byte maximum"
    )


def test_largest_allowed_datagram_is_accepted() -> None:
    assert len(RawDatagram.parse(bytes(MAX_PAYLOAD_BYTES)).payload) == MAX_PAYLOAD_BYTES


def test_frame_pcm_cuts_uneven_chunks_into_320_byte_datagrams() -> None:
    pcm = bytes(i % 251 for i in range(FRAME_BYTES * 3 + 100))
    chunks = [pcm[:7], pcm[7:500], pcm[500:501], pcm[501:]]
    datagrams = list(frame_pcm(chunks))
    assert [len(d.payload) for d in datagrams] == [320, 320, 320, 100]
    assert b"".join(d.payload for d in datagrams) == pcm


def test_frame_pcm_drops_a_stray_odd_byte_at_the_end() -> None:
    datagrams = list(frame_pcm([bytes(FRAME_BYTES + 3)]))
    assert [len(d.payload) for d in datagrams] == [320, 2]


def test_frame_pcm_of_nothing_is_nothing() -> None:
    assert list(frame_pcm([b""])) == []
