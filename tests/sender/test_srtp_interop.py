"""SRTP between real peers: our sender, ffmpeg's ``srtp://`` output and GStreamer's ``srtpenc``
into a keyed listener (UDP on 127.0.0.1, PyAudio into the PulseAudio null sink), our sender
into GStreamer's ``srtpdec``, and the command line's refusals around keys."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import time
import wave
from pathlib import Path

import peers
import pytest
from audio_rig import AudioSink, assert_played, test_signal, without_concealed_tail
from cli_runner import listening_once, run_appliance
from listener_fixtures import ListenerFactory

from appliance.audio.format import AudioFormat, Encoding
from appliance.discovery import ResolvedDestination
from appliance.discovery.records import AUTH_SRTP, ListenerProperties, ListenerRecord
from appliance.errors import UsageError
from appliance.listener.session import EndReason
from appliance.sender.packetizer import RtpStream
from appliance.sender.sender import RAW_WITH_KEY, Sender, Target
from appliance.sender.targets import check_keys
from appliance.wire import Wire
from appliance.wire.raw import frame_pcm
from appliance.wire.srtp import KEY_BYTES, SUITE, gstreamer_caps_key

KEY = bytes(range(21, 21 + KEY_BYTES))
PLAY_TIMEOUT_S = 60
PCM_8K_MONO = AudioFormat(8000, 1, Encoding.S16LE)


def write_key(tmp_path: Path, key: bytes = KEY) -> Path:
    path = tmp_path / "stream.key"
    path.write_text(base64.b64encode(key).decode() + "\n")
    path.chmod(0o600)
    return path


@pytest.mark.audio
def test_our_sender_with_the_key_plays_bit_exact_and_hears_the_listener(
    audio_sink: AudioSink, make_listener: ListenerFactory, tmp_path: Path
) -> None:
    sent = test_signal(seconds=2.0, seed=41)
    listener = make_listener(key_file=write_key(tmp_path), timeout_s=2.0)
    audio_sink.start_recording()
    listener.start()
    target = Target(("127.0.0.1", listener.port), "keyed", required=True)
    with Sender(targets=[target], listen=True, key=KEY) as sender:
        report = sender.send(RtpStream([sent], PCM_8K_MONO, payload_type=97))
    assert listener.wait_session_played(timeout=PLAY_TIMEOUT_S)
    assert_played(audio_sink.stop_recording(), sent)
    [session] = listener.sessions
    assert (session.wire, session.end_reason, session.audio_bytes) == (
        Wire.RTP, EndReason.BYE, len(sent),
    )
    assert listener.unauthenticated == 0
    # The listener's SRTCP replies were read with the key: its stopped report came back.
    [state] = report.targets
    assert state.failure is None and state.final is not None
    assert state.played_line(report.audio_format, rtp=True) == (
        "listener played 2.00 s of 2.00 s sent; 0 lost"
    )


def test_our_sender_refuses_the_raw_wire_with_a_key() -> None:
    with Sender(("127.0.0.1", 9), key=KEY) as sender, pytest.raises(UsageError) as caught:
        sender.send(frame_pcm([bytes(320)]))
    assert str(caught.value) == RAW_WITH_KEY


@pytest.mark.audio
def test_ffmpeg_srtp_output_plays_bit_exact(
    audio_sink: AudioSink, make_listener: ListenerFactory, tmp_path: Path
) -> None:
    sent = test_signal(seconds=2.0, seed=42)
    listener = make_listener(key_file=write_key(tmp_path), timeout_s=1.0)
    audio_sink.start_recording()
    listener.start()
    source = tmp_path / "source.raw"
    source.write_bytes(sent)
    port = listener.port
    peers.ffmpeg(
        "-re", "-f", "s16le", "-ar", "8000", "-ac", "1", "-i", str(source), "-c:a", "pcm_s16be",
        "-rtpflags", "send_bye", "-f", "rtp", "-srtp_out_suite", SUITE,
        "-srtp_out_params", base64.b64encode(KEY).decode(),
        f"srtp://127.0.0.1:{port}?rtcpport={port}",
    )
    assert listener.wait_session_played(timeout=PLAY_TIMEOUT_S)
    assert_played(audio_sink.stop_recording(), sent)
    [session] = listener.sessions
    assert (session.wire, session.payload_type, session.end_reason) == (
        Wire.RTP, 97, EndReason.BYE,
    )
    assert (session.audio_bytes, session.invalid, listener.unauthenticated) == (len(sent), 0, 0)


@pytest.mark.audio
def test_gstreamer_srtpenc_plays_bit_exact(
    audio_sink: AudioSink, make_listener: ListenerFactory, tmp_path: Path
) -> None:
    peers.need("gst-launch-1.0")
    if subprocess.run(["gst-inspect-1.0", "srtpenc"], capture_output=True).returncode != 0:
        pytest.skip("GStreamer's srtpenc is missing: apt-get install gstreamer1.0-plugins-bad")
    sent = test_signal(seconds=2.0, seed=43)
    listener = make_listener(key_file=write_key(tmp_path), timeout_s=1.0)
    audio_sink.start_recording()
    listener.start()
    source = tmp_path / "source.raw"
    source.write_bytes(sent)
    peers.run([
        "gst-launch-1.0", "-q", "filesrc", f"location={source}", "!", "rawaudioparse",
        "format=pcm", "pcm-format=s16le", "sample-rate=8000", "num-channels=1", "!",
        "audioconvert", "!", "audio/x-raw,format=S16BE", "!", "rtpL16pay", "!",
        "srtpenc", f"key={KEY.hex()}", "rtp-cipher=aes-128-icm", "rtp-auth=hmac-sha1-80",
        "rtcp-cipher=aes-128-icm", "rtcp-auth=hmac-sha1-80", "!",
        "udpsink", "host=127.0.0.1", f"port={listener.port}", "sync=true",
    ])
    assert listener.wait_session_played(timeout=PLAY_TIMEOUT_S)
    # GStreamer sends no BYE: the session times out, its end looked late and was concealed.
    assert_played(without_concealed_tail(audio_sink.stop_recording(), sent), sent)
    [session] = listener.sessions
    assert (session.wire, session.payload_type, session.end_reason) == (
        Wire.RTP, 96, EndReason.TIMEOUT,
    )
    assert (session.audio_bytes, session.invalid, listener.unauthenticated) == (len(sent), 0, 0)


def test_gstreamer_srtpdec_receives_our_sender_bit_exact(tmp_path: Path) -> None:
    peers.need("gst-launch-1.0")
    if subprocess.run(["gst-inspect-1.0", "srtpdec"], capture_output=True).returncode != 0:
        pytest.skip("GStreamer's srtpdec is missing: apt-get install gstreamer1.0-plugins-bad")
    sent = test_signal(seconds=1.0, seed=44)
    out = tmp_path / "received.raw"
    port = free_udp_port()
    ssrc = 0x1234ABCD
    caps = (
        f"application/x-srtp,media=audio,clock-rate=8000,encoding-name=L16,channels=1,"
        f"payload=97,ssrc=(uint){ssrc},srtp-key={gstreamer_caps_key(KEY)},"
        "srtp-cipher=aes-128-icm,srtp-auth=hmac-sha1-80,"
        "srtcp-cipher=aes-128-icm,srtcp-auth=hmac-sha1-80"
    )
    # Our sender's SRTCP (its BYE, its reports) comes on the same port: srtpdec passes it out
    # of rtcp_src, which must lead somewhere, or the pipeline can stop "not-linked" on it and
    # lose what its filesink had not written yet (one run in five here, empty files).
    receiver = peers.GstReceiver(
        [
            "udpsrc", "address=127.0.0.1", f"port={port}", "timeout=3000000000",
            f"caps={caps}", "!", "srtpdec", "name=dec", "!", "rtpjitterbuffer", "latency=100",
            "!", "rtpL16depay", "!", "filesink", f"location={out}",
            "dec.rtcp_src", "!", "fakesink", "async=false",
        ]
    )  # fmt: skip
    try:
        receiver.wait_playing(port)
        with Sender(("127.0.0.1", port), key=KEY) as sender:
            sender.send(RtpStream([sent], PCM_8K_MONO, payload_type=97, ssrc=ssrc))
        time.sleep(1.0)  # the jitter buffer's 100 ms, and the file written
    finally:
        receiver.stop()
    received = out.read_bytes()
    # rtpL16depay gives big-endian samples.
    as_little = b"".join(received[i : i + 2][::-1] for i in range(0, len(received), 2))
    assert as_little == sent, "\n".join(receiver.lines)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def named(auth: str | None) -> ResolvedDestination:
    record = ListenerRecord(
        "kitchen", "pi.local.", ("127.0.0.1",), 5005, ListenerProperties(auth=auth)
    )
    return ResolvedDestination("127.0.0.1", 5005, record)


def test_keys_and_named_listeners_must_agree() -> None:
    check_keys([named(AUTH_SRTP)], has_key=True)
    check_keys([named(None)], has_key=False)
    check_keys([ResolvedDestination("127.0.0.1", 5005)], has_key=True)  # an address: trusted
    with pytest.raises(UsageError) as caught:
        check_keys([named(AUTH_SRTP)], has_key=False)
    assert str(caught.value) == (
        "kitchen (127.0.0.1:5005) plays only authenticated streams: give its key with "
        "--key-file FILE"
    )
    with pytest.raises(UsageError) as caught:
        check_keys([named(None)], has_key=True)
    assert str(caught.value) == (
        "kitchen (127.0.0.1:5005) takes no key (it plays anyone's stream): send without "
        "--key-file"
    )


def test_the_command_line_says_what_is_wrong_with_a_key(tmp_path: Path) -> None:
    key = write_key(tmp_path)
    audio = tmp_path / "a.raw"
    audio.write_bytes(bytes(3200))
    done = run_appliance("send", str(audio), "--to", "127.0.0.1", "--raw", "--key-file", str(key))
    assert (done.returncode, done.stderr.strip()) == (
        2, f"appliance send: error: --raw with --key-file: {RAW_WITH_KEY}",
    )
    key.chmod(0o640)
    done = run_appliance("send", str(audio), "--to", "127.0.0.1", "--key-file", str(key))
    assert (done.returncode, done.stderr.strip()) == (
        2,
        f"appliance send: error: key file {key} is open to group or others (mode 0640): "
        f"chmod 600 {key}",
    )
    done = run_appliance(
        "listen", "--no-mdns", "--key-file", str(key), "--bind", "127.0.0.1", "--port", "0",
        "--no-gpio", "--output-file", str(tmp_path / "o.wav"),
    )
    assert (done.returncode, done.stderr.strip().splitlines()[-1]) == (
        2,
        f"appliance listen: error: key file {key} is open to group or others (mode 0640): "
        f"chmod 600 {key}",
    )


def write_wav(path: Path, pcm: bytes, rate: int, channels: int) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm)
    return path


def test_by_name_a_keyed_listener_plays_our_keyed_48_khz_stereo_and_refuses_keyless(
    tmp_path: Path,
) -> None:
    """The whole chain: `listen --key-file` advertises auth=srtp; `send --to NAME` without the
    key is refused before sending; with it, 48 kHz stereo (3852-byte SRTP packets) plays
    bit-exact into the listener's WAV file."""
    key = write_key(tmp_path)
    sent = test_signal(seconds=1.0 * 48000 * 2 / 8000, seed=45)
    song = write_wav(tmp_path / "song.wav", sent, 48000, 2)
    played = tmp_path / "played.wav"
    name = f"srtp-cli-{os.getpid()}"
    with listening_once(
        "--port", "0", "--name", name, "--output-file", str(played), "--key-file", str(key),
        ready_line="advertising",
    ) as listener:
        refused = run_appliance("send", str(song), "--to", name, "--interface", "127.0.0.1")
        result = run_appliance(
            "send", str(song), "--to", name, "--interface", "127.0.0.1", "--key-file", str(key)
        )
    assert (refused.returncode, refused.stderr.strip()) == (
        2,
        f"appliance send: error: {name} (127.0.0.1:{listener_port(result.stderr)}) plays only "
        "authenticated streams: give its key with --key-file FILE",
    )
    assert result.returncode == 0, result.stderr
    assert "sent 1.00 s of 48000 Hz stereo audio over RTP (type 127)" in result.stderr
    assert "listener played 1.00 s of 1.00 s sent; 0 lost" in result.stderr
    assert listener.returncode == 0, listener.log
    with wave.open(str(played), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels()) == (48000, 2)
        frames = wav.readframes(wav.getnframes())
    assert_played(frames, sent)


def listener_port(summary: str) -> str:
    """The port in ``... to NAME (127.0.0.1:PORT) in ...``."""
    return summary.split("(127.0.0.1:", 1)[1].split(")", 1)[0]
