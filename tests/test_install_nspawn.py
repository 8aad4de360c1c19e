"""deploy/install.sh for real: a Debian 12 root, the installer, a systemd boot, a stream.

Slow (minutes the first time, then ~1 min): run on its own as root with

    PYTHONPATH=. python -m pytest -m slow -s tests/test_install_nspawn.py

1. A ``debootstrap --variant=minbase`` bookworm root, cached under
   /var/cache/appliance-test-root/<hash of the package list> (built once, ~60 s).
2. A working copy of it (under /var/cache/appliance-test-root/work-*), this checkout copied
   in, install.sh run inside with ``systemd-nspawn`` (not booted; host network for apt/pip),
   twice: the second run must change nothing.
3. The copy booted with ``systemd-nspawn --boot`` inside a network namespace made here, joined
   by a veth pair (10.213.7.0/24, nowhere else) to a second namespace where the test's
   discovery and sender run. A oneshot unit ordered after appliance.service prints
   ``systemctl is-active appliance`` on the console. ALSA in the container is a ``type
   file`` PCM: what PortAudio played lands in /var/lib/appliance/played.raw, read back after.
4. ``install.sh --uninstall`` removes it all and keeps /etc/appliance.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CACHE = Path("/var/cache/appliance-test-root")
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# What the installer would apt-get anyway, preinstalled so reruns need no apt download.
PACKAGES = (
    "systemd,systemd-sysv,dbus,iproute2,ca-certificates,python3,python3-venv,"
    "libportaudio2,python3-pyaudio,python3-gpiozero,alsa-utils"
)
LISTENER_NAME = "nspawn-kitchen"
NETNS_CONTAINER = f"appl-c-{os.getpid()}"
NETNS_TEST = f"appl-t-{os.getpid()}"
VETH_CONTAINER, VETH_TEST = "va", "vb"
ADDRESS_CONTAINER, ADDRESS_TEST, PREFIX_LEN = "10.213.7.2", "10.213.7.1", 24
SRC_IN_ROOT = "/root/appliance-src"
BOOT_TIMEOUT_S = 150
INSTALL_TIMEOUT_S = 900
STATE_MARK = "APPLIANCE-STATE:"
TEST_CONFIG = f"""\
[listen]
name = "{LISTENER_NAME}"

[gpio]
enabled = false
"""
# PortAudio -> ALSA "default" -> a file of the exact bytes played (null slave: no card).
ASOUND_CONF = """\
pcm.!default {
    type file
    slave.pcm "null"
    file "/var/lib/appliance/played.raw"
    format "raw"
}
"""
REPORT_SCRIPT = f"""\
#!/bin/sh
# Waits for appliance.service to settle, then prints its state on the console (test only).
for _ in $(seq 200); do
    state=$(systemctl is-active appliance.service)
    [ "$state" = active ] && break
    sleep 0.5
done
{{ echo "{STATE_MARK} $state"; systemctl status --no-pager -n 20 appliance.service; }} \
    >/dev/console 2>&1
"""
REPORT_UNIT = """\
[Unit]
Description=Report the appliance's state on the console (test only)
After=appliance.service

[Service]
Type=oneshot
ExecStart=/usr/local/bin/appliance-test-report

