"""Who gets the speaker, on real parts (UDP on 127.0.0.x, PyAudio -> PulseAudio null sink):
junk opens nothing, a silent sender is taken over, strangers outside the allow-list and
forged end markers change nothing."""

from __future__ import annotations

import random
import socket
import threading
import time

import pytest
from audio_rig import SAMPLE_BYTES, AudioSink, assert_played, audible, test_signal
from listener_fixtures import ListenerFactory
from streams import send_rtp, send_with_ours

from appliance.listener.defaults import DEFAULT_TAKEOVER_S
from appliance.listener.session import EndReason
from appliance.wire.raw import RAW_FORMAT

PLAY_TIMEOUT_S = 30
PACKET = RAW_FORMAT.packet_bytes


def send_paced_raw(pcm: bytes, port: int, *, end_marker: bool, host: str = "127.0.0.1") -> None:
    """Raw datagrams in real time from a fresh socket bound on ``host``, as a re-run sender."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        started = time.monotonic()
        for index, start in enumerate(range(0, len(pcm), PACKET)):
            sock.sendto(pcm[start : start + PACKET], ("127.0.0.1", port))
            time.sleep(max(0.0, started + (index + 1) * 0.02 - time.monotonic()))
        if end_marker:
            sock.sendto(b"", ("127.0.0.1", port))


@pytest.mark.audio
def test_junk_to_an_idle_listener_plays_nothing_and_the_next_stream_at_once(
    audio_sink: AudioSink, make_listener: ListenerFactory
) -> None:
    sent = test_signal(seconds=1.0, seed=21)
    listener = make_listener()
    audio_sink.start_recording()
    listener.start()
    rng = random.Random(5)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as junk:
        for _ in range(2000):  # about 0.05 s of random even-length datagrams
            junk.sendto(rng.randbytes(rng.randrange(1, 700) * 2), ("127.0.0.1", listener.port))
    assert listener._receiver is not None
    # Let the listener read what the kernel kept of the burst: a flood fills the socket's
    # buffer, and then the kernel drops anyone's datagrams, ours too (not the listener's doing).
    counted = -1
    while counted != listener._receiver.invalid_outside_sessions:
        counted = listener._receiver.invalid_outside_sessions
        time.sleep(0.2)
    send_with_ours(sent, listener.port)
    assert listener.wait_session_played(timeout=PLAY_TIMEOUT_S)
    assert_played(audio_sink.stop_recording(), sent)  # no noise before it, nothing lost
    [session] = listener.sessions
    assert session.end_reason is EndReason.MARKER
    # Counted, not exactly 2000: while the output opens, the kernel's socket buffer may
    # overflow with such a burst (dropped before the listener sees them).
    assert listener._receiver.invalid_outside_sessions > 100


@pytest.mark.audio
def test_a_stray_datagram_holds_nothing_up(
    audio_sink: AudioSink, make_listener: ListenerFactory
) -> None:
    sent = test_signal(seconds=0.6, seed=27)
    listener = make_listener()
    audio_sink.start_recording()
    listener.start()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stray:
        stray.sendto(b"\x00\x01", ("127.0.0.1", listener.port))  # before: 4.9 s lost to it
    send_paced_raw(sent, listener.port, end_marker=True)
    assert listener.wait_session_played(timeout=PLAY_TIMEOUT_S)
    assert_played(audio_sink.stop_recording(), sent)
    [session] = listener.sessions
    assert (session.packets, session.end_reason) == (len(sent) // PACKET, EndReason.MARKER)


@pytest.mark.audio
def test_a_sender_re_run_without_an_end_marker_loses_at_most_the_takeover_time(
    audio_sink: AudioSink, make_listener: ListenerFactory
) -> None:
    first = test_signal(seconds=1.0, seed=22)
    second = test_signal(seconds=2.0, seed=23)
    listener = make_listener()
    audio_sink.start_recording()
    listener.start()
    send_paced_raw(first, listener.port, end_marker=False)  # killed: no end marker
    send_paced_raw(second, listener.port, end_marker=True)  # re-run at once
    assert listener.wait_session_played(count=2, timeout=PLAY_TIMEOUT_S)
    heard = audible(audio_sink.stop_recording())
    assert [s.end_reason for s in listener.sessions] == [EndReason.TAKEN_OVER, EndReason.MARKER]
    assert heard.startswith(first)
    rest = audible(heard[len(first) :])
    lost_bytes = len(second) - len(rest)
    assert second.endswith(rest), "the second stream is not played whole from where it began"
    takeover_bytes = round(DEFAULT_TAKEOVER_S * RAW_FORMAT.bytes_per_second)
    assert 0 <= lost_bytes <= takeover_bytes + PACKET, f"lost {lost_bytes // SAMPLE_BYTES} samples"


@pytest.mark.audio
def test_only_the_allow_list_may_stream(
    audio_sink: AudioSink, make_listener: ListenerFactory
) -> None:
    sent = test_signal(seconds=0.8, seed=24)
    stranger = test_signal(seconds=0.8, seed=25)
    listener = make_listener(allow=("127.0.0.2/32",))
    audio_sink.start_recording()
    listener.start()
    send_paced_raw(stranger, listener.port, end_marker=True, host="127.0.0.1")
    send_paced_raw(sent, listener.port, end_marker=True, host="127.0.0.2")
    assert listener.wait_session_played(timeout=PLAY_TIMEOUT_S)
    assert_played(audio_sink.stop_recording(), sent)
    [session] = listener.sessions
    assert session.source[0] == "127.0.0.2"
    assert listener._receiver is not None
    assert listener._receiver.sessions.refused == len(stranger) // PACKET + 1


@pytest.mark.audio
def test_a_forged_end_marker_from_the_owner_s_address_does_not_end_an_rtp_stream(
    audio_sink: AudioSink, make_listener: ListenerFactory
) -> None:
    sent = test_signal(seconds=1.2, seed=26)
    listener = make_listener()
    audio_sink.start_recording()
    listener.start()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as owner, socket.socket(
        socket.AF_INET, socket.SOCK_DGRAM
    ) as forger:
        # The forger shares the owner's address and port (SO_REUSEPORT): its datagrams carry
        # exactly the owner's source address, as a spoofed one would.
        for sock in (owner, forger):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        owner.bind(("127.0.0.1", 0))
        forger.bind(owner.getsockname())
        sender = threading.Thread(
            target=send_rtp, args=(sent, listener.port), kwargs={"sock": owner}
        )
        sender.start()
        time.sleep(0.4)
        for _ in range(5):
            forger.sendto(b"", ("127.0.0.1", listener.port))
        sender.join()
    assert listener.wait_session_played(timeout=PLAY_TIMEOUT_S)
    assert_played(audio_sink.stop_recording(), sent)
    [session] = listener.sessions
    assert (session.end_reason, session.invalid) == (EndReason.BYE, 5)
