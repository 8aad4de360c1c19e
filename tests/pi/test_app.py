"""The whole Pi-side appliance (``ListenerApp``) on real parts: gpiozero MockFactory pins for
the buttons and LEDs, python-zeroconf on 127.0.0.1, UDP on 127.0.0.1, PyAudio into the
PulseAudio null sink of the test rig."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from audio_rig import AudioSink, NoAudioDevice, assert_played, test_signal
from cli_runner import run_appliance
from gpio_helpers import changes, delivered, wait_until
from gpiozero.pins.mock import MockFactory

from appliance.audio.format import Encoding
from appliance.audio.pcm import apply_gain
from appliance.config import ApplianceConfig, GpioSection, ListenSection, VolumeSection
from appliance.discovery import discover_listeners, resolve_listener
from appliance.discovery.records import NetworkFigures
from appliance.listener.listener import ListenerConfig
from appliance.listener.session import Session
from appliance.listener.state import ListenerState, StateMachine
from appliance.pi.app import ListenerApp
from appliance.sender.sender import Sender
from appliance.wire.codecs import codec_for
from appliance.wire.raw import frame_pcm
from appliance.wire.rtcp import bye
from appliance.wire.rtp import RtpPacket

pytest_plugins = ("gpio_fixtures",)

S = ListenerState
LISTEN, VOLUME_UP, VOLUME_DOWN = 17, 22, 23
STATUS_LED, UNDERRUN_LED, ERROR_LED = 5, 6, 13
LOOPBACK = ("127.0.0.1",)
WAIT_S = 30


@dataclass
class RunningApp:
    app: ListenerApp
    stop: threading.Event
    thread: threading.Thread
    shutdowns: list[str] = field(default_factory=list)
    sock: socket.socket = field(default_factory=lambda: socket.socket(type=socket.SOCK_DGRAM))

    @property
    def machine(self) -> StateMachine:
        return self.app.listener.state_machine

    def send(self, pcm: bytes, *, end_of_stream: bool = True) -> None:
        """Send from one socket throughout: a session belongs to its source address."""
        sender = Sender(("127.0.0.1", self.app.listener.port), sock=self.sock)
        sender.send(frame_pcm([pcm]), end_of_stream=end_of_stream)


@pytest.fixture
def start_app(
    mock_factory: MockFactory, tmp_path: Path
) -> Iterator[Callable[..., RunningApp]]:
    running: list[RunningApp] = []

    def start(**gpio_options: object) -> RunningApp:
        config = ApplianceConfig(
            listen=ListenSection(
                bind="127.0.0.1",
                port=0,
                interfaces=LOOPBACK,
                name=f"app-test-{os.getpid()}-{len(running)}",
                autostart=False,
                buffer_ms=400,  # long enough to see the buffering blink
            ),
            gpio=GpioSection(hold_time_s=0.3, **gpio_options),  # type: ignore[arg-type]
            volume=VolumeSection(state_file=tmp_path / "volume"),
        )
        listener_config = ListenerConfig(**config.listen.listener_kwargs())
        shutdowns: list[str] = []
        app = ListenerApp(
            config,
            listener_config,
            pin_factory=mock_factory,
            shutdown=lambda: shutdowns.append("poweroff"),
            retry_audio=False,
        )
        stop = threading.Event()
        thread = threading.Thread(target=app.run, args=(stop,), daemon=True)
        thread.start()
        handle = RunningApp(app, stop, thread, shutdowns)
        running.append(handle)
        return handle

    yield start
    for handle in running:
        handle.stop.set()
        handle.thread.join(WAIT_S)
        handle.app.close()
        handle.sock.close()


def click(factory: MockFactory, pin: int) -> None:
    factory.pin(pin).drive_low()
    factory.pin(pin).drive_high()


def advertised_names() -> set[str]:
    return {record.name for record in discover_listeners(1.5, list(LOOPBACK))}


def lit_throughout(factory: MockFactory, pin: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not factory.pin(pin).state:
            return False
        time.sleep(0.01)
    return True


@pytest.mark.audio
def test_button_leds_and_mdns_follow_a_stream(
    audio_sink: AudioSink, mock_factory: MockFactory, start_app: Callable[..., RunningApp]
) -> None:
    running = start_app(shutdown_on_hold=False)
    name = running.app.config.listen.name
    assert name is not None
    assert running.machine.state is S.IDLE
    assert not mock_factory.pin(STATUS_LED).state

    # A press starts listening: the record appears on mDNS, the status LED slow-blinks.
    waiting = delivered(running.machine, S.WAITING)
    click(mock_factory, LISTEN)
    waiting()
    record = resolve_listener(name, list(LOOPBACK), timeout=WAIT_S)
    assert (record.port, record.properties.state) == (running.app.listener.port, "waiting")

    # A stream with a pause longer than the buffer: buffering, playing, underrun, playing.
    first, second = test_signal(0.8, seed=21), test_signal(0.8, seed=22)
    buffering = delivered(running.machine, S.BUFFERING)
    playing = delivered(running.machine, S.PLAYING)
    audio_sink.start_recording()
    status_before = len(changes(mock_factory.pin(STATUS_LED)))
    sender = threading.Thread(target=running.send, args=(first,), kwargs={"end_of_stream": False})
    sender.start()
    buffering()
    playing()
    # Buffering blinked fast (0.1 s on/off over the 400 ms target), playing holds it lit.
    assert len(changes(mock_factory.pin(STATUS_LED))) - status_before >= 3
    assert lit_throughout(mock_factory, STATUS_LED, 0.2)
    sender.join()
    underrun_flashes = len(changes(mock_factory.pin(UNDERRUN_LED)))
    assert running.machine.wait_for(S.UNDERRUN, timeout=WAIT_S)
    wait_until(
        lambda: len(changes(mock_factory.pin(UNDERRUN_LED))) >= underrun_flashes + 2,
        "the underrun LED flashes on and off",
    )
    time.sleep(0.5)
    running.send(second)
    assert running.app.listener.wait_session_played(timeout=WAIT_S)
    assert_played(audio_sink.stop_recording(), first + second)
    assert running.app.listener.sessions[0].underruns == 1
    assert not mock_factory.pin(ERROR_LED).state

    # A second press stops: the record is withdrawn and the LEDs go dark.
    idle = delivered(running.machine, S.IDLE)
    click(mock_factory, LISTEN)
    idle()
    assert not running.app.listener.is_listening
    assert name not in advertised_names()
    assert not mock_factory.pin(STATUS_LED).state


@pytest.mark.audio
def test_a_long_press_powers_off_through_the_injected_action(
    audio_sink: AudioSink, mock_factory: MockFactory, start_app: Callable[..., RunningApp]
) -> None:
    running = start_app(shutdown_on_hold=True)
    waiting = delivered(running.machine, S.WAITING)
    click(mock_factory, LISTEN)  # short press (acts on release): listening
    waiting()
    idle = delivered(running.machine, S.IDLE)
    mock_factory.pin(LISTEN).drive_low()
    wait_until(lambda: running.shutdowns == ["poweroff"], "the shutdown action")
    mock_factory.pin(LISTEN).drive_high()
    idle()  # listening stopped (and the record withdrawn) before powering off
    assert running.shutdowns == ["poweroff"]


@pytest.mark.audio
def test_volume_buttons_change_what_is_played(
    audio_sink: AudioSink, mock_factory: MockFactory, start_app: Callable[..., RunningApp]
) -> None:
    running = start_app(
        shutdown_on_hold=False, volume_up_button=VOLUME_UP, volume_down_button=VOLUME_DOWN
    )
    for _ in range(3):
        click(mock_factory, VOLUME_DOWN)
    click(mock_factory, VOLUME_UP)
    wait_until(lambda: running.app.listener.gain < 1.0, "the gain to change")
    factor = running.app.listener.gain
    assert factor == pytest.approx(10 ** (-6 / 20))  # three steps down, one up: -6 dB
    waiting = delivered(running.machine, S.WAITING)
    click(mock_factory, LISTEN)
    waiting()
    sent = test_signal(0.8, seed=23)
    audio_sink.start_recording()
    running.send(sent)
    assert running.app.listener.wait_session_played(timeout=WAIT_S)
    assert_played(audio_sink.stop_recording(), apply_gain(sent, factor))
    assert (Path(running.app.config.volume.state_file or "")).read_text().strip() == "-6.0"


def test_a_pin_used_twice_is_refused_at_start_up(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[gpio]\nlisten_button = 5\n")
    result = run_appliance("listen", "--config", str(config))
    assert result.returncode == 2
    assert result.stderr == (
        f"appliance listen: error: {config}: [gpio] BCM 5 is used twice: listen_button and "
        "status_led\n"
    )


class NotifyCollector:
    """The receiving end of NOTIFY_SOCKET: what the appliance tells systemd, in order."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.messages: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue

    def first_index(self, prefix: str) -> int:
        wait_until(lambda: any(m.startswith(prefix) for m in self.messages), prefix)
        return next(i for i, m in enumerate(self.messages) if m.startswith(prefix))

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def test_under_systemd_a_late_sound_card_is_retried_and_ready_waits_for_audio_and_mdns(
    no_audio_device: NoAudioDevice, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The card's sound server is started first: PulseAudio itself speaks sd_notify, and must
    # not inherit the appliance's NOTIFY_SOCKET. It "appears" when ALSA is pointed at it.
    sink = AudioSink()
    sink.start()
    collector = NotifyCollector(tmp_path / "notify.sock")
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    config = ApplianceConfig(
        listen=ListenSection(
            bind="127.0.0.1", port=0, interfaces=LOOPBACK, name=f"systemd-test-{os.getpid()}"
        ),
        gpio=GpioSection(enabled=False),
        volume=VolumeSection(state_file=tmp_path / "volume"),
    )
    app = ListenerApp(config, ListenerConfig(**config.listen.listener_kwargs()), retry_audio=True)
    stop = threading.Event()
    runner = threading.Thread(target=app.run, args=(stop,), daemon=True)
    try:
        runner.start()
        assert app.listener.state_machine.wait_for(S.ERROR, timeout=WAIT_S)
        collector.first_index("STATUS=error: cannot open the default audio output")
        assert not any(m.startswith("READY=1") for m in collector.messages)
        assert app.advertiser is not None and app.advertiser.registered_name is None
        monkeypatch.setenv("ALSA_CONFIG_PATH", str(sink.asound_conf))  # the card appears
        ready = collector.first_index("READY=1")
        assert app.listener.is_listening
        assert app.advertiser.registered_name == config.listen.name
        assert collector.messages[ready] == "READY=1\nSTATUS=waiting"
        collector.first_index("WATCHDOG=1")  # fed while the audio callback runs
        stop.set()
        runner.join(WAIT_S)
    finally:
        stop.set()
        app.close()
        collector.close()
        sink.close()
    assert "STOPPING=1" in collector.messages


def send_rtp_losing(pcm: bytes, port: int, lose: set[int]) -> None:
    """``pcm`` (s16le 8 kHz mono) as RTP L16 (type 97) in 20 ms packets in real time, except
    the packets numbered in ``lose``, then an RTCP BYE."""
    packet_bytes, frames, ssrc = 320, 160, 0x5EED
    l16 = codec_for(Encoding.S16BE)
    started = time.monotonic()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for index, start in enumerate(range(0, len(pcm), packet_bytes)):
            if index not in lose:
                payload = l16.encode(pcm[start : start + packet_bytes], 1)
                packet = RtpPacket(
                    payload_type=97,
                    sequence=1000 + index,
                    timestamp=index * frames,
                    ssrc=ssrc,
                    payload=payload,
                    marker=index == 0,
                )
                sock.sendto(bytes(packet), ("127.0.0.1", port))
            time.sleep(max(0.0, started + (index + 1) * frames / 8000 - time.monotonic()))
        sock.sendto(bye(ssrc), ("127.0.0.1", port))


def start_wav_app(
    tmp_path: Path, name: str, **listen: Any
) -> tuple[ListenerApp, threading.Event, threading.Thread]:
    """A running appliance named ``name`` on 127.0.0.1, registered over mDNS, playing into a
    WAV file paced in real time (no sound card needed); stop it with the event."""
    config = ApplianceConfig(
        listen=ListenSection(
            bind="127.0.0.1", port=0, interfaces=LOOPBACK, name=name, **listen
        ),
        gpio=GpioSection(enabled=False),
        volume=VolumeSection(state_file=tmp_path / "volume"),
    )
    listener_config = ListenerConfig(
        **config.listen.listener_kwargs(), output_file=tmp_path / "played.wav"
    )
    app = ListenerApp(config, listener_config, retry_audio=False)
    stop = threading.Event()
    runner = threading.Thread(target=app.run, args=(stop,), daemon=True)
    runner.start()
    advertiser = app.advertiser
    assert advertiser is not None
    if not advertiser.wait_registered(WAIT_S):
        stop.set()
        runner.join(WAIT_S)
        app.close()
        raise AssertionError(f"not registered: {advertiser.last_error}")
    return app, stop, runner


def test_the_mdns_record_carries_the_latency_target_and_each_sessions_figures(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    name = f"playout-test-{os.getpid()}"
    app, stop, runner = start_wav_app(tmp_path, name, buffer_ms=80)
    try:
        advertiser = app.advertiser
        assert advertiser is not None
        # From the first registration on: the starting target, no figures yet.
        published = advertiser.published
        assert published is not None
        assert (published.latency_ms, published.network) == (80, None)
        record = resolve_listener(name, list(LOOPBACK), timeout=WAIT_S)
        assert (record.properties.latency_ms, record.properties.network) == (80, None)

        # An observer that fails is logged and does not stop the others or the listener.
        def broken(session: Session) -> None:
            raise RuntimeError("observer bug")

        app.listener.subscribe_sessions(broken)
        told: list[Session] = []
        unsubscribe = app.listener.subscribe_sessions(told.append)

        # An RTP stream with two packets lost: when it ends, the record has its figures.
        send_rtp_losing(test_signal(1.0, seed=31), app.listener.port, lose={20, 21})
        assert app.listener.wait_session_played(timeout=WAIT_S)
        [session] = app.listener.sessions
        assert session.lost == 2
        figures = NetworkFigures.from_session(session)
        assert figures.lost == 2
        assert advertiser.wait_published_playout(round(session.target_ms), figures, WAIT_S)
        record = resolve_listener(name, list(LOOPBACK), timeout=WAIT_S)
        assert record.properties.latency_ms == round(session.target_ms)
        assert record.properties.network == figures
        assert record.properties.sync is None  # no group: the sender announced no delay
        wait_until(lambda: told == [session], "the observer after the failing one")
        assert "a session observer failed" in caplog.text

        # The next session (raw: nothing says what was lost) replaces them.
        unsubscribe()
        with socket.socket(type=socket.SOCK_DGRAM) as sock:
            Sender(("127.0.0.1", app.listener.port), sock=sock).send(
                frame_pcm([test_signal(0.3, seed=32)]), end_of_stream=True
            )
        assert app.listener.wait_session_played(2, timeout=WAIT_S)
        second = app.listener.sessions[1]
        raw_figures = NetworkFigures.from_session(second)
        assert raw_figures.lost is None
        assert advertiser.wait_published_playout(round(second.target_ms), raw_figures, WAIT_S)
        assert told == [session]
        assert app.listener.is_listening
    finally:
        stop.set()
        runner.join(WAIT_S)
        app.close()


def test_an_error_raised_to_the_caller_is_not_logged_twice(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from appliance.listener.state import ListenerState, Transition
    from appliance.pi.app import log_transition

    caplog.set_level("DEBUG", logger="appliance.pi.app")
    log_transition(Transition(ListenerState.IDLE, ListenerState.ERROR, "port in use", 0.0, True))
    log_transition(Transition(ListenerState.PLAYING, ListenerState.ERROR, "device gone", 0.0))
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("DEBUG", "error: port in use"),
        ("ERROR", "error: device gone"),
    ]


def test_the_mdns_record_says_how_the_listener_plays_in_step_with_a_group(
    tmp_path: Path,
) -> None:
    """A sender that announces a group delay (``--delay-ms``): while the listener plays in
    step, TXT ``syn`` carries its offset to the sender, its distance from the schedule and
    the delay, and ``appliance status`` shows them; the ended session's stay."""
    from appliance.audio.format import AudioFormat
    from appliance.discovery.syncrecord import SyncRecord
    from appliance.sender.packetizer import RtpStream
    from appliance.sender.sender import Target

    name = f"sync-test-{os.getpid()}"
    app, stop, runner = start_wav_app(tmp_path, name)
    try:
        advertiser = app.advertiser
        assert advertiser is not None
        assert advertiser.published is not None and advertiser.published.sync is None
        result = run_appliance("status", name, "--interface", "127.0.0.1", "--timeout", "30")
        assert result.returncode == 0, result.stderr
        assert not [line for line in result.stdout.splitlines() if line.startswith("sync")]
        sender = Sender(
            targets=[Target(("127.0.0.1", app.listener.port), name, required=True)],
            listen=True, group_delay_us=300_000,
        )  # fmt: skip
        pcm = test_signal(4.0, seed=33)
        sending = threading.Thread(
            target=sender.send, args=(RtpStream([pcm], AudioFormat(8000, 1), 112),), daemon=True
        )
        sending.start()
        # While it plays: published as soon as the listener is in step.
        wait_until(
            lambda: (p := advertiser.published) is not None and p.sync is not None,
            "TXT syn while playing",
        )
        playing = advertiser.published
        assert playing is not None and playing.sync is not None
        assert playing.sync.delay_ms == 300 and abs(playing.sync.offset_ms) < 1
        sending.join(WAIT_S)
        sender.close()
        assert app.listener.wait_session_played(timeout=WAIT_S)
        [session] = app.listener.sessions
        final = SyncRecord.from_figures(session.sync)
        assert final is not None and final.schedule_ms is not None
        assert abs(final.schedule_ms) < 1.5
        assert advertiser.wait_sync(final, WAIT_S)
        result = run_appliance("status", name, "--interface", "127.0.0.1", "--timeout", "30")
        assert result.returncode == 0, result.stderr
        shown = result.stdout.splitlines()
        at = next(i for i, line in enumerate(shown) if line.startswith("sync:"))
        # One line, or two when it runs past 80 columns.
        assert " ".join(" ".join(shown[at : at + 2]).split()) == f"sync: {final.describe()}"
        result = run_appliance(
            "status", name, "--interface", "127.0.0.1", "--timeout", "30", "--json"
        )
        assert json.loads(result.stdout)["sync"] == final.to_json()
    finally:
        stop.set()
        runner.join(WAIT_S)
        app.close()
