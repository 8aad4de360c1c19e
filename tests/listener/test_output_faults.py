"""The audio output failing under a running listener: noticed, reported once, repaired.

Real parts: UDP on 127.0.0.1, PyAudio -> ALSA -> a private PulseAudio null sink that the test
kills and starts again on the same socket (AudioSink.kill()/restart() in tests/audio_rig.py).

Facts measured with this rig (PortAudio 19.6, PyAudio 0.2.14, ALSA's pulse plugin):

- Server killed (SIGKILL, or SIGTERM: it says goodbye first) under an open callback stream:
  PortAudio prints a few "Expression ... failed" lines on stderr, the callback is never called
  again, ``is_active()`` turns False within 5 ms (``is_stopped()`` stays False), nothing is
  raised anywhere; ``stop_stream()`` and ``close()`` then return at once. Nothing blocks.
- While the server is away: ``PyAudio()`` still succeeds and still lists "default",
  ``is_format_supported()`` raises ``ValueError(-9993)`` and ``open()`` raises
  ``OSError(-9993, 'Illegal combination of I/O devices')`` (paBadIODeviceCombination), at once.
- Server back on the same socket (ready about 25 ms after launch): ``open()`` on the SAME
  PyAudio instance works and plays; no new PyAudio is needed for a sound server that returns.
- Server frozen (SIGSTOP, as a hung server): the callback is not called any more but
  ``is_active()`` stays True, and ``stop_stream()``/``close()`` block until the server runs
  again (SIGCONT): only a watchdog on the callback's last run notices, and it must report
  before it closes.
- No device at all (``pcm.!default { type hw card 99 }``): ``open()`` raises
  ``OSError(-9996, 'Invalid output device (no default output device)')``.
"""

from __future__ import annotations

import logging
import signal
import time

import pytest
from audio_rig import AudioSink, assert_played, test_signal
from gpio_helpers import wait_until
from gpiozero import LED
from gpiozero.pins.mock import MockFactory
from listener_fixtures import ListenerFactory, states_seen
from streams import send_with_ours, udp_socket

from appliance.listener.listener import Listener
from appliance.listener.outputs.recovery import Backoff
from appliance.listener.session import EndReason
from appliance.listener.state import ListenerState
from appliance.pi.leds import StatusLeds
from appliance.sender.sender import Sender
from appliance.wire.raw import frame_pcm

pytest_plugins = ("gpio_fixtures",)  # mock_factory: gpiozero's mock pins, for the red LED

S = ListenerState
RED_LED_PIN = 13
PLAY_TIMEOUT_S = 30
RECOVERY_TIMEOUT_S = 20
"""Generous: the retries come 0.5, 1.5, 3.5, 7.5 s after the failure, then every 5 s."""
NOTICED_WITHIN_S = 1.0
"""What the issue promises: a failed output is in ERROR within a second."""

FAILED_MID_STREAM = (
    "audio output 'default' failed: it stopped playing (device unplugged, or its audio server "
    "gone?); dropping incoming audio and retrying (every 0.5 s, slowing to 5 s)"
)
FROZEN_MID_STREAM = (
    "audio output 'default' failed: it has not asked for audio for 0.6 s (audio server or "
    "driver stuck?); dropping incoming audio and retrying (every 0.5 s, slowing to 5 s)"
)
FAILED_AT_OPEN = (
    "cannot open the default audio output: it is not available (unplugged, or its audio "
    "server down?); dropping incoming audio and retrying (every 0.5 s, slowing to 5 s)"
)


def error_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.ERROR and r.name.startswith("appliance")
    ]


def recovery_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if " is back after " in r.getMessage()]


def sessions_ended(listener: Listener, count: int, timeout: float = PLAY_TIMEOUT_S) -> bool:
    """Wait for ``count`` sessions to end (wait_session_played also waits for the audio to
    play out, which never happens with the output down)."""
    deadline = time.monotonic() + timeout
    while listener.sessions_ended < count:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def after_the_error(listener: Listener) -> tuple[ListenerState, str]:
    """The transition that ended the (one) error: the watchdog's, nobody else's."""
    history = listener.state_machine.history()
    [index] = [i for i, t in enumerate(history) if t.current is S.ERROR]
    return history[index + 1].current, history[index + 1].reason


BACK = (S.WAITING, "audio output 'default' is back")


