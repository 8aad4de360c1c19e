"""deploy/appliance.service: systemd accepts it without a word, and it is sandboxed.

`systemd-analyze verify` only *warns* (exit 0) on unknown keys and bad values, so any output
at all is a failure. It also checks that ExecStart's binary exists: the unit is verified
inside a throw-away root holding the unit, a copy of systemd's own units (sysinit.target...)
and a fake /opt/appliance/venv/bin/appliance.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNIT = DEPLOY / "appliance.service"
EXEC_START = "/opt/appliance/venv/bin/appliance"
SYSTEM_UNITS = Path("/usr/lib/systemd/system")
EXPOSURE_RE = re.compile(r"Overall exposure level for appliance\.service: ([0-9.]+) (\w+)")
# systemd-analyze's scale: 0-2 OK, 2-5 MEDIUM... Hardening must not fall below OK/MEDIUM.
ACCEPTABLE_LEVELS = {"OK", "MEDIUM"}
MAX_EXPOSURE = 3.0

needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None or not SYSTEM_UNITS.is_dir(),
    reason="systemd-analyze and systemd's units are needed",
)


def unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


@pytest.fixture
def verify_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    shutil.copytree(SYSTEM_UNITS, root / SYSTEM_UNITS.relative_to("/"), symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    shutil.copy(UNIT, root / "etc/systemd/system/appliance.service")
    binary = root / EXEC_START.lstrip("/")
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(0o755)
    return root


@needs_systemd_analyze
def test_verify_prints_nothing(verify_root: Path) -> None:
    result = subprocess.run(
        ["systemd-analyze", "verify", f"--root={verify_root}", "appliance.service"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


@needs_systemd_analyze
def test_verify_catches_a_missing_binary(verify_root: Path) -> None:
    # Proves the check above is a real one: without the binary, verify complains.
    (verify_root / EXEC_START.lstrip("/")).unlink()
    result = subprocess.run(
        ["systemd-analyze", "verify", f"--root={verify_root}", "appliance.service"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert f"Command {EXEC_START} is not executable" in result.stderr


@needs_systemd_analyze
def test_security_exposure_is_low() -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = EXPOSURE_RE.search(result.stdout)
    assert match is not None, result.stdout + result.stderr
    score, level = float(match.group(1)), match.group(2)
    print(f"systemd-analyze security: {score} {level}")
    assert level in ACCEPTABLE_LEVELS
    assert score <= MAX_EXPOSURE


def test_unit_contract() -> None:
    settings = unit_settings()
    assert settings["Type"] == ["notify"]
    assert settings["ExecStart"] == [f"{EXEC_START} listen --config /etc/appliance/appliance.toml"]
    assert settings["User"] == ["appliance"]
    assert settings["SupplementaryGroups"] == ["audio gpio"]
    assert settings["Restart"] == ["on-failure"]
    assert settings["StartLimitIntervalSec"] == ["0"]
    assert settings["WorkingDirectory"] == ["/var/lib/appliance"]
    assert settings["StateDirectory"] == ["appliance"]
    assert "WatchdogSec" in settings
    assert set(settings["DeviceAllow"]) == {
        "char-alsa rw",
        "char-gpiochip rw",
        "/dev/gpiomem rw",
    }
    assert settings["After"] == ["network-online.target sound.target time-sync.target"]
