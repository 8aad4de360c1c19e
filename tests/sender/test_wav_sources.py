"""Sources in every format the sender takes: 16-bit WAV at any supported rate, mono or
stereo; raw PCM with --rate/--channels; and the one-line errors for the rest."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import pytest

from appliance.audio.format import SUPPORTED_RATES, AudioFormat
from appliance.errors import SourceError, UsageError
from appliance.sender.source import open_source, raw_pcm_format


def write_wav(path: Path, pcm: bytes, rate: int, channels: int, width: int = 2) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    return path


def read_all(spec: str | Path, raw_format: AudioFormat | None = None) -> bytes:
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
        f"{path}: is a 48000 Hz stereo WAV file; --rate and --channels are only for raw PCM"
    )


def test_alaw_wav_is_refused_with_a_hint(tmp_path: Path) -> None:
    fmt = struct.pack("<HHIIHH", 6, 1, 8000, 8000, 1, 8)
    body = b"WAVEfmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", 0)
    path = tmp_path / "alaw.wav"
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    with pytest.raises(SourceError) as caught:
        open_source(path)
    assert str(caught.value).startswith(f"{path}: WAV is 8000 Hz, 8-bit, mono A-law; ")
    assert str(caught.value).endswith(f"Convert with: ffmpeg -i {path} -c:a pcm_s16le alaw-s16.wav")


def test_flac_is_refused_with_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "tune.flac"
    path.write_bytes(b"fLaC" + bytes(100))
    with pytest.raises(SourceError) as caught:
        open_source(path)
    assert str(caught.value).startswith(f"{path}: looks like a FLAC file; send raw PCM or a WAV")
    assert "\n" not in str(caught.value)
