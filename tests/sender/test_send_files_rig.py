"""``appliance send`` of real files and pipes, played by a real ``appliance listen`` into the
audio rig (a private PulseAudio null sink at the stream's rate and channels), compared sample
for sample with what was sent. UDP and mDNS on 127.0.0.1 only."""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from audio_rig import assert_played, test_signal
from cli_runner import listening_once, run_appliance
from conftest import AudioSinkFactory
from test_decode import encode, music

from appliance.audio.format import Encoding
from appliance.sender.source import open_source
from appliance.wire.codecs import codec_for

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")


def decoded(path: Path) -> bytes:
    """What the sender sends for ``path`` at the file's own format (compared with ffmpeg's
    decoding in test_decode.py)."""
    with open_source(path) as source:
        return b"".join(source.chunks())


def send_by_name(tmp_path: Path, *send_args: str, stdin: bytes | None = None) -> tuple[str, str]:
    """Run a listener (advertised on loopback) and ``appliance send ... --to NAME`` to it;
    returns the sender's stderr and the listener's log."""
    name = f"files-{os.getpid()}-{len(list(tmp_path.iterdir()))}"
    with listening_once("--port", "0", "--name", name, ready_line="advertising") as listener:
        result = run_appliance(
            "send", *send_args, "--to", name, "--interface", "127.0.0.1", input=stdin
        )
    assert result.returncode == 0, result.stderr
    assert listener.returncode == 0, listener.log
    return result.stderr, listener.log


@pytest.mark.audio
def test_a_cd_flac_plays_bit_exact_on_type_10(
    tmp_path: Path, audio_sink_at: AudioSinkFactory
) -> None:
    path = encode(tmp_path, "song.flac", 44100, 2)
    original = np.clip(np.rint(music(44100, 2) * 32768), -32768, 32767).astype("<i2").tobytes()
    sink = audio_sink_at(rate=44100, channels=2)
    sink.start_recording()
    stderr, log = send_by_name(tmp_path, str(path))
    assert stderr.splitlines()[0] == f"{path}: 44100 Hz stereo FLAC, sent as L16 44100 Hz stereo"
    assert "ended (RTCP BYE): RTP type 10, 44100 Hz stereo s16be" in log
    assert_played(sink.stop_recording(), original)


@pytest.mark.audio
def test_an_mp3_plays_as_decoded(tmp_path: Path, audio_sink_at: AudioSinkFactory) -> None:
    path = encode(tmp_path, "song.mp3", 44100, 2, "-c:a", "libmp3lame", "-b:a", "192k")
    sink = audio_sink_at(rate=44100, channels=2)
    sink.start_recording()
    stderr, log = send_by_name(tmp_path, str(path))
    assert stderr.splitlines()[0] == f"{path}: 44100 Hz stereo MP3, sent as L16 44100 Hz stereo"
    assert "RTP type 10, 44100 Hz stereo" in log
    assert_played(sink.stop_recording(), decoded(path))


@pytest.mark.audio
def test_a_96_khz_flac_plays_at_48_khz(tmp_path: Path, audio_sink_at: AudioSinkFactory) -> None:
    path = encode(tmp_path, "hires.flac", 96000, 2)
    sink = audio_sink_at(rate=48000, channels=2)
    sink.start_recording()
    stderr, log = send_by_name(tmp_path, str(path))
    assert stderr.splitlines()[0] == f"{path}: 96000 Hz stereo FLAC, sent as L16 48000 Hz stereo"
    assert "RTP type 127, 48000 Hz stereo" in log
    with open_source(path) as source:
        assert source.format.rate == 48000
        expected = b"".join(source.chunks())
    assert_played(sink.stop_recording(), expected)


def piped_wav(pcm: bytes, rate: int, channels: int, data_size: int = 0xFFFFFFFF) -> bytes:
    """A WAV as a streaming writer pipes it: sizes unknown (ffmpeg's 0xFFFFFFFF, espeak-ng's
    0x7FFFF000)."""
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * channels * 2, channels * 2, 16)
    return (
        b"RIFF" + struct.pack("<I", data_size) + b"WAVE"
        + b"fmt " + struct.pack("<I", len(fmt)) + fmt
        + b"data" + struct.pack("<I", data_size) + pcm
    )  # fmt: skip


@pytest.mark.audio
def test_a_wav_on_stdin_plays_at_its_own_rate(
    tmp_path: Path, audio_sink_at: AudioSinkFactory
) -> None:
    pcm = test_signal(1.0, seed=22050, rate=22050)
    sink = audio_sink_at(rate=22050, channels=1)
    sink.start_recording()
    stderr, log = send_by_name(tmp_path, "-", stdin=piped_wav(pcm, 22050, 1))
    assert stderr.startswith("sent 1.00 s of 22050 Hz mono audio over RTP (type 118)"), stderr
    assert "RTP type 118, 22050 Hz mono s16be, 50 packets, 44100 bytes" in log
    assert_played(sink.stop_recording(), pcm)


@pytest.mark.parametrize("data_size", [0xFFFFFFFF, 0x7FFFF000, 0])
def test_a_piped_wav_header_is_read_not_played(data_size: int) -> None:
    pcm = test_signal(0.1, seed=1, rate=16000)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(30)
        port = receiver.getsockname()[1]
        result = run_appliance(
            "send", "-", "--rtp", "-q", "--to", f"127.0.0.1:{port}",
            input=piped_wav(pcm, 16000, 1, data_size),
        )  # fmt: skip
        assert (result.returncode, result.stderr) == (0, "")
        payloads: list[bytes] = []
        while len(payloads) < 5:
            payloads.append(receiver.recv(65536)[12:])  # RTP header: 12 bytes, no CSRC
    l16 = codec_for(Encoding.S16BE)
    assert b"".join(l16.decode(p, 1) for p in payloads) == pcm


def test_a_24_bit_wav_on_stdin_is_decoded(tmp_path: Path) -> None:
    path = encode(tmp_path, "hi.wav", 16000, 1, "-c:a", "pcm_s24le")
    piped = subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(path), "-c:a", "pcm_s24le",
         "-f", "wav", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))  # a closed port would fail the send (unreachable)
        port = receiver.getsockname()[1]
        result = run_appliance("send", "-", "--to", f"127.0.0.1:{port}", "--rtp", input=piped)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[0] == (
        "standard input: 16000 Hz mono 24-bit PCM WAV, sent as L16 16000 Hz mono"
    )
    assert result.stderr.splitlines()[-1].startswith("sent 1.00 s of 16000 Hz mono audio")
