"""The real listener under a fuzz run: a legit stream plays bit-exact, with no underrun, while
100,000 malformed datagrams (50,000 during a raw seed-style stream, 50,000 during an RTP
one; and 50,000 more, SRTP forgeries among them, during an SRTP stream) arrive from other
sources: random bytes, RTP-shaped with the stream's own SSRC and
others, RTCP-shaped including BYEs for other SSRCs, empty (a stranger's end marker) and
oversized. Real parts: UDP on 127.0.0.0/8 (the junk from 127.0.0.2-5), PyAudio into the
PulseAudio null sink. The junk starts once the stream plays and stops before it ends.
"""

from __future__ import annotations

import random
import socket
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from audio_rig import AudioSink, assert_played, test_signal
from listener_fixtures import ListenerFactory
from streams import RTP_L16_8K, send_like_the_seed, send_rtp

from appliance.listener.session import Session
from appliance.listener.state import ListenerState
from appliance.wire import Wire
from appliance.wire.codecs import codec_for
from appliance.wire.raw import MAX_PAYLOAD_BYTES
from appliance.wire.rtcp import bye
from appliance.wire.rtp import RtpPacket

JUNK_PER_STREAM = 50_000
JUNK_SOURCES = ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")
STREAM_SSRC = 0x5EED  # streams.send_rtp's
PLAY_TIMEOUT_S = 60


def junk(rng: random.Random) -> bytes:
    kind = rng.randrange(8)
    if kind == 0:
        return rng.randbytes(rng.randrange(1, 1500))
    if kind == 1:  # RTP-shaped, the stream's own SSRC and type, fields that lie
        first = 0x80 | rng.getrandbits(6)
        fields = (rng.getrandbits(16), rng.getrandbits(32), STREAM_SSRC)
        header = struct.pack("!BBHII", first, 97, *fields)
        return header + rng.randbytes(rng.choice((0, 3, 320, rng.randrange(1400))))
    if kind == 2:  # a well-formed RTP packet of another SSRC
        sequence, timestamp, ssrc = rng.getrandbits(16), rng.getrandbits(32), rng.getrandbits(32)
        return bytes(RtpPacket(97, sequence, timestamp, ssrc, rng.randbytes(320)))
    if kind == 3:  # RTCP BYE for the stream's SSRC or another
        return bye(rng.choice((STREAM_SSRC, rng.getrandbits(32))))
    if kind == 4:  # RTCP-shaped with a length off by one
        words = rng.randrange(8)
        header = struct.pack("!BBH", 0x80 | rng.randrange(32), rng.randrange(200, 205), words + 1)
        return header + rng.randbytes(4 * words)
    if kind == 5:
        return b""  # a stranger's end-of-stream marker
    if kind == 6:
        return rng.randbytes(rng.choice((MAX_PAYLOAD_BYTES + 2, 9000, 65000)))  # oversized
    return rng.randbytes(320)  # audio-shaped: a second sender


def rcvbuf_errors() -> int:
    """The kernel's count of UDP datagrams dropped for a full socket buffer (all sockets)."""
    with open("/proc/net/snmp") as snmp:
        rows = [line.split() for line in snmp if line.startswith("Udp:")]
    return int(rows[1][rows[0].index("RcvbufErrors")])


class JunkSender:
    """Sends ``count`` junk datagrams from JUNK_SOURCES over ``seconds``, on its own thread."""

    def __init__(self, port: int, count: int, seconds: float, seed: int) -> None:
        rng = random.Random(seed)
        self.datagrams = [junk(rng) for _ in range(count)]
        self.port, self.seconds, self.sent = port, seconds, 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self) -> None:
        self._thread.join(timeout=120)
        assert not self._thread.is_alive()

    def _run(self) -> None:
        sockets = []
        for address in JUNK_SOURCES:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((address, 0))
            sockets.append(sock)
        try:
            batch = 50
            batches = len(self.datagrams) // batch
            started = time.monotonic()
            for index in range(batches):
                for offset, data in enumerate(self.datagrams[index * batch : (index + 1) * batch]):
                    sockets[offset % len(sockets)].sendto(data, ("127.0.0.1", self.port))
                    self.sent += 1
                due = started + (index + 1) * self.seconds / batches
                time.sleep(max(0.0, due - time.monotonic()))
        finally:
            for sock in sockets:
                sock.close()


def play_under_fuzz(
    listener_port: int, wait_playing: Callable[[], bool], send: Callable[[], object],
    junk_seconds: float, seed: int,
) -> int:
    """Runs ``send`` while junk arrives; returns the junk datagrams sent."""
    sender = threading.Thread(target=send, daemon=True)
    junk_sender = JunkSender(listener_port, JUNK_PER_STREAM, junk_seconds, seed)
    sender.start()
    assert wait_playing()
    junk_sender.start()
    junk_sender.join()
    sender.join(timeout=PLAY_TIMEOUT_S)
    assert not sender.is_alive()
    return junk_sender.sent


def assert_accounted(session: Session, junk_sent: int, dropped_by_kernel: int) -> None:
    """Every junk datagram the kernel delivered was counted (ignored from other sources, or
    invalid), and none of it was played."""
    counted = session.ignored + session.invalid
    assert counted > junk_sent // 2  # most of it reached the listener during the stream
    assert junk_sent - dropped_by_kernel <= counted <= junk_sent, (
        junk_sent, dropped_by_kernel, session.ignored, session.invalid,
    )


