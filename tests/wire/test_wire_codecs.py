"""Codecs: L16 and G.711 against ffmpeg's tables, ITU values and captured ffmpeg/GStreamer audio."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from rtp_captures import datagrams, sawtooth

from appliance.audio.format import Encoding
from appliance.wire.codecs import CODECS, codec_for
from appliance.wire.codecs.g711 import ALAW, G711, MULAW
from appliance.wire.codecs.l16 import L16, S16LE
from appliance.wire.rtp import RtpPacket, ts_delta

ALL_CODES = bytes(range(256))
ALL_SAMPLES = np.arange(-32768, 32768, dtype="<i2").tobytes()


def samples(pcm: bytes) -> list[int]:
    return [int(s) for s in np.frombuffer(pcm, "<i2")]


def s16le(*values: int) -> bytes:
    return np.array(values, "<i2").tobytes()


def ffmpeg(tmp_path: Path, data: bytes, in_format: str, out_format: str) -> bytes:
    """``data`` converted by ffmpeg, the reference G.711 implementation here."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed (apt-get install ffmpeg): no reference to compare")
    source = tmp_path / "codes.bin"
    source.write_bytes(data)
    command = ["ffmpeg", "-v", "error", "-f", in_format, "-ar", "8000", "-ac", "1"]
    command += ["-i", str(source), "-f", out_format, "-"]
    return subprocess.run(command, capture_output=True, check=True, timeout=60).stdout


def level_steps(codec: G711, ours: bytes, theirs: bytes) -> npt.NDArray[np.int64]:
    """How many quantization levels apart two encodings of the same audio are, sample by sample."""
    levels = np.unique(codec.to_linear)
    a = np.searchsorted(levels, np.frombuffer(codec.decode(ours, 1), "<i2"))
    b = np.searchsorted(levels, np.frombuffer(codec.decode(theirs, 1), "<i2"))
    steps: npt.NDArray[np.int64] = np.abs(a.astype(np.int64) - b)
    return steps


def test_registry() -> None:
    assert set(CODECS) == set(Encoding)
    for encoding in Encoding:
        assert codec_for(encoding).encoding is encoding
    assert codec_for(Encoding.S16BE) is L16
    with pytest.raises(ValueError, match="no codec for encoding 'l24' \\(known: s16le, s16be"):
        codec_for("l24")  # type: ignore[arg-type]


def test_l16_swaps_bytes() -> None:
    assert L16.decode(bytes.fromhex("0102 fffe 8000"), 1) == bytes.fromhex("0201 feff 0080")
    assert L16.encode(bytes.fromhex("0201 feff 0080"), 1) == bytes.fromhex("0102 fffe 8000")
    assert L16.decode(ALL_SAMPLES, 2) == np.frombuffer(ALL_SAMPLES, ">i2").astype("<i2").tobytes()
    assert L16.encode(L16.decode(ALL_SAMPLES, 1), 1) == ALL_SAMPLES


def test_partial_frames_are_dropped() -> None:
    assert L16.decode(bytes.fromhex("0102 03"), 1) == bytes.fromhex("0201")
    assert L16.decode(bytes.fromhex("0102 0304 0506"), 2) == bytes.fromhex("0201 0403")
    assert L16.decode(b"", 1) == b""
    assert S16LE.decode(bytes.fromhex("0102 0304 05"), 1) == bytes.fromhex("0102 0304")
    assert S16LE.encode(bytes.fromhex("0102 0304 0506"), 2) == bytes.fromhex("0102 0304")
    assert MULAW.decode(bytes([0xFF, 0x80, 0x00]), 2) == s16le(0, 32124)
    assert ALAW.encode(s16le(8, -8, 0), 2) == bytes([0xD5, 0x55])
    with pytest.raises(ValueError, match="channels must be 1 or more"):
        L16.decode(b"\x00\x01", 0)


def test_s16le_is_the_identity() -> None:
    assert S16LE.decode(ALL_SAMPLES, 1) == ALL_SAMPLES
    assert S16LE.encode(ALL_SAMPLES, 2) == ALL_SAMPLES


@pytest.mark.parametrize(("codec", "ffmpeg_format"), [(MULAW, "mulaw"), (ALAW, "alaw")])
def test_g711_decodes_all_codes_like_ffmpeg(
    tmp_path: Path, codec: G711, ffmpeg_format: str
) -> None:
    assert codec.decode(ALL_CODES, 1) == ffmpeg(tmp_path, ALL_CODES, ffmpeg_format, "s16le")


