"""The appliance's buttons and LEDs, with gpiozero.

* **Listen button** (to GND, internal pull-up): a short press starts listening, the next one
  stops. Held for ``hold_time_s`` (3 s) it powers the Pi off, when ``shutdown_on_hold`` is on
  (``"auto"``: only under systemd). With shutdown on, the press is acted on when the button is
  released (only then is it known to be short); with shutdown off, at once when pressed.
* **Volume up / down buttons** (optional): one ``step_db`` step per press, repeating while
  held, remembered across restarts (:mod:`appliance.pi.volume`).
* **LEDs**: follow the listener's state machine (:mod:`appliance.pi.leds`).

Starting listening opens a socket and the audio device, which may take a moment: it runs on
a short-lived worker thread, never on gpiozero's callback thread, and a press that arrives
while a start or stop is still in progress is ignored (and logged): the LEDs show the result
of the first press, and an impatient second press must not undo it.

Wiring it into ``appliance listen``::

    volume = Volume.from_config(config.volume)
    listener.set_gain(volume.factor)
    controls = open_controls(config.gpio, listener, volume=volume)   # None: no GPIO here
    if should_autostart(config, controls is not None and controls.has_listen_button):
        listener.start()
    try:
        ...  # wait for SIGTERM / SIGINT
    finally:
        if controls is not None:
            controls.close()
"""

from __future__ import annotations

import logging
import subprocess
import threading
import warnings
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from appliance.config import GpioSection, resolve_shutdown_on_hold
from appliance.errors import ApplianceError
from appliance.listener.state import ListenerState, StateMachine, Transition
from appliance.pi.leds import StatusLeds
from appliance.pi.volume import Volume

log = logging.getLogger(__name__)

SHUTDOWN_COMMAND: tuple[str, ...] = ("systemctl", "poweroff")

BOUNCE_S = 0.02
"""Contact bounce filter. Mechanical buttons settle within ~10 ms; more would delay presses."""

VOLUME_REPEAT_S = 0.4
"""A held volume button steps again every this many seconds."""

CLOSE_TIMEOUT_S = 5.0
"""How long close() waits for a start or stop that is still running."""


class ListenerLike(Protocol):
    """What the controls need of :class:`appliance.listener.listener.Listener`."""

    @property
    def state_machine(self) -> StateMachine: ...
    @property
    def is_listening(self) -> bool: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def set_gain(self, factor: float) -> None: ...


class GpioUnavailable(Exception):
    """No usable GPIO here (not a Pi, no pin library, pin busy): run without controls."""


def systemctl_poweroff() -> None:
    """The default shutdown action: a clean ``systemctl poweroff``."""
    result = subprocess.run(SHUTDOWN_COMMAND, check=False, capture_output=True, text=True)
    if result.returncode != 0:
        log.error("%s failed (%d): %s", " ".join(SHUTDOWN_COMMAND), result.returncode,
                  result.stderr.strip())


def default_pin_factory() -> Any:
    """gpiozero's own choice of pin factory (lgpio on a Pi 5; ``GPIOZERO_PIN_FACTORY=mock``
    for mock pins), or :exc:`GpioUnavailable` with the reason.

    Never forces a factory: only gpiozero knows which one this board needs.
    """
    from gpiozero import Device

    # Off a Pi gpiozero warns once per factory it tries before giving up: one log line says
    # it better.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            Device.ensure_pin_factory()
        except Exception as error:  # BadPinFactory, ImportError, OSError from a pin library
            raise GpioUnavailable(f"no GPIO pin library works here ({error})") from error
    return Device.pin_factory


