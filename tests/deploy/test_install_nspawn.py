"""deploy/install.sh for real: a Debian 12 root, the installer, a systemd boot, a stream.

Slow (~100 s the first time, ~25 s with the root cached): run on its own as root with

    PYTHONPATH=. python -m pytest -m slow -s tests/deploy/test_install_nspawn.py

1. A ``debootstrap --variant=minbase`` bookworm root, cached under
   /var/cache/appliance-test-root/<hash of the package list> (built once, ~75 s).
2. A working copy of it (under /var/cache/appliance-test-root/work-*), this checkout copied
   in, install.sh run inside with ``systemd-nspawn`` (not booted; host network for apt/pip),
   twice: the second run must change nothing. polkitd is in the root, so the installer
   writes its power-off rule.
3. The copy booted with ``systemd-nspawn --boot`` inside a network namespace made here, joined
   by a veth pair (10.213.7.0/24, nowhere else) to a second namespace where the test's
   discovery and sender run. A oneshot unit ordered after appliance.service prints
   ``systemctl is-active appliance`` on the console. ALSA in the container is a ``type
   file`` PCM writing into /var/lib/appliance/played.raw, which is a FIFO the test reads at
   the real-time byte rate (:class:`PacedFifo`): what PortAudio played arrives here, and the
   player is paced as by a sound card (a plain file behind a ``null`` slave is written as fast
   as the CPU allows: ~20 MB/s and a core spinning for the whole boot). The test finds the
   listener by name (zeroconf bound to its own veth address), sends a stream to that name
   and waits for the stream's exact bytes. Then it runs ``systemctl poweroff`` in the
   container, as a long press of the listen button does, from a copy of the installed unit
   (same user, NoNewPrivileges, sandbox): only the installer's polkit rule lets that
   through, and the container must power off by itself.
4. ``install.sh --uninstall`` removes it all and keeps /etc/appliance.
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from appliance.wire.raw import DEFAULT_PORT, RAW_FORMAT

REPO = Path(__file__).resolve().parents[2]
CACHE = Path("/var/cache/appliance-test-root")
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# What the installer would apt-get anyway, preinstalled so reruns need no apt download.
PACKAGES = (
    "systemd,systemd-sysv,dbus,iproute2,ca-certificates,python3,python3-venv,"
    "libportaudio2,python3-pyaudio,python3-gpiozero,python3-numpy,alsa-utils,"
    # polkitd for the installer's power-off rule; it needs a logind, which libpam-systemd is.
    "polkitd,libpam-systemd"
)
LISTENER_NAME = "nspawn-kitchen"
NETNS_CONTAINER = f"appl-c-{os.getpid()}"
NETNS_TEST = f"appl-t-{os.getpid()}"
VETH_CONTAINER, VETH_TEST = "va", "vb"
ADDRESS_CONTAINER, ADDRESS_TEST, PREFIX_LEN = "10.213.7.2", "10.213.7.1", 24
SRC_IN_ROOT = "/root/appliance-src"
POWEROFF_UNIT = "appliance-test-poweroff.service"
POLKIT_RULE_IN_ROOT = "etc/polkit-1/rules.d/50-appliance-poweroff.rules"
POLKIT_RULE = """\
// Written by the appliance installer (deploy/install.sh); removed by its --uninstall.
// A long press of the listen button runs "systemctl poweroff" as user appliance, which is
// no administrator: logind asks polkit, and this rule says yes (to powering off only).
polkit.addRule(function (action, subject) {
    if ((action.id == "org.freedesktop.login1.power-off" ||
         action.id == "org.freedesktop.login1.power-off-multiple-sessions") &&
        subject.user == "appliance") {
        return polkit.Result.YES;
    }
});
"""
BOOT_TIMEOUT_S = 150
INSTALL_TIMEOUT_S = 900
STATE_MARK = "APPLIANCE-STATE:"
TEST_CONFIG = f"""\
[listen]
name = "{LISTENER_NAME}"

