"""Interop the other way round: a real peer, ffmpeg's RTP receiver, takes what ``appliance send``
sends: every sample arrives bit-exact, and ffmpeg's own RTCP receiver reports do not upset the
sender."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
import wave
from pathlib import Path

import pytest
from audio_rig import test_signal
from cli_runner import run_appliance
from peers import wait_until_bound

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")

RATE, CHANNELS = 44100, 2
PAYLOAD_TYPE = 10
"""RFC 3551's static type for L16 44100 Hz stereo: what the sender picks for CD audio."""


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sdp(port: int) -> str:
    return (
        "v=0\no=- 0 0 IN IP4 127.0.0.1\ns=appliance send\nc=IN IP4 127.0.0.1\nt=0 0\n"
        f"m=audio {port} RTP/AVP {PAYLOAD_TYPE}\na=rtpmap:{PAYLOAD_TYPE} L16/{RATE}/{CHANNELS}\n"
    )


def test_ffmpeg_receives_a_cd_wav_sent_as_rtp_bit_exact(tmp_path: Path) -> None:
    pcm = test_signal(1.0, seed=48, rate=RATE, channels=CHANNELS)
    song = tmp_path / "song.wav"
    with wave.open(str(song), "wb") as wav:
        wav.setnchannels(CHANNELS)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(pcm)
    port = free_udp_port()
    (tmp_path / "stream.sdp").write_text(sdp(port))
    received = tmp_path / "received.raw"
    ffmpeg = subprocess.Popen(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-protocol_whitelist", "file,udp,rtp",
         "-i", str(tmp_path / "stream.sdp"), "-f", "s16le", "-y", str(received)],
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        wait_until_bound(ffmpeg, port)
        result = run_appliance("send", str(song), "--to", f"127.0.0.1:{port}", "--rtp")
        time.sleep(0.5)
        ffmpeg.send_signal(signal.SIGINT)  # it waits for more; what it has is written
        _, errors = ffmpeg.communicate(timeout=30)
    finally:
        ffmpeg.kill()
        ffmpeg.wait()
    assert result.returncode == 0, result.stderr
    # ffmpeg answers with its own RTCP receiver reports: heard, so no warning, and no
    # "listener played" line either (it says nothing of what it played).
    assert result.stderr.startswith(
        f"sent 1.00 s of 44100 Hz stereo audio over RTP (type {PAYLOAD_TYPE}) to 127.0.0.1:{port}"
        " in 50 packets over "
    )
    assert result.stderr.count("\n") == 1
    assert received.read_bytes() == pcm, errors
