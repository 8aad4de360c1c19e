"""The sender's fast path: 16-bit WAV at any supported rate, mono or stereo, read bit-exact;
raw PCM with --rate/--channels/--format; and the one-line errors for the options."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import pytest

from appliance.audio.format import SUPPORTED_RATES, AudioFormat, Encoding
from appliance.errors import SourceError, UsageError
from appliance.sender.source import RawFormat, open_source, raw_pcm_format
from appliance.wire.codecs import codec_for


def write_wav(path: Path, pcm: bytes, rate: int, channels: int, width: int = 2) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    return path


def read_all(spec: str | Path, raw_format: RawFormat | None = None) -> bytes:
    with open_source(spec, raw_format) as source:
        return b"".join(source.chunks())


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("rate", SUPPORTED_RATES)
def test_16_bit_wav_at_every_supported_rate_is_taken_with_its_format(
    tmp_path: Path, rate: int, channels: int
) -> None:
    pcm = (bytes(range(256)) * (rate * channels // 128 + 1))[: rate * channels * 2]  # 1 s
    path = write_wav(tmp_path / "a.wav", pcm, rate, channels)
    with open_source(path) as source:
        assert source.format == AudioFormat(rate, channels)
        assert source.duration_s == pytest.approx(1.0)
        assert source.is_wav
        assert b"".join(source.chunks()) == pcm


def test_wave_format_extensible_pcm_is_taken(tmp_path: Path) -> None:
    pcm = bytes(range(256)) * 4
    # WAVE_FORMAT_EXTENSIBLE, 48 kHz stereo 16-bit, sub-format KSDATAFORMAT_SUBTYPE_PCM.
    fmt = struct.pack("<HHIIHH", 0xFFFE, 2, 48000, 192000, 4, 16)
    fmt += struct.pack("<HHI", 22, 16, 3) + struct.pack("<H", 1) + bytes(14)
    body = b"WAVEfmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(pcm)) + pcm
    path = tmp_path / "ext.wav"
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    with open_source(path) as source:
        assert source.format == AudioFormat(48000, 2)
    assert read_all(path) == pcm


def test_raw_pcm_is_8_khz_mono_unless_told(tmp_path: Path) -> None:
    path = tmp_path / "a.raw"
    path.write_bytes(bytes(64000))
    with open_source(path) as source:
        assert (source.format, source.duration_s, source.is_wav) == (AudioFormat(), 4.0, False)
    with open_source(path, raw_pcm_format(rate=16000, channels=2)) as source:
        assert (source.format, source.duration_s) == (AudioFormat(16000, 2), 1.0)


def test_raw_stereo_drops_a_partial_frame(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "odd.raw"
    path.write_bytes(bytes(range(1, 11)))  # 2 whole stereo frames and 2 bytes
    assert read_all(path, raw_pcm_format(channels=2)) == bytes(range(1, 9))
    assert "odd size (10 bytes); its last 2 byte(s) are not a whole stereo sample" in caplog.text


@pytest.mark.parametrize(
    ("rate", "channels", "message"),
    [
        (
            44000,
            None,
            "--rate: 44000 Hz is not a supported rate "
            "(8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000)",
        ),
        (None, 3, "--channels: 3 is not 1 (mono) or 2 (stereo)"),
        (None, 0, "--channels: 0 is not 1 (mono) or 2 (stereo)"),
    ],
)
def test_raw_format_options_are_checked(
    rate: int | None, channels: int | None, message: str
) -> None:
    with pytest.raises(UsageError) as caught:
        raw_pcm_format(rate, channels)
    assert str(caught.value) == message


def test_rate_and_channels_that_contradict_a_wav_are_refused(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "song.wav", bytes(400), 48000, 2)
    assert read_all(path, raw_pcm_format(48000, 2)) == bytes(400)  # agreeing is fine
    with pytest.raises(UsageError) as caught:
        open_source(path, raw_pcm_format(44100, 2))
    assert str(caught.value) == (
        f"{path}: is a 48000 Hz stereo 16-bit PCM WAV file; --rate, --channels and --format "
        "are only for raw PCM"
    )


def test_alaw_wav_is_decoded_as_g711_decodes_it(tmp_path: Path) -> None:
    alaw = bytes(range(256)) * 8
    fmt = struct.pack("<HHIIHH", 6, 1, 8000, 8000, 1, 8)
    body = b"WAVEfmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(alaw))
    path = tmp_path / "alaw.wav"
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body) + len(alaw)) + body + alaw)
    with open_source(path) as source:
        assert (source.origin.describe(), source.format) == (
            "8000 Hz mono A-law",
            AudioFormat(8000, 1),
        )
        assert b"".join(source.chunks()) == codec_for(Encoding.PCMA).decode(alaw, 1)


@pytest.mark.parametrize(
    ("sample", "data", "expected"),
    [
        ("s16be", struct.pack(">3h", 1, -2, 32767), struct.pack("<3h", 1, -2, 32767)),
        ("u8", bytes([0, 128, 255]), struct.pack("<3h", -32768, 0, 32512)),
        (
            "s32le",
            struct.pack("<3i", 1 << 16, -(3 << 15), 0x7FFFFFFF),
            struct.pack("<3h", 1, -1, 32767),
        ),
        ("f32le", struct.pack("<3f", 0.5, -1.0, 2.0), struct.pack("<3h", 16384, -32768, 32767)),
    ],
)
def test_raw_sample_formats_become_s16le(
    tmp_path: Path, sample: str, data: bytes, expected: bytes
) -> None:
    path = tmp_path / "a.pcm"
    path.write_bytes(data)
    assert read_all(path, raw_pcm_format(sample=sample)) == expected


def test_an_unknown_raw_format_names_the_flag() -> None:
    with pytest.raises(UsageError) as caught:
        raw_pcm_format(sample="s24le")
    assert str(caught.value) == "--format: 's24le' is not one of s16le, s16be, u8, s32le, f32le"


def test_flac_that_is_not_flac_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tune.flac"
    path.write_bytes(b"fLaC" + bytes(100))
    with pytest.raises(SourceError) as caught:
        open_source(path)
    assert str(caught.value).startswith(f"{path}: not an audio file (")
    assert "\n" not in str(caught.value)
