import struct
import wave
from pathlib import Path

import numpy as np
import pytest

from appliance.audio.format import AudioFormat
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


@pytest.mark.parametrize(
    ("rate", "channels", "width", "origin", "sent"),
    [
        (8000, 1, 1, "8000 Hz mono 8-bit PCM WAV", AudioFormat(8000, 1)),
        (48000, 2, 3, "48000 Hz stereo 24-bit PCM WAV", AudioFormat(48000, 2)),
        (44100, 2, 4, "44100 Hz stereo 32-bit PCM WAV", AudioFormat(44100, 2)),
        (96000, 2, 2, "96000 Hz stereo 16-bit PCM WAV", AudioFormat(48000, 2)),
        (88200, 1, 2, "88200 Hz mono 16-bit PCM WAV", AudioFormat(48000, 1)),
        (12000, 1, 2, "12000 Hz mono 16-bit PCM WAV", AudioFormat(16000, 1)),
        (48000, 6, 2, "48000 Hz 6-channel 16-bit PCM WAV", AudioFormat(48000, 2)),
    ],
)
def test_wav_in_another_format_is_decoded_to_the_best_it_can_be_sent_as(
    tmp_path: Path, rate: int, channels: int, width: int, origin: str, sent: AudioFormat
) -> None:
    frames = rate // 10  # 0.1 s
    pcm = (bytes(range(256)) * (frames * channels * width // 256 + 1))[: frames * channels * width]
    path = write_wav(tmp_path / "song.wav", pcm, rate, channels, width)
    with open_source(path) as source:
        assert (source.origin.describe(), source.format) == (origin, sent)
        assert source.duration_s == pytest.approx(0.1, abs=0.001)
        assert source.converted
        pcm = b"".join(source.chunks())
    assert abs(len(pcm) // sent.frame_bytes - sent.rate // 10) <= 1


def test_float_wav_is_decoded(tmp_path: Path) -> None:
    samples = np.array([0.5, -0.25, 1.5, -1.0], dtype="<f4")  # 1.5 clips
    fmt = struct.pack("<HHIIHH", 3, 1, 8000, 32000, 4, 32)
    data = samples.tobytes()
    path = tmp_path / "float.wav"
    path.write_bytes(
        b"RIFF"
        + struct.pack("<I", 36 + len(data))
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", len(data))
        + data
    )
    with open_source(path) as source:
        assert source.origin.describe() == "8000 Hz mono 32-bit float WAV"
        assert b"".join(source.chunks()) == struct.pack("<4h", 16384, -8192, 32767, -32768)


def test_missing_file_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as caught:
        open_source(tmp_path / "nope.raw")
    assert str(caught.value) == f"{tmp_path / 'nope.raw'}: no such file"


def test_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as caught:
        open_source(tmp_path)
    assert str(caught.value) == f"{tmp_path}: is a directory, not an audio file"


def test_an_mp3_with_nothing_in_it_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "song.mp3"
    path.write_bytes(b"ID3\x04\x00" + bytes(100))
    with pytest.raises(SourceError) as caught:
        open_source(path)
    assert str(caught.value) == (
        f"{path}: not an audio file (Invalid data found when processing input); raw PCM "
        "must be named .raw or .pcm, or sent with --rate/--channels"
    )


def test_a_wav_of_no_samples_is_refused(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "empty.wav", b"")
    with pytest.raises(SourceError) as caught:
        open_source(path)
    assert str(caught.value) == f"{path}: has no audio (8000 Hz mono 16-bit PCM WAV, 0 samples)"


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
