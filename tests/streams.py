"""Senders for tests: ours, one that behaves like the seed's, a hand-made RTP sender, and a
raw socket helper."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from appliance.audio.format import AudioFormat, Encoding
from appliance.sender.sender import Sender, SendReport
from appliance.wire.codecs import codec_for
from appliance.wire.raw import RAW_FORMAT, frame_pcm
from appliance.wire.rtcp import bye
from appliance.wire.rtp import RtpPacket

FRAME_BYTES = RAW_FORMAT.packet_bytes
SEED_SLEEP_S = 0.01
"""The seed sender sleeps 10 ms after each 320-byte datagram: about 2x real time."""
RTP_L16_8K = AudioFormat(8000, 1, Encoding.S16BE)


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


def send_rtp(
    pcm: bytes,
    port: int,
    *,
    payload_type: int = 97,
    audio_format: AudioFormat = RTP_L16_8K,
    first_seq: int = 1000,
    first_timestamp: int = 123456,
    ssrc: int = 0x5EED,
    sock: socket.socket | None = None,
    header: dict[str, Any] | None = None,
) -> int:
    """Send s16le ``pcm`` as RTP in 20 ms packets, paced in real time, then an RTCP BYE.

    A hand-made sender (not ours, not a peer's): the test chooses every header field, to
    start sequence numbers and timestamps just before they wrap, and ``header`` adds any other
    ``RtpPacket`` fields (CSRCs, an extension, padding) to every packet. Returns packets sent.
    """
    codec = codec_for(audio_format.encoding)
    own = sock is None
    sock = sock or socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    packet_bytes = audio_format.decoded().packet_bytes
    frames = audio_format.packet_frames
    interval = frames / audio_format.rate
    started = time.monotonic()
    sent = 0
    try:
        for index, start in enumerate(range(0, len(pcm), packet_bytes)):
            payload = codec.encode(pcm[start : start + packet_bytes], audio_format.channels)
            packet = RtpPacket(
                payload_type=payload_type,
                sequence=(first_seq + index) % 2**16,
                timestamp=(first_timestamp + index * frames) % 2**32,
                ssrc=ssrc,
                payload=payload,
                marker=index == 0,
                **(header or {}),
            )
            sock.sendto(bytes(packet), ("127.0.0.1", port))
            sent += 1
            time.sleep(max(0.0, started + (index + 1) * interval - time.monotonic()))
        sock.sendto(bye(ssrc), ("127.0.0.1", port))
    finally:
        if own:
            sock.close()
    return sent
