"""GPIO test helpers: a listener stand-in and waits on the state machine and mock pins.

The fixtures built on them (``mock_factory``, ``fake_listener``) are in gpio_fixtures.py:
``pytest_plugins = ("gpio_fixtures",)`` in a test module makes them available.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from appliance.errors import ApplianceError
from appliance.listener.state import ListenerState, StateMachine, Transition

WAIT_S = 5.0
"""Upper bound for anything a test waits for: generous, only reached when a test fails."""


class FakeListener:
    """Records calls and drives a real StateMachine as the listener would.

    ``start_gate``: when set to an Event, start() blocks until it is set (a slow start).
    ``start_error``: start() moves to ERROR and raises it (no audio device, say).
    """

    def __init__(self) -> None:
        self.state_machine = StateMachine()
        self.state_machine.start()
        self.calls: list[str] = []
        self.gains: list[float] = []
        self.start_gate: threading.Event | None = None
        self.start_error: ApplianceError | None = None
        self.started = threading.Event()
        self._listening = False

    @property
    def is_listening(self) -> bool:
        return self._listening

    def start(self) -> None:
        self.calls.append("start")
        self.started.set()
        if self.start_gate is not None:
            self.start_gate.wait(WAIT_S)
        if self.start_error is not None:
            self.state_machine.set(ListenerState.ERROR, str(self.start_error))
            raise self.start_error
        self._listening = True
        self.state_machine.set(ListenerState.WAITING, "listening")

    def stop(self) -> None:
        self.calls.append("stop")
        self._listening = False
        self.state_machine.set(ListenerState.IDLE, "stopped")

    def set_gain(self, factor: float) -> None:
        self.gains.append(factor)

    def close(self) -> None:
        self.state_machine.close()


def delivered(machine: StateMachine, state: ListenerState) -> Callable[[], None]:
    """A waiter: call it to block until ``state`` has reached every observer subscribed
    before this one (the dispatcher calls observers in order, one transition at a time)."""
    seen = threading.Event()

    def observer(transition: Transition) -> None:
        if transition.current == state:
            seen.set()

    unsubscribe = machine.subscribe(observer)

    def wait() -> None:
        try:
            assert seen.wait(WAIT_S), f"{state} never delivered"
        finally:
            unsubscribe()

    return wait


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def changes(pin: object) -> list[bool]:
    """The levels a mock pin went through, first the one it started at."""
    return [bool(state.state) for state in pin.states]  # type: ignore[attr-defined]
