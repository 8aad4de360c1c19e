"""The audio output's watchdog: a failure mid-stream is noticed, reported once and repaired.

An output can die under a running listener: a USB DAC unplugged, the audio server (PulseAudio,
PipeWire) stopped or crashed, an ALSA error. PortAudio says nothing about it: its callback
simply stops being called and ``is_active()`` turns false (measured with the test rig's
PulseAudio killed: within milliseconds; see tests/listener/test_output_faults.py). Without a
watchdog the listener kept reporting "playing", kept queueing every new stream to be played
(much) later, and never played again.

:class:`OutputWatchdog` checks the open output every :data:`CHECK_INTERVAL_S`. When it has
stopped (or its callback has not run for :data:`STALL_S`) it closes it, logs one line, puts
the listener in ``ERROR`` and has the playout buffer refuse audio (dropped and counted: the
sessions still start and end as usual). It then re-opens the output on a :class:`Backoff`
schedule (0.5 s, doubling to 5 s) and, once it opens, logs once that it recovered and hands
the listener back to ``WAITING``: a stream still on plays from there. No systemd restart is
needed, so this works the same outside systemd.

Example::

    watchdog = OutputWatchdog(output, lock, playout, buffer, machine, reopen, name="default")
    watchdog.start()
    ...
    watchdog.stop()
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from appliance.audio.alsa_noise import quiet_stderr
from appliance.errors import AudioDeviceError
from appliance.listener.outputs import AudioOutput
from appliance.listener.playout.buffer import PlayoutBuffer
from appliance.listener.render import Playout
from appliance.listener.state import ListenerState, StateMachine

log = logging.getLogger(__name__)

CHECK_INTERVAL_S = 0.1
"""How often the open output is looked at: a failure is noticed within about this."""
IDLE_CHECK_S = 5.0
"""How often it wakes while the output is closed and well (nothing to watch: an idle listener
costs next to nothing); :meth:`OutputWatchdog.wake` says that the output has opened."""
STALL_S = 0.6
"""An open output whose callback has not run for this long has failed: one that blocks rather
than stops (a frozen audio server holds ALSA's pulse plugin). Callbacks come every period
(30 ms by default, 100 ms at most): 6 to 20 missed in a row is no CPU hiccup."""
FIRST_RETRY_S = 0.5
MAX_RETRY_S = 5.0
"""Retries start this often and slow down, doubling, to this: a device that comes back is
playing again within seconds, one that stays away costs a try every 5 s."""

Clock = Callable[[], float]
Reopen = Callable[[AudioOutput], None]
"""Open the output again (under the output lock) for the stream on, or to prove it opens;
raises :class:`~appliance.errors.AudioDeviceError`."""


class Backoff:
    """When to retry next: ``first_s`` after the failure, then twice as long each time, up to
    ``max_s``. ``clock`` is injectable for tests."""

    def __init__(
        self,
        first_s: float = FIRST_RETRY_S,
        max_s: float = MAX_RETRY_S,
        clock: Clock = time.monotonic,
    ) -> None:
        if not 0 < first_s <= max_s:
            raise ValueError("backoff needs 0 < first_s <= max_s")
        self.first_s = first_s
        self.max_s = max_s
        self._clock = clock
        self.delay_s = first_s
        """The wait before the next attempt."""
        self.next_at = clock() + first_s
        self.attempts = 0

    def restart(self) -> None:
        """A new failure: the first retry comes ``first_s`` from now."""
        self.delay_s = self.first_s
        self.next_at = self._clock() + self.first_s
        self.attempts = 0

    def due(self) -> bool:
        return self._clock() >= self.next_at

    def failed(self) -> float:
        """An attempt failed: the next one waits twice as long (up to ``max_s``); returns it."""
        self.attempts += 1
        self.delay_s = min(self.delay_s * 2, self.max_s)
        self.next_at = self._clock() + self.delay_s
        return self.delay_s


class OutputWatchdog:
    """Watches the listener's output on its own thread; see the module's documentation.

    ``lock`` is the listener's output lock: checks and re-opens never overlap the listener
    opening or closing the output for a stream. ``name`` names the output in log lines.
    """

    def __init__(
        self,
        output: AudioOutput,
        lock: threading.Lock,
        playout: Playout,
        buffer: PlayoutBuffer,
        machine: StateMachine,
        reopen: Reopen,
        *,
        name: str,
    ) -> None:
        self._output = output
        self._lock = lock
        self._playout = playout
        self._buffer = buffer
        self._machine = machine
        self._reopen = reopen
        self.name = name
        self._backoff = Backoff()
        self._down_since: float | None = None
        self._opened_at: float | None = None
        """When the watchdog first saw the output open (its callback may not have run yet)."""
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def down(self) -> bool:
        """The output failed and is not back yet (streams are dropped meanwhile)."""
        return self._down_since is not None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="output-watchdog", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """The output has just opened: watch it from now on (call after opening it)."""
        self._wake.set()

    def stop(self) -> None:
        """Stop watching; a buffer refusing audio for a failed output takes it again."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._down_since is not None:
            self._down_since = None
            self._buffer.refuse(False)

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            busy = self._down_since is not None or self._output.opened_format is not None
            self._wake.wait(CHECK_INTERVAL_S if busy else IDLE_CHECK_S)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.check()
            except Exception:
                # The watchdog must outlive any surprise: it is what brings the audio back.
                log.exception("audio output watchdog: unexpected failure")

    def check(self) -> None:
        """One look: notice a failure, or retry a failed output when the backoff says so."""
        with self._lock:
            if self._down_since is not None:
                if self._backoff.due():
                    self._retry()
                return
            fault = self._fault(time.monotonic())
            if fault is None:
                return
            self._went_down(f"audio output {self.name} failed: {fault}")
        # Closed after reporting, and outside the lock: closing an output whose server is
        # frozen blocks until it thaws (measured), and nothing else opens it while it is down.
        self._output.close()

    def output_failed(self, error: str) -> None:
        """The listener could not open the output for a stream (call under the output lock):
        report it, drop the stream's audio and retry as for a failure mid-stream."""
        if self._down_since is None:
            self._went_down(error)

    def _fault(self, now: float) -> str | None:
        if self._output.opened_format is None:
            self._opened_at = None
            return None
        if self._opened_at is None:
            self._opened_at = now
        if not self._output.is_active():
            return "it stopped playing (device unplugged, or its audio server gone?)"
        if now - max(self._playout.last_activity, self._opened_at) > STALL_S:
            return f"it has not asked for audio for {STALL_S:g} s (audio server or driver stuck?)"
        return None

    def _went_down(self, reason: str) -> None:
        self._opened_at = None
        self._down_since = time.monotonic()
        self._backoff.restart()
        self._buffer.refuse(True)
        # The one line about it; the ERROR below is flagged as reported, so that observers
        # (appliance/pi/app.py's log) do not print it a second time.
        log.error(
            "%s; dropping incoming audio and retrying (every %g s, slowing to %g s)",
            reason, self._backoff.first_s, self._backoff.max_s,
        )
        self._machine.set(ListenerState.ERROR, reason, raised=True)

    def _retry(self) -> None:
        # The callback runs as soon as the output opens: with the playout's published phase
        # matching the empty buffer's, it publishes nothing until audio comes, after WAITING.
        self._playout.reset()
        try:
            self._attempt()
        except AudioDeviceError as error:
            delay = self._backoff.failed()
            log.debug("audio output %s: %s; next try in %g s", self.name, error, delay)
            return
        down_for = time.monotonic() - (self._down_since or 0.0)
        log.info(
            "audio output %s is back after %.1f s (%d failed tries); playing again",
            self.name, down_for, self._backoff.attempts,
        )
        self._machine.set(ListenerState.WAITING, f"audio output {self.name} is back")
        self._down_since = None
        self._buffer.refuse(False)  # only now: audio before WAITING would publish too early

    def _attempt(self) -> None:
        """Re-open with what PortAudio knows; failing that, let it go and find the device
        again (a device plugged back may come back under another index)."""
        # Each failed try makes PortAudio and ALSA print a few lines on stderr (the journal,
        # under systemd): every 5 s, for as long as the device is away. The one log line says
        # it all, so they go to /dev/null, as when PyAudio starts.
        with quiet_stderr():
            try:
                self._reopen(self._output)
            except AudioDeviceError:
                self._output.reacquire()
                self._reopen(self._output)
