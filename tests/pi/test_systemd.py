"""appliance.pi.systemd against a real AF_UNIX datagram socket standing in for systemd."""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.pi import systemd

RECEIVE_TIMEOUT_S = 5.0


class FakeSystemd:
    """The receiving end of NOTIFY_SOCKET: collects each datagram as one message."""

    def __init__(self, sock: socket.socket, address: str) -> None:
        self.sock = sock
        self.address = address
        sock.settimeout(RECEIVE_TIMEOUT_S)

    def receive(self) -> str:
        return self.sock.recv(4096).decode("utf-8")

    def nothing_pending(self) -> bool:
        self.sock.setblocking(False)
        try:
            self.sock.recv(4096)
        except BlockingIOError:
            return True
        finally:
            self.sock.settimeout(RECEIVE_TIMEOUT_S)
        return False


@pytest.fixture
def path_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSystemd]:
    address = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        monkeypatch.setenv("NOTIFY_SOCKET", address)
        yield FakeSystemd(sock, address)


@pytest.fixture
def abstract_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSystemd]:
    name = f"appliance-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        yield FakeSystemd(sock, "@" + name)


def test_notify_ready_sends_ready(path_socket: FakeSystemd) -> None:
    assert systemd.notify_ready() is True
    assert path_socket.receive() == "READY=1"


def test_notify_ready_with_status(path_socket: FakeSystemd) -> None:
    assert systemd.notify_ready("listening on port 5005") is True
    assert path_socket.receive() == "READY=1\nSTATUS=listening on port 5005"


def test_notify_status_and_stopping(path_socket: FakeSystemd) -> None:
    assert systemd.notify_status("playing") is True
    assert systemd.notify_stopping() is True
    assert path_socket.receive() == "STATUS=playing"
    assert path_socket.receive() == "STOPPING=1"


def test_abstract_socket_address(abstract_socket: FakeSystemd) -> None:
    assert systemd.notify_status("waiting for a sender") is True
    assert abstract_socket.receive() == "STATUS=waiting for a sender"


def test_no_notify_socket_is_a_silent_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.notify_ready() is False
    assert systemd.notify_status("x") is False
    assert systemd.notify_stopping() is False


def test_unreachable_socket_returns_false(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens.sock"))
    assert systemd.notify_ready() is False


def test_watchdog_interval_from_environment() -> None:
    pid = str(os.getpid())
    assert systemd.watchdog_interval({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": pid}) == 20.0
    assert systemd.watchdog_interval({"WATCHDOG_USEC": "500000"}) == 0.5


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"WATCHDOG_USEC": ""},
        {"WATCHDOG_USEC": "0"},
        {"WATCHDOG_USEC": "-5"},
        {"WATCHDOG_USEC": "soon"},
        {"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "1"},
        {"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "me"},
    ],
)
def test_watchdog_interval_absent_or_not_ours(environ: dict[str, str]) -> None:
    assert systemd.watchdog_interval(environ) is None


def test_watchdog_feeds_while_healthy(path_socket: FakeSystemd) -> None:
    checks = threading.Semaphore(0)

    def healthy() -> bool:
        checks.release()
        return True

    with systemd.Watchdog(healthy, interval=0.02) as dog:
        assert dog.running is True
        assert dog.interval == 0.02
        for _ in range(3):
            assert path_socket.receive() == "WATCHDOG=1"
    assert dog.running is False


def test_watchdog_starves_while_unhealthy(path_socket: FakeSystemd) -> None:
    healthy_now = threading.Event()
    checked_while_unhealthy = threading.Event()

    def healthy() -> bool:
        if healthy_now.is_set():
            return True
        checked_while_unhealthy.set()
        return False

    dog = systemd.Watchdog(healthy, interval=0.02)
    dog.start()
    try:
        assert checked_while_unhealthy.wait(RECEIVE_TIMEOUT_S)
        # The check ran and said "stuck": nothing may have been sent for it.
        assert path_socket.nothing_pending() is True
        healthy_now.set()
        assert path_socket.receive() == "WATCHDOG=1"
    finally:
        dog.stop()


def test_watchdog_health_check_raising_counts_as_unhealthy(path_socket: FakeSystemd) -> None:
    raised = threading.Event()

    def healthy() -> bool:
        raised.set()
        raise RuntimeError("audio callback state unreadable")

    dog = systemd.Watchdog(healthy, interval=0.02)
    dog.start()
    try:
        assert raised.wait(RECEIVE_TIMEOUT_S)
    finally:
        dog.stop()
    assert path_socket.nothing_pending() is True


def test_watchdog_without_interval_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    calls: list[str] = []

    def healthy() -> bool:
        calls.append("checked")
        return True

    dog = systemd.Watchdog(healthy)
    dog.start()
    assert dog.interval is None
    assert dog.running is False
    dog.stop()
    assert calls == []


def test_watchdog_reads_interval_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "3000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert systemd.Watchdog(lambda: True).interval == 3.0