[Install]
WantedBy=multi-user.target
"""

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (debootstrap, nspawn, netns)"),
    pytest.mark.skipif(
        any(shutil.which(tool) is None for tool in ("debootstrap", "systemd-nspawn", "ip")),
        reason="needs debootstrap, systemd-nspawn and iproute2",
    ),
]


def timed(label: str, started: float) -> None:
    print(f"[timing] {label}: {time.monotonic() - started:.1f} s", file=sys.stderr)


def cached_root() -> Path:
    """The debootstrapped root for PACKAGES, built once and kept (read-only use)."""
    key = hashlib.sha256(f"{SUITE}|{MIRROR}|{PACKAGES}".encode()).hexdigest()[:16]
    root = CACHE / key
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / "etc" / "os-release").exists():
            building = CACHE / f"{key}.building"
            shutil.rmtree(building, ignore_errors=True)
            started = time.monotonic()
            subprocess.run(
                ["debootstrap", "--variant=minbase", f"--include={PACKAGES}", SUITE,
                 str(building), MIRROR],
                check=True, capture_output=True, timeout=1800,
            )  # fmt: skip
            # apt's lists are not needed to boot; keep the cache small.
            subprocess.run(["chroot", str(building), "apt-get", "clean"], check=True)
            building.rename(root)
            timed("debootstrap (cache miss)", started)
    return root


def nspawn(root: Path, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """systemd-nspawn in a private mount namespace (as measured: no machined, no bus)."""
    script = (
        "mkdir -p /run/systemd/nspawn && mount -t tmpfs tmpfs /run/systemd/nspawn && "
        'exec systemd-nspawn -q --register=no --keep-unit -D "$0" "$@"'
    )
    return subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script, str(root), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def install(root: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return nspawn(
        root, "/bin/bash", f"{SRC_IN_ROOT}/deploy/install.sh", *options, timeout=INSTALL_TIMEOUT_S
    )


def fingerprint(root: Path) -> dict[str, str]:
    """Hashes of everything the installer manages: equal fingerprints = nothing changed."""
    files = [
        "etc/systemd/system/appliance.service",
        "etc/appliance/appliance.toml",
        "opt/appliance/installed-source.sha256",
        "etc/passwd",
        "etc/group",
    ]
    prints = {name: hashlib.sha256((root / name).read_bytes()).hexdigest() for name in files}
    listing = []
    for path in sorted((root / "opt/appliance").rglob("*")):
        stat = path.lstat()
        listing.append(f"{path.relative_to(root)} {stat.st_size} {stat.st_mtime_ns}")
    prints["opt/appliance tree"] = hashlib.sha256("\n".join(listing).encode()).hexdigest()
    wants = root / "etc/systemd/system/multi-user.target.wants/appliance.service"
    prints["enabled"] = os.readlink(wants)
    return prints


def trust_host_certificates(root: Path) -> None:
    """Machines behind a TLS-inspecting proxy add its CA locally: pip in the root needs it."""
    extra = Path("/usr/local/share/ca-certificates")
    certificates = sorted(extra.glob("*.crt")) if extra.is_dir() else []
    if not certificates:
        return
    target = root / extra.relative_to("/")
    target.mkdir(parents=True, exist_ok=True)
    for certificate in certificates:
        shutil.copy(certificate, target / certificate.name)
    result = nspawn(root, "update-ca-certificates", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    # The venv's pip may carry its own CA list (certifi): point it at the system's.
    (root / "etc/pip.conf").write_text("[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n")


@dataclass
class Machine:
    root: Path
    first_install: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def machine() -> Iterator[Machine]:
    base = cached_root()
    work = CACHE / f"work-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    subprocess.run(["cp", "-a", "--reflink=auto", str(base), str(work)], check=True)
    timed("copy cached root", started)
    try:
        source = work / SRC_IN_ROOT.lstrip("/")
        shutil.copytree(
            REPO,
            source,
            ignore=shutil.ignore_patterns(
                ".git", "__pycache__", "*.egg-info", "build", ".venv", ".mypy_cache",
                ".ruff_cache", ".pytest_cache",
            ),
        )  # fmt: skip
        (work / "etc/hostname").write_text("appliance-test\n")
        (work / "etc/appliance").mkdir(parents=True, exist_ok=True)
        (work / "etc/appliance/appliance.toml").write_text(TEST_CONFIG)
        (work / "etc/asound.conf").write_text(ASOUND_CONF)
        script = work / "usr/local/bin/appliance-test-report"
        script.write_text(REPORT_SCRIPT)
        script.chmod(0o755)
        report = work / "etc/systemd/system/appliance-test-report.service"
        report.write_text(REPORT_UNIT)
        wants = work / "etc/systemd/system/multi-user.target.wants"
        wants.mkdir(parents=True, exist_ok=True)
        (wants / report.name).symlink_to(f"/etc/systemd/system/{report.name}")
        trust_host_certificates(work)
        started = time.monotonic()
        first = install(work, "--no-start")
        timed("install.sh, first run", started)
        assert first.returncode == 0, first.stdout + first.stderr
        yield Machine(work, first)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_first_install(machine: Machine) -> None:
    out = machine.first_install.stdout
    assert "appliance install: created system user appliance\n" in out
    assert "appliance install: already present, kept as is: /etc/appliance/appliance.toml\n" in out
    assert "appliance install: enabled appliance.service\n" in out
    assert "appliance install: not started (--no-start): it starts at the next boot\n" in out
    assert out.endswith(f"appliance install: advertised name: {LISTENER_NAME}\n")
    root = machine.root
    assert (root / "opt/appliance/venv/bin/appliance").is_file()
    assert (root / "etc/systemd/system/appliance.service").read_bytes() == (
        REPO / "deploy/appliance.service"
    ).read_bytes()
    groups = (root / "etc/group").read_text()
    assert any(line.startswith("gpio:") and "appliance" in line for line in groups.splitlines())
    assert any(line.startswith("audio:") and "appliance" in line for line in groups.splitlines())


def test_second_install_changes_nothing(machine: Machine) -> None:
    before = fingerprint(machine.root)
    started = time.monotonic()
    second = install(machine.root, "--no-start")
    timed("install.sh, second run", started)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "appliance install: already installed: nothing changed\n" in second.stdout
    assert not [line for line in second.stdout.splitlines() if "installed /" in line]
    assert fingerprint(machine.root) == before


@contextlib.contextmanager
def veth_namespaces() -> Iterator[None]:
    commands = [
        ["ip", "netns", "add", NETNS_CONTAINER],
        ["ip", "netns", "add", NETNS_TEST],
        ["ip", "link", "add", VETH_CONTAINER, "netns", NETNS_CONTAINER, "type", "veth",
         "peer", "name", VETH_TEST, "netns", NETNS_TEST],
    ]  # fmt: skip
    for netns, dev, address in (
        (NETNS_CONTAINER, VETH_CONTAINER, ADDRESS_CONTAINER),
        (NETNS_TEST, VETH_TEST, ADDRESS_TEST),
    ):
        commands += [
            ["ip", "-n", netns, "link", "set", "lo", "up"],
            ["ip", "-n", netns, "addr", "add", f"{address}/{PREFIX_LEN}", "dev", dev],
            ["ip", "-n", netns, "link", "set", dev, "up"],
        ]
    try:
        for command in commands:
            subprocess.run(command, check=True)
        yield
    finally:
        for netns in (NETNS_CONTAINER, NETNS_TEST):
            subprocess.run(["ip", "netns", "del", netns], check=False, capture_output=True)


def in_test_namespace(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        ["ip", "netns", "exec", NETNS_TEST, sys.executable, "-m", "appliance", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_boot_discover_and_play(machine: Machine, tmp_path: Path) -> None:
    played = machine.root / "var/lib/appliance/played.raw"
    stream = bytes(range(256)) * 64  # 16 KiB: ~1 s of s16le 8 kHz mono, recognisable
    (tmp_path / "test.raw").write_bytes(stream)
    console = tmp_path / "console.log"
    with veth_namespaces(), console.open("w") as log:
        started = time.monotonic()
        script = (
            "mkdir -p /run/systemd/nspawn && mount -t tmpfs tmpfs /run/systemd/nspawn && "
            'exec systemd-nspawn -q --register=no --keep-unit --boot --console=read-only -D "$0" '
            f"--network-namespace-path=/run/netns/{NETNS_CONTAINER}"
        )
        boot = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", script,
             str(machine.root)],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            state = wait_for_state(console, boot)
            timed("boot to appliance state report", started)
            assert state == "active", console.read_text()[-4000:]
            found = in_test_namespace(
                "discover", "--json", "--timeout", "5", "--interface", ADDRESS_TEST, timeout=60
            )
            assert found.returncode == 0, found.stderr
            listeners = json.loads(found.stdout)
            assert LISTENER_NAME in [entry["name"] for entry in listeners], found.stdout
            sent = in_test_namespace(
                "send", str(tmp_path / "test.raw"), "--to", ADDRESS_CONTAINER, "-q", timeout=60
            )
            assert sent.returncode == 0, sent.stderr
            time.sleep(1.0)  # let the listener's jitter buffer drain into ALSA
        finally:
            boot.send_signal(signal.SIGTERM)  # nspawn: orderly poweroff of the container
            try:
                boot.wait(timeout=60)
            except subprocess.TimeoutExpired:
                boot.kill()
                boot.wait()
            timed("boot, test and poweroff", started)
    assert played.is_file(), console.read_text()[-4000:]
    assert stream in played.read_bytes()


def wait_for_state(console: Path, boot: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    while time.monotonic() < deadline:
        for line in console.read_text(errors="replace").splitlines():
            # The getty's login prompt may share the line: look for the mark anywhere.
            if STATE_MARK in line:
                return line.partition(STATE_MARK)[2].strip()
        if boot.poll() is not None:
            break
        time.sleep(0.2)
    return "no report"


def test_uninstall_keeps_config(machine: Machine) -> None:
    result = install(machine.root, "--uninstall")
    assert result.returncode == 0, result.stdout + result.stderr
    root = machine.root
    assert not (root / "opt/appliance").exists()
    assert not (root / "etc/systemd/system/appliance.service").exists()
    assert not (root / "etc/systemd/system/multi-user.target.wants/appliance.service").exists()
    assert "appliance:" not in (root / "etc/passwd").read_text()
    assert (root / "etc/appliance/appliance.toml").read_text() == TEST_CONFIG
    again = install(machine.root, "--uninstall")
    assert "appliance install: already absent: /opt/appliance\n" in again.stdout
