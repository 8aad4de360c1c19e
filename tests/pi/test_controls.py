"""Buttons and LEDs on gpiozero mock pins, driving a listener stand-in (and the real one)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gpio_helpers import FakeListener, changes, delivered, wait_until
from gpiozero import LED, Device
from gpiozero.pins.mock import MockFactory

from appliance.config import GpioSection, ShutdownSetting, VolumeSection
from appliance.errors import AudioDeviceError
from appliance.listener.state import ListenerState
from appliance.pi import controls as controls_module
from appliance.pi.controls import Controls, open_controls, systemctl_poweroff
from appliance.pi.volume import Volume, db_to_factor

pytest_plugins = ("gpio_fixtures",)  # the mock_factory and fake_listener fixtures

S = ListenerState
LISTEN, UP, DOWN, GREEN, AMBER, RED = 17, 22, 23, 5, 6, 13


@pytest.fixture(autouse=True)
def never_power_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """Safety net: a test that reaches the default shutdown action runs `true`, not poweroff."""
    monkeypatch.setattr(controls_module, "SHUTDOWN_COMMAND", ("true",))


class Shutdown:
    """The injected power-off: records instead of powering off."""

    def __init__(self, calls: list[str]) -> None:
        self.calls = calls
        self.done = threading.Event()

    def __call__(self) -> None:
        self.calls.append("shutdown")
        self.done.set()


MakeControls = Callable[..., Controls]


@pytest.fixture
def shutdown(fake_listener: FakeListener) -> Shutdown:
    return Shutdown(fake_listener.calls)


@pytest.fixture
def make_controls(
    mock_factory: MockFactory, fake_listener: FakeListener, shutdown: Shutdown, tmp_path: Path
) -> Iterator[MakeControls]:
    """``make_controls(**GpioSection fields)``: Controls on mock pins, closed after the test."""
    made: list[Controls] = []

    def make(shutdown_on_hold: bool = False, hold_time_s: float = 3.0, **pins: Any) -> Controls:
        gpio = GpioSection(shutdown_on_hold=shutdown_on_hold, hold_time_s=hold_time_s, **pins)
        volume = Volume.from_config(VolumeSection(state_file=tmp_path / "volume"))
        controls = Controls(
            gpio,
            fake_listener,
            volume=volume,
            shutdown=shutdown,
            pin_factory=mock_factory,
        )
        made.append(controls)
        return controls

    yield make
    for controls in made:
        controls.close()


def state_of(listener: FakeListener) -> ListenerState:
    return listener.state_machine.state


def press(factory: MockFactory, pin: int) -> None:
    factory.pin(pin).drive_low()


def release(factory: MockFactory, pin: int) -> None:
    factory.pin(pin).drive_high()


def click(factory: MockFactory, pin: int) -> None:
    press(factory, pin)
    release(factory, pin)


# --- listen button ----------------------------------------------------------------------


def test_press_starts_and_next_press_stops_when_shutdown_is_off(
    make_controls: MakeControls, mock_factory: MockFactory, fake_listener: FakeListener
) -> None:
    controls = make_controls()
    press(mock_factory, LISTEN)
    assert controls.wait_idle(5)
    assert fake_listener.calls == ["start"]
    assert state_of(fake_listener) == S.WAITING
    release(mock_factory, LISTEN)
    assert fake_listener.calls == ["start"]
    click(mock_factory, LISTEN)
    assert controls.wait_idle(5)
    assert fake_listener.calls == ["start", "stop"]
    assert state_of(fake_listener) == S.IDLE


def test_with_shutdown_on_a_press_acts_on_release(
    make_controls: MakeControls, mock_factory: MockFactory, fake_listener: FakeListener
) -> None:
    controls = make_controls(shutdown_on_hold=True)
    press(mock_factory, LISTEN)
    assert controls.wait_idle(5)
    assert fake_listener.calls == []
    release(mock_factory, LISTEN)
    assert controls.wait_idle(5)
    assert fake_listener.calls == ["start"]


def test_long_press_stops_listening_then_powers_off(
    make_controls: MakeControls,
    mock_factory: MockFactory,
    fake_listener: FakeListener,
    shutdown: Shutdown,
) -> None:
    controls = make_controls(shutdown_on_hold=True, hold_time_s=0.1)
    click(mock_factory, LISTEN)
    assert controls.wait_idle(5)
    press(mock_factory, LISTEN)
    assert shutdown.done.wait(5)
    release(mock_factory, LISTEN)
    assert controls.wait_idle(5)
    # The release after a hold is not a short press: no toggle after the power-off.
    assert fake_listener.calls == ["start", "stop", "shutdown"]
    assert state_of(fake_listener) == S.IDLE
    click(mock_factory, LISTEN)
    assert controls.wait_idle(5)
    assert fake_listener.calls == ["start", "stop", "shutdown"]


def test_long_press_does_nothing_more_when_shutdown_is_off(
    make_controls: MakeControls, mock_factory: MockFactory, fake_listener: FakeListener
) -> None:
    controls = make_controls(shutdown_on_hold=False, hold_time_s=0.05)
    press(mock_factory, LISTEN)
    held = threading.Event()
    controls.listen_button.when_held = held.set  # observe the hold without changing the rest
    assert held.wait(5)
    release(mock_factory, LISTEN)
    assert controls.wait_idle(5)
    assert fake_listener.calls == ["start"]


def test_press_during_a_slow_start_is_ignored(
    make_controls: MakeControls,
    mock_factory: MockFactory,
    fake_listener: FakeListener,
    caplog: pytest.LogCaptureFixture,
) -> None:
    controls = make_controls()
    gate = threading.Event()
    fake_listener.start_gate = gate
    caplog.set_level(logging.INFO, logger="appliance.pi.controls")
    click(mock_factory, LISTEN)
    assert fake_listener.started.wait(5)
    click(mock_factory, LISTEN)  # impatient second press while the start is running
    gate.set()
    assert controls.wait_idle(5)
    assert fake_listener.calls == ["start"]
    assert state_of(fake_listener) == S.WAITING
    assert "listen button: still starting or stopping, press ignored" in caplog.messages
    click(mock_factory, LISTEN)
    assert controls.wait_idle(5)
    assert fake_listener.calls == ["start", "stop"]


def test_failed_start_is_logged_and_the_next_press_retries(
    make_controls: MakeControls,
    mock_factory: MockFactory,
    fake_listener: FakeListener,
    caplog: pytest.LogCaptureFixture,
) -> None:
    controls = make_controls(status_led=GREEN, error_led=RED)
    fake_listener.start_error = AudioDeviceError("no audio output device")
    error_shown = delivered(fake_listener.state_machine, S.ERROR)
    click(mock_factory, LISTEN)
    assert controls.wait_idle(5)
    error_shown()
    assert "listen button: no audio output device" in caplog.messages
    assert controls.leds["error"].is_lit
    assert not controls.leds["status"].is_lit
    fake_listener.start_error = None
    waiting_shown = delivered(fake_listener.state_machine, S.WAITING)
    click(mock_factory, LISTEN)
    assert controls.wait_idle(5)
    waiting_shown()
    assert fake_listener.calls == ["start", "start"]
    assert not controls.leds["error"].is_lit


# --- volume buttons -------------------------------------------------------------------------


def test_volume_buttons_step_the_gain_and_remember_it(
    make_controls: MakeControls,
    mock_factory: MockFactory,
    fake_listener: FakeListener,
    tmp_path: Path,
) -> None:
    make_controls(volume_up_button=UP, volume_down_button=DOWN)
    click(mock_factory, UP)
    click(mock_factory, UP)
    click(mock_factory, DOWN)
    assert fake_listener.gains == [db_to_factor(3.0), db_to_factor(6.0), db_to_factor(3.0)]
    assert (tmp_path / "volume").read_text() == "3.0\n"


def test_a_held_volume_button_repeats(
    make_controls: MakeControls, mock_factory: MockFactory, fake_listener: FakeListener
) -> None:
    make_controls(volume_down_button=DOWN)
    press(mock_factory, DOWN)
    wait_until(lambda: len(fake_listener.gains) >= 3, "three volume steps")
    release(mock_factory, DOWN)
    steps = list(fake_listener.gains)
    assert steps[:3] == [db_to_factor(-3.0), db_to_factor(-6.0), db_to_factor(-9.0)]


def test_volume_buttons_need_a_volume(
    mock_factory: MockFactory, fake_listener: FakeListener
) -> None:
    with pytest.raises(ValueError, match=r"^volume buttons are wired: Controls needs a Volume$"):
        Controls(GpioSection(volume_up_button=UP), fake_listener, pin_factory=mock_factory)


# --- LEDs -----------------------------------------------------------------------------------


def test_leds_follow_the_state_machine(
    make_controls: MakeControls, mock_factory: MockFactory, fake_listener: FakeListener
) -> None:
    controls = make_controls()
    machine = fake_listener.state_machine
    green, amber, red = (mock_factory.pin(p) for p in (GREEN, AMBER, RED))
    assert (green.state, amber.state, red.state) == (False, False, False)  # idle: all dark

    # Blinking is asserted by structure (it toggles), never by timing.
    green.clear_states()
    machine.set(S.WAITING)
    wait_until(lambda: changes(green)[:3] == [False, True, False], "waiting: slow blink")
    shown = delivered(machine, S.BUFFERING)
    machine.set(S.BUFFERING)
    shown()
    green.clear_states()
    wait_until(lambda: len(changes(green)) >= 4, "buffering: fast blink")

    shown = delivered(machine, S.PLAYING)
    machine.set(S.PLAYING)
    shown()
    wait_until(lambda: bool(green.state), "steady green")
    green.clear_states()
    # An underrun flashes amber once; the flash finishes although playing resumes at once.
    shown = delivered(machine, S.PLAYING)
    machine.set(S.UNDERRUN)
    machine.set(S.PLAYING)
    shown()
    wait_until(lambda: changes(amber)[-3:] == [False, True, False], "one amber flash")
    assert changes(green) == [True]  # steady through the underrun: never went dark
    assert controls.leds["underrun"].is_lit is False

    shown = delivered(machine, S.ERROR)
    machine.set(S.ERROR, "device vanished")
    shown()
    assert (green.state, red.state) == (False, True)
    shown = delivered(machine, S.IDLE)
    machine.set(S.IDLE)
    shown()
    assert (green.state, amber.state, red.state) == (False, False, False)


def test_without_a_red_led_the_green_one_blips_on_error(
    make_controls: MakeControls, mock_factory: MockFactory, fake_listener: FakeListener
) -> None:
    make_controls(error_led=None)
    machine = fake_listener.state_machine
    green = mock_factory.pin(GREEN)
    shown = delivered(machine, S.ERROR)
    machine.set(S.ERROR, "port in use")
    shown()
    wait_until(lambda: changes(green)[:4] == [False, True, False, True], "error blips")


def test_leds_show_the_state_at_creation(
    mock_factory: MockFactory, fake_listener: FakeListener
) -> None:
    fake_listener.start()
    with Controls(GpioSection(), fake_listener, pin_factory=mock_factory) as controls:
        wait_until(lambda: controls.leds["status"].is_lit, "waiting blink starts lit")


# --- set-up and teardown --------------------------------------------------------------------


def test_close_releases_pins_and_stops_following(
    make_controls: MakeControls, mock_factory: MockFactory, fake_listener: FakeListener
) -> None:
    controls = make_controls()
    controls.close()
    for pin in (LISTEN, GREEN, AMBER, RED):
        LED(pin, pin_factory=mock_factory).close()  # free again: no GPIOPinInUse
    shown = delivered(fake_listener.state_machine, S.WAITING)
    fake_listener.start()
    shown()
    assert mock_factory.pin(GREEN).state is False
    controls.close()  # twice is fine


def test_open_controls_without_gpio_says_so(
    fake_listener: FakeListener, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="appliance.pi.controls")
    assert open_controls(GpioSection(enabled=False), fake_listener) is None
    assert caplog.messages == ["GPIO controls off: disabled by --no-gpio or [gpio] enabled = false"]


def test_open_controls_with_no_pins_says_so(
    fake_listener: FakeListener, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="appliance.pi.controls")
    gpio = GpioSection(listen_button=None, status_led=None, underrun_led=None, error_led=None)
    assert open_controls(gpio, fake_listener) is None
    assert caplog.messages == ["GPIO controls off: no pins configured in [gpio]"]


@pytest.fixture
def no_pin_factory(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    previous = Device.pin_factory
    Device.pin_factory = None
    try:
        yield
    finally:
        if Device.pin_factory is not None and Device.pin_factory is not previous:
            Device.pin_factory.close()
        Device.pin_factory = previous


def test_no_pin_library_means_controls_off(
    no_pin_factory: None,
    fake_listener: FakeListener,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Like a laptop (or a Pi without lgpio): gpiozero finds no factory and raises BadPinFactory.
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "no-such-factory")
    assert open_controls(GpioSection(), fake_listener) is None
    assert caplog.messages == [
        "GPIO controls off: no GPIO pin library works here "
        "(Unable to find pin factory 'no-such-factory')"
    ]


def test_mock_pin_factory_from_the_environment(
    no_pin_factory: None, fake_listener: FakeListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    controls = open_controls(GpioSection(shutdown_on_hold=False), fake_listener)
    assert controls is not None
    try:
        assert isinstance(Device.pin_factory, MockFactory)
        click(Device.pin_factory, LISTEN)
        assert controls.wait_idle(5)
        assert fake_listener.calls == ["start"]
    finally:
        controls.close()


def test_busy_pin_means_controls_off_and_nothing_left_reserved(
    mock_factory: MockFactory, fake_listener: FakeListener, caplog: pytest.LogCaptureFixture
) -> None:
    other = LED(GREEN, pin_factory=mock_factory)  # another program's LED on our status pin
    assert open_controls(GpioSection(), fake_listener, pin_factory=mock_factory) is None
    assert caplog.messages == [
        "GPIO controls off: cannot use BCM 5 for status_led: pin GPIO5 is already in use by "
        "<gpiozero.LED object on pin GPIO5, active_high=True, is_active=False>"
    ]
    other.close()
    LED(LISTEN, pin_factory=mock_factory).close()  # the listen button was released again


@pytest.mark.parametrize(
    ("setting", "environ", "expected"),
    [
        ("auto", {"INVOCATION_ID": "5f1c0ad2"}, True),
        ("auto", {}, False),
        (True, {}, True),
        (False, {"INVOCATION_ID": "5f1c0ad2"}, False),
    ],
)
def test_shutdown_on_hold_auto_means_under_systemd(
    mock_factory: MockFactory,
    fake_listener: FakeListener,
    setting: ShutdownSetting,
    environ: dict[str, str],
    expected: bool,
) -> None:
    gpio = GpioSection(shutdown_on_hold=setting)
    with Controls(gpio, fake_listener, pin_factory=mock_factory, environ=environ) as controls:
        assert controls.shutdown_on_hold is expected


# --- with the real listener -------------------------------------------------------------------


def test_listen_button_drives_the_real_listener(mock_factory: MockFactory, tmp_path: Path) -> None:
    from appliance.listener.listener import Listener, ListenerConfig

    config = ListenerConfig(port=0, bind="127.0.0.1", output_file=tmp_path / "out.wav")
    with Listener(config) as listener:
        gpio = GpioSection(shutdown_on_hold=False)
        controls = Controls(gpio, listener, pin_factory=mock_factory)
        try:
            waiting = delivered(listener.state_machine, S.WAITING)
            click(mock_factory, LISTEN)
            assert controls.wait_idle(5)
            waiting()
            assert listener.is_listening
            assert listener.port != 0
            wait_until(lambda: controls.leds["status"].is_lit, "status LED blinks")
            idle = delivered(listener.state_machine, S.IDLE)
            click(mock_factory, LISTEN)
            assert controls.wait_idle(5)
            idle()
            assert not listener.is_listening
            assert mock_factory.pin(GREEN).state is False
        finally:
            controls.close()


def test_button_callback_returns_before_a_slow_start_finishes(
    make_controls: MakeControls, mock_factory: MockFactory, fake_listener: FakeListener
) -> None:
    controls = make_controls()
    gate = threading.Event()
    fake_listener.start_gate = gate
    press(mock_factory, LISTEN)  # runs the gpiozero callback in this thread
    # Reaching this line while start() is still blocked shows the callback did not wait.
    assert fake_listener.started.wait(5)
    assert not gate.is_set()
    assert fake_listener.calls == ["start"]
    gate.set()
    assert controls.wait_idle(5)
    release(mock_factory, LISTEN)


def test_default_shutdown_logs_a_refused_poweroff(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(
        controls_module, "SHUTDOWN_COMMAND", ("sh", "-c", "echo 'Access denied' >&2; exit 1")
    )
    systemctl_poweroff()
    assert caplog.messages == ["sh -c echo 'Access denied' >&2; exit 1 failed (1): Access denied"]
