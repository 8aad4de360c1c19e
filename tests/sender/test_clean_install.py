"""A laptop without a compiler: the package installs from binary wheels only, without PyAudio
(the ``audio`` extra), and ``appliance send`` works in that environment."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tomllib
import wave
from pathlib import Path

import pytest
from audio_rig import test_signal
from cli_runner import REPO

PIP_TIMEOUT_S = 600


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=PIP_TIMEOUT_S,
        check=False,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.slow
def test_install_without_a_compiler_and_send(tmp_path: Path) -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert not any(d.lower().startswith("pyaudio") for d in project["dependencies"])
    assert any(d.lower().startswith("pyaudio") for d in project["optional-dependencies"]["audio"])

    # A copy of the checkout: pip builds in the source tree and would leave build/ there.
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "appliance", source / "appliance",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip

    venv = tmp_path / "venv"
    made = run(sys.executable, "-m", "venv", venv)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    # Every dependency from a binary wheel: nothing may need a compiler...
    deps = run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
               "--only-binary=:all:", *project["dependencies"])  # fmt: skip
    assert deps.returncode == 0, deps.stderr
    # ...and installing the project itself pulls in nothing more (PyAudio least of all).
    installed = run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    "--only-binary=:all:", source)  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    no_pyaudio = run(python, "-c", "import pyaudio")
    assert no_pyaudio.returncode == 1
    assert "No module named 'pyaudio'" in no_pyaudio.stderr

    sent = test_signal(0.2, seed=5)
    wav = tmp_path / "speech.wav"
    with wave.open(str(wav), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(sent)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(30)
        port = receiver.getsockname()[1]
        result = run(venv / "bin" / "appliance", "send", wav, "--to", f"127.0.0.1:{port}", "-q",
                     cwd=tmp_path)  # fmt: skip
        assert (result.returncode, result.stderr) == (0, "")
        received = b""
        while datagram := receiver.recv(65536):
            received += datagram
    assert received == sent
