"""Two hosts (network namespaces joined by a veth pair): a listener advertised on the "Pi" is
resolved by name from the "laptop", and UDP datagrams sent to the resolved address arrive."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from netns_rig import TwoHosts, unavailable_reason

CHILD = Path(__file__).resolve().parents[1] / "discovery_child.py"
PORT = 5005
TIMEOUT_S = 30.0
DATAGRAMS = [bytes([n]) * 320 for n in range(1, 4)]

RECEIVER = """
import socket, sys
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((sys.argv[1], int(sys.argv[2])))
sock.settimeout(float(sys.argv[4]))
print("bound", flush=True)
for _ in range(int(sys.argv[3])):
    data, _ = sock.recvfrom(2048)
    print(data.hex(), flush=True)
"""

LAPTOP = """
import socket, sys
from appliance.discovery import resolve_destination
target = resolve_destination(sys.argv[1], 5005, [sys.argv[2]], float(sys.argv[3]))
print(target.address, target.port, target.listener.name, flush=True)
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for hex_payload in sys.argv[4:]:
    sock.sendto(bytes.fromhex(hex_payload), (target.address, target.port))
"""


@pytest.fixture(scope="module")
def hosts() -> Iterator[TwoHosts]:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with TwoHosts() as rig:
        yield rig


def test_resolve_by_name_across_hosts_and_send(hosts: TwoHosts) -> None:
    name = "Kitchen Pi"
    receiver = hosts.popen(
        hosts.pi,
        [sys.executable, "-c", RECEIVER, hosts.pi_address, str(PORT), str(len(DATAGRAMS)),
         str(TIMEOUT_S)],
    )  # fmt: skip
    advertiser = hosts.popen(
        hosts.pi, [sys.executable, str(CHILD), name, str(PORT), hosts.pi_address, "pi.local."]
    )
    assert receiver.stdout is not None and advertiser.stdout is not None
    assert receiver.stdout.readline() == "bound\n"
    assert advertiser.stdout.readline() == f"registered {name}\n"

    laptop = hosts.popen(
        hosts.laptop,
        [sys.executable, "-c", LAPTOP, "kitchen pi", hosts.laptop_address, str(TIMEOUT_S)]
        + [d.hex() for d in DATAGRAMS],
    )
    out, err = laptop.communicate(timeout=TIMEOUT_S)
    assert (laptop.returncode, out) == (0, f"{hosts.pi_address} {PORT} {name}\n"), err

    received, _ = receiver.communicate(timeout=TIMEOUT_S)
    assert received.splitlines() == [d.hex() for d in DATAGRAMS]

    advertiser.send_signal(signal.SIGTERM)
    assert advertiser.wait(TIMEOUT_S) == 0