def last_error_transition_at(listener: Listener) -> float:
    return [t.at for t in listener.state_machine.history() if t.current is S.ERROR][-1]


@pytest.mark.audio
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["killed", "stopped"])
def test_the_audio_server_gone_mid_stream_is_an_error_then_it_plays_again(
    audio_sink: AudioSink,
    make_listener: ListenerFactory,
    caplog: pytest.LogCaptureFixture,
    mock_factory: MockFactory,
    sig: signal.Signals,
) -> None:
    caplog.set_level(logging.INFO, logger="appliance")
    before, after_kill, meanwhile, after = (test_signal(1.0, seed=s) for s in (31, 32, 33, 34))
    listener = make_listener()
    red = LED(RED_LED_PIN)
    listener.state_machine.subscribe(StatusLeds(error=red).on_transition)  # as the Pi's app does
    listener.start()
    with udp_socket() as sock, Sender(("127.0.0.1", listener.port), sock=sock) as sender:
        sender.send(frame_pcm([before]), end_of_stream=False)
        assert states_seen(listener)[-1] is S.PLAYING
        killed_at = time.monotonic()
        audio_sink.kill(sig)
        assert listener.state_machine.wait_for(S.ERROR, timeout=PLAY_TIMEOUT_S)
        assert last_error_transition_at(listener) - killed_at < NOTICED_WITHIN_S
        assert listener.state_machine.reason == FAILED_MID_STREAM.split(";")[0]
        wait_until(lambda: red.is_lit, "the red LED on")
        # The rest of the stream is received, dropped and counted; the session ends as usual.
        sender.send(frame_pcm([after_kill]))
    assert sessions_ended(listener, 1)
    # A new stream meanwhile is not queued to be played late: all of it is dropped.
    send_with_ours(meanwhile, listener.port)
    assert sessions_ended(listener, 2)
    assert listener.buffer.depth == 0
    assert listener.state_machine.state is S.ERROR
    assert not listener.output_is_open()
    assert error_lines(caplog) == [FAILED_MID_STREAM]
    assert recovery_lines(caplog) == []

    assert red.is_lit

    audio_sink.restart()
    assert listener.state_machine.wait_for(S.WAITING, timeout=RECOVERY_TIMEOUT_S)
    wait_until(lambda: not red.is_lit, "the red LED off")
    assert len(recovery_lines(caplog)) == 1
    assert recovery_lines(caplog)[0].startswith("audio output 'default' is back after ")
    audio_sink.start_recording()
    send_with_ours(after, listener.port)
    assert listener.wait_session_played(3, timeout=PLAY_TIMEOUT_S)
    assert_played(audio_sink.stop_recording(), after)

    first, second, third = listener.sessions
    assert [s.end_reason for s in (first, second, third)] == [EndReason.MARKER] * 3
    assert first.audio_bytes == len(before + after_kill)
    assert first.dropped_bytes >= len(after_kill)  # and whatever was queued at the kill
    assert (second.audio_bytes, second.dropped_bytes) == (len(meanwhile), len(meanwhile))
    assert (third.audio_bytes, third.dropped_bytes) == (len(after), 0)
    assert error_lines(caplog) == [FAILED_MID_STREAM]  # still the one line
    assert after_the_error(listener) == BACK
    seen = states_seen(listener)
    assert seen[-4:] == [S.BUFFERING, S.PLAYING, S.DRAINING, S.WAITING]
    assert listener.healthy()


@pytest.mark.audio
def test_a_frozen_audio_server_is_an_error_then_it_plays_again(
    audio_sink: AudioSink, make_listener: ListenerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="appliance")
    before, after = test_signal(1.0, seed=39), test_signal(1.0, seed=40)
    listener = make_listener()
    listener.start()
    with udp_socket() as sock, Sender(("127.0.0.1", listener.port), sock=sock) as sender:
        sender.send(frame_pcm([before]), end_of_stream=False)
        frozen_at = time.monotonic()
        audio_sink.freeze()  # its clients' calls hang: PortAudio stops asking for audio
        try:
            assert listener.state_machine.wait_for(S.ERROR, timeout=PLAY_TIMEOUT_S)
            assert last_error_transition_at(listener) - frozen_at < NOTICED_WITHIN_S
            assert error_lines(caplog) == [FROZEN_MID_STREAM]
        finally:
            audio_sink.thaw()
    assert listener.state_machine.wait_for(S.WAITING, timeout=RECOVERY_TIMEOUT_S)
    assert len(recovery_lines(caplog)) == 1
    audio_sink.start_recording()
    send_with_ours(after, listener.port)
    assert listener.wait_session_played(2, timeout=PLAY_TIMEOUT_S)
    assert_played(audio_sink.stop_recording(), after)
    assert listener.sessions[0].audio_bytes == len(before)
    assert error_lines(caplog) == [FROZEN_MID_STREAM]
    assert after_the_error(listener) == BACK


