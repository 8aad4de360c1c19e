import struct
import wave
from pathlib import Path

import pytest

from appliance.errors import SourceError
from appliance.sender.source import open_source


def write_wav(path: Path, pcm: bytes, rate: int = 8000, channels: int = 1, width: int = 2) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    return path


def read_all(spec: str | Path) -> bytes:
    with open_source(spec) as source:
        return b"".join(source.chunks())


PCM = bytes(range(256)) * 500  # 128000 bytes: 8 s, more than one read


def test_raw_file_is_sent_as_is(tmp_path: Path) -> None:
    path = tmp_path / "speech.raw"
    path.write_bytes(PCM)
    with open_source(path) as source:
        assert (source.total_bytes, source.duration_s) == (len(PCM), 8.0)
    assert read_all(path) == PCM


def test_wav_in_our_format_yields_only_its_samples(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "speech.wav", PCM)
    with open_source(path) as source:
        assert source.total_bytes == len(PCM)
    assert read_all(path) == PCM


def test_wav_with_extra_chunks_and_streaming_size(tmp_path: Path) -> None:
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 16)
    body = (
        b"WAVE"
        + b"LIST"
        + struct.pack("<I", 3)
        + b"abc\0"  # odd-sized chunk with its pad byte
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", 0xFFFFFFFF)
        + PCM[:1000]
    )
    path = tmp_path / "piped.wav"
    path.write_bytes(b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + body)
    assert read_all(path) == PCM[:1000]


ACCEPTED = (
    "16-bit PCM, mono or stereo, at 8000, 11025, 16000, 22050, 24000, 32000, 44100 or 48000 Hz"
)


@pytest.mark.parametrize(
    ("rate", "channels", "width", "described", "options"),
    [
        (8000, 1, 1, "8000 Hz, 8-bit, mono PCM", ""),
        (48000, 2, 3, "48000 Hz, 24-bit, stereo PCM", ""),
        (44100, 2, 4, "44100 Hz, 32-bit, stereo PCM", ""),
        (96000, 2, 2, "96000 Hz, 16-bit, stereo PCM", "-ar 48000 "),
        (88200, 1, 2, "88200 Hz, 16-bit, mono PCM", "-ar 44100 "),
        (12000, 1, 2, "12000 Hz, 16-bit, mono PCM", "-ar 16000 "),
        (48000, 6, 2, "48000 Hz, 16-bit, 6-channel PCM", "-ac 2 "),
    ],
)
def test_wav_in_another_format_is_refused_naming_both_formats(
    tmp_path: Path, rate: int, channels: int, width: int, described: str, options: str
) -> None:
    path = write_wav(tmp_path / "song.wav", bytes(100 * channels * width), rate, channels, width)
    with pytest.raises(SourceError) as caught:
        open_source(path)
    assert str(caught.value) == (
        f"{path}: WAV is {described}; the appliance sends {ACCEPTED}. "
        f"Convert with: ffmpeg -i {path} {options}-c:a pcm_s16le song-s16.wav"
    )


def test_float_wav_is_refused(tmp_path: Path) -> None:
    fmt = struct.pack("<HHIIHH", 3, 1, 8000, 32000, 4, 32)
    path = tmp_path / "float.wav"
    path.write_bytes(
        b"RIFF"
        + struct.pack("<I", 36)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", 0)
    )
    with pytest.raises(SourceError, match="WAV is 8000 Hz, 32-bit, mono floating-point;"):
        open_source(path)


def test_missing_file_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as caught:
        open_source(tmp_path / "nope.raw")
    assert str(caught.value) == f"{tmp_path / 'nope.raw'}: no such file"


def test_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as caught:
        open_source(tmp_path)
    assert str(caught.value) == f"{tmp_path}: is a directory, not an audio file"


def test_mp3_is_recognised_and_refused(tmp_path: Path) -> None:
    path = tmp_path / "song.mp3"
    path.write_bytes(b"ID3\x04\x00" + bytes(100))
    with pytest.raises(SourceError) as caught:
        open_source(path)
    assert str(caught.value) == (
        f"{path}: looks like an MP3 file; send raw PCM or a WAV file ({ACCEPTED}). "
        f"Convert with: ffmpeg -i {path} -ar 44100 -ac 2 -c:a pcm_s16le song-s16.wav"
    )


def test_truncated_wav_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cut.wav"
    path.write_bytes(b"RIFF" + struct.pack("<I", 100) + b"WAVEfmt " + struct.pack("<I", 16))
    with pytest.raises(SourceError) as caught:
        open_source(path)
    assert str(caught.value) == f"{path}: WAV format chunk is truncated"


def test_odd_sized_raw_file_drops_only_the_stray_byte(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "odd.raw"
    path.write_bytes(PCM[:1001])
    assert read_all(path) == PCM[:1000]
    assert "odd size (1001 bytes)" in caplog.text
