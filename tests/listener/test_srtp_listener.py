"""A listener with a key (SRTP, appliance.wire.srtp) on real parts: UDP on 127.0.0.1, the real
libsrtp, the WAV file output (bytes matter here, not timing) or the PulseAudio null sink.

Only streams that authenticate play; raw PCM, plain RTP, another key, a replay, a forged end
marker and a forged plain BYE from the owner's own address are counted and dropped, start
nothing, end nothing, and get no reply.
"""

from __future__ import annotations

import base64
import random
import socket
import threading
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest
from audio_rig import AudioSink, assert_played, test_signal
from listener_fixtures import ListenerFactory

from appliance.listener.listener import Listener
from appliance.listener.session import EndReason
from appliance.listener.state import ListenerState
from appliance.sender.replies import TargetState
from appliance.wire import Wire
from appliance.wire.reply import ReplyState
from appliance.wire.rtcp import Bye, pack_compound
from appliance.wire.rtp import RtpPacket
from appliance.wire.srtp import KEY_BYTES, SrtpError, SrtpProtector, SrtpUnprotector

KEY = bytes(range(7, 7 + KEY_BYTES))
WRONG_KEY = bytes(range(50, 50 + KEY_BYTES))
SSRC = 0x5EC0DE
PLAY_TIMEOUT_S = 60
PACKET_BYTES = 320
PAYLOAD_TYPE = 97
"""A dynamic type the listener plays as L16 8000 Hz mono without a map."""


def write_key(tmp_path: Path, key: bytes = KEY) -> Path:
    path = tmp_path / "listener.key"
    path.write_text(base64.b64encode(key).decode() + "\n")
    path.chmod(0o600)
    return path


def rtp_packets(pcm: bytes, ssrc: int = SSRC) -> list[bytes]:
    big_endian = b"".join(pcm[i : i + 2][::-1] for i in range(0, len(pcm), 2))
    return [
        bytes(RtpPacket(
            PAYLOAD_TYPE, 1000 + n, 5000 + n * 160, ssrc, big_endian[start : start + PACKET_BYTES],
            n == 0,
        ))
        for n, start in enumerate(range(0, len(big_endian), PACKET_BYTES))
    ]


def bye(ssrc: int = SSRC) -> bytes:
    return pack_compound([Bye((ssrc,))])


@pytest.fixture
def owner() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock


@pytest.fixture
def stranger() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock


def wav_frames(path: Path) -> bytes:
    with wave.open(str(path), "rb") as wav:
        return wav.readframes(wav.getnframes())


def replies(sock: socket.socket) -> list[bytes]:
    """Every datagram waiting on ``sock`` (none: an empty list)."""
    sock.setblocking(False)
    received = []
    while True:
        try:
            received.append(sock.recv(65536))
        except BlockingIOError:
            return received


def nothing_starts(listener: Listener, seconds: float = 1.0) -> bool:
    """For ``seconds``: the listener stays waiting, and no session begins or ends."""
    ended = listener.sessions_ended
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if listener.state_machine.state is not ListenerState.WAITING:
            return False
        if listener.sessions_ended != ended:
            return False
        time.sleep(0.02)
    return True


def test_without_authentication_nothing_starts_and_nothing_answers(
    make_listener: ListenerFactory,
    tmp_path: Path,
    stranger: socket.socket,
    caplog: pytest.LogCaptureFixture,
) -> None:
    listener = make_listener(output_file=tmp_path / "played.wav", key_file=write_key(tmp_path))
    listener.start()
    target = ("127.0.0.1", listener.port)
    pcm = test_signal(seconds=0.4, seed=3)
    attempts = [
        *(pcm[i : i + PACKET_BYTES] for i in range(0, len(pcm), PACKET_BYTES)),  # raw wire
        *rtp_packets(pcm),  # plain RTP
        *(SrtpProtector(WRONG_KEY).protect(p) for p in rtp_packets(pcm)),  # another key
        b"",  # the raw wire's end marker
        bye(),
    ]
    for datagram in attempts:
        stranger.sendto(datagram, target)
        time.sleep(0.005)
    assert nothing_starts(listener)
    assert listener.unauthenticated == len(attempts)
    assert replies(stranger) == []
    assert not (tmp_path / "played.wav").exists()
    # One log line for all of them (at most one per 10 s), not one per datagram.
    lines = [r.getMessage() for r in caplog.records if "does not authenticate" in r.getMessage()]
    assert lines == [
        f"dropped a datagram from 127.0.0.1:{stranger.getsockname()[1]} that does not "
        "authenticate (not RTP or RTCP); 1 so far"
    ]