@pytest.mark.audio
def test_a_raw_seed_style_stream_plays_bit_exact_under_50000_junk_datagrams(
    audio_sink: AudioSink, make_listener: ListenerFactory
) -> None:
    sent = test_signal(seconds=12.0, seed=41)
    listener = make_listener(timeout_s=1.0)
    audio_sink.start_recording()
    listener.start()
    drops_before = rcvbuf_errors()
    # The seed's sender runs at twice real time: 12 s of audio are sent in about 6 s.
    junk_sent = play_under_fuzz(
        listener.port,
        lambda: listener.state_machine.wait_for(ListenerState.PLAYING, timeout=PLAY_TIMEOUT_S),
        lambda: send_like_the_seed(sent, listener.port),
        junk_seconds=4.0,
        seed=1,
    )
    assert listener.wait_session_played(timeout=PLAY_TIMEOUT_S)
    assert_played(audio_sink.stop_recording(), sent)
    [session] = listener.sessions
    assert (session.wire, session.audio_bytes, session.underruns) == (Wire.RAW, len(sent), 0)
    assert_accounted(session, junk_sent, rcvbuf_errors() - drops_before)


@pytest.mark.audio
def test_an_rtp_stream_plays_bit_exact_under_50000_junk_datagrams(
    audio_sink: AudioSink, make_listener: ListenerFactory
) -> None:
    sent = test_signal(seconds=8.0, seed=42)
    listener = make_listener()
    audio_sink.start_recording()
    listener.start()
    drops_before = rcvbuf_errors()
    junk_sent = play_under_fuzz(
        listener.port,
        lambda: listener.state_machine.wait_for(ListenerState.PLAYING, timeout=PLAY_TIMEOUT_S),
        lambda: send_rtp(sent, listener.port),
        junk_seconds=6.0,
        seed=2,
    )
    assert listener.wait_session_played(timeout=PLAY_TIMEOUT_S)
    assert_played(audio_sink.stop_recording(), sent)
    [session] = listener.sessions
    assert (session.wire, session.audio_bytes, session.underruns) == (Wire.RTP, len(sent), 0)
    assert session.packets == len(sent) // 320
    assert_accounted(session, junk_sent, rcvbuf_errors() - drops_before)


def send_srtp(pcm: bytes, port: int, protect: Callable[[bytes], bytes], ssrc: int) -> None:
    """L16 8 kHz mono RTP in 20 ms packets, paced in real time, protected; then a BYE."""
    started = time.monotonic()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for index, packet in enumerate(rtp_packets(pcm, ssrc)):
            sock.sendto(protect(packet), ("127.0.0.1", port))
            time.sleep(max(0.0, started + (index + 1) * 0.02 - time.monotonic()))
        sock.sendto(protect(bye(ssrc)), ("127.0.0.1", port))


def rtp_packets(pcm: bytes, ssrc: int) -> list[bytes]:
    codec = codec_for(RTP_L16_8K.encoding)
    return [
        bytes(RtpPacket(97, i, 160 * i, ssrc, codec.encode(pcm[at : at + 320], 1), marker=i == 0))
        for i, at in enumerate(range(0, len(pcm), 320))
    ]


@pytest.mark.audio
def test_an_srtp_stream_plays_bit_exact_under_50000_forgeries_and_junk(
    audio_sink: AudioSink, make_listener: ListenerFactory, tmp_path: Path
) -> None:
    srtp = pytest.importorskip("appliance.wire.srtp")
    key = srtp.write_new_key(tmp_path / "listener.key")
    sent = test_signal(seconds=8.0, seed=43)
    ssrc = 0x5EC2E7
    # What an eavesdropper captured of this very stream (SRTP is deterministic for one key,
    # SSRC and index), flipped or cut: forgeries that must never authenticate.
    captured = [srtp.SrtpProtector(key).protect(p) for p in rtp_packets(sent, ssrc)]
    rng = random.Random(3)
    forgeries = []
    for packet in rng.choices(captured, k=JUNK_PER_STREAM // 2):
        forged = bytearray(packet)
        forged[rng.randrange(len(forged))] ^= 1 << rng.randrange(8)
        cut = packet[: rng.randrange(len(packet))]
        forgeries.append(bytes(forged) if rng.random() < 0.8 else cut)
    listener = make_listener(key_file=tmp_path / "listener.key")
    audio_sink.start_recording()
    listener.start()
    drops_before = rcvbuf_errors()
    protect = srtp.SrtpProtector(key).protect
    sender = threading.Thread(target=send_srtp, args=(sent, listener.port, protect, ssrc))
    junk_sender = JunkSender(listener.port, JUNK_PER_STREAM, 6.0, seed=4)
    junk_sender.datagrams[::2] = forgeries  # half forgeries of the stream, half other junk
    sender.start()
    assert listener.state_machine.wait_for(ListenerState.PLAYING, timeout=PLAY_TIMEOUT_S)
    junk_sender.start()
    junk_sender.join()
    sender.join(timeout=PLAY_TIMEOUT_S)
    assert listener.wait_session_played(timeout=PLAY_TIMEOUT_S)
    assert_played(audio_sink.stop_recording(), sent)
    [session] = listener.sessions
    assert (session.wire, session.audio_bytes, session.underruns) == (Wire.RTP, len(sent), 0)
    assert (session.ignored, session.invalid) == (0, 0)  # nothing unauthenticated got that far
    dropped_by_kernel = rcvbuf_errors() - drops_before
    assert junk_sender.sent - dropped_by_kernel <= listener.unauthenticated <= junk_sender.sent
