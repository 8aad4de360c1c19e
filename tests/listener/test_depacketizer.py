"""Depacketizing: raw datagrams back to back, RTP by timestamp (wrap-around included), and the
raw-or-RTP decision from a stream's first datagrams."""

from __future__ import annotations

import random
import wave
from collections.abc import Iterator
from importlib import resources

import numpy as np
import pytest

from appliance.audio.format import AudioFormat, Encoding
from appliance.listener.depacketizer import (
    MAX_DETECTION_SEQ_GAP,
    MAX_HELD_REPEATS,
    Frame,
    RawDepacketizer,
    RtpDepacketizer,
    StreamDetector,
)
from appliance.wire import Wire
from appliance.wire.raw import RAW_FORMAT
from appliance.wire.rtp import InvalidPacket, RtpPacket

L16_8K = AudioFormat(8000, 1, Encoding.S16BE)
L16_48K_STEREO = AudioFormat(48000, 2, Encoding.S16BE)


def test_raw_frames_are_positioned_back_to_back() -> None:
    depacketizer = RawDepacketizer()
    frames = [depacketizer.depacketize(bytes(n)) for n in (320, 100, 320)]
    assert [(f.position, f.samples, f.end) for f in frames if f] == [
        (0, 160, 160), (160, 50, 210), (210, 160, 370),
    ]


def test_positions_can_continue_from_a_given_start() -> None:
    frame = RawDepacketizer(start_position=1000).depacketize(b"\x01\x00")
    assert frame == Frame(1000, b"\x01\x00", RAW_FORMAT)


def test_the_raw_end_marker_is_no_frame() -> None:
    assert RawDepacketizer().depacketize(b"") is None


def packet(seq: int, ts: int, payload: bytes, pt: int = 97, ssrc: int = 0x1234) -> RtpPacket:
    return RtpPacket(payload_type=pt, sequence=seq, timestamp=ts, ssrc=ssrc, payload=payload)


def test_rtp_l16_is_decoded_to_little_endian_and_positioned_by_timestamp() -> None:
    first = packet(100, 5000, b"\x01\x02\x03\x04")
    depacketizer = RtpDepacketizer(first, L16_8K, start_position=640)
    assert depacketizer.frame_of(first) == Frame(640, b"\x02\x01\x04\x03", L16_8K.decoded())
    later = depacketizer.frame_of(packet(102, 5004, b"\x00\x05"))
    assert later is not None and (later.position, later.payload) == (644, b"\x05\x00")


def test_rtp_positions_run_on_across_timestamp_and_sequence_wrap_around() -> None:
    first = packet(65535, 2**32 - 160, bytes(320))
    depacketizer = RtpDepacketizer(first, L16_8K)
    positions = [
        frame.position
        for seq, ts in ((65535, 2**32 - 160), (0, 0), (1, 160), (2, 320))
        if (frame := depacketizer.frame_of(packet(seq, ts, bytes(320)))) is not None
    ]
    assert positions == [0, 160, 320, 480]
    reordered = depacketizer.frame_of(packet(65534, 2**32 - 320, bytes(320)))
    assert reordered is not None and reordered.position == -160


def test_rtp_stereo_frames_count_sample_frames() -> None:
    payload = np.arange(960 * 2, dtype=">i2").tobytes()
    first = packet(1, 0, payload, pt=127)
    frame = RtpDepacketizer(first, L16_48K_STEREO).frame_of(first)
    assert frame is not None
    assert (frame.samples, frame.format) == (960, AudioFormat(48000, 2))
    assert frame.payload == np.arange(960 * 2, dtype="<i2").tobytes()


def test_rtp_from_another_ssrc_or_payload_type_is_refused() -> None:
    first = packet(1, 0, bytes(4))
    depacketizer = RtpDepacketizer(first, L16_8K)
    with pytest.raises(InvalidPacket, match="RTP SSRC 0x00005678 is not the stream's 0x00001234"):
        depacketizer.frame_of(packet(2, 2, bytes(4), ssrc=0x5678))
    with pytest.raises(InvalidPacket, match="RTP payload type 0 is not the stream's 97"):
        depacketizer.frame_of(packet(2, 2, bytes(4), pt=0))


def test_a_partial_sample_frame_is_cut_and_an_empty_payload_is_no_frame() -> None:
    first = packet(1, 0, bytes(5))
    depacketizer = RtpDepacketizer(first, L16_8K)
    frame = depacketizer.frame_of(first)
    assert frame is not None and frame.samples == 2
    assert depacketizer.frame_of(packet(2, 2, b"")) is None


# -- deciding raw or RTP -----------------------------------------------------------------------


def decide(datagrams: list[bytes]) -> Wire:
    detector = StreamDetector()
    for data in datagrams:
        detection = detector.offer(data)
        if detection is not None:
            return detection.wire
    raise AssertionError("no decision after all datagrams")