def test_a_keyed_stream_survives_forgeries_from_its_own_address(
    make_listener: ListenerFactory,
    tmp_path: Path,
    owner: socket.socket,
    stranger: socket.socket,
) -> None:
    listener = make_listener(
        output_file=tmp_path / "played.wav", key_file=write_key(tmp_path), timeout_s=5.0
    )
    listener.start()
    target = ("127.0.0.1", listener.port)
    pcm = test_signal(seconds=2.0, seed=5)
    protect = SrtpProtector(KEY)
    packets = rtp_packets(pcm)
    captured: list[bytes] = []
    forged = 0
    for index, packet in enumerate(packets):
        datagram = protect.protect(packet)
        owner.sendto(datagram, target)
        captured.append(datagram)
        if index == 40:
            # From the owner's own address: the raw end marker, a plain BYE, a replay of a
            # captured packet, plain RTP carrying other audio, an SRTCP BYE in another key.
            for attack in (
                b"", bye(), captured[10], captured[40], rtp_packets(bytes(PACKET_BYTES))[0],
                SrtpProtector(WRONG_KEY).protect(bye()),
            ):
                owner.sendto(attack, target)
                forged += 1
            stranger.sendto(SrtpProtector(WRONG_KEY).protect(packets[41]), target)
            forged += 1
        time.sleep(0.02)
    for _ in range(2):
        owner.sendto(protect.protect(bye()), target)
    assert listener.wait_session_played(timeout=PLAY_TIMEOUT_S)
    [session] = listener.sessions
    assert (session.wire, session.end_reason, session.packets) == (
        Wire.RTP, EndReason.BYE, len(packets),
    )
    assert (session.audio_bytes, session.invalid) == (len(pcm), 0)
    assert_played(wav_frames(tmp_path / "played.wav"), pcm)
    assert listener.unauthenticated == forged
    # The owner's replies are SRTCP in the key, and say what was played; the stranger got none.
    state = TargetState(target, "listener")
    unprotect = SrtpUnprotector(KEY)
    answers = replies(owner)
    assert answers
    for answer in answers:
        state.receive(unprotect.unprotect(answer), SSRC)
    assert state.final is not None and state.final.state is ReplyState.STOPPED
    assert round(state.final.played_s, 2) == 2.0
    assert replies(stranger) == []
    with pytest.raises(SrtpError):
        SrtpUnprotector(WRONG_KEY).unprotect(answers[0])


@pytest.mark.audio
def test_a_replayed_stream_plays_nothing(
    audio_sink: AudioSink, make_listener: ListenerFactory, tmp_path: Path, owner: socket.socket
) -> None:
    """A whole captured stream sent again (even from its address): every packet is refused."""
    listener = make_listener(key_file=write_key(tmp_path), timeout_s=1.0)
    pcm = test_signal(seconds=1.0, seed=9)
    protect = SrtpProtector(KEY)
    captured = [protect.protect(p) for p in rtp_packets(pcm)] + [protect.protect(bye())]
    audio_sink.start_recording()
    listener.start()
    target = ("127.0.0.1", listener.port)
    for datagram in captured:
        owner.sendto(datagram, target)
        time.sleep(0.02)
    assert listener.wait_session_played(timeout=PLAY_TIMEOUT_S)
    assert_played(audio_sink.stop_recording(), pcm)
    for datagram in captured:
        owner.sendto(datagram, target)
        time.sleep(0.005)
    assert nothing_starts(listener)
    assert (len(listener.sessions), listener.unauthenticated) == (1, len(captured))


def test_a_keyed_stream_plays_bit_exact_through_a_fuzz_flood(
    make_listener: ListenerFactory,
    tmp_path: Path,
    owner: socket.socket,
    stranger: socket.socket,
) -> None:
    """10,000 random, RTP-shaped and SRTP-shaped datagrams (genuine packets of the stream
    with bytes changed, cut, or replayed) from a stranger while the stream plays."""
    listener = make_listener(
        output_file=tmp_path / "played.wav", key_file=write_key(tmp_path), timeout_s=5.0
    )
    listener.start()
    target = ("127.0.0.1", listener.port)
    pcm = test_signal(seconds=4.0, seed=13)
    protect = SrtpProtector(KEY)
    packets = [protect.protect(p) for p in rtp_packets(pcm)]
    generator = random.Random(17)
    flood: list[bytes] = []
    for index in range(10_000):
        genuine = generator.choice(packets)
        kind = index % 5
        if kind == 0:
            flood.append(generator.randbytes(generator.randrange(0, 1500)))
        elif kind == 1:  # plain RTP of another SSRC
            flood.append(rtp_packets(generator.randbytes(320), ssrc=generator.getrandbits(32))[0])
        elif kind == 2:  # a genuine packet with a byte changed
            changed = bytearray(genuine)
            changed[generator.randrange(len(changed))] ^= 1 + generator.randrange(255)
            flood.append(bytes(changed))
        elif kind == 3:  # cut short
            flood.append(genuine[: generator.randrange(len(genuine))])
        else:  # SRTCP-shaped
            flood.append(bytes([0x81, 203]) + generator.randbytes(generator.randrange(6, 60)))
    sent_flood = threading.Event()

    def send_flood() -> None:
        for datagram in flood:
            stranger.sendto(datagram, target)
            time.sleep(0.0001)
        sent_flood.set()

    flooder = threading.Thread(target=send_flood, daemon=True)
    owner.sendto(packets[0], target)
    flooder.start()
    for index, datagram in enumerate(packets[1:], 1):
        if index == len(packets) - 10:
            # The whole flood is in the socket's queue before the stream's last packets (a
            # pause here would be concealed audio, not a fault of the flood).
            flooder.join(timeout=PLAY_TIMEOUT_S)
            assert sent_flood.is_set()
        time.sleep(0.02)
        owner.sendto(datagram, target)
    owner.sendto(protect.protect(bye()), target)
    assert listener.wait_session_played(timeout=PLAY_TIMEOUT_S)
    [session] = listener.sessions
    assert (session.end_reason, session.packets, session.audio_bytes, session.invalid) == (
        EndReason.BYE, len(packets), len(pcm), 0,
    )
    assert_played(wav_frames(tmp_path / "played.wav"), pcm)
    assert listener.unauthenticated == len(flood)
