"""The listener's socket stage: a thread that receives datagrams and runs sessions.

A session belongs to the first source that sends audio; datagrams from anyone else are
counted and ignored until it ends, by the end-of-stream marker (an empty datagram) or by
``timeout_s`` without packets from its source. Anything that is not audio is counted and
dropped; nothing a peer sends can stop the thread.

The receiving thread blocks in ``recvfrom`` with no timeout: one system call per datagram
and nothing in between, the cheapest way for Python to wait for the network. Timeouts are a
second thread's job, which only wakes while a session is open.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable

from appliance.depacketizer import RawDepacketizer
from appliance.framing import InvalidDatagram, RawDatagram
from appliance.jitterbuffer import PlayoutBuffer
from appliance.session import Address, EndReason, Session

log = logging.getLogger(__name__)

RECEIVE_SIZE = 65536
"""Larger than any UDP datagram, so an oversized one is seen whole and rejected, not cut."""
SOCKET_BUFFER_BYTES = 1 << 20
"""Kernel receive buffer: seconds of audio, so a busy moment in Python loses nothing."""
TICK_S = 0.25
"""While a session runs, its timeout is checked this often: sessions end within a tick of
``timeout_s`` without packets."""

SessionCallback = Callable[[Session], None]


class Receiver:
    def __init__(
        self,
        sock: socket.socket,
        buffer: PlayoutBuffer,
        timeout_s: float,
        on_session_start: SessionCallback | None = None,
        on_session_end: SessionCallback | None = None,
    ) -> None:
        self._sock = sock
        self._buffer = buffer
        self._timeout_s = timeout_s
        self._on_start = on_session_start
        self._on_end = on_session_end
        self._depacketizer = RawDepacketizer()
        self._thread: threading.Thread | None = None
        self._session: Session | None = None
        self._sessions_started = 0
        self.invalid_outside_sessions = 0
        self._underruns_before = 0
        self._dropped_before = 0
        self._lock = threading.Lock()
        """Session state is shared by the receiving thread and the timer."""
        self._session_open = threading.Event()
        self._stopping = threading.Event()
        self._timer: threading.Thread | None = None

    @property
    def session(self) -> Session | None:
        return self._session

    def start(self) -> None:
        self._sock.settimeout(None)
        self._thread = threading.Thread(target=self._run, name="receiver", daemon=True)
        self._timer = threading.Thread(target=self._time_sessions, name="sessions", daemon=True)
        self._thread.start()
        self._timer.start()

    def stop(self) -> None:
        """Stop the threads; a running session ends as 'listening stopped'."""
        if self._thread is None or self._timer is None:
            return
        self._stopping.set()
        self._session_open.set()  # wakes the timer so that it sees the stop
        # Wakes the blocked receive at once: it returns no data and no address. (Linux also
        # says ENOTCONN for an unconnected UDP socket, after doing so.)
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RD)
        self._thread.join()
        self._timer.join()
        self._thread = self._timer = None

    def is_alive(self) -> bool:
        """Both threads are running (a receive blocked for lack of traffic is alive)."""
        threads = (self._thread, self._timer)
        return all(t is not None and t.is_alive() for t in threads)

    def _run(self) -> None:
        try:
            while True:
                try:
                    data, address = self._sock.recvfrom(RECEIVE_SIZE)
                except OSError as error:
                    if self._stopping.is_set():
                        break
                    # ICMP errors and the like surface here on some kernels; never fatal.
                    log.debug("receive error ignored: %s", error)
                    continue
                if address is None:  # shut down by stop()
                    break
                with self._lock:
                    self._handle(data, (address[0], address[1]), time.monotonic())
        finally:
            with self._lock:
                if self._session is not None:
                    self._end_session(EndReason.STOPPED)

    def _time_sessions(self) -> None:
        while not self._stopping.is_set():
            self._session_open.wait()
            if self._stopping.wait(TICK_S):
                return
            with self._lock:
                session = self._session
                if session is not None and time.monotonic() - session.last_packet_at >= (
                    self._timeout_s
                ):
                    self._end_session(EndReason.TIMEOUT)

    def _handle(self, data: bytes, source: Address, now: float) -> None:
        session = self._session
        if session is not None and source != session.source:
            session.ignored += 1
            if source not in session.ignored_sources:
                session.ignored_sources.add(source)
                log.warning(
                    "ignoring %s:%d: session %d belongs to %s",
                    source[0], source[1], session.number, session.source_text,
                )
            return
        try:
            datagram = RawDatagram.parse(data)
        except InvalidDatagram as error:
            self._count_invalid(session, source, error)
            return
        if datagram.is_end_of_stream:
            if session is not None:
                self._end_session(EndReason.MARKER)
            return
        if session is None:
            session = self._begin_session(source, now)
        session.packets += 1
        session.audio_bytes += len(datagram.payload)
        session.last_packet_at = now
        self._buffer.push(self._depacketizer.depacketize(datagram))

    def _count_invalid(self, session: Session | None, source: Address, error: Exception) -> None:
        if session is None:
            self.invalid_outside_sessions += 1
            first = self.invalid_outside_sessions == 1
        else:
            session.invalid += 1
            first = session.invalid == 1
        if first:
            log.warning("dropped a datagram from %s:%d: %s", source[0], source[1], error)

    def _begin_session(self, source: Address, now: float) -> Session:
        self._sessions_started += 1
        session = Session(self._sessions_started, source, now, now)
        self._session = session
        self._underruns_before = self._buffer.stats().underruns
        self._dropped_before = self._buffer.stats().dropped_bytes
        self._buffer.reset_peak()
        self._buffer.begin_stream()
        self._session_open.set()
        log.info(session.start_line())
        if self._on_start is not None:
            self._on_start(session)
        return session

    def _end_session(self, reason: EndReason) -> None:
        session = self._session
        assert session is not None
        self._session = None
        self._session_open.clear()
        if reason is not EndReason.STOPPED:
            self._buffer.end_stream()
        stats = self._buffer.stats()
        session.underruns = stats.underruns - self._underruns_before
        session.dropped_bytes = stats.dropped_bytes - self._dropped_before
        session.peak_depth_bytes = stats.peak_depth_bytes
        session.ended_at = time.monotonic()
        session.end_reason = reason
        log.info(session.end_line())
        if self._on_end is not None:
            self._on_end(session)
