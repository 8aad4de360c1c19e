"""Any audio file decoded by the sender (PyAV), compared with ffmpeg's own decoding of it.

Files are made in the test by ffmpeg (a test tool only: the product decodes with PyAV). The
reference is ffmpeg's command-line decoder of the same file, as 32-bit float at the file's
own rate, mixed to the channels sent by ffmpeg (the same libswresample matrix) and resampled
here with libsoxr in one go: lossless files must come out bit-exact, lossy ones as the same
decoder's output (correlation > 0.999), every one the same length to within one 20 ms packet.
"""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import soxr  # type: ignore[import-untyped]

from appliance.audio.format import AudioFormat
from appliance.sender.source import open_source

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")

SECONDS = 1.0
Floats = npt.NDArray[np.float64]


def music(rate: int, channels: int, seconds: float = SECONDS) -> Floats:
    """A different chord on every channel, with a little noise: ``(frames, channels)``."""
    t = np.arange(int(rate * seconds)) / rate
    rng = np.random.default_rng(rate + channels)
    columns = [
        0.25 * np.sin(2 * np.pi * (220 + 110 * c) * t)
        + 0.15 * np.sin(2 * np.pi * (660 + 50 * c) * t + c)
        + 0.01 * rng.standard_normal(t.size)
        for c in range(channels)
    ]
    return np.stack(columns, axis=1)


def write_s16_wav(path: Path, samples: Floats, rate: int) -> Path:
    pcm = np.clip(np.rint(samples * 32768), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(samples.shape[1])
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return path


def ffmpeg(*args: str) -> bytes:
    result = subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *args],
        capture_output=True,
        check=True,
        timeout=60,
    )
    return result.stdout


def encode(tmp_path: Path, name: str, rate: int, channels: int, *options: str) -> Path:
    source = write_s16_wav(tmp_path / "source.wav", music(rate, channels), rate)
    out = tmp_path / name
    ffmpeg("-i", str(source), *options, str(out))
    return out


def reference(path: Path, rate: int, channels: int) -> npt.NDArray[np.int16]:
    """ffmpeg's decoding of ``path`` at its own rate, mixed to ``channels``; soxr to ``rate``."""
    probe = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "a:0",
            "-show_entries",
            "stream=sample_rate",
            "-of",
            "csv=p=0",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    own_rate = int(probe.stdout.strip())
    raw = ffmpeg("-i", str(path), "-ac", str(channels), "-f", "f32le", "-")
    floats = np.frombuffer(raw, "<f4").reshape(-1, channels)
    if own_rate != rate:
        floats = soxr.resample(floats, own_rate, rate, quality="MQ")
    return np.clip(np.rint(floats * 32768.0), -32768, 32767).astype(np.int16).reshape(-1)


def sent(path: Path, fmt: AudioFormat) -> npt.NDArray[np.int16]:
    with open_source(path) as source:
        source.convert_to(fmt)
        return np.frombuffer(b"".join(source.chunks()), "<i2")


def assert_same_sound(
    got: npt.NDArray[np.int16], expected: npt.NDArray[np.int16], fmt: AudioFormat
) -> None:
    packet = fmt.packet_frames * fmt.channels
    assert abs(got.size - expected.size) <= packet, (got.size, expected.size)
    n = min(got.size, expected.size)
    correlation = np.corrcoef(got[:n].astype(float), expected[:n].astype(float))[0, 1]
    assert correlation > 0.999, correlation


CD = AudioFormat(44100, 2)


def test_flac_at_its_own_rate_is_bit_exact(tmp_path: Path) -> None:
    path = encode(tmp_path, "song.flac", 44100, 2)
    with open_source(path) as source:
        assert (source.origin.describe(), source.format) == ("44100 Hz stereo FLAC", CD)
    original = np.clip(np.rint(music(44100, 2) * 32768), -32768, 32767).astype(np.int16)
    assert np.array_equal(sent(path, CD), original.reshape(-1))


