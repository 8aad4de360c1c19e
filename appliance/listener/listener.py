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
import ipaddress
import logging
import math
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from appliance.audio.format import AudioFormat
from appliance.errors import (
    ApplianceError,
    AudioDeviceError,
    NetworkError,
    UsageError,
    missing_pyaudio,
)
from appliance.listener.admission import AllowList
from appliance.listener.defaults import (
    DEFAULT_BUFFER_MS,
    DEFAULT_MAX_BUFFER_S,
    DEFAULT_MAX_LATENCY_MS,
    DEFAULT_PERIOD_MS,
    DEFAULT_TAKEOVER_S,
    DEFAULT_TIMEOUT_S,
    DRAIN_TAIL_MS,
    LATENCY_FLOOR_MARGIN_MS,
    MAX_BUFFER_LIMIT_S,
    MAX_PERIOD_MS,
    MIN_BUFFER_MS,
    MIN_PERIOD_MS,
)
from appliance.listener.feedback import Feedback
from appliance.listener.outputs import AudioOutput, Render
from appliance.listener.outputs.recovery import OutputWatchdog
from appliance.listener.outputs.wavfile import WavFileOutput
from appliance.listener.playout.buffer import Phase, PlayoutBuffer
from appliance.listener.playout.latency import LatencyTarget
from appliance.listener.receiver import SOCKET_BUFFER_BYTES, Receiver
from appliance.listener.render import Playout
from appliance.listener.session import Session
from appliance.listener.state import ListenerState, StateMachine, Transition
from appliance.listener.timesync import TimeClient
from appliance.wire.payload import RTP_DEFAULT_FORMAT, PayloadMap
from appliance.wire.raw import RAW_FORMAT
from appliance.wire.srtp import load_key

log = logging.getLogger(__name__)

POLL_S = 0.01
SESSION_HISTORY = 100
"""Ended sessions kept for status and tests; older ones are forgotten."""

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
    payload_map: tuple[str, ...] = ()
    """Dynamic RTP payload types, e.g. ``("96=L16/48000/2",)``."""
    period_ms: int = DEFAULT_PERIOD_MS
    """Audio per output callback (the output's latency is about twice this)."""
    fixed_latency: bool = False
    """Hold the latency target at ``buffer_ms``; by default it starts there and follows the
    network's jitter, between MIN_BUFFER_MS and ``max_latency_ms``."""
    max_latency_ms: int = DEFAULT_MAX_LATENCY_MS
    """The adaptive target's ceiling (raised to ``buffer_ms`` if that is higher)."""
    allow: tuple[str, ...] = ()
    """Addresses and networks that may stream; empty = anyone (see :class:`AllowList`)."""
    takeover_s: float = DEFAULT_TAKEOVER_S
    """Once a session's source has been silent this long, another's stream takes over."""
    key_file: Path | None = None
    """The SRTP key (:mod:`appliance.wire.srtp`): only streams it authenticates play."""

    def validate(self) -> None:
        # NaN compares false with everything: without this, the range checks below let it in.
        for flag, seconds in (
            ("--timeout", self.timeout_s),
            ("--max-buffer-s", self.max_buffer_s),
            ("--takeover-s", self.takeover_s),
        ):
            if not math.isfinite(seconds):
                raise UsageError(f"{flag} must be a finite number of seconds, not {seconds}")
        if not self.bind.strip():
            raise UsageError("--bind must be an address (0.0.0.0 = all), not empty")
        if self.device is not None and not self.device.strip():
            raise UsageError("--device must name a device, not be empty")
        if not 0 <= self.port <= 65535:
            raise UsageError(f"port {self.port} is not between 0 and 65535")
        if self.buffer_ms < MIN_BUFFER_MS:
            raise UsageError(f"--buffer-ms must be at least {MIN_BUFFER_MS} (one packet)")
        if self.timeout_s <= 0:
            raise UsageError("--timeout must be more than 0 seconds")
        if self.max_buffer_s * 1000 < self.buffer_ms:
            raise UsageError("--max-buffer-s must hold at least --buffer-ms of audio")
        if self.max_buffer_s > MAX_BUFFER_LIMIT_S:
            raise UsageError(f"--max-buffer-s must be at most {MAX_BUFFER_LIMIT_S:g} seconds")
        if self.max_latency_ms < MIN_BUFFER_MS:
            raise UsageError(f"--max-latency-ms must be at least {MIN_BUFFER_MS}")
        if not MIN_PERIOD_MS <= self.period_ms <= MAX_PERIOD_MS:
            raise UsageError(
                f"--period-ms must be from {MIN_PERIOD_MS} to {MAX_PERIOD_MS} ms, "
                f"not {self.period_ms}"
            )
        if not 0 < self.takeover_s <= self.timeout_s:
            raise UsageError(
                f"--takeover-s must be more than 0 and at most --timeout ({self.timeout_s:g} s)"
            )
        self.allow_list()
        self.rtp_payloads()
        self.srtp_key()

    def srtp_key(self) -> bytes | None:
        """The key in ``key_file`` (None: no key, anyone may stream); UsageError if unusable."""
        return None if self.key_file is None else load_key(self.key_file)

    def allow_list(self) -> AllowList:
        """Who may stream (everyone when ``allow`` is empty)."""
        try:
            return AllowList.parse(self.allow)
        except ValueError as error:
            raise UsageError(f"--allow: {error}") from None

    def latency_target(self) -> LatencyTarget:
        """The latency policy: adaptive from ``buffer_ms``, or fixed there."""
        # Below one output period plus a margin the output's own reads would underrun.
        floor = min(self.buffer_ms, max(MIN_BUFFER_MS, self.period_ms + LATENCY_FLOOR_MARGIN_MS))
        return LatencyTarget(
            self.buffer_ms,
            floor_ms=floor,
            ceiling_ms=max(self.max_latency_ms, self.buffer_ms),
            adaptive=not self.fixed_latency,
        )

    def rtp_payloads(self) -> PayloadMap:
        """The RTP payload types played: RFC 3551's static ones and the dynamic map."""
        return PayloadMap.from_texts(self.payload_map, RTP_DEFAULT_FORMAT)


