"""Interoperability with avahi, the mDNS stack of Raspberry Pi OS and most Linux desktops.

avahi-daemon runs in the "Pi" namespace of a two-namespace rig (loopback has no MULTICAST
flag, so avahi ignores it), on a private D-Bus system bus (``DBUS_SYSTEM_BUS_ADDRESS``), with
its own config, no chroot, no privilege drop, and a private /run/avahi-daemon (a tmpfs in its
own mount namespace) so it never meets a system avahi's pid file or socket. Our side runs in
the "laptop" namespace. Both directions are checked:

* ``avahi-browse -rpt _pcmaudio._udp`` sees our Advertiser's service with its TXT;
* our :func:`resolve_listener` sees a service that ``avahi-publish -s`` announces.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from netns_rig import TwoHosts, unavailable_reason

CHILD = Path(__file__).resolve().parents[1] / "discovery_child.py"
PROGRAMS = ("avahi-daemon", "avahi-browse", "avahi-publish", "dbus-daemon", "unshare")
START_TIMEOUT_S = 10.0
BROWSE_ATTEMPTS = 10
"""``avahi-browse -t`` ends once its cache looks complete; a service still being announced
may need another pass. Bounded so a broken interop fails instead of hanging."""
POLL_S = 0.1

DBUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"""

AVAHI_CONFIG = """[server]
host-name=avahitest
use-ipv4=yes
use-ipv6=no
allow-interfaces={interface}
enable-dbus=yes
ratelimit-interval-usec=0
[wide-area]
enable-wide-area=no
[publish]
publish-hinfo=no
publish-workstation=no
"""

RESOLVE = """
import json, sys
from appliance.discovery import resolve_listener
record = resolve_listener(sys.argv[1], [sys.argv[2]], float(sys.argv[3]))
print(json.dumps(record.to_json()), flush=True)
"""


class Avahi:
    """dbus-daemon + avahi-daemon inside ``hosts.pi``; ``env`` reaches them."""

    def __init__(self, hosts: TwoHosts, workdir: Path) -> None:
        self.hosts = hosts
        socket_path = workdir / "system_bus_socket"
        (workdir / "dbus.conf").write_text(DBUS_CONFIG.format(socket=socket_path))
        (workdir / "avahi.conf").write_text(AVAHI_CONFIG.format(interface=hosts.pi_interface))
        self.env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={socket_path}"}
        self.dbus = subprocess.Popen(
            ["dbus-daemon", f"--config-file={workdir / 'dbus.conf'}", "--nofork", "--nopidfile"],
            stderr=subprocess.PIPE,
            text=True,
        )
        _wait_for(socket_path.exists, "the private D-Bus socket")
        os.makedirs("/run/avahi-daemon", exist_ok=True)  # mount point for the private tmpfs
        script = (
            "mount -t tmpfs tmpfs /run/avahi-daemon && exec avahi-daemon "
            f"-f {workdir / 'avahi.conf'} --no-drop-root --no-chroot --no-rlimits"
        )
        self.daemon = hosts.popen(
            hosts.pi, ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
            env=self.env,
        )  # fmt: skip
        _wait_for(self._running, "avahi-daemon on the private bus")

    def _running(self) -> bool:
        if self.daemon.poll() is not None:
            _, err = self.daemon.communicate()
            raise AssertionError(f"avahi-daemon exited: {err}")
        check = self.run(["avahi-browse", "-at"], timeout=START_TIMEOUT_S)
        return check.returncode == 0

    def run(self, argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", self.hosts.pi, *argv],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
        )

    def close(self) -> None:
        for process in (self.daemon, self.dbus):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(START_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def _wait_for(condition: object, what: str) -> None:
    assert callable(condition)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not come up within {START_TIMEOUT_S} s")
        time.sleep(POLL_S)


@pytest.fixture(scope="module")
def avahi() -> Iterator[Avahi]:
    missing = [p for p in PROGRAMS if shutil.which(p) is None]
    if missing:
        pytest.skip(
            f"avahi interop needs {', '.join(missing)} (apt: avahi-daemon avahi-utils dbus)"
        )
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with TwoHosts() as hosts, tempfile.TemporaryDirectory(prefix="avahi-test-") as workdir:
        rig = Avahi(hosts, Path(workdir))
        try:
            yield rig
        finally:
            rig.close()


def test_avahi_browse_sees_our_service_and_txt(avahi: Avahi) -> None:
    hosts = avahi.hosts
    name = "Our Listener"
    child = hosts.popen(
        hosts.laptop,
        [sys.executable, str(CHILD), name, "5005", hosts.laptop_address, "laptop.local."],
    )
    assert child.stdout is not None
    assert child.stdout.readline() == f"registered {name}\n"
    resolved: list[list[str]] = []
    for _ in range(BROWSE_ATTEMPTS):
        out = avahi.run(["avahi-browse", "-rpt", "_pcmaudio._udp"], START_TIMEOUT_S).stdout
        resolved = [f for f in (line.split(";") for line in out.splitlines()) if f[0] == "="]
        if resolved:
            break
    assert len(resolved) == 1, resolved
    fields = resolved[0]
    assert fields[2:9] == [
        "IPv4", "Our\\032Listener", "_pcmaudio._udp", "local", "laptop.local",
        hosts.laptop_address, "5005",
    ]  # fmt: skip
    txt = sorted(item.strip('"') for item in fields[9].split(" "))
    assert [t for t in txt if not t.startswith("version=")] == [
        "channels=1", "format=s16le", "ptime=20", "rate=8000", "state=waiting",
    ]  # fmt: skip
    child.send_signal(signal.SIGTERM)
    assert child.wait(START_TIMEOUT_S) == 0


def test_we_resolve_a_service_avahi_publishes(avahi: Avahi) -> None:
    hosts = avahi.hosts
    publisher = hosts.popen(
        hosts.pi,
        ["avahi-publish", "-s", "Avahi Speaker", "_pcmaudio._udp", "5006",
         "rate=8000", "format=s16le", "channels=1", "ptime=20", "state=playing"],
        env=avahi.env,
    )  # fmt: skip
    try:
        assert publisher.stderr is not None
        line = publisher.stderr.readline()  # "Established under name 'Avahi Speaker'"
        assert "Established under name 'Avahi Speaker'" in line, line
        resolver = hosts.popen(
            hosts.laptop,
            [sys.executable, "-c", RESOLVE, "avahi speaker", hosts.laptop_address, "30"],
        )
        out, err = resolver.communicate(timeout=START_TIMEOUT_S * 3)
        assert resolver.returncode == 0, err
        record = json.loads(out)
        assert {k: record[k] for k in ("name", "host", "addresses", "port", "state")} == {
            "name": "Avahi Speaker",
            "host": "avahitest.local.",
            "addresses": [hosts.pi_address],
            "port": 5006,
            "state": "playing",
        }
    finally:
        publisher.send_signal(signal.SIGTERM)
        publisher.wait(START_TIMEOUT_S)
