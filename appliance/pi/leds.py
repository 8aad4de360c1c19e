"""What each LED shows in each listener state, as data, and the observer that shows it.

Three LEDs, each optional (``[gpio]`` pin set to false = not wired):

* **status** (green): off idle; slow blink waiting; fast blink buffering; steady while
  playing, underrunning or draining;
* **underrun** (amber): one short flash per underrun, left to finish even when playing
  resumes at once (an underrun of 20 ms would otherwise be invisible);
* **error** (red): steady for as long as the listener is in error. With no red LED wired the
  green one shows errors as a short blip once a second instead.

The patterns follow the listener's :class:`~appliance.listener.state.StateMachine`:
:class:`StatusLeds` is an observer, called on the machine's dispatcher thread, and gpiozero's
``blink()`` runs its own thread, so nothing here ever touches the audio path.

Example::

    leds = StatusLeds(status=LED(5), underrun=LED(6), error=LED(13))
    leds.show(machine.state)
    unsubscribe = machine.subscribe(leds.on_transition)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from appliance.listener.state import ListenerState, Transition

S = ListenerState


class Kind(Enum):
    OFF = "off"
    ON = "on"
    BLINK = "blink"
    """Repeat ``on_s`` lit, ``off_s`` dark, until the next pattern."""
    FLASH = "flash"
    """Lit once for ``on_s``, then dark; not cut short by a following KEEP."""
    KEEP = "keep"
    """Leave the LED as it is (lets a flash finish)."""


@dataclass(frozen=True, slots=True)
class Pattern:
    kind: Kind
    on_s: float = 0.0
    off_s: float = 0.0

    def describe(self) -> str:
        if self.kind is Kind.BLINK:
            return f"blink {self.on_s:g} s on / {self.off_s:g} s off"
        if self.kind is Kind.FLASH:
            return f"one {self.on_s:g} s flash"
        return {Kind.OFF: "off", Kind.ON: "steady on", Kind.KEEP: "unchanged"}[self.kind]


OFF = Pattern(Kind.OFF)
ON = Pattern(Kind.ON)
KEEP = Pattern(Kind.KEEP)
SLOW_BLINK = Pattern(Kind.BLINK, on_s=0.5, off_s=1.5)
FAST_BLINK = Pattern(Kind.BLINK, on_s=0.1, off_s=0.1)
ERROR_BLIP = Pattern(Kind.BLINK, on_s=0.05, off_s=0.95)
UNDERRUN_FLASH = Pattern(Kind.FLASH, on_s=0.25)

STATUS_PATTERNS: Mapping[ListenerState, Pattern] = {
    S.IDLE: OFF,
    S.WAITING: SLOW_BLINK,
    S.BUFFERING: FAST_BLINK,
    S.PLAYING: ON,
    S.UNDERRUN: ON,
    S.DRAINING: ON,
    S.ERROR: OFF,
}
"""The green LED, when the red one is wired."""

STATUS_PATTERNS_WITHOUT_ERROR_LED: Mapping[ListenerState, Pattern] = {
    **STATUS_PATTERNS,
    S.ERROR: ERROR_BLIP,
}

UNDERRUN_PATTERNS: Mapping[ListenerState, Pattern] = {
    S.IDLE: OFF,
    S.WAITING: KEEP,
    S.BUFFERING: KEEP,
    S.PLAYING: KEEP,
    S.UNDERRUN: UNDERRUN_FLASH,
    S.DRAINING: KEEP,
    S.ERROR: OFF,
}

ERROR_PATTERNS: Mapping[ListenerState, Pattern] = {
    **dict.fromkeys(ListenerState, OFF),
    S.ERROR: ON,
}

LED_COLOURS: Mapping[str, str] = {"status": "green", "underrun": "amber", "error": "red"}
"""Colour of each LED role (the wiring diagram draws them in these colours)."""


class LedLike(Protocol):
    """The part of gpiozero's ``LED`` used here."""

    def on(self) -> None: ...
    def off(self) -> None: ...
    def blink(
        self, on_time: float = ..., off_time: float = ..., n: int | None = ...,
        background: bool = ...,
    ) -> None: ...


def apply(led: LedLike, pattern: Pattern) -> None:
    """Put ``pattern`` on ``led``: returns at once (blinking runs on gpiozero's thread)."""
    if pattern.kind is Kind.OFF:
        led.off()
    elif pattern.kind is Kind.ON:
        led.on()
    elif pattern.kind is Kind.BLINK:
        led.blink(on_time=pattern.on_s, off_time=pattern.off_s, n=None, background=True)
    elif pattern.kind is Kind.FLASH:
        led.blink(on_time=pattern.on_s, off_time=0.0, n=1, background=True)


class StatusLeds:
    """Shows the listener state on up to three LEDs (None = not wired)."""

    def __init__(
        self,
        status: LedLike | None = None,
        underrun: LedLike | None = None,
        error: LedLike | None = None,
    ) -> None:
        self._roles: list[tuple[LedLike, Mapping[ListenerState, Pattern]]] = []
        if status is not None:
            table = STATUS_PATTERNS if error is not None else STATUS_PATTERNS_WITHOUT_ERROR_LED
            self._roles.append((status, table))
        if underrun is not None:
            self._roles.append((underrun, UNDERRUN_PATTERNS))
        if error is not None:
            self._roles.append((error, ERROR_PATTERNS))

    def show(self, state: ListenerState) -> None:
        for led, table in self._roles:
            apply(led, table[state])

    def on_transition(self, transition: Transition) -> None:
        """State machine observer."""
        self.show(transition.current)


def led_table_markdown() -> str:
    """The LED meaning table for the README, generated from the tables above."""
    lines = [
        "| state | status LED (green) | underrun LED (amber) | error LED (red) | "
        "green LED when no red LED is wired |",
        "| --- | --- | --- | --- | --- |",
    ]
    for state in ListenerState:
        lines.append(
            f"| {state.value} | {STATUS_PATTERNS[state].describe()} | "
            f"{UNDERRUN_PATTERNS[state].describe()} | {ERROR_PATTERNS[state].describe()} | "
            f"{STATUS_PATTERNS_WITHOUT_ERROR_LED[state].describe()} |"
        )
    return "\n".join(lines) + "\n"