# Checked against ffmpeg's decoder; they are G.711's values scaled to 16 bits.
MULAW_VALUES = {0x00: -32124, 0x01: -31100, 0x7E: -8, 0x7F: 0, 0x80: 32124, 0xFE: 8, 0xFF: 0}
ALAW_VALUES = {
    0xD5: 8,
    0x55: -8,
    0x2A: -32256,
    0xAA: 32256,
    0x80: 5504,
    0x00: -5504,
    0x7F: -848,
    0xFF: 848,
}


@pytest.mark.parametrize(("codec", "values"), [(MULAW, MULAW_VALUES), (ALAW, ALAW_VALUES)])
def test_g711_known_values(codec: G711, values: dict[int, int]) -> None:
    assert samples(codec.decode(bytes(values), 1)) == list(values.values())


def test_g711_tables_are_odd_symmetric() -> None:
    mulaw = np.array(samples(MULAW.decode(ALL_CODES, 1)))
    alaw = np.array(samples(ALAW.decode(ALL_CODES, 1)))
    assert (mulaw[:128] == -mulaw[128:]).all()  # mu-law: the sign is the top bit
    assert (alaw[:128] == -alaw[128:]).all()
    assert len(set(mulaw)) == 255  # 0x7F and 0xFF are both zero
    assert len(set(alaw)) == 256  # A-law has no zero: +-8 closest


def test_g711_encode_of_decode_is_the_identity() -> None:
    assert ALAW.encode(ALAW.decode(ALL_CODES, 1), 1) == ALL_CODES
    # mu-law's negative zero 0x7F decodes to 0, which encodes as positive zero 0xFF.
    expected = ALL_CODES.replace(b"\x7f", b"\xff")
    assert MULAW.encode(MULAW.decode(ALL_CODES, 1), 1) == expected


def test_g711_encode_extremes() -> None:
    # g711.c drops the low bits by an arithmetic shift, so -1 becomes -4 in 14 bits: -8, not 0.
    assert MULAW.encode(s16le(0, -1, 8, -8, 32767, -32768), 1) == bytes.fromhex("ff7efe7e8000")
    assert ALAW.encode(s16le(0, -1, 32767, -32768), 1) == bytes([0xD5, 0x55, 0xAA, 0x2A])


@pytest.mark.parametrize(("codec", "ffmpeg_format"), [(MULAW, "mulaw"), (ALAW, "alaw")])
def test_g711_encoder_agrees_with_ffmpeg_to_one_step(
    tmp_path: Path, codec: G711, ffmpeg_format: str
) -> None:
    # Encoders round differently right at decision levels; never by more than one step.
    theirs = ffmpeg(tmp_path, ALL_SAMPLES, "s16le", ffmpeg_format)
    steps = level_steps(codec, codec.encode(ALL_SAMPLES, 1), theirs)
    assert steps.max() == 1
    assert (steps > 0).mean() < 0.02


@pytest.mark.parametrize(
    ("name", "channels", "source_samples"),
    [("ffmpeg_pcm_s16be.hex", 1, 8000), ("gst_rtpL16pay.hex", 2, 24000)],
)
def test_captured_l16_decodes_to_the_source(name: str, channels: int, source_samples: int) -> None:
    packets = [RtpPacket.parse(d) for d in datagrams(name)]
    source = sawtooth(source_samples)
    frame_bytes = 2 * channels
    for packet in packets:
        # The captures start at the stream's first packet: its timestamp is frame 0.
        start = ts_delta(packets[0].timestamp, packet.timestamp) * frame_bytes
        pcm = L16.decode(packet.payload, channels)
        assert pcm == source[start : start + len(pcm)]
        assert L16.encode(pcm, channels) == packet.payload


@pytest.mark.parametrize(
    ("name", "codec"),
    [
        ("ffmpeg_pcm_mulaw.hex", MULAW),
        ("gst_rtppcmapay.hex", ALAW),
        ("gst_rtppcmapay_ntp64.hex", ALAW),
    ],
)
def test_captured_g711_decodes_to_the_encoded_source(name: str, codec: G711) -> None:
    packets = [RtpPacket.parse(d) for d in datagrams(name)]
    source = sawtooth(8000)
    for packet in packets:
        start = ts_delta(packets[0].timestamp, packet.timestamp) * 2
        ours = codec.encode(source[start : start + 2 * len(packet.payload)], 1)
        # The same audio to within one quantization step, mostly the very same codes.
        steps = level_steps(codec, ours, packet.payload)
        assert steps.max() <= 1
        assert (steps > 0).mean() < 0.03
