"""What is not audio is one line naming the file and a non-zero exit, never noise and never a
traceback; and the commands that play say so in one line when PyAudio is not installed."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from cli_runner import LOOPBACK, REPO, run_appliance

RAW_HINT = "raw PCM must be named .raw or .pcm, or sent with --rate/--channels"
INVALID = "Invalid data found when processing input"


def send_error(path: Path) -> tuple[int, str]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.setblocking(False)
        result = run_appliance("send", str(path), "--to", f"127.0.0.1:{receiver.getsockname()[1]}")
        with pytest.raises(BlockingIOError):
            receiver.recv(65536)  # nothing at all was sent
    assert "Traceback" not in result.stderr
    return result.returncode, result.stderr


def test_a_text_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("Shopping: milk, eggs, and a Raspberry Pi.\n" * 20)
    assert send_error(path) == (
        1,
        f"appliance send: error: {path}: not an audio file (it is text); {RAW_HINT}\n",
    )


def test_random_bytes_named_m4a(tmp_path: Path) -> None:
    path = tmp_path / "song.m4a"
    path.write_bytes(bytes((i * 7919 + 13) % 251 for i in range(50000)))
    assert send_error(path) == (
        1,
        f"appliance send: error: {path}: not an audio file ({INVALID}); {RAW_HINT}\n",
    )


def test_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "song.mp3"
    path.touch()
    assert send_error(path) == (1, f"appliance send: error: {path}: is empty, not an audio file\n")


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
def test_a_video_without_sound(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
         "testsrc=d=0.5:s=64x48", "-c:v", "mpeg4", str(path)],
        check=True,
    )  # fmt: skip
    assert send_error(path) == (
        1,
        f"appliance send: error: {path}: has no audio stream (it holds video)\n",
    )


def test_a_missing_file_and_a_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nope.flac"
    assert send_error(missing) == (1, f"appliance send: error: {missing}: no such file\n")
    assert send_error(tmp_path) == (
        1,
        f"appliance send: error: {tmp_path}: is a directory, not an audio file\n",
    )


def test_empty_standard_input() -> None:
    result = run_appliance("send", "-", "--to", "127.0.0.1:9", input=b"")
    assert (result.returncode, result.stderr) == (
        1,
        "appliance send: error: standard input: is empty, no audio\n",
    )


def test_flag_errors_name_the_flag() -> None:
    result = run_appliance("send", "-", "--rate", "12345", "--to", "127.0.0.1:9")
    assert (result.returncode, result.stderr) == (
        2,
        "appliance send: error: --rate: 12345 Hz is not a supported rate "
        "(8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000)\n",
    )
    result = run_appliance("send", "-", "--format", "s24", "--to", "127.0.0.1:9")
    assert (result.returncode, result.stderr) == (
        2,
        "appliance send: error: --format: 's24' is not one of s16le, s16be, u8, s32le, f32le\n",
    )


def test_output_file_in_a_missing_directory_is_one_line(tmp_path: Path) -> None:
    out = tmp_path / "no" / "such" / "dir" / "played.wav"
    result = run_appliance(
        "listen", *LOOPBACK, "--no-mdns", "--port", "0", "--output-file", str(out)
    )
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        f"appliance listen: error: cannot write {out}: No such file or directory"
    )
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [("devices",), ("listen", *LOOPBACK, "--no-mdns", "--port", "0")],
    ids=["devices", "listen"],
)
def test_without_pyaudio_playing_commands_say_how_to_get_it(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "pyaudio.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'pyaudio'\", name='pyaudio')\n"
    )
    result = run_appliance(*args, PYTHONPATH=f"{blocker}:{REPO}")
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        f"appliance {args[0]}: error: PyAudio is not installed: pip install 'appliance[audio]' "
        "(it needs PortAudio: apt install portaudio19-dev, or python3-pyaudio on Debian and "
        "Raspberry Pi OS)"
    )
    assert "Traceback" not in result.stderr


def test_text_on_standard_input_is_refused() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.setblocking(False)
        result = run_appliance(
            "send", "-", "--to", f"127.0.0.1:{receiver.getsockname()[1]}",
            input=b"Dear diary, today I piped a text file into the speaker.\n" * 10,
        )  # fmt: skip
        with pytest.raises(BlockingIOError):
            receiver.recv(65536)
    assert (result.returncode, result.stderr) == (
        1,
        "appliance send: error: standard input: is text, not audio\n",
    )


def test_text_named_raw_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.raw"
    path.write_text("Ünïcödé text is text too: naïve café, 20 °C.\n" * 20, encoding="utf-8")
    assert send_error(path) == (1, f"appliance send: error: {path}: is text, not audio\n")


def test_pcm_is_never_taken_for_text() -> None:
    from audio_rig import silence, test_signal

    from appliance.sender.source import looks_like_text

    assert not looks_like_text(test_signal(0.5, seed=3))  # full-scale noise
    assert not looks_like_text(silence(0.5))
    quiet = bytes(b for i in range(2000) for b in ((i % 7) - 3).to_bytes(2, "little", signed=True))
    assert not looks_like_text(quiet)
    assert looks_like_text(b"plain ASCII words and spaces, long enough to judge")