@pytest.mark.audio
def test_the_audio_server_gone_at_a_streams_start_is_an_error_then_it_plays_again(
    audio_sink: AudioSink, make_listener: ListenerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="appliance")
    refused, after = test_signal(0.6, seed=35), test_signal(1.0, seed=36)
    listener = make_listener()
    listener.start()
    audio_sink.kill()  # while idle: the output is closed, nothing plays, nothing to notice
    send_with_ours(refused, listener.port)
    assert sessions_ended(listener, 1)
    assert listener.state_machine.state is S.ERROR
    assert error_lines(caplog) == [FAILED_AT_OPEN]
    [session] = listener.sessions
    assert (session.audio_bytes, session.dropped_bytes) == (len(refused), len(refused))

    audio_sink.restart()
    assert listener.state_machine.wait_for(S.WAITING, timeout=RECOVERY_TIMEOUT_S)
    assert len(recovery_lines(caplog)) == 1
    audio_sink.start_recording()
    send_with_ours(after, listener.port)
    assert listener.wait_session_played(2, timeout=PLAY_TIMEOUT_S)
    assert_played(audio_sink.stop_recording(), after)
    assert listener.sessions[-1].dropped_bytes == 0
    assert error_lines(caplog) == [FAILED_AT_OPEN]
    assert after_the_error(listener) == BACK


@pytest.mark.audio
def test_a_stream_still_on_when_the_server_returns_plays_on(
    audio_sink: AudioSink, make_listener: ListenerFactory
) -> None:
    lost, rest = test_signal(0.6, seed=37), test_signal(1.5, seed=38)
    listener = make_listener()
    listener.start()
    audio_sink.kill()
    with udp_socket() as sock, Sender(("127.0.0.1", listener.port), sock=sock) as sender:
        sender.send(frame_pcm([lost]), end_of_stream=False)
        assert listener.state_machine.state is S.ERROR
        audio_sink.restart()
        assert listener.state_machine.wait_for(S.WAITING, timeout=RECOVERY_TIMEOUT_S)
        # Back while the session is open: the output opens for it, the rest is heard.
        assert listener.output_is_open()
        audio_sink.start_recording()
        sender.send(frame_pcm([rest]))
    assert listener.wait_session_played(1, timeout=PLAY_TIMEOUT_S)
    assert_played(audio_sink.stop_recording(), rest)
    [session] = listener.sessions
    assert session.audio_bytes == len(lost + rest)
    assert session.dropped_bytes == len(lost)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_backoff_doubles_from_half_a_second_to_five() -> None:
    clock = FakeClock()
    backoff = Backoff(clock=clock)
    assert backoff.next_at == 100.5 and not backoff.due()
    waits = []
    for _ in range(7):
        clock.now = backoff.next_at
        assert backoff.due()
        waits.append(backoff.failed())
    assert waits == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0, 5.0]
    assert backoff.attempts == 7
    # Tries at 0.5, 1.5, 3.5, 7.5, 12.5 s... after the failure.
    assert backoff.next_at == pytest.approx(100.5 + 1 + 2 + 4 + 5 + 5 + 5 + 5)
    clock.now = 200.0
    backoff.restart()  # a new failure starts the schedule again
    assert (backoff.next_at, backoff.attempts, backoff.delay_s) == (200.5, 0, 0.5)
    clock.now = 200.49
    assert not backoff.due()


def test_a_backoff_that_cannot_wait_is_refused() -> None:
    with pytest.raises(ValueError, match="0 < first_s <= max_s"):
        Backoff(first_s=0)
    with pytest.raises(ValueError, match="0 < first_s <= max_s"):
        Backoff(first_s=6, max_s=5)
