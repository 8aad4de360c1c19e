"""Shell scripts in deploy/: shellcheck-clean, and install.sh's argument handling.

The installer's real run (apt, venv, systemd boot) is tests/deploy/test_install_nspawn.py.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
INSTALL = DEPLOY / "install.sh"
SHELL_SHEBANGS = ("#!/bin/sh", "#!/bin/bash", "#!/usr/bin/env bash", "#!/usr/bin/env sh")


def shell_scripts() -> list[Path]:
    scripts = []
    for path in sorted(DEPLOY.iterdir()):
        if not path.is_file():
            continue
        with path.open("rb") as file:
            first_line = file.readline().decode("utf-8", "replace").strip()
        if path.suffix == ".sh" or first_line.startswith(SHELL_SHEBANGS):
            scripts.append(path)
    return scripts


def test_install_script_is_found() -> None:
    assert INSTALL in shell_scripts()


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
@pytest.mark.parametrize("script", shell_scripts(), ids=lambda path: path.name)
def test_shellcheck_clean(script: Path) -> None:
    result = subprocess.run(
        ["shellcheck", "--external-sources", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stdout) == (0, "")


def test_scripts_are_executable() -> None:
    for script in shell_scripts():
        assert script.stat().st_mode & 0o111, f"{script.name} is not executable"


def test_install_rejects_unknown_option() -> None:
    result = subprocess.run(
        ["bash", str(INSTALL), "--frobnicate"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 1
    assert result.stderr == "appliance install: error: unknown option: --frobnicate (see --help)\n"


def test_install_rejects_missing_source(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.tar.gz"
    result = subprocess.run(
        ["bash", str(INSTALL), "--source", str(missing)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert result.stderr == f"appliance install: error: no such source: {missing}\n"


def test_install_help_lists_options() -> None:
    result = subprocess.run(
        ["bash", str(INSTALL), "--help"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0
    for option in ("--source", "--name", "--no-start", "--uninstall"):
        assert option in result.stdout
