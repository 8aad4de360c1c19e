"""Senders for tests: ours, one that behaves like the seed's, and a raw socket helper."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

from appliance.sender.sender import Sender, SendReport
from appliance.wire.raw import RAW_FORMAT, frame_pcm

FRAME_BYTES = RAW_FORMAT.packet_bytes
SEED_SLEEP_S = 0.01
"""The seed sender sleeps 10 ms after each 320-byte datagram: about 2x real time."""


def send_with_ours(pcm: bytes, port: int) -> SendReport:
    with Sender(("127.0.0.1", port)) as sender:
        return sender.send(frame_pcm([pcm]))


def send_like_the_seed(pcm: bytes, port: int, sock: socket.socket | None = None) -> int:
    """Send as the blog's audio_server.py does (no end marker); returns datagrams sent."""
    own = sock is None
    sock = sock or socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sent = 0
    try:
        for start in range(0, len(pcm), FRAME_BYTES):
            sock.sendto(pcm[start : start + FRAME_BYTES], ("127.0.0.1", port))
            sent += 1
            time.sleep(SEED_SLEEP_S)
    finally:
        if own:
            sock.close()
    return sent


@contextmanager
def udp_socket() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock
    finally:
        sock.close()
