"""The command line as a user meets it: real subprocesses, real UDP, the audio rig."""

from __future__ import annotations

import os
import signal
import socket
import wave
from pathlib import Path

import pytest
from audio_rig import AudioSink, NoAudioDevice, assert_played, audible, test_signal
from cli_runner import LOOPBACK, listening_once, run_appliance, start_appliance

from appliance.commands.demo import sample_path
from appliance.listener.playout.drift import QUIET_PEAK


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wav_samples(path: Path) -> bytes:
    with wave.open(str(path)) as wav:
        return bytes(wav.readframes(wav.getnframes()))


@pytest.mark.parametrize("command", ["listen", "send", "devices", "demo"])
def test_every_command_explains_itself(command: str) -> None:
    result = run_appliance(command, "--help")
    assert result.returncode == 0
    assert f"usage: appliance {command}" in result.stdout


def test_a_missing_file_is_one_line_and_exit_1(tmp_path: Path) -> None:
    result = run_appliance("send", str(tmp_path / "nope.raw"), "--to", "127.0.0.1:9")
    assert result.returncode == 1
    assert result.stderr == f"appliance send: error: {tmp_path / 'nope.raw'}: no such file\n"


def test_a_bad_payload_map_is_one_line_and_exit_2() -> None:
    result = run_appliance("listen", *LOOPBACK, "--no-mdns", "--payload-map", "96=L16/96000/2")
    assert result.returncode == 2
    assert result.stderr == (
        "appliance listen: error: command line: [listen] payload map '96=L16/96000/2': "
        "96000 Hz is not a supported rate (8000, 11025, 16000, 22050, 24000, 32000, 44100, "
        "48000)\n"
    )


def test_a_bad_destination_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "a.raw"
    path.write_bytes(bytes(640))
    result = run_appliance("send", str(path), "--to", "127.0.0.1:http")
    assert result.returncode == 2
    assert result.stderr == (
        "appliance send: error: --to '127.0.0.1:http': port must be a number from 1 to 65535\n"
    )


def test_a_port_in_use_is_one_line_and_exit_1() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        result = run_appliance("listen", *LOOPBACK, "--port", str(port))
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        f"appliance listen: error: cannot listen on 127.0.0.1:{port}: the port is already in use"
    )
    assert result.stderr.count("the port is already in use") == 1  # printed once, not logged too
    assert "Traceback" not in result.stderr


def test_no_audio_device_is_one_line_and_exit_1(no_audio_device: NoAudioDevice) -> None:
    result = run_appliance("listen", *LOOPBACK, "--port", "0")
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        "appliance listen: error: cannot open the default audio output: no audio output "
        "device found (see `appliance devices`)"
    )
    assert "Traceback" not in result.stderr


def test_devices_lists_the_outputs(audio_sink: AudioSink) -> None:
    result = run_appliance("devices")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[:2] == ["outputs (appliance listen --device):", "index  name"]
    assert any(line.endswith("default (default)") for line in lines)
    assert "inputs (appliance send --input):" in lines


def test_devices_without_any_is_a_clear_error(no_audio_device: NoAudioDevice) -> None:
    result = run_appliance("devices")
    assert (result.returncode, result.stderr) == (
        1,
        "appliance devices: error: no audio devices found (no outputs, no inputs)\n",
    )


def test_an_unknown_device_name_lists_the_outputs(audio_sink: AudioSink) -> None:
    result = run_appliance("listen", *LOOPBACK, "--port", "0", "--device", "hdmi")
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        "appliance listen: error: no output device named 'hdmi' (outputs: 0: rig_pulse, 1: default)"
    )


@pytest.mark.audio
def test_send_by_name_and_listen_once_end_to_end(audio_sink: AudioSink, tmp_path: Path) -> None:
    sent = test_signal(seconds=1.0, seed=11)
    wav = tmp_path / "signal.wav"
    with wave.open(str(wav), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(sent)
    name = f"cli-test-{os.getpid()}"
    audio_sink.start_recording()
    with listening_once("--port", "0", "--name", name, ready_line="advertising") as listener:
        sent_result = run_appliance("send", str(wav), "--to", name, "--interface", "127.0.0.1")
    assert sent_result.returncode == 0, sent_result.stderr
    # Found by name, the listener advertises RTP: 8000 Hz mono goes as L16 on type 112.
    assert sent_result.stderr.startswith(
        f"sent 1.00 s of 8000 Hz mono audio over RTP (type 112) to {name} (127.0.0.1:"
    )
    assert " in 50 packets" in sent_result.stderr
    assert listener.returncode == 0
    assert "ended (RTCP BYE): RTP type 112, 8000 Hz mono s16be, 50 packets, 16000 bytes" in (
        listener.log
    )
    assert_played(audio_sink.stop_recording(), sent)


@pytest.mark.audio
def test_send_from_standard_input(audio_sink: AudioSink) -> None:
    sent = test_signal(seconds=0.5, seed=12)
    port = free_udp_port()
    audio_sink.start_recording()
    with listening_once("--port", str(port), "--no-mdns"):
        sent_result = run_appliance("send", "-", "--to", f"127.0.0.1:{port}", "-q", input=sent)
    assert (sent_result.returncode, sent_result.stderr) == (0, "")
    assert_played(audio_sink.stop_recording(), sent)


@pytest.mark.audio
def test_demo_plays_the_built_in_sample(audio_sink: AudioSink) -> None:
    audio_sink.start_recording()
    result = run_appliance("demo")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "demo finished: you should have heard the sample on your audio output\n"
    # The sample is speech with quiet passages, where the drift control may shorten or stretch
    # a pause when a loaded machine delays the demo's packets (seen once in CI: 75 quiet
    # samples cut): everything louder must play exactly.
    assert_played(audio_sink.stop_recording(), wav_samples(sample_path()), quiet_peak=QUIET_PEAK)


def test_demo_without_a_sound_card_writes_a_wav(
    no_audio_device: NoAudioDevice, tmp_path: Path
) -> None:
    result = run_appliance("demo", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "appliance-demo.wav"
    assert result.stdout == f"demo finished: the played audio is in {out.name}\n"
    assert "no audio output device found" in result.stderr
    assert audible(wav_samples(out)) == audible(wav_samples(sample_path()))


def test_ctrl_c_stops_send_with_a_one_line_summary(tmp_path: Path) -> None:
    path = tmp_path / "long.raw"
    path.write_bytes(test_signal(seconds=30, seed=13))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(30)
        port = receiver.getsockname()[1]
        sender = start_appliance("send", str(path), "--to", f"127.0.0.1:{port}")
        for _ in range(5):  # it is streaming: five datagrams have arrived
            assert len(receiver.recv(65536)) == 320
        sender.send_signal(signal.SIGINT)
        _, err = sender.communicate(timeout=30)
        while (last := receiver.recv(65536)) != b"":
            assert len(last) == 320  # ...and it ended the stream with the end marker
    assert sender.returncode == 130
    assert len(err.splitlines()) == 1
    assert err.startswith("stopped after sending ")
    assert f"of audio to 127.0.0.1:{port} in " in err


def test_demo_with_a_missing_file_fails_before_starting_anything(tmp_path: Path) -> None:
    result = run_appliance("demo", "--file", str(tmp_path / "nope.wav"))
    assert (result.returncode, result.stderr) == (
        1, f"appliance demo: error: {tmp_path / 'nope.wav'}: no such file\n"
    )
