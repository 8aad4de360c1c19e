"""Two network namespaces joined by a veth pair: a "Pi" and a "laptop" on 10.x addresses that
exist only inside them. For tests that need mDNS between two hosts.

    with TwoHosts() as hosts:
        hosts.run_in(hosts.pi, [sys.executable, ...])   # ip netns exec

Needs root and a working ``ip netns``; :func:`unavailable_reason` says why not. The namespaces
are always deleted on exit (deleting a namespace deletes its veth end too).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from types import TracebackType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SUBNET_PREFIX = 24


def unavailable_reason() -> str | None:
    """Why two namespaces cannot be made here, or None if they can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    probe = f"aplprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"`ip netns add` fails here: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


class TwoHosts:
    """Namespaces ``pi`` and ``laptop``, addresses ``pi_address``/``laptop_address``."""

    def __init__(self) -> None:
        pid = os.getpid()
        self.pi = f"apl{pid}pi"
        self.laptop = f"apl{pid}lap"
        self._veth = (f"vp{pid}"[:15], f"vl{pid}"[:15])
        third = pid % 250 + 1
        self.pi_address = f"10.213.{third}.1"
        self.laptop_address = f"10.213.{third}.2"
        self._processes: list[subprocess.Popen[str]] = []

    @property
    def pi_interface(self) -> str:
        """The Pi's veth end (an interface name inside ``pi``)."""
        return self._veth[0]

    def __enter__(self) -> TwoHosts:
        try:
            _ip("netns", "add", self.pi)
            _ip("netns", "add", self.laptop)
            pi_end, laptop_end = self._veth
            _ip("link", "add", pi_end, "netns", self.pi, "type", "veth",
                "peer", "name", laptop_end, "netns", self.laptop)  # fmt: skip
            for ns, end, address in (
                (self.pi, pi_end, self.pi_address),
                (self.laptop, laptop_end, self.laptop_address),
            ):
                _ip("-n", ns, "link", "set", "lo", "up")
                _ip("-n", ns, "addr", "add", f"{address}/{SUBNET_PREFIX}", "dev", end)
                _ip("-n", ns, "link", "set", end, "up")
        except BaseException:
            self.close()
            raise
        return self

    def popen(self, namespace: str, argv: list[str], **kwargs: Any) -> subprocess.Popen[str]:
        """Start ``argv`` inside ``namespace`` with the repository on PYTHONPATH."""
        env = {**kwargs.pop("env", os.environ), "PYTHONPATH": str(REPO)}
        process = subprocess.Popen(
            ["ip", "netns", "exec", namespace, *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            **kwargs,
        )
        self._processes.append(process)
        return process

    def close(self) -> None:
        for process in self._processes:
            if process.poll() is None:
                process.kill()
            process.wait()
        for ns in (self.pi, self.laptop):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