class Controls:
    """The buttons and LEDs of one listener; ``close()`` releases the pins.

    ``pin_factory``: a gpiozero pin factory (tests pass ``MockFactory()``); None = gpiozero's
    default, :exc:`GpioUnavailable` if there is none. ``shutdown`` is called when the listen
    button is held and shutdown is on; ``environ`` decides ``shutdown_on_hold = "auto"``.
    """

    def __init__(
        self,
        gpio: GpioSection,
        listener: ListenerLike,
        *,
        volume: Volume | None = None,
        shutdown: Callable[[], None] = systemctl_poweroff,
        pin_factory: Any = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        from gpiozero import LED, Button

        if volume is None and (gpio.volume_up_button or gpio.volume_down_button):
            raise ValueError("volume buttons are wired: Controls needs a Volume")
        self._listener = listener
        self._volume = volume
        self._shutdown = shutdown
        self.shutdown_on_hold = resolve_shutdown_on_hold(gpio.shutdown_on_hold, environ)
        self._busy = threading.Lock()
        self._worker: threading.Thread | None = None
        self._held = False
        self._shutting_down = threading.Event()
        self._devices: list[Any] = []
        # Held while an LED changes: close() must not release pins under the dispatcher's feet
        # (unsubscribing does not wait for a delivery already under way).
        self._led_lock = threading.Lock()
        self._closed = False
        self._unsubscribe: Callable[[], None] | None = None
        factory = pin_factory if pin_factory is not None else default_pin_factory()

        def make(kind: Callable[..., Any], key: str, pin: int, **kwargs: Any) -> Any:
            try:
                device = kind(pin, pin_factory=factory, **kwargs)
            except Exception as error:  # GPIOPinInUse, lgpio "GPIO busy", Pi 5 + RPi.GPIO...
                self.close()
                raise GpioUnavailable(f"cannot use BCM {pin} for {key}: {error}") from error
            self._devices.append(device)
            return device

        self.listen_button: Any = None
        if gpio.listen_button is not None:
            self.listen_button = make(
                Button, "listen_button", gpio.listen_button,
                pull_up=True, bounce_time=BOUNCE_S, hold_time=gpio.hold_time_s,
            )
            if self.shutdown_on_hold:
                self.listen_button.when_pressed = self._on_listen_pressed
                self.listen_button.when_held = self._on_listen_held
                self.listen_button.when_released = self._on_listen_released
            else:
                self.listen_button.when_pressed = self.request_toggle
        self.volume_buttons: dict[str, Any] = {}
        for key, step in (("volume_up_button", +1), ("volume_down_button", -1)):
            pin = getattr(gpio, key)
            if pin is None:
                continue
            button = make(
                Button, key, pin, pull_up=True, bounce_time=BOUNCE_S,
                hold_time=VOLUME_REPEAT_S, hold_repeat=True,
            )
            button.when_pressed = button.when_held = self._volume_stepper(step)
            self.volume_buttons[key] = button
        self.leds: dict[str, Any] = {}
        for role in ("status", "underrun", "error"):
            pin = getattr(gpio, f"{role}_led")
            if pin is not None:
                self.leds[role] = make(LED, f"{role}_led", pin)
        self._status_leds = StatusLeds(**self.leds)
        machine = listener.state_machine
        self._unsubscribe = machine.subscribe(self._on_transition)
        # Show the state we start in; later changes arrive as transitions. (A transition that
        # lands between these two lines is delivered after: the LEDs still end right.)
        self._show(machine.state)
        log.info("GPIO controls on: %s%s", describe(gpio),
                 "; hold the listen button to power off" if self.shutdown_on_hold else "")

    @property
    def has_listen_button(self) -> bool:
        return self.listen_button is not None

    # --- LEDs ----------------------------------------------------------------------------

    def _on_transition(self, transition: Transition) -> None:
        self._show(transition.current)

    def _show(self, state: ListenerState) -> None:
        with self._led_lock:
            if not self._closed:
                self._status_leds.show(state)

    # --- listen button -------------------------------------------------------------------

    def request_toggle(self) -> bool:
        """Start listening if not, stop if so, on a worker thread. Returns False (and does
        nothing) while the previous start or stop is still running."""
        if self._shutting_down.is_set():
            return False
        if not self._busy.acquire(blocking=False):
            log.info("listen button: still starting or stopping, press ignored")
            return False
        self._worker = threading.Thread(target=self._toggle, name="listen-toggle", daemon=True)
        self._worker.start()
        return True

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no start or stop is running (tests; close()). False on timeout."""
        if not self._busy.acquire(timeout=-1 if timeout is None else timeout):
            return False
        self._busy.release()
        return True

    def _toggle(self) -> None:
        try:
            if self._listener.is_listening:
                log.info("listen button: stop listening")
                self._listener.stop()
            else:
                log.info("listen button: start listening")
                self._listener.start()
        except ApplianceError as error:
            # The listener is in ERROR now; the red LED shows it, the next press retries.
            log.error("listen button: %s", error)
        except Exception:
            log.exception("listen button: unexpected failure")
        finally:
            self._busy.release()

    def _on_listen_pressed(self) -> None:
        self._held = False

    def _on_listen_held(self) -> None:
        # On gpiozero's hold thread: free to block.
        self._held = True
        if self._shutting_down.is_set():
            return
        self._shutting_down.set()
        log.warning("listen button held: stopping and powering off")
        self.wait_idle(CLOSE_TIMEOUT_S)
        try:
            if self._listener.is_listening:
                self._listener.stop()  # withdraws the mDNS record before the network goes
        except Exception:
            log.exception("stopping before power-off failed")
        try:
            self._shutdown()
        except Exception:
            log.exception("power-off failed")

    def _on_listen_released(self) -> None:
        if not self._held:
            self.request_toggle()

    # --- volume --------------------------------------------------------------------------

    def _volume_stepper(self, direction: int) -> Callable[[], None]:
        def step() -> None:
            volume = self._volume
            assert volume is not None
            if direction > 0:
                volume.up()
            else:
                volume.down()
            self._listener.set_gain(volume.factor)

        return step

    # --- teardown ------------------------------------------------------------------------

    def close(self) -> None:
        """Stop following the state, turn the LEDs off and release every pin. Idempotent."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self.wait_idle(CLOSE_TIMEOUT_S)
        with self._led_lock:
            self._closed = True
            for device in reversed(self._devices):
                device.close()  # an LED's pin goes back to input: dark
            self._devices.clear()

    def __enter__(self) -> Controls:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def describe(gpio: GpioSection) -> str:
    """``listen_button BCM17, status_led BCM5, ...``, for log lines."""
    pins = gpio.pins()
    return ", ".join(f"{key} BCM{pin}" for key, pin in pins.items()) or "no pins"


def open_controls(
    gpio: GpioSection,
    listener: ListenerLike,
    *,
    volume: Volume | None = None,
    shutdown: Callable[[], None] = systemctl_poweroff,
    pin_factory: Any = None,
    environ: Mapping[str, str] | None = None,
) -> Controls | None:
    """:class:`Controls`, or None (and one log line saying why) when there are none to have:
    ``[gpio] enabled = false`` / ``--no-gpio``, no pins configured, or no usable GPIO."""
    if not gpio.enabled:
        log.info("GPIO controls off: disabled by --no-gpio or [gpio] enabled = false")
        return None
    if not gpio.pins():
        log.info("GPIO controls off: no pins configured in [gpio]")
        return None
    try:
        return Controls(gpio, listener, volume=volume, shutdown=shutdown,
                        pin_factory=pin_factory, environ=environ)
    except GpioUnavailable as error:
        log.warning("GPIO controls off: %s", error)
        return None
