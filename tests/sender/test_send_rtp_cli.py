"""``appliance send`` over RTP as a user meets it: real subprocesses, UDP and zeroconf on
127.0.0.1 only; the listener's output is a WAV file, compared sample for sample."""

from __future__ import annotations

import os
import socket
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from audio_rig import assert_played, test_signal
from cli_runner import listening_once, run_appliance

from appliance.audio.format import Encoding
from appliance.wire import rtcp
from appliance.wire.codecs import codec_for
from appliance.wire.rtp import RtpPacket

RECEIVE_TIMEOUT_S = 30.0


def write_wav(path: Path, pcm: bytes, rate: int, channels: int, width: int = 2) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(width)
        out.setframerate(rate)
        out.writeframes(pcm)
    return path


def wav_contents(path: Path) -> tuple[int, int, bytes]:
    with wave.open(str(path)) as wav:
        return wav.getframerate(), wav.getnchannels(), wav.readframes(wav.getnframes())


def stereo_48k(seconds: float, seed: int) -> bytes:
    """Non-zero 16-bit samples (see audio_rig.test_signal), as many as 48 kHz stereo needs."""
    return test_signal(seconds * 48000 * 2 / 8000, seed)


@pytest.fixture
def receiver() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(RECEIVE_TIMEOUT_S)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        yield sock


def receive_until_bye(sock: socket.socket) -> tuple[list[RtpPacket], int]:
    media: list[RtpPacket] = []
    byes = 0
    while byes < 2:
        data = sock.recv(65536)
        if rtcp.is_rtcp(data):
            byes += 1
        else:
            media.append(RtpPacket.parse(data))
    return media, byes


def test_help_explains_the_wires() -> None:
    result = run_appliance("send", "--help")
    assert result.returncode == 0
    words = " ".join(result.stdout.split())
    for text in (
        "[--rtp | --raw]",
        "--rate HZ",
        "--channels N",
        "ended by an RTCP BYE",
        "FILE is any audio file: MP3, AAC/M4A, FLAC, Ogg Vorbis or Opus, WAV or AIFF",
        "(8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000 Hz)",
        "--format FMT",
        "built-in L16 table (112-127)",
    ):
        assert text in words


def test_48_khz_stereo_to_an_address_is_sent_as_8_khz_mono_saying_so(
    tmp_path: Path, receiver: socket.socket
) -> None:
    wav = write_wav(tmp_path / "song.wav", stereo_48k(0.2, seed=20), 48000, 2)
    port = receiver.getsockname()[1]
    result = run_appliance("send", str(wav), "--to", f"127.0.0.1:{port}")
    assert result.returncode == 0, result.stderr
    first, second = result.stderr.splitlines()
    assert first == (
        f"{wav}: 48000 Hz stereo 16-bit PCM WAV, sent as raw 8000 Hz mono (the raw wire's "
        "only format: --to NAME or --rtp for better)"
    )
    assert second.startswith(f"sent 0.20 s of audio to 127.0.0.1:{port} in 10 packets")
    sizes = []
    while datagram := receiver.recv(65536):
        sizes.append(len(datagram))
    assert sizes == [320] * 10


def test_an_unsupported_rate_for_raw_input_is_one_line(tmp_path: Path) -> None:
    result = run_appliance("send", "-", "--rate", "44000", "--to", "127.0.0.1:9", input=b"")
    assert (result.returncode, result.stderr) == (
        2,
        "appliance send: error: --rate: 44000 Hz is not a supported rate "
        "(8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000)\n",
    )