[gpio]
enabled = false
"""
# PortAudio -> ALSA "default" -> the exact bytes played, into a FIFO the test reads at the
# real-time rate (the null slave has no clock: the FIFO's back-pressure is the clock).
PLAYED_IN_ROOT = "var/lib/appliance/played.raw"
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
# Its s16le samples are 0x0100, 0x0302, ... 0xfffe: none is 0, so the silence the player adds
# around it (prebuffering, the drain tail, an underrun on a busy machine) strips off exactly.
TEST_STREAM = bytes(range(256)) * 64  # 16 KiB, ~1 s
PACE_TICK_S = 0.01
PIPE_BYTES = 4096
"""The smallest pipe Linux gives: ~0.13 s of audio between the player and the test's clock."""
PLAYED_TIMEOUT_S = 20.0
POWEROFF_TIMEOUT_S = 60

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (debootstrap, nspawn, netns)"),
    pytest.mark.skipif(
        any(
            shutil.which(tool) is None
            for tool in ("debootstrap", "systemd-nspawn", "ip", "nsenter")
        ),
        reason="needs debootstrap, systemd-nspawn, iproute2 and nsenter",
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
            result = subprocess.run(
                ["debootstrap", "--variant=minbase", f"--include={PACKAGES}", SUITE,
                 str(building), MIRROR],
                capture_output=True, text=True, timeout=1800,
            )  # fmt: skip
            log = building / "debootstrap" / "debootstrap.log"
            details = log.read_text(errors="replace")[-3000:] if log.is_file() else ""
            assert result.returncode == 0, result.stdout[-2000:] + result.stderr + details
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
        POLKIT_RULE_IN_ROOT,
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
    assert f"appliance install: installed /{POLKIT_RULE_IN_ROOT}\n" in out
    assert "appliance install: not started (--no-start): it starts at the next boot\n" in out
    assert out.endswith(f"appliance install: advertised name: {LISTENER_NAME}\n")
    root = machine.root
    assert (root / "opt/appliance/venv/bin/appliance").is_file()
    assert (root / "etc/systemd/system/appliance.service").read_bytes() == (
        REPO / "deploy/appliance.service"
    ).read_bytes()
    assert (root / POLKIT_RULE_IN_ROOT).read_text() == POLKIT_RULE
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


class PacedFifo:
    """A FIFO the container's ALSA ``type file`` PCM writes into, drained at the real-time rate.

    Opened read-write: on a FIFO that never blocks and always counts as a writer, so the
    player's open never waits, the test never reads end-of-file and the player never gets
    SIGPIPE. Reading at most ``RAW_FORMAT.bytes_per_second`` keeps the small pipe full, and a
    full pipe blocks the player's writes: the player runs at the pace of a sound card::

        with PacedFifo(root / PLAYED_IN_ROOT) as played:
            ...  # boot the container, send a stream
            played.wait_for(lambda data: TEST_STREAM in data, timeout=10)
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        os.mkfifo(path)
        path.chmod(0o666)  # systemd hands the state directory to user appliance at start
        self._fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        fcntl.fcntl(self._fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        self._data = bytearray()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, name="paced-fifo", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        credit = 0.0
        last = time.monotonic()
        while not self._stop.wait(PACE_TICK_S):
            now = time.monotonic()
            credit += (now - last) * RAW_FORMAT.bytes_per_second
            last = now
            wanted = int(credit)
            try:
                chunk = os.read(self._fd, wanted) if wanted else b""
            except BlockingIOError:
                chunk = b""
            if len(chunk) < wanted:
                credit = 0.0  # the pipe ran dry: no saving up for a burst later
            else:
                credit -= len(chunk)
            with self._lock:
                self._data += chunk

    @property
    def data(self) -> bytes:
        """Everything read so far: the bytes PortAudio played, in order."""
        with self._lock:
            return bytes(self._data)

    def wait_for(self, predicate: Callable[[bytes], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate(self.data):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        os.close(self._fd)

    def __enter__(self) -> PacedFifo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def without_silence(data: bytes) -> bytes:
    """The samples of s16le ``data`` that are not 0, in order."""
    samples = array.array("h", data[: len(data) - len(data) % RAW_FORMAT.sample_bytes])
    return array.array("h", (sample for sample in samples if sample)).tobytes()


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


def test_boot_discover_play_and_power_off(machine: Machine, tmp_path: Path) -> None:
    (tmp_path / "test.raw").write_bytes(TEST_STREAM)
    console = tmp_path / "console.log"
    units = machine.root / "etc/systemd/system"
    (units / POWEROFF_UNIT).write_text(poweroff_unit((units / "appliance.service").read_text()))
    played = PacedFifo(machine.root / PLAYED_IN_ROOT)
    with played, veth_namespaces(), console.open("w") as log:
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
            listeners = {entry["name"]: entry for entry in json.loads(found.stdout)}
            assert LISTENER_NAME in listeners, found.stdout
            assert listeners[LISTENER_NAME]["addresses"] == [ADDRESS_CONTAINER], found.stdout
            assert listeners[LISTENER_NAME]["state"] == "waiting", found.stdout
            sent = in_test_namespace(
                "send", str(tmp_path / "test.raw"), "--to", LISTENER_NAME,
                "--interface", ADDRESS_TEST, timeout=60,
            )  # fmt: skip
            assert sent.returncode == 0, sent.stderr
            # By name, to a listener that advertises RTP: RTP, on the built-in 8 kHz mono type.
            assert sent.stderr.startswith(
                f"sent 1.02 s of 8000 Hz mono audio over RTP (type 112) to {LISTENER_NAME} "
                f"({ADDRESS_CONTAINER}:{DEFAULT_PORT}) in 52 packets "
            ), sent.stderr
            played.wait_for(lambda data: without_silence(data) == TEST_STREAM, PLAYED_TIMEOUT_S)
            timed("boot, discover and play", started)
            # What a long press of the listen button does, in the listener's own sandbox: only
            # the installer's polkit rule lets user appliance power off.
            init = container_init(boot.pid)
            start = in_container(init, "systemctl", "start", "--no-block", POWEROFF_UNIT)
            assert start.returncode == 0, start.stderr
            try:
                boot.wait(timeout=POWEROFF_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                journal = in_container(init, "journalctl", "--no-pager", "-u", POWEROFF_UNIT)
                pytest.fail(f"no poweroff as user appliance:\n{journal.stdout[-3000:]}")
            assert boot.returncode == 0, console.read_text()[-4000:]
        finally:
            if boot.poll() is None:
                boot.send_signal(signal.SIGTERM)  # nspawn: orderly poweroff of the container
                try:
                    boot.wait(timeout=POWEROFF_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    boot.kill()
                    boot.wait()
            timed("boot, test and poweroff", started)
    assert without_silence(played.data) == TEST_STREAM, console.read_text()[-4000:]


def container_init(nspawn_pid: int) -> int:
    """The host-side PID of the container's PID 1: below nspawn, and PID 1 in its namespace."""
    parents: dict[int, int] = {}
    init_candidates = []
    for status in Path("/proc").glob("[0-9]*/status"):
        with contextlib.suppress(OSError):
            fields = dict(
                line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line
            )
            pid = int(fields["Pid"])
            parents[pid] = int(fields["PPid"])
            if fields.get("NSpid", "").split("\t")[-1] == "1" and pid != 1:
                init_candidates.append(pid)
    for pid in init_candidates:
        ancestor = parents.get(pid, 0)
        while ancestor > 1 and ancestor != nspawn_pid:
            ancestor = parents.get(ancestor, 0)
        if ancestor == nspawn_pid:
            return pid
    raise AssertionError(f"no container init below systemd-nspawn (pid {nspawn_pid})")


def in_container(init_pid: int, *command: str) -> subprocess.CompletedProcess[str]:
    """Run ``command`` as root in the booted container (there is no machined to ask)."""
    return subprocess.run(
        ["nsenter", f"--target={init_pid}", "--all", *command],
        capture_output=True, text=True, timeout=POWEROFF_TIMEOUT_S,
    )  # fmt: skip


def poweroff_unit(installed_unit: str) -> str:
    """The installed appliance.service with ``systemctl poweroff`` as its program: the same
    user, NoNewPrivileges, system call filter and other sandboxing as the listener."""
    lines = []
    for line in installed_unit.splitlines():
        key = line.partition("=")[0]
        if line == "[Install]":
            break
        if key == "Type":
            line = "Type=exec"
        elif key == "ExecStart":
            line = "ExecStart=/usr/bin/systemctl poweroff"
        elif key in ("NotifyAccess", "WatchdogSec", "Restart"):
            continue
        lines.append(line)
    return "\n".join(lines) + "\n"


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
    assert f"appliance install: removed /{POLKIT_RULE_IN_ROOT}\n" in result.stdout
    assert not (root / POLKIT_RULE_IN_ROOT).exists()
    assert (root / "etc/appliance/appliance.toml").read_text() == TEST_CONFIG
    again = install(machine.root, "--uninstall")
    assert "appliance install: already absent: /opt/appliance\n" in again.stdout
    assert f"appliance install: already absent: /{POLKIT_RULE_IN_ROOT}\n" in again.stdout
