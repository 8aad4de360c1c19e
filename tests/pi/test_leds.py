"""The LED pattern tables, and what StatusLeds does with an LED in each state."""

from __future__ import annotations

from gpio_helpers import changes, wait_until
from gpiozero import LED
from gpiozero.pins.mock import MockFactory

from appliance.listener.state import ListenerState, Transition
from appliance.pi.leds import (
    ERROR_PATTERNS,
    FAST_BLINK,
    OFF,
    ON,
    SLOW_BLINK,
    STATUS_PATTERNS,
    STATUS_PATTERNS_WITHOUT_ERROR_LED,
    UNDERRUN_PATTERNS,
    Kind,
    StatusLeds,
    led_table_markdown,
)

pytest_plugins = ("gpio_fixtures",)  # mock_factory

S = ListenerState


class RecordingLed:
    """Records the calls StatusLeds makes."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []

    def on(self) -> None:
        self.calls.append(("on",))

    def off(self) -> None:
        self.calls.append(("off",))

    def blink(
        self,
        on_time: float = 1.0,
        off_time: float = 1.0,
        n: int | None = None,
        background: bool = True,
    ) -> None:
        self.calls.append(("blink", on_time, off_time, n, background))


def test_every_state_has_a_pattern_in_every_table() -> None:
    for table in (STATUS_PATTERNS, STATUS_PATTERNS_WITHOUT_ERROR_LED, UNDERRUN_PATTERNS):
        assert set(table) == set(ListenerState)
    assert set(ERROR_PATTERNS) == set(ListenerState)


def test_each_state_looks_different_on_the_leds() -> None:
    # "Distinguishable at a glance": no two states the viewer must tell apart share a look.
    # (underrun differs from playing by its amber flash; draining is playing's tail.)
    looks = {
        state: (STATUS_PATTERNS[state], ERROR_PATTERNS[state])
        for state in (S.IDLE, S.WAITING, S.BUFFERING, S.PLAYING, S.ERROR)
    }
    assert len(set(looks.values())) == len(looks)
    alone = {STATUS_PATTERNS_WITHOUT_ERROR_LED[state] for state in looks}
    assert len(alone) == len(looks)


def test_status_led_calls_per_state() -> None:
    status, underrun, error = RecordingLed(), RecordingLed(), RecordingLed()
    leds = StatusLeds(status=status, underrun=underrun, error=error)
    for state in ListenerState:
        leds.show(state)
    assert status.calls == [
        ("off",),  # idle
        ("blink", 0.5, 1.5, None, True),  # waiting
        ("blink", 0.1, 0.1, None, True),  # buffering
        ("on",),  # playing
        ("on",),  # underrun
        ("on",),  # draining
        ("off",),  # error: the red LED says it
    ]
    assert underrun.calls == [("off",), ("blink", 0.25, 0.0, 1, True), ("off",)]
    assert error.calls == [("off",)] * 6 + [("on",)]


def test_without_a_red_led_the_green_one_shows_errors() -> None:
    status = RecordingLed()
    leds = StatusLeds(status=status)
    leds.on_transition(Transition(S.IDLE, S.ERROR, "port in use", 0.0))
    assert status.calls == [("blink", 0.05, 0.95, None, True)]


def test_no_leds_wired_is_fine() -> None:
    StatusLeds().show(S.PLAYING)  # nothing to do, nothing raised


def test_flash_finishes_and_steady_stays_lit_on_mock_pins(mock_factory: MockFactory) -> None:
    status, underrun = LED(5), LED(6)
    try:
        leds = StatusLeds(status=status, underrun=underrun)
        leds.show(S.PLAYING)
        leds.show(S.UNDERRUN)
        leds.show(S.PLAYING)  # at once: the flash still completes
        amber, green = mock_factory.pin(6), mock_factory.pin(5)
        wait_until(lambda: changes(amber) == [False, True, False], "amber flash")
        assert changes(green) == [False, True]  # lit once, never dark in between
    finally:
        status.close()
        underrun.close()


def test_patterns_are_what_their_names_say() -> None:
    assert (OFF.kind, ON.kind) == (Kind.OFF, Kind.ON)
    assert SLOW_BLINK.on_s + SLOW_BLINK.off_s > FAST_BLINK.on_s + FAST_BLINK.off_s


def test_led_table_markdown() -> None:
    table = led_table_markdown()
    assert table.splitlines()[2] == "| idle | off | off | off | off |"
    assert "| waiting | blink 0.5 s on / 1.5 s off | unchanged | off | " in table
    assert "| underrun | steady on | one 0.25 s flash | off | steady on |" in table
    assert "| error | off | off | steady on | blink 0.05 s on / 0.95 s off |" in table
    assert len(table.splitlines()) == 2 + len(ListenerState)