def test_a_24_bit_wav_is_sent_rounded_to_16_bits(tmp_path: Path, receiver: socket.socket) -> None:
    rng = np.random.default_rng(24)
    samples = rng.integers(-(1 << 23), 1 << 23, size=9600, dtype=np.int32)  # 0.1 s stereo
    packed = samples.astype("<i4").tobytes()
    pcm24 = b"".join(packed[i + 1 : i + 4] for i in range(0, len(packed), 4))  # top 3 bytes
    samples = (samples >> 8) << 8  # what those 3 bytes hold
    wav = write_wav(tmp_path / "hi.wav", pcm24, 48000, 2, width=3)
    port = receiver.getsockname()[1]
    result = run_appliance("send", str(wav), "--to", f"127.0.0.1:{port}", "--rtp")
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[0] == (
        f"{wav}: 48000 Hz stereo 24-bit PCM WAV, sent as L16 48000 Hz stereo"
    )
    media, _ = receive_until_bye(receiver)
    l16 = codec_for(Encoding.S16BE)
    got = np.frombuffer(b"".join(l16.decode(p.payload, 2) for p in media), "<i2")
    expected = np.clip(np.rint(samples / 65536), -32768, 32767).astype("<i2")
    assert np.array_equal(got, expected)


def test_rtp_and_raw_exclude_each_other(tmp_path: Path) -> None:
    result = run_appliance("send", "-", "--rtp", "--raw", "--to", "127.0.0.1:9")
    assert result.returncode == 2
    assert "argument --raw: not allowed with argument --rtp" in result.stderr


def test_rtp_forced_to_an_address(tmp_path: Path, receiver: socket.socket) -> None:
    sent = stereo_48k(0.2, seed=21)
    wav = write_wav(tmp_path / "song.wav", sent, 48000, 2)
    port = receiver.getsockname()[1]
    result = run_appliance("send", str(wav), "--to", f"127.0.0.1:{port}", "--rtp")
    assert result.returncode == 0, result.stderr
    media, byes = receive_until_bye(receiver)
    assert result.stderr.startswith(
        f"sent 0.20 s of 48000 Hz stereo audio over RTP (type 127) to 127.0.0.1:{port} in "
        "10 packets over "
    )
    assert {p.payload_type for p in media} == {127}
    l16 = codec_for(Encoding.S16BE)
    assert b"".join(l16.decode(p.payload, 2) for p in media) == sent
    assert byes == 2


def test_raw_stdin_with_rate_and_channels_over_rtp(receiver: socket.socket) -> None:
    sent = test_signal(0.1 * 16000 * 2 / 8000, seed=22)  # 0.1 s of 16 kHz stereo
    port = receiver.getsockname()[1]
    result = run_appliance(
        "send",
        "-",
        "--rate",
        "16000",
        "--channels",
        "2",
        "--rtp",
        "-q",
        "--to",
        f"127.0.0.1:{port}",
        input=sent,
    )
    assert (result.returncode, result.stderr) == (0, "")
    media, _ = receive_until_bye(receiver)
    assert {p.payload_type for p in media} == {117}
    assert [len(p.payload) for p in media] == [1280] * 5


@pytest.mark.parametrize(
    ("listen_options", "payload_type"),
    [
        pytest.param((), 127, id="built-in-table"),
        pytest.param(("--payload-map", "96=L16/48000/2"), 96, id="user-map"),
    ],
)
def test_send_a_48_khz_stereo_wav_by_name_and_it_plays(
    tmp_path: Path, listen_options: tuple[str, ...], payload_type: int
) -> None:
    sent = stereo_48k(1.0, seed=23 + payload_type)
    wav = write_wav(tmp_path / "song.wav", sent, 48000, 2)
    played = tmp_path / "played.wav"
    name = f"rtp-cli-{os.getpid()}-{payload_type}"
    with listening_once(
        "--port",
        "0",
        "--name",
        name,
        "--output-file",
        str(played),
        *listen_options,
        ready_line="advertising",
    ) as listener:
        result = run_appliance("send", str(wav), "--to", name, "--interface", "127.0.0.1")
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith(
        f"sent 1.00 s of 48000 Hz stereo audio over RTP (type {payload_type}) to {name} (127.0.0.1:"
    ), result.stderr
    assert " in 50 packets over " in result.stderr
    assert listener.returncode == 0, listener.log
    assert f"ended (RTCP BYE): RTP type {payload_type}, 48000 Hz stereo" in listener.log
    rate, channels, frames = wav_contents(played)
    assert (rate, channels) == (48000, 2)
    assert_played(frames, sent)