def rtp_stream(count: int, seq: int = 7, pt: int = 97) -> list[bytes]:
    return [bytes(packet((seq + i) % 65536, i * 160, bytes(320), pt=pt)) for i in range(count)]


def test_rtp_is_recognised_at_its_second_packet_and_nothing_is_lost() -> None:
    detector = StreamDetector()
    first, second = rtp_stream(2, seq=65535)
    assert detector.offer(first) is None
    assert detector.holding
    detection = detector.offer(second)
    assert detection is not None
    assert (detection.wire, detection.datagrams) == (Wire.RTP, (first, second))
    assert detection.first_rtp == RtpPacket.parse(first)


def test_reordered_first_packets_are_still_rtp() -> None:
    first, second = rtp_stream(2)
    assert decide([second, first]) is Wire.RTP


def test_rtp_whose_first_packets_after_the_first_were_lost_is_still_rtp() -> None:
    # Wi-Fi loses packets in bursts, at a stream's start too (seen through the relay).
    stream = rtp_stream(MAX_DETECTION_SEQ_GAP + 2)
    assert decide([stream[0], stream[4]]) is Wire.RTP
    assert decide([stream[0], stream[MAX_DETECTION_SEQ_GAP]]) is Wire.RTP
    assert decide([stream[0], stream[MAX_DETECTION_SEQ_GAP + 1]]) is Wire.RAW


def test_a_duplicated_first_packet_is_waited_out_and_dropped() -> None:
    first, second = rtp_stream(2)
    detector = StreamDetector()
    assert detector.offer(first) is None
    assert detector.offer(first) is None  # the network's copy
    detection = detector.offer(second)
    assert detection is not None
    assert (detection.wire, detection.datagrams) == (Wire.RTP, (first, second))


def test_a_repeated_raw_datagram_is_decided_raw_and_every_copy_kept() -> None:
    tone = b"\x80" * 320  # looks like an RTP header, and repeats
    copies = [tone] * (MAX_HELD_REPEATS + 2)
    detector = StreamDetector()
    decisions = [detector.offer(data) for data in copies]
    assert decisions[:-1] == [None] * (MAX_HELD_REPEATS + 1)
    last = decisions[-1]
    assert last is not None
    assert (last.wire, last.datagrams) == (Wire.RAW, tuple(copies))


def test_two_unrelated_rtp_looking_datagrams_are_raw_and_both_kept() -> None:
    a = bytes(packet(1, 0, bytes(320), ssrc=1))
    b = bytes(packet(2, 160, bytes(320), ssrc=2))
    detector = StreamDetector()
    detector.offer(a)
    detection = detector.offer(b)
    assert detection is not None
    assert (detection.wire, detection.datagrams) == (Wire.RAW, (a, b))


def seed_stream(pcm: bytes) -> Iterator[list[bytes]]:
    """Every run of consecutive 320-byte datagrams of ``pcm`` long enough for a decision (two,
    and as many more as a repeated first datagram may be waited out), as the seed sends them."""
    datagrams = [pcm[i : i + 320] for i in range(0, len(pcm) - 320, 320)]
    run = 2 + MAX_HELD_REPEATS
    for i in range(len(datagrams) - run + 1):
        yield datagrams[i : i + run]


def sample_speech() -> bytes:
    sample = resources.files("appliance") / "data" / "sample.wav"
    with resources.as_file(sample) as path, wave.open(str(path)) as wav:
        return bytes(wav.readframes(wav.getnframes()))


@pytest.mark.parametrize(
    "name",
    ["speech", "full-scale white noise", "silence", "a constant 0x80 byte", "a square wave"],
)
def test_raw_pcm_is_never_taken_for_rtp_wherever_the_stream_starts(name: str) -> None:
    rng = random.Random(8)
    pcm = {
        "speech": sample_speech(),
        "full-scale white noise": rng.randbytes(320 * 2000),
        "silence": bytes(320 * 100),
        "a constant 0x80 byte": b"\x80" * 320 * 100,
        "a square wave": (b"\x80\x90" * 40 + b"\x70\x60" * 40) * 4 * 100,
    }[name]
    starts = 0
    for run in seed_stream(pcm):
        starts += 1
        assert decide(run) is Wire.RAW
    assert starts > 50


def test_noise_streams_that_start_rtp_looking_are_all_raw() -> None:
    rng = random.Random(9)
    held = 0
    for _ in range(4000):
        detector = StreamDetector()
        first = detector.offer(rng.randbytes(320))
        if first is None:
            held += 1
            detection = detector.offer(rng.randbytes(320))
            assert detection is not None and detection.wire is Wire.RAW
        else:
            assert first.wire is Wire.RAW
    assert held > 200  # about 1 in 8 parse as an RTP header (version 2, no extension)
