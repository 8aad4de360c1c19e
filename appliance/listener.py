"""The listener: socket -> depacketizer -> playout buffer -> player, under one state machine.

Example::

    listener = Listener(ListenerConfig(port=5005))
    listener.start()                 # IDLE -> WAITING; plays whatever stream arrives
    ...
    listener.stop()                  # -> IDLE
    listener.close()

Starting and stopping may repeat (the listen button does exactly that). Failures a user can
fix (port in use, no audio device) raise :class:`~appliance.errors.ApplianceError` and leave
the machine in ``ERROR`` with the message as its reason, for the LEDs and the mDNS record.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from appliance.audio_format import FRAME_BYTES, FRAME_MS, seconds_to_bytes
from appliance.errors import ApplianceError, NetworkError, UsageError
from appliance.jitterbuffer import Phase, PlayoutBuffer
from appliance.player import AudioOutput, Playout, PyAudioOutput, Render, WavFileOutput
from appliance.receiver import SOCKET_BUFFER_BYTES, Receiver
from appliance.session import Session
from appliance.state import ListenerState, StateMachine

log = logging.getLogger(__name__)

DEFAULT_BUFFER_MS = 60
"""Prebuffer target: three 20 ms frames absorb LAN jitter; raise it for busy Wi-Fi."""
DEFAULT_TIMEOUT_S = 5.0
DEFAULT_MAX_BUFFER_S = 120.0
DRAIN_TAIL_MS = 100
"""Silence after a stream's last audio: PortAudio's ALSA stop drops its last ~2 periods."""
POLL_S = 0.01

OutputFactory = Callable[[Render], AudioOutput]


@dataclass(slots=True)
class ListenerConfig:
    port: int = 5005
    bind: str = "0.0.0.0"
    buffer_ms: int = DEFAULT_BUFFER_MS
    timeout_s: float = DEFAULT_TIMEOUT_S
    device: str | None = None
    max_buffer_s: float = DEFAULT_MAX_BUFFER_S
    once: bool = False
    output_file: Path | None = None
    """Write what would be played to this WAV file instead of a sound card."""

    def validate(self) -> None:
        if not 0 <= self.port <= 65535:
            raise UsageError(f"port {self.port} is not between 0 and 65535")
        if self.buffer_ms < FRAME_MS:
            raise UsageError(f"--buffer-ms must be at least {FRAME_MS} (one frame)")
        if self.timeout_s <= 0:
            raise UsageError("--timeout must be more than 0 seconds")
        if self.max_buffer_s * 1000 < self.buffer_ms:
            raise UsageError("--max-buffer-s must hold at least --buffer-ms of audio")


class Listener:
    def __init__(
        self,
        config: ListenerConfig,
        state_machine: StateMachine | None = None,
        output_factory: OutputFactory | None = None,
    ) -> None:
        config.validate()
        self.config = config
        self.state_machine = state_machine or StateMachine()
        self.state_machine.start()
        self._output_factory = output_factory or self._default_output
        target = (config.buffer_ms // FRAME_MS) * FRAME_BYTES
        self.buffer = PlayoutBuffer(
            target_bytes=target,
            capacity_bytes=max(target, seconds_to_bytes(config.max_buffer_s)),
            drain_tail_bytes=(DRAIN_TAIL_MS // FRAME_MS) * FRAME_BYTES,
        )
        self._playout = Playout(self.buffer, self.state_machine)
        self._lock = threading.RLock()
        self._sock: socket.socket | None = None
        self._receiver: Receiver | None = None
        self._output: AudioOutput | None = None
        self._port = config.port
        self.sessions: list[Session] = []
        self._session_ended = threading.Condition()

    def _default_output(self, render: Render) -> AudioOutput:
        if self.config.output_file is not None:
            return WavFileOutput(render, self.config.output_file)
        return PyAudioOutput(render, self.config.device)

    # -- control ----------------------------------------------------------------------------

    @property
    def is_listening(self) -> bool:
        return self._receiver is not None

    @property
    def port(self) -> int:
        """The UDP port bound (the real one when the configuration asked for port 0)."""
        return self._port

    def start(self) -> None:
        with self._lock:
            if self.is_listening:
                return
            try:
                self._start()
            except ApplianceError as error:
                self._release()
                self.state_machine.set(ListenerState.ERROR, str(error))
                raise

    def _start(self) -> None:
        self._sock = open_socket(self.config.bind, self.config.port)
        self._port = self._sock.getsockname()[1]
        self.buffer.clear()
        self._playout.reset()
        self._output = self._output_factory(self._playout.render)
        self._output.start()
        # WAITING only once the audio is open, so that nothing (the mDNS record above all)
        # announces a listener that cannot play. The callbacks already running publish nothing
        # until the receiver, started next, brings data.
        self.state_machine.set(
            ListenerState.WAITING, f"listening on {self.config.bind}:{self._port}"
        )
        receiver = Receiver(
            self._sock, self.buffer, self.config.timeout_s, on_session_end=self._session_done
        )
        receiver.start()
        self._receiver = receiver
        log.info(
            "listening on %s:%d (buffer %d ms, session timeout %g s, output: %s)",
            self.config.bind, self._port, self.config.buffer_ms, self.config.timeout_s,
            self.config.output_file or self.config.device or "default",
        )

    def stop(self) -> None:
        with self._lock:
            if not self.is_listening:
                return
            self._release()
            self.buffer.clear()
            self.state_machine.set(ListenerState.IDLE, "listening stopped")
            log.info("stopped listening")

    def _release(self) -> None:
        if self._receiver is not None:
            self._receiver.stop()
            self._receiver = None
        if self._output is not None:
            self._output.stop()
            self._output = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def close(self) -> None:
        self.stop()
        self.state_machine.close()

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- observation ------------------------------------------------------------------------

    def set_gain(self, factor: float) -> None:
        """Software volume for what is played from now on (1.0 plays the bytes unchanged)."""
        if factor < 0:
            raise ValueError("gain cannot be negative")
        self._playout.gain = factor

    @property
    def gain(self) -> float:
        return self._playout.gain

    def last_activity(self) -> float:
        """``time.monotonic()`` of the audio callback's last run (for watchdogs)."""
        return self._playout.last_activity

    def healthy(self, max_silence_s: float = 2.0) -> bool:
        """True when listening, the audio callback ran lately and the receiver is alive."""
        receiver = self._receiver
        if receiver is None or not receiver.is_alive():
            return False
        return time.monotonic() - self.last_activity() < max_silence_s

    def _session_done(self, session: Session) -> None:
        with self._session_ended:
            self.sessions.append(session)
            self._session_ended.notify_all()

    def wait_session_played(self, count: int = 1, timeout: float | None = None) -> bool:
        """Block until ``count`` sessions have ended and their audio has been played out."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._session_ended:
            if not self._session_ended.wait_for(lambda: len(self.sessions) >= count, timeout):
                return False
        while self.buffer.phase is not Phase.WAITING or (
            self.state_machine.state not in (ListenerState.WAITING, ListenerState.IDLE)
        ):
            if deadline is not None and time.monotonic() > deadline:
                return False
            if not self.is_listening:
                return True
            time.sleep(POLL_S)
        return True


def open_socket(bind: str, port: int) -> socket.socket:
    """The listening UDP socket, with errors a user can act on."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER_BYTES)
        sock.bind((bind, port))
    except OSError as error:
        sock.close()
        where = f"{bind}:{port}"
        if error.errno == errno.EADDRINUSE:
            raise NetworkError(f"cannot listen on {where}: the port is already in use") from None
        if error.errno == errno.EACCES:
            raise NetworkError(f"cannot listen on {where}: permission denied") from None
        if error.errno == errno.EADDRNOTAVAIL:
            raise NetworkError(f"cannot listen on {where}: no such address here") from None
        if isinstance(error, socket.gaierror):
            raise NetworkError(f"cannot listen on {where}: unknown address") from None
        raise NetworkError(f"cannot listen on {where}: {error.strerror}") from None
    return sock
