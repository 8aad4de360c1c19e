"""A listener whose interface changes address (DHCP, Wi-Fi reconnect) is re-announced with the
new address, and the old one is withdrawn. Two network namespaces made by the test (a "Pi" and
a "laptop" joined by a veth pair); the Pi advertises on all of its interfaces, which exist only
inside its namespace. A UDP socket bound to 0.0.0.0 on the Pi receives on old and new address."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from netns_rig import SUBNET_PREFIX, TwoHosts, unavailable_reason

TESTS = Path(__file__).resolve().parents[1]
CHILD = TESTS / "discovery_child.py"
NAME = "Roaming Pi"
PORT = 5005
POLL_INTERVAL_S = 0.5
TIMEOUT_S = 30.0
"""Generous bounds on waits: the address is polled every 0.5 s; a loaded machine is slower."""

RECEIVER = """
import socket, sys
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("0.0.0.0", int(sys.argv[1])))
sock.settimeout(float(sys.argv[2]))
print("bound", flush=True)
while True:
    data, _ = sock.recvfrom(2048)
    print(data.decode(), flush=True)
"""

LAPTOP = """
import socket, sys, time
from zeroconf import IPVersion, ServiceBrowser, ServiceInfo
from appliance.discovery import make_zeroconf
from appliance.discovery.records import SERVICE_TYPE, service_name
name, interface, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
zc = make_zeroconf([interface])
browser = ServiceBrowser(zc, [SERVICE_TYPE], handlers=[lambda **kw: None])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
seen = None
while True:
    info = ServiceInfo(SERVICE_TYPE, service_name(name))
    if info.load_from_cache(zc):
        addresses = sorted(info.parsed_addresses(IPVersion.V4Only))
        if addresses != seen:
            seen = addresses
            print("addresses " + " ".join(addresses), flush=True)
            for address in addresses:
                sock.sendto(f"hello {address}".encode(), (address, port))
    time.sleep(0.05)
"""


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


class Lines:
    """A process's stdout lines, read on a thread so that waits can have a deadline."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def until(self, wanted: str, timeout: float = TIMEOUT_S) -> list[str]:
        """Lines up to and including ``wanted``; fails after ``timeout`` s or at end of output."""
        deadline = time.monotonic() + timeout
        lines: list[str] = []
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                raise AssertionError(f"{wanted!r} never came; got {lines}")
            lines.append(line)
            if line == wanted:
                return lines


@pytest.fixture
def hosts() -> Iterator[TwoHosts]:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with TwoHosts() as rig:
        yield rig


def test_new_address_is_announced_and_old_one_withdrawn(hosts: TwoHosts) -> None:
    old = hosts.pi_address
    new = old.rsplit(".", 1)[0] + ".3"
    receiver = Lines(
        hosts.popen(hosts.pi, [sys.executable, "-c", RECEIVER, str(PORT), str(TIMEOUT_S)])
    )
    advertiser_process = hosts.popen(
        hosts.pi,
        [sys.executable, str(CHILD), NAME, str(PORT), "all", "pi.local.", str(POLL_INTERVAL_S)],
    )
    advertiser = Lines(advertiser_process)
    assert receiver.until("bound") == ["bound"]
    assert advertiser.until(f"registered {NAME}") == [f"registered {NAME}"]

    laptop = Lines(
        hosts.popen(
            hosts.laptop, [sys.executable, "-c", LAPTOP, NAME, hosts.laptop_address, str(PORT)]
        )
    )
    assert laptop.until(f"addresses {old}") == [f"addresses {old}"]
    assert receiver.until(f"hello {old}") == [f"hello {old}"]

    # DHCP hands out another address: the new one arrives, then the old one goes (promoted
    # first, or deleting the old primary address would delete the new secondary one too).
    subprocess.run(
        ["ip", "netns", "exec", hosts.pi, "sysctl", "-q", "-w",
         f"net.ipv4.conf.{hosts.pi_interface}.promote_secondaries=1"],
        check=True,
    )  # fmt: skip
    ip("-n", hosts.pi, "addr", "add", f"{new}/{SUBNET_PREFIX}", "dev", hosts.pi_interface)
    ip("-n", hosts.pi, "addr", "del", f"{old}/{SUBNET_PREFIX}", "dev", hosts.pi_interface)

    seen = laptop.until(f"addresses {new}")
    # At most one intermediate view (both addresses, if a poll fell between the two changes).
    assert seen in ([f"addresses {new}"], [f"addresses {old} {new}", f"addresses {new}"])
    # Datagrams to the old address may be sent before it went; the new one must arrive.
    assert receiver.until(f"hello {new}")[-1] == f"hello {new}"

    laptop.process.kill()
    advertiser_process.send_signal(signal.SIGTERM)
    assert advertiser.until("closed") == ["closed"]
    assert advertiser_process.wait(TIMEOUT_S) == 0
    assert advertiser_process.stderr is not None
    err = advertiser_process.stderr.read()
    changes = [line for line in err.splitlines() if "addresses changed" in line]
    assert changes and changes[-1] == (
        f"appliance.discovery.advertise: addresses changed from "
        f"{old if len(changes) == 1 else old + ', ' + new} to {new}: re-announcing {NAME!r}"
    )
