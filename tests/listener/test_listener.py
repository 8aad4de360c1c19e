"""The whole listener on real parts: UDP on 127.0.0.1, PyAudio -> ALSA -> PulseAudio null sink.

Every test compares what the sink's monitor recorded with what was sent, silence aside.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import pytest
from audio_rig import AudioSink, NoAudioDevice, assert_played, audible, test_signal
from listener_fixtures import ListenerFactory, states_seen
from streams import send_like_the_seed, send_rtp, send_with_ours, udp_socket

from appliance.audio.format import AudioFormat, Encoding
from appliance.errors import AudioDeviceError, NetworkError
from appliance.listener.session import EndReason
from appliance.listener.state import ListenerState
from appliance.sender.sender import Sender
from appliance.wire import Wire
from appliance.wire.codecs import codec_for
from appliance.wire.raw import END_OF_STREAM, MAX_PAYLOAD_BYTES, RAW_FORMAT, frame_pcm

S = ListenerState
PLAY_TIMEOUT_S = 30
FRAME_BYTES = RAW_FORMAT.packet_bytes





@pytest.mark.audio
def test_our_sender_is_played_bit_exact(
    audio_sink: AudioSink, make_listener: ListenerFactory
) -> None:
    sent = test_signal(seconds=1.5, seed=1)
    listener = make_listener()
    audio_sink.start_recording()
    listener.start()
    report = send_with_ours(sent, listener.port)
    assert listener.wait_session_played(timeout=PLAY_TIMEOUT_S)
    assert_played(audio_sink.stop_recording(), sent)
    [session] = listener.sessions
    assert session.end_reason is EndReason.MARKER
    assert (session.packets, session.audio_bytes) == (report.packets, len(sent))
    assert (session.underruns, session.dropped_bytes, session.invalid, session.ignored) == (
        0,
        0,
        0,
        0,
    )
    assert states_seen(listener) == [S.WAITING, S.BUFFERING, S.PLAYING, S.DRAINING, S.WAITING]


@pytest.mark.audio
def test_the_seed_sender_at_twice_real_time_loses_nothing(
    audio_sink: AudioSink, make_listener: ListenerFactory
) -> None:
    sent = test_signal(seconds=1.5, seed=2) + test_signal(seconds=0.0125, seed=3)  # short tail
    assert len(sent) % FRAME_BYTES == 200
    listener = make_listener(timeout_s=0.5)
    audio_sink.start_recording()
    listener.start()
    datagrams = send_like_the_seed(sent, listener.port)
    assert listener.wait_session_played(timeout=PLAY_TIMEOUT_S)
    assert_played(audio_sink.stop_recording(), sent)
    [session] = listener.sessions
    assert session.end_reason is EndReason.TIMEOUT
    assert (session.packets, session.audio_bytes, session.dropped_bytes) == (
        datagrams,
        len(sent),
        0,
    )
    # Sent at 2x real time, the backlog grew well past the 60 ms target: buffered, not lost.
    assert session.peak_depth_ms > 10 * 20
    assert session.underruns == 0


@pytest.mark.audio
def test_a_pause_longer_than_the_buffer_underruns_and_recovers(
    audio_sink: AudioSink, make_listener: ListenerFactory
) -> None:
    first, second = test_signal(seconds=0.6, seed=4), test_signal(seconds=0.6, seed=5)
    listener = make_listener()
    audio_sink.start_recording()
    listener.start()
    with udp_socket() as sock, Sender(("127.0.0.1", listener.port), sock=sock) as sender:
        sender.send(frame_pcm([first]), end_of_stream=False)
        assert listener.state_machine.wait_for(S.UNDERRUN, timeout=PLAY_TIMEOUT_S)
        time.sleep(0.3)  # well past the 60 ms buffer: silence plays meanwhile
        sender.send(frame_pcm([second]))
    assert listener.wait_session_played(timeout=PLAY_TIMEOUT_S)
    assert_played(audio_sink.stop_recording(), first + second)
    [session] = listener.sessions
    assert session.underruns == 1
    assert session.audio_bytes == len(first + second)
    seen = states_seen(listener)
    assert seen[:4] == [S.WAITING, S.BUFFERING, S.PLAYING, S.UNDERRUN]
    assert seen[4] == S.PLAYING
    assert seen[-2:] == [S.DRAINING, S.WAITING]


@pytest.mark.audio
def test_junk_and_a_second_source_do_not_disturb_the_stream(
    audio_sink: AudioSink, make_listener: ListenerFactory
) -> None:
    sent = test_signal(seconds=1.2, seed=6)
    intruder_audio = test_signal(seconds=0.02, seed=7)
    listener = make_listener()
    audio_sink.start_recording()
    listener.start()
    target = ("127.0.0.1", listener.port)
    junk = [bytes(321), bytes(MAX_PAYLOAD_BYTES + 2), b"\x01"]
    with udp_socket() as ours, udp_socket() as intruder:
        for index, start in enumerate(range(0, len(sent), FRAME_BYTES)):
            ours.sendto(sent[start : start + FRAME_BYTES], target)
            if index % 10 == 5:
                ours.sendto(junk[index % len(junk)], target)
                intruder.sendto(intruder_audio, target)
                intruder.sendto(bytes(END_OF_STREAM), target)  # not its session to end
            time.sleep(0.02)
        ours.sendto(bytes(END_OF_STREAM), target)
    assert listener.wait_session_played(timeout=PLAY_TIMEOUT_S)
    assert_played(audio_sink.stop_recording(), sent)
    [session] = listener.sessions
    bursts = len(range(5, len(sent) // FRAME_BYTES, 10))
    assert (session.invalid, session.ignored) == (bursts, 2 * bursts)
    assert session.audio_bytes == len(sent)


@pytest.mark.audio
def test_a_flood_beyond_the_cap_drops_the_oldest_and_counts_it(
    audio_sink: AudioSink, make_listener: ListenerFactory
) -> None:
    sent = test_signal(seconds=2.0, seed=8)
    listener = make_listener(max_buffer_s=0.5)
    audio_sink.start_recording()
    listener.start()
    with udp_socket() as sock:
        for start in range(0, len(sent), FRAME_BYTES):  # as fast as the socket goes
            sock.sendto(sent[start : start + FRAME_BYTES], ("127.0.0.1", listener.port))
        sock.sendto(bytes(END_OF_STREAM), ("127.0.0.1", listener.port))
    assert listener.wait_session_played(timeout=PLAY_TIMEOUT_S)
    heard = audible(audio_sink.stop_recording())
    [session] = listener.sessions
    assert session.audio_bytes == len(sent)
    assert session.dropped_bytes > 0
    assert len(heard) == len(sent) - session.dropped_bytes
    # What was heard is the sent audio with whole stretches cut out, in order.
    assert heard[-FRAME_BYTES:] == sent[-FRAME_BYTES:]
    assert is_ordered_subsequence(heard, sent)


def is_ordered_subsequence(part: bytes, whole: bytes) -> bool:
    samples = iter(whole[i : i + 2] for i in range(0, len(whole), 2))
    return all(
        any(s == wanted for s in samples)
        for wanted in (part[i : i + 2] for i in range(0, len(part), 2))
    )


@pytest.mark.audio
def test_listening_again_after_stop_plays_again(
    audio_sink: AudioSink, make_listener: ListenerFactory
) -> None:
    listener = make_listener()
    listener.start()
    listener.stop()
    assert listener.state_machine.state is S.IDLE
    sent = test_signal(seconds=0.5, seed=9)
    audio_sink.start_recording()
    listener.start()
    send_with_ours(sent, listener.port)
    assert listener.wait_session_played(timeout=PLAY_TIMEOUT_S)
    assert_played(audio_sink.stop_recording(), sent)


def test_no_audio_device_is_a_clear_error_and_the_error_state(
    no_audio_device: NoAudioDevice, make_listener: ListenerFactory
) -> None:
    listener = make_listener()
    with pytest.raises(AudioDeviceError) as caught:
        listener.start()
    message = (
        "cannot open the default audio output: no audio output device found "
        "(see `appliance devices`)"
    )
    assert str(caught.value) == message
    assert listener.state_machine.state is S.ERROR
    assert listener.state_machine.reason == message
    assert not listener.is_listening


def test_a_port_in_use_is_a_clear_error(make_listener: ListenerFactory) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        listener = make_listener(port=port)
        with pytest.raises(NetworkError) as caught:
            listener.start()
    assert str(caught.value) == f"cannot listen on 127.0.0.1:{port}: the port is already in use"
    assert listener.state_machine.state is S.ERROR


@pytest.mark.audio
def test_the_output_is_open_only_while_streams_play_and_loses_no_first_frame(
    audio_sink: AudioSink, make_listener: ListenerFactory
) -> None:
    raw, rtp, ulaw = (test_signal(seconds=0.6, seed=s) for s in (11, 12, 13))
    listener = make_listener()
    listener.start()
    assert not listener.output_is_open()  # listening, idle: no audio callbacks at all
    assert listener.healthy()
    audio_sink.start_recording()
    send_with_ours(raw, listener.port)
    assert listener.wait_session_played(1, timeout=PLAY_TIMEOUT_S)
    assert wait_until(lambda: not listener.output_is_open())
    # Timestamps and sequence numbers wrap inside the stream.
    send_rtp(rtp, listener.port, first_seq=65530, first_timestamp=2**32 - 800)
    assert listener.wait_session_played(2, timeout=PLAY_TIMEOUT_S)
    assert wait_until(lambda: not listener.output_is_open())
    send_rtp(ulaw, listener.port, payload_type=0, audio_format=AudioFormat(8000, 1, Encoding.PCMU))
    assert listener.wait_session_played(3, timeout=PLAY_TIMEOUT_S)
    mu_law = codec_for(Encoding.PCMU)
    ulaw_played = mu_law.decode(mu_law.encode(ulaw, 1), 1)
    assert_played(audio_sink.stop_recording(), raw + rtp + ulaw_played)
    assert [(s.wire, s.payload_type, s.end_reason) for s in listener.sessions] == [
        (Wire.RAW, None, EndReason.MARKER),
        (Wire.RTP, 97, EndReason.BYE),
        (Wire.RTP, 0, EndReason.BYE),
    ]
    assert wait_until(lambda: not listener.output_is_open())
    assert listener.healthy()
    # Each stream went waiting -> buffering -> ... -> waiting, even when its first frames had
    # filled the buffer while the output opened.
    seen = states_seen(listener)
    assert (seen.count(S.BUFFERING), seen.count(S.DRAINING), seen[-1]) == (3, 3, S.WAITING)


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True
