"""``appliance send --input``: what one rig sink plays, captured from its monitor (an ALSA
input, as a laptop's sound server offers the monitor of its output), sent over RTP to a real
``appliance listen`` that plays it into a second sink, compared with what was played into the
first. Both sinks run at 48 kHz stereo, so nothing is resampled anywhere: a PCM loopback,
compared sample for sample (silence aside). UDP on 127.0.0.1 only, no mDNS."""

from __future__ import annotations

import re
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from audio_rig import MONITOR_PCM, AudioSink, assert_played, test_signal
from cli_runner import REPO, listening_once, run_appliance, start_appliance
from conftest import ALSA_CONFIG_ENV, _require_audio_rig

from appliance.sender.capture import CaptureFormat, capture_candidates
from appliance.sender.pacing import LivePacer

RATE = 48000
CHANNELS = 2
SIGNAL_S = 3.0
STOP_TIMEOUT_S = 15.0


@pytest.fixture
def played_into() -> Iterator[AudioSink]:
    """The laptop's sound server: a 48 kHz stereo sink whose monitor is the input
    ``rig_monitor``."""
    _require_audio_rig()
    with AudioSink(rate=RATE, channels=CHANNELS) as sink:
        sink.add_monitor_input()
        yield sink


@pytest.mark.audio
def test_a_monitor_captured_plays_bit_exact_on_a_listener(
    played_into: AudioSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    played = test_signal(SIGNAL_S, seed=7, rate=RATE, channels=CHANNELS)
    with AudioSink(rate=RATE, channels=CHANNELS) as heard:
        monkeypatch.setenv(ALSA_CONFIG_ENV, str(heard.asound_conf))  # the listener's output
        heard.start_recording()
        with listening_once("--no-mdns", "--port", "0") as listener:
            match = re.search(r"listening on 127\.0\.0\.1:(\d+)", listener.log)
            assert match, listener.log
            sender = start_appliance(
                "send", "--input", MONITOR_PCM, "--to", f"127.0.0.1:{match[1]}", "--rtp",
                ALSA_CONFIG_PATH=str(played_into.asound_conf),
            )  # fmt: skip
            try:
                assert sender.stderr is not None
                first = sender.stderr.readline()
                assert first.startswith("capturing from input 'rig_monitor' (index "), (
                    first + sender.stderr.read()
                )
                assert ": 48000 Hz stereo in 20 ms blocks, input latency " in first
                played_into.play(played)
                sender.send_signal(signal.SIGINT)
                _, rest = sender.communicate(timeout=STOP_TIMEOUT_S)
            finally:
                sender.kill()
                sender.wait()
        assert sender.returncode == 130, rest
        summary = next((x for x in rest.splitlines() if x.startswith("stopped after ")), rest)
        assert " of 48000 Hz stereo audio over RTP (type 127) to 127.0.0.1:" in summary
        assert listener.returncode == 0, listener.log
        assert "ended (RTCP BYE): RTP type 127, 48000 Hz stereo s16be" in listener.log
        assert "lost 0, late 0" in listener.log, listener.log
        assert_played(heard.stop_recording(), played)


@pytest.mark.audio
def test_an_unknown_input_is_one_line_naming_it_and_the_inputs(played_into: AudioSink) -> None:
    result = run_appliance(
        "send", "--input", "nonexistent", "--to", "127.0.0.1:9",
        ALSA_CONFIG_PATH=str(played_into.asound_conf),
    )  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(
        "appliance send: error: no input device named 'nonexistent' (inputs: "
    ), line
    assert f": {MONITOR_PCM}" in line


@pytest.mark.audio
def test_devices_lists_the_monitor_as_an_input(played_into: AudioSink) -> None:
    result = run_appliance("devices", ALSA_CONFIG_PATH=str(played_into.asound_conf))
    assert result.returncode == 0, result.stderr
    outputs, inputs = result.stdout.split("\n\n")
    assert inputs.splitlines()[:2] == ["inputs (appliance send --input):", "index  name"]
    assert any(line.split()[1:] == [MONITOR_PCM] for line in inputs.splitlines()[2:]), inputs
    assert outputs.splitlines()[0] == "outputs (appliance listen --device):"


def test_file_and_input_exclude_each_other() -> None:
    both = run_appliance("send", "song.wav", "--input", "--to", "127.0.0.1:9")
    assert both.returncode == 2
    assert both.stderr.splitlines()[-1] == (
        "appliance send: error: argument --input: not allowed with argument FILE "
        "(see appliance send --help)"
    )
    neither = run_appliance("send", "--to", "127.0.0.1:9")
    assert neither.returncode == 2
    assert neither.stderr.splitlines()[-1] == (
        "appliance send: error: one of the arguments FILE --input is required "
        "(see appliance send --help)"
    )


def test_format_is_for_raw_pcm_only() -> None:
    result = run_appliance("send", "--input", "--format", "u8", "--to", "127.0.0.1:9")
    assert (result.returncode, result.stderr) == (
        2,
        "appliance send: error: --format is for raw PCM; --input captures 16-bit audio\n",
    )


def test_capture_tries_48_khz_first_then_the_device_rate() -> None:
    candidates = capture_candidates(44100.0, 2)
    assert candidates[:4] == [
        CaptureFormat(48000, 2), CaptureFormat(48000, 1),
        CaptureFormat(44100, 2), CaptureFormat(44100, 1),
    ]  # fmt: skip
    assert capture_candidates(16000.0, 1)[:3] == [
        CaptureFormat(48000, 1), CaptureFormat(48000, 2), CaptureFormat(44100, 1)
    ]  # fmt: skip
    assert capture_candidates(48000.0, 8, rate=16000, channels=1) == [CaptureFormat(16000, 1)]
    assert all(c.rate != 96000 for c in capture_candidates(96000.0, 2))


def test_a_live_source_is_never_held_back() -> None:
    pacer = LivePacer()
    assert [pacer.wait() for _ in range(1000)] == [None] * 1000
    assert pacer.packets_released == 1000


def test_send_without_pyaudio_names_the_extra(tmp_path: Path) -> None:
    (tmp_path / "pyaudio.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'pyaudio'\", name='pyaudio')\n"
    )
    result = run_appliance(
        "send", "--input", "--to", "127.0.0.1:9", PYTHONPATH=f"{tmp_path}:{REPO}"
    )
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].startswith(
        "appliance send: error: PyAudio is not installed: pip install 'appliance[audio]'"
    )


@pytest.mark.audio
def test_a_capture_to_an_address_goes_as_8_khz_mono_saying_so(played_into: AudioSink) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(10)
        port = receiver.getsockname()[1]
        sender = start_appliance(
            "send", "--input", MONITOR_PCM, "--to", f"127.0.0.1:{port}",
            ALSA_CONFIG_PATH=str(played_into.asound_conf),
        )  # fmt: skip
        try:
            sizes = [len(receiver.recv(65536)) for _ in range(10)]
            sender.send_signal(signal.SIGINT)
            _, stderr = sender.communicate(timeout=STOP_TIMEOUT_S)
        finally:
            sender.kill()
            sender.wait()
    assert sizes == [320] * 10  # the raw wire: 20 ms of 8000 Hz mono s16le
    assert sender.returncode == 130, stderr
    lines = stderr.splitlines()
    assert lines[0] == (
        f"input '{MONITOR_PCM}': 48000 Hz stereo capture, sent as raw 8000 Hz mono (the raw "
        "wire's only format: --to NAME or --rtp for better)"
    )
    assert lines[1].startswith(f"capturing from input '{MONITOR_PCM}' (index ")
    assert lines[-1].startswith("stopped after sending "), stderr
