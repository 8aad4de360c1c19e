"""The receiving thread on a real UDP socket, with a real playout buffer and no player."""

from __future__ import annotations

import queue
import socket
from collections.abc import Iterator

import pytest
from streams import udp_socket

from appliance.listener.playout.buffer import PlayoutBuffer
from appliance.listener.receiver import Receiver
from appliance.listener.session import EndReason, Session

FRAME = bytes(range(1, 161)) * 2


class Rig:
    def __init__(self, timeout_s: float) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.address = self.sock.getsockname()
        self.buffer = PlayoutBuffer(target_ms=20, capacity_s=2.0, drain_tail_ms=0)
        self.started: queue.Queue[Session] = queue.Queue()
        self.ended: queue.Queue[Session] = queue.Queue()
        self.receiver = Receiver(
            self.sock, self.buffer, timeout_s, self.started.put, self.ended.put
        )
        self.receiver.start()

    def next_ended(self) -> Session:
        return self.ended.get(timeout=10)

    def close(self) -> None:
        self.receiver.stop()
        self.sock.close()


@pytest.fixture
def rig() -> Iterator[Rig]:
    rig = Rig(timeout_s=0.3)
    yield rig
    rig.close()


def test_a_session_runs_from_first_packet_to_end_marker(rig: Rig) -> None:
    with udp_socket() as sender:
        for _ in range(3):
            sender.sendto(FRAME, rig.address)
        sender.sendto(b"", rig.address)
        session = rig.next_ended()
        assert session.source == sender.getsockname()
    assert rig.started.get(timeout=1).number == 1
    assert (session.packets, session.audio_bytes, session.end_reason) == (3, 960, EndReason.MARKER)
    assert rig.buffer.depth * 2 == 960


def test_a_silent_source_ends_its_session_after_the_timeout(rig: Rig) -> None:
    with udp_socket() as sender:
        for _ in range(3):
            sender.sendto(FRAME, rig.address)
        session = rig.next_ended()
    assert session.end_reason is EndReason.TIMEOUT


def test_other_sources_are_ignored_until_the_session_ends(rig: Rig) -> None:
    with udp_socket() as first, udp_socket() as second:
        for _ in range(3):
            first.sendto(FRAME, rig.address)
        second.sendto(FRAME, rig.address)
        second.sendto(b"", rig.address)  # cannot end someone else's session
        first.sendto(FRAME, rig.address)
        first.sendto(b"", rig.address)
        session = rig.next_ended()
        second.sendto(FRAME, rig.address)
        second.sendto(b"", rig.address)
        next_session = rig.next_ended()
        second_address = second.getsockname()
    assert (session.packets, session.ignored) == (4, 2)
    assert (next_session.number, next_session.source) == (2, second_address)


def test_junk_is_counted_per_session_and_outside_sessions(rig: Rig) -> None:
    with udp_socket() as sender:
        sender.sendto(b"\x01", rig.address)  # before any session
        for _ in range(3):
            sender.sendto(FRAME, rig.address)
        sender.sendto(bytes(3), rig.address)
        sender.sendto(bytes(100_000 // 2 * 2)[:60000], rig.address)
        sender.sendto(b"", rig.address)
        session = rig.next_ended()
    assert (session.packets, session.invalid) == (3, 2)
    assert rig.receiver.invalid_outside_sessions == 1


def test_an_end_marker_without_a_session_starts_nothing(rig: Rig) -> None:
    with udp_socket() as sender:
        sender.sendto(b"", rig.address)
        sender.sendto(FRAME, rig.address)
        sender.sendto(b"", rig.address)
        session = rig.next_ended()
    assert (session.number, session.packets) == (1, 1)


def test_stopping_ends_a_running_session() -> None:
    rig = Rig(timeout_s=60)
    with udp_socket() as sender:
        for _ in range(3):
            sender.sendto(FRAME, rig.address)
        rig.started.get(timeout=5)
    rig.close()
    assert rig.next_ended().end_reason is EndReason.STOPPED