def test_flac_resampled_to_48k_is_soxrs_conversion(tmp_path: Path) -> None:
    path = encode(tmp_path, "song.flac", 44100, 2)
    fmt = AudioFormat(48000, 2)
    assert_same_sound(sent(path, fmt), reference(path, 48000, 2), fmt)


@pytest.mark.parametrize(
    ("name", "options", "rate", "channels", "kind"),
    [
        pytest.param("song.mp3", ("-c:a", "libmp3lame", "-b:a", "192k"), 44100, 2, "MP3", id="mp3"),
        pytest.param("song.m4a", ("-c:a", "aac", "-b:a", "192k"), 44100, 2, "AAC", id="aac-m4a"),
        pytest.param(
            "song.ogg", ("-c:a", "libvorbis", "-q:a", "6"), 44100, 2, "Vorbis", id="vorbis"
        ),
        pytest.param("song.opus", ("-c:a", "libopus", "-b:a", "128k"), 48000, 2, "Opus", id="opus"),
    ],
)
def test_lossy_files_are_the_decoders_output(
    tmp_path: Path, name: str, options: tuple[str, ...], rate: int, channels: int, kind: str
) -> None:
    path = encode(tmp_path, name, rate, channels, *options)
    with open_source(path) as source:
        assert source.origin.describe() == f"{rate} Hz stereo {kind}"
        assert source.format == AudioFormat(rate, channels)
        assert source.duration_s == pytest.approx(SECONDS, abs=0.1)
    fmt = AudioFormat(rate, channels)
    got = sent(path, fmt)
    expected = reference(path, rate, channels)
    assert_same_sound(got, expected, fmt)
    # And to the raw wire: the same decoding, mixed to mono and resampled to 8 kHz.
    raw = AudioFormat(8000, 1)
    assert_same_sound(sent(path, raw), reference(path, 8000, 1), raw)


def test_24_bit_wav_at_44k1_is_rounded_to_16_bits(tmp_path: Path) -> None:
    path = encode(tmp_path, "hi.wav", 44100, 2, "-c:a", "pcm_s24le")
    with open_source(path) as source:
        assert (source.origin.describe(), source.format) == ("44100 Hz stereo 24-bit PCM WAV", CD)
    assert np.array_equal(sent(path, CD), reference(path, 44100, 2))
    fmt = AudioFormat(48000, 2)
    assert_same_sound(sent(path, fmt), reference(path, 48000, 2), fmt)


def test_float_wav_with_3_channels_is_mixed_to_stereo(tmp_path: Path) -> None:
    path = encode(tmp_path, "three.wav", 44100, 3, "-c:a", "pcm_f32le")
    with open_source(path) as source:
        assert source.origin.describe() == "44100 Hz 3-channel 32-bit float WAV"
        assert source.format == CD
    got = sent(path, CD)
    expected = reference(path, 44100, 2)
    assert got.size == expected.size
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1  # float rounding only


def test_aiff_at_22k05_mono(tmp_path: Path) -> None:
    path = encode(tmp_path, "voice.aiff", 22050, 1)
    with open_source(path) as source:
        assert (source.origin.describe(), source.format) == (
            "22050 Hz mono 16-bit PCM AIFF",
            AudioFormat(22050, 1),
        )
    original = np.clip(np.rint(music(22050, 1) * 32768), -32768, 32767).astype(np.int16)
    assert np.array_equal(sent(path, AudioFormat(22050, 1)), original.reshape(-1))


def test_96_khz_flac_goes_down_to_48k(tmp_path: Path) -> None:
    path = encode(tmp_path, "hires.flac", 96000, 2)
    with open_source(path) as source:
        assert (source.origin.describe(), source.format) == (
            "96000 Hz stereo FLAC",
            AudioFormat(48000, 2),
        )
    fmt = AudioFormat(48000, 2)
    assert_same_sound(sent(path, fmt), reference(path, 48000, 2), fmt)
