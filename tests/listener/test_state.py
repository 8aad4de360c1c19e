import threading
from collections.abc import Iterator

import pytest

from appliance.listener.state import (
    ALLOWED_TRANSITIONS,
    InvalidTransition,
    ListenerState,
    StateMachine,
    Transition,
)

S = ListenerState


@pytest.fixture
def machine() -> Iterator[StateMachine]:
    machine = StateMachine()
    machine.start()
    yield machine
    machine.close()


def test_every_state_has_its_transitions_listed() -> None:
    assert set(ALLOWED_TRANSITIONS) == set(ListenerState)


def test_observers_see_every_transition_in_order(machine: StateMachine) -> None:
    seen: list[Transition] = []
    machine.subscribe(seen.append)
    for state in (S.WAITING, S.BUFFERING, S.PLAYING, S.UNDERRUN, S.PLAYING, S.DRAINING):
        machine.set(state, f"to {state}")
    machine.set(S.WAITING)
    machine.close()
    assert [(t.previous, t.current) for t in seen] == [
        (S.IDLE, S.WAITING),
        (S.WAITING, S.BUFFERING),
        (S.BUFFERING, S.PLAYING),
        (S.PLAYING, S.UNDERRUN),
        (S.UNDERRUN, S.PLAYING),
        (S.PLAYING, S.DRAINING),
        (S.DRAINING, S.WAITING),
    ]
    assert seen[0].reason == "to waiting"


def test_illegal_transition_raises_and_changes_nothing(machine: StateMachine) -> None:
    with pytest.raises(InvalidTransition, match="illegal state change idle -> playing"):
        machine.set(S.PLAYING)
    assert machine.state is S.IDLE


def test_setting_the_same_state_is_a_no_op(machine: StateMachine) -> None:
    machine.set(S.WAITING)
    assert machine.set(S.WAITING) is False
    assert len(machine.history()) == 1


def test_a_new_error_replaces_the_old_one(machine: StateMachine) -> None:
    machine.set(S.ERROR, "no audio device")
    assert machine.set(S.ERROR, "port in use") is True
    assert machine.reason == "port in use"


def test_observers_run_off_the_setting_thread(machine: StateMachine) -> None:
    threads: list[str] = []
    delivered = threading.Event()

    def observer(transition: Transition) -> None:
        threads.append(threading.current_thread().name)
        delivered.set()

    machine.subscribe(observer)
    machine.set(S.WAITING)
    assert delivered.wait(5)
    assert threads == ["state-dispatcher"]


def test_a_slow_observer_does_not_block_the_writer(machine: StateMachine) -> None:
    release = threading.Event()

    def slow(transition: Transition) -> None:
        release.wait(5)

    machine.subscribe(slow)
    machine.set(S.WAITING)
    machine.set(S.BUFFERING)  # returns although the observer is still busy with the first
    assert machine.state is S.BUFFERING
    release.set()


def test_a_failing_observer_does_not_stop_the_others(machine: StateMachine) -> None:
    seen: list[ListenerState] = []

    def broken(transition: Transition) -> None:
        raise RuntimeError("LED on fire")

    machine.subscribe(broken)
    machine.subscribe(lambda t: seen.append(t.current))
    machine.set(S.WAITING)
    machine.close()
    assert seen == [S.WAITING]


def test_unsubscribe_stops_delivery(machine: StateMachine) -> None:
    seen: list[ListenerState] = []
    unsubscribe = machine.subscribe(lambda t: seen.append(t.current))
    machine.set(S.WAITING)
    machine.close()
    unsubscribe()
    machine.start()
    machine.set(S.IDLE)
    machine.close()
    assert seen == [S.WAITING]


def test_wait_for_returns_when_reached_and_times_out_otherwise(machine: StateMachine) -> None:
    threading.Timer(0.05, machine.set, args=(S.WAITING,)).start()
    assert machine.wait_for(S.WAITING, timeout=5)
    assert not machine.wait_for(S.PLAYING, timeout=0.01)