class Listener:
    def __init__(
        self,
        config: ListenerConfig,
        state_machine: StateMachine | None = None,
        output_factory: OutputFactory | None = None,
    ) -> None:
        config.validate()
        self.config = config
        self._payloads = config.rtp_payloads()
        self.state_machine = state_machine or StateMachine()
        self.state_machine.start()
        self._output_factory = output_factory or self._default_output
        self.buffer = PlayoutBuffer(
            target_ms=config.buffer_ms,
            capacity_s=config.max_buffer_s,
            drain_tail_ms=DRAIN_TAIL_MS,
            latency=config.latency_target(),
        )
        self._playout = Playout(self.buffer, self.state_machine)
        self._lock = threading.RLock()
        self._output_lock = threading.Lock()
        """Opening the output for a stream and closing it when idle exclude each other."""
        self._sock: socket.socket | None = None
        self._receiver: Receiver | None = None
        self._output: AudioOutput | None = None
        self._watchdog: OutputWatchdog | None = None
        """Notices the output failing while listening and re-opens it (outputs/recovery.py)."""
        self._streaming = False
        """A session is open (set and cleared under the output lock)."""
        self._stream_format: AudioFormat | None = None
        self._conversions_logged: set[tuple[AudioFormat, AudioFormat]] = set()
        self._port = config.port
        self.sessions: deque[Session] = deque(maxlen=SESSION_HISTORY)
        """The last sessions ended, oldest first (bounded: a listener runs for months)."""
        self.sessions_ended = 0
        self._session_ended = threading.Condition()
        self._session_observers: list[Callable[[Session], None]] = []
        self.state_machine.subscribe(self._on_transition)

    def _default_output(self, render: Render) -> AudioOutput:
        if self.config.output_file is not None:
            return WavFileOutput(render, self.config.output_file, self.config.period_ms)
        try:  # imported here: PyAudio is an optional extra, not needed with --output-file
            from appliance.listener.outputs.portaudio import PyAudioOutput
        except ModuleNotFoundError as error:
            raise missing_pyaudio(error) from None
        return PyAudioOutput(render, self.config.device, self.config.period_ms)

    # -- control ----------------------------------------------------------------------------

    @property
    def is_listening(self) -> bool:
        return self._receiver is not None

    @property
    def port(self) -> int:
        """The UDP port bound (the real one when the configuration asked for port 0)."""
        return self._port

    @property
    def unauthenticated(self) -> int:
        """Datagrams dropped while listening because they did not authenticate (with a key)."""
        receiver = self._receiver
        return 0 if receiver is None else receiver.unauthenticated

    @property
    def feedback(self) -> Feedback | None:
        """The replies to the sources (:mod:`.feedback`) while listening, else None."""
        receiver = self._receiver
        return None if receiver is None else receiver.feedback

    @property
    def timesync(self) -> TimeClient | None:
        """The open RTP session's time exchange with its sender (:mod:`.timesync`), else
        None. Its figures are read without the receiver's lock: each is one attribute."""
        receiver = self._receiver
        return None if receiver is None else receiver.sessions.timesync

    @property
    def payload_map(self) -> PayloadMap:
        """The RTP payload types this listener plays."""
        return self._payloads

    def start(self) -> None:
        with self._lock:
            if self.is_listening:
                return
            try:
                self._start()
            except ApplianceError as error:
                self._release()
                self.state_machine.set(ListenerState.ERROR, str(error), raised=True)
                raise

    def _start(self) -> None:
        self._sock = open_socket(self.config.bind, self.config.port)
        self._port = self._sock.getsockname()[1]
        self.buffer.clear()
        self._playout.reset()
        self._output = self._output_factory(self._playout.render)
        # The output is opened once to prove that it works, then closed until a stream comes:
        # an idle listener runs no audio callback. WAITING only once the audio is proven, so
        # that nothing (the mDNS record above all) announces a listener that cannot play.
        self._output.start()
        output_name = str(self.config.output_file or self.config.device or "default")
        self._watchdog = OutputWatchdog(
            self._output, self._output_lock, self._playout, self.buffer, self.state_machine,
            self._reopen_output, name=repr(output_name),
        )  # fmt: skip
        self._watchdog.start()
        self.state_machine.set(
            ListenerState.WAITING, f"listening on {self.config.bind}:{self._port}"
        )
        receiver = Receiver(
            self._sock,
            self.buffer,
            self.config.timeout_s,
            on_session_start=self._stream_starting,
            on_session_end=self._session_done,
            payload_map=self._payloads,
            takeover_s=self.config.takeover_s,
            allow=self.config.allow_list(),
            key=self.config.srtp_key(),
            on_stream_coming=self._stream_coming,
            on_idle=self._close_output_if_idle,
            min_delay=self._playout.min_delay_ns,
        )
        receiver.start()
        self._receiver = receiver
        latency = (
            f"latency target {self.config.buffer_ms} ms, fixed"
            if self.config.fixed_latency
            else f"latency target from {self.config.buffer_ms} ms, adaptive up to "
            f"{self.buffer.latency.ceiling_ms:.0f} ms"
        )
        log.info(
            "listening on %s:%d (%s, session timeout %g s, output: %s)",
            self.config.bind, self._port, latency, self.config.timeout_s,
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
        if self._watchdog is not None:
            self._watchdog.stop()
            self._watchdog = None
        with self._output_lock:
            if self._output is not None:
                self._output.stop()
                self._output = None
            self._stream_format = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    # -- the output follows the streams ----------------------------------------------------

    def _stream_coming(self, audio_format: AudioFormat) -> None:
        """A new source's first datagram (receiving thread): open the output now, in the
        format its stream would have, so that it has filled its device buffer by the time the
        stream is admitted (a few datagrams later) and due to play. If no stream follows, the
        output closes again when the source is forgotten (``on_idle``)."""
        with self._output_lock:
            output = self._output
            watchdog = self._watchdog
            if self._streaming or output is None or (watchdog is not None and watchdog.down):
                return
            if output.is_active():
                return  # the last stream is still playing out: it is not cut short for this
            try:
                self._open_output(output, audio_format.decoded())
            except AudioDeviceError:
                return  # said, and acted on, if a stream does start (_stream_starting)

    def _stream_starting(self, session: Session) -> None:
        """A session begins (receiving thread): have the output playing in its format."""
        with self._output_lock:
            self._streaming = True
            output = self._output
            watchdog = self._watchdog
            if output is None or (watchdog is not None and watchdog.down):
                return  # the watchdog re-opens the output for this stream when it can
            wanted = session.format.decoded()
            if output.is_active() and self._stream_format == wanted:
                return
            try:
                self._open_output(output, wanted)
            except AudioDeviceError as error:
                if watchdog is not None:  # one log line, ERROR, and retries with backoff
                    watchdog.output_failed(str(error))
                else:
                    log.error("%s", error)
                    self.state_machine.set(ListenerState.ERROR, str(error))
                return
            if self.state_machine.state is ListenerState.ERROR:
                # The output failed for an earlier stream and works again: playing resumes
                # from WAITING, and the callback publishes the phases as usual.
                self._playout.reset()
                self.state_machine.set(ListenerState.WAITING, "audio output opened again")

    def _open_output(self, output: AudioOutput, stream: AudioFormat) -> None:
        output.close()
        device = output.negotiate(stream)
        if self._playout.prepare(stream, device) and (stream, device) not in (
            self._conversions_logged
        ):
            self._conversions_logged.add((stream, device))
            log.info(
                "the output does not take %d Hz %s; playing at %d Hz %s, converted",
                stream.rate, _channels(stream), device.rate, _channels(device),
            )
        # What the converter holds back must be pushed out by the drain's silence too, or the
        # stream's last milliseconds stay in it when the output closes. Its lag swings by up to
        # a block between reads, hence twice.
        self.buffer.set_drain_tail(DRAIN_TAIL_MS + 2 * self._playout.conversion_latency_ms)
        output.open(device)
        self._stream_format = stream
        if self._watchdog is not None:
            self._watchdog.wake()

    def _reopen_output(self, output: AudioOutput) -> None:
        """The watchdog's retry (under the output lock): open for the stream on, else prove
        that the output opens and close it again, as listening starts."""
        receiver = self._receiver
        session = None if receiver is None else receiver.session
        if self._streaming and session is not None:
            self._open_output(output, session.format.decoded())
            return
        output.open(output.negotiate(RAW_FORMAT))
        output.close()
        self._stream_format = None

    def _on_transition(self, transition: Transition) -> None:
        if transition.current is ListenerState.WAITING:
            self._close_output_if_idle()

    def _close_output_if_idle(self) -> None:
        with self._output_lock:
            output = self._output
            idle = not self._streaming and self.buffer.phase is Phase.WAITING
            if output is not None and idle and output.opened_format is not None:
                output.close()
                self._stream_format = None
                log.debug("idle: audio output closed")

    def output_is_open(self) -> bool:
        """The audio output is playing (a stream is on, or its end is still draining)."""
        output = self._output
        return output is not None and output.opened_format is not None

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
        """True when listening, the receiver is alive and, while the output is open, the audio
        callback ran lately (an idle listener has its output closed: nothing to check)."""
        receiver = self._receiver
        if receiver is None or not receiver.is_alive():
            return False
        watchdog = self._watchdog
        if watchdog is None or not watchdog.is_alive():
            return False  # nothing would bring a failed output back
        if not self.output_is_open():
            return True
        return time.monotonic() - self.last_activity() < max_silence_s

    def _session_done(self, session: Session) -> None:
        with self._output_lock:
            self._streaming = False
        if self.buffer.phase is Phase.WAITING:  # nothing to drain: close at once
            self._close_output_if_idle()
        with self._session_ended:
            self.sessions.append(session)
            self.sessions_ended += 1
            self._session_ended.notify_all()
            observers = list(self._session_observers)
        for observer in observers:
            try:
                observer(session)
            except Exception:
                log.exception("a session observer failed")

    def subscribe_sessions(self, callback: Callable[[Session], None]) -> Callable[[], None]:
        """Call ``callback(session)`` as each session ends, with its figures; returns
        ``unsubscribe()``. It runs on the receiving thread: it must be quick (hand work over to
        another thread), and what it raises is logged, never passed on."""
        with self._session_ended:
            self._session_observers.append(callback)

        def unsubscribe() -> None:
            with self._session_ended:
                if callback in self._session_observers:
                    self._session_observers.remove(callback)

        return unsubscribe

    def wait_session_played(self, count: int = 1, timeout: float | None = None) -> bool:
        """Block until ``count`` sessions have ended and their audio has been played out."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._session_ended:
            if not self._session_ended.wait_for(lambda: self.sessions_ended >= count, timeout):
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
    """The listening UDP socket, with errors a user can act on.

    An IPv6 literal (``::1``, ``[::1]``, ``fe80::1%wlan0``) gets an IPv6 socket; ``::`` one that
    takes IPv4 too (v4-mapped addresses), as a dual-stack server should. Anything else (an IPv4
    address, a host name) is IPv4, as before.
    """
    host = bind[1:-1] if bind.startswith("[") and bind.endswith("]") else bind
    family = socket.AF_INET6 if _is_ipv6_literal(host) else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER_BYTES)
        if family == socket.AF_INET6:
            any_address = ipaddress.IPv6Address(host.split("%", 1)[0]).is_unspecified
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if any_address else 1)
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        where = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
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


def _is_ipv6_literal(host: str) -> bool:
    try:
        ipaddress.IPv6Address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def _channels(audio_format: AudioFormat) -> str:
    return "stereo" if audio_format.channels == 2 else "mono"
