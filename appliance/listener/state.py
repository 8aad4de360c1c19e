"""The listener's one state machine, which the logs, the mDNS record and the LEDs observe.

Writers are few and fixed: the listener's controls move between ``IDLE``, ``WAITING`` and
``ERROR``; the player (from the audio callback) moves through the playout states. Observers
never run on a writer's thread: transitions are queued and delivered by a dispatcher thread,
so a slow observer (an mDNS update, a log handler) can never stall the audio callback.

Example::

    machine = StateMachine()
    machine.subscribe(lambda t: print(t.previous, "->", t.current, t.reason))
    machine.start()
    machine.set(ListenerState.WAITING, "listening on 0.0.0.0:5005")
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

log = logging.getLogger(__name__)


class ListenerState(StrEnum):
    IDLE = "idle"
    """Not listening: no socket, no advertisement."""
    WAITING = "waiting"
    """Listening, no stream arriving."""
    BUFFERING = "buffering"
    """A stream started; filling the playout buffer to its target before playing."""
    PLAYING = "playing"
    UNDERRUN = "underrun"
    """The buffer ran dry mid-stream: playing silence while it refills."""
    DRAINING = "draining"
    """The stream ended: playing what is left, then a short silence so the end is heard."""
    ERROR = "error"
    """Cannot play (no audio device, port in use...): persists until listening restarts, or,
    for an output that failed while listening, until the output's watchdog has it back."""


S = ListenerState

HISTORY = 256
"""Transitions remembered (a listener runs for months: its history must not grow)."""

ALLOWED_TRANSITIONS: dict[ListenerState, frozenset[ListenerState]] = {
    S.IDLE: frozenset({S.WAITING, S.ERROR}),
    S.WAITING: frozenset({S.BUFFERING, S.IDLE, S.ERROR}),
    S.BUFFERING: frozenset({S.PLAYING, S.DRAINING, S.IDLE, S.ERROR}),
    S.PLAYING: frozenset({S.UNDERRUN, S.DRAINING, S.IDLE, S.ERROR}),
    S.UNDERRUN: frozenset({S.PLAYING, S.DRAINING, S.IDLE, S.ERROR}),
    S.DRAINING: frozenset({S.WAITING, S.BUFFERING, S.PLAYING, S.IDLE, S.ERROR}),
    S.ERROR: frozenset({S.IDLE, S.WAITING, S.ERROR}),
}
"""Every legal move. ``ERROR -> ERROR`` is allowed so a new error can replace an old one."""


@dataclass(frozen=True, slots=True)
class Transition:
    previous: ListenerState
    current: ListenerState
    reason: str
    at: float
    """``time.monotonic()`` when the transition happened (not when it was delivered)."""
    raised: bool = False
    """The error was raised to the caller too, who reports it, or the listener logged it
    itself (observers need not log it)."""


Observer = Callable[[Transition], None]


class InvalidTransition(ValueError):
    pass


class StateMachine:
    """Thread-safe current state plus asynchronous delivery of every transition to observers."""

    def __init__(self, initial: ListenerState = ListenerState.IDLE) -> None:
        self._state = initial
        self._reason = "initial"
        self._condition = threading.Condition()
        self._observers: list[Observer] = []
        self._pending: queue.SimpleQueue[Transition | None] = queue.SimpleQueue()
        self._dispatcher: threading.Thread | None = None
        self._history: deque[Transition] = deque(maxlen=HISTORY)

    @property
    def state(self) -> ListenerState:
        return self._state

    @property
    def reason(self) -> str:
        """Why the machine is in its current state (an error's message, for example)."""
        return self._reason

    def history(self) -> list[Transition]:
        """The last :data:`HISTORY` transitions, oldest first (for tests and the status)."""
        with self._condition:
            return list(self._history)

    def set(self, new: ListenerState, reason: str = "", *, raised: bool = False) -> bool:
        """Move to ``new``. Returns False if already there; raises on an illegal move.

        ``raised``: the reason is an error also raised to the caller (see
        :attr:`Transition.raised`).

        Cheap and non-blocking apart from a short lock: safe to call from the audio callback.
        """
        with self._condition:
            old = self._state
            if new == old and new != ListenerState.ERROR:
                return False
            if new not in ALLOWED_TRANSITIONS[old]:
                raise InvalidTransition(f"illegal state change {old} -> {new} ({reason})")
            transition = Transition(old, new, reason, time.monotonic(), raised)
            self._state = new
            self._reason = reason
            self._history.append(transition)
            self._condition.notify_all()
        self._pending.put(transition)
        return True

    def wait_for(self, *states: ListenerState, timeout: float | None = None) -> bool:
        """Block until the state is one of ``states``; False on timeout."""
        with self._condition:
            return self._condition.wait_for(lambda: self._state in states, timeout)

    def subscribe(self, observer: Observer) -> Callable[[], None]:
        """Call ``observer`` with every later transition, on the dispatcher thread.

        Returns a function that unsubscribes it.
        """
        with self._condition:
            self._observers.append(observer)

        def unsubscribe() -> None:
            with self._condition:
                if observer in self._observers:
                    self._observers.remove(observer)

        return unsubscribe

    def start(self) -> None:
        """Start delivering transitions to observers."""
        if self._dispatcher is None:
            self._dispatcher = threading.Thread(
                target=self._dispatch, name="state-dispatcher", daemon=True
            )
            self._dispatcher.start()

    def close(self) -> None:
        """Deliver what is queued, then stop the dispatcher."""
        if self._dispatcher is not None:
            self._pending.put(None)
            self._dispatcher.join()
            self._dispatcher = None

    def _dispatch(self) -> None:
        while (transition := self._pending.get()) is not None:
            with self._condition:
                observers = list(self._observers)
            for observer in observers:
                try:
                    observer(transition)
                except Exception:
                    # One broken observer (say, a failed LED write) must not silence the others.
                    log.exception("state observer %r failed on %s", observer, transition)
