"""The listener's socket stage: a thread that receives datagrams and hands them to sessions.

The receiving thread blocks in ``recvfrom`` with no timeout: one system call per datagram
and nothing in between, the cheapest way for Python to wait for the network. Timeouts are a
second thread's job, which only wakes while a session is open. What the datagrams mean (who
may stream, raw or RTP, when a stream ends) is :mod:`appliance.listener.sessions`' business.
Replies to the sources (:mod:`appliance.listener.feedback`) leave from the same socket, sent
with ``MSG_DONTWAIT`` so that the receiving thread never waits for them.

With a key (:mod:`appliance.wire.srtp`) every datagram is unprotected here, before the session
logic sees it: what does not authenticate (raw PCM, an empty end marker, plain RTP, another
key, a replay) is counted in :attr:`Receiver.unauthenticated` and dropped, so it can neither
start, end nor disturb a session, and gets no reply (no amplification, no oracle). The replies
to authenticated sources leave as SRTCP.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable

from appliance.listener.admission import AllowList
from appliance.listener.defaults import DEFAULT_TAKEOVER_S
from appliance.listener.feedback import Address, Feedback
from appliance.listener.notices import NoticeLimiter
from appliance.listener.playout.buffer import PlayoutBuffer
from appliance.listener.session import EndReason, Session
from appliance.listener.sessions import FormatCallback, SessionCallback, SessionManager
from appliance.wire.payload import PayloadMap
from appliance.wire.raw import RAW_FORMAT
from appliance.wire.srtp import SrtpError, SrtpFailure, SrtpProtector, SrtpUnprotector

log = logging.getLogger(__name__)

RECEIVE_SIZE = 65536
"""Larger than any UDP datagram, so an oversized one is seen whole and rejected, not cut."""
SOCKET_BUFFER_BYTES = 1 << 20
"""Kernel receive buffer: seconds of audio, so a busy moment in Python loses nothing."""
TICK_S = 0.25
"""While a session runs, its timeout is checked this often: sessions end within a tick of
``timeout_s`` without packets."""

DEFAULT_PAYLOAD_MAP = PayloadMap({}, RAW_FORMAT)


class Receiver:
    def __init__(
        self,
        sock: socket.socket,
        buffer: PlayoutBuffer,
        timeout_s: float,
        on_session_start: SessionCallback | None = None,
        on_session_end: SessionCallback | None = None,
        payload_map: PayloadMap = DEFAULT_PAYLOAD_MAP,
        *,
        reports: bool = True,
        takeover_s: float = DEFAULT_TAKEOVER_S,
        allow: AllowList | None = None,
        on_stream_coming: FormatCallback | None = None,
        on_idle: Callable[[], None] | None = None,
        key: bytes | None = None,
        min_delay: Callable[[], int | None] | None = None,
    ) -> None:
        """``min_delay()``: the smallest group delay this listener can meet, in ns (None:
        not known yet), told to senders that keep a group in step."""
        self._sock = sock
        self._unprotector = None if key is None else SrtpUnprotector(key)
        self._protector = None if key is None else SrtpProtector(key)
        self.unauthenticated = 0
        """Datagrams dropped because they did not authenticate (only with a key)."""
        self.unauthenticated_by: dict[SrtpFailure, int] = {}
        """The same, by reason."""
        self._auth_notices = NoticeLimiter(log)
        self.feedback = Feedback(self._send_reply) if reports else None
        """The replies to the sources (None when ``reports`` is off)."""
        self._sessions = SessionManager(
            buffer, timeout_s, payload_map, on_session_start, on_session_end, self.feedback,
            takeover_s=takeover_s, allow=allow, on_stream_coming=on_stream_coming,
            on_idle=on_idle, min_delay=min_delay,
        )
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        """Sessions are shared by the receiving thread and the timer."""
        self._busy = threading.Event()
        self._stopping = threading.Event()
        self._timer: threading.Thread | None = None

    @property
    def session(self) -> Session | None:
        return self._sessions.session

    @property
    def sessions(self) -> SessionManager:
        """The session logic, for its counters (refused, displaced...)."""
        return self._sessions

    @property
    def invalid_outside_sessions(self) -> int:
        return self._sessions.invalid_outside_sessions

    @property
    def rtcp_outside_sessions(self) -> int:
        return self._sessions.rtcp_outside_sessions

    @property
    def authenticated(self) -> bool:
        """Only SRTP that authenticates is played (a key is set)."""
        return self._unprotector is not None

    def _send_reply(self, data: bytes, address: Address) -> bool:
        if self._protector is not None:
            # Replies only ever go to sources whose packets authenticated, and are RTCP.
            try:
                data = self._protector.protect(data)
            except SrtpError:
                return False
        try:
            self._sock.sendto(data, socket.MSG_DONTWAIT, address)
        except OSError:
            return False
        return True

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
        self._busy.set()  # wakes the timer so that it sees the stop
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
        sessions = self._sessions
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
                if self._unprotector is not None:
                    try:
                        data = self._unprotector.unprotect(data)
                    except SrtpError as error:
                        self._count_unauthenticated(error.failure, address)
                        continue
                with self._lock:
                    sessions.handle(data, (address[0], address[1]), time.monotonic())
                    if sessions.busy and not self._busy.is_set():
                        self._busy.set()
        finally:
            with self._lock:
                sessions.end(EndReason.STOPPED)

    def _count_unauthenticated(self, failure: SrtpFailure, address: tuple[str, int]) -> None:
        self.unauthenticated += 1
        self.unauthenticated_by[failure] = self.unauthenticated_by.get(failure, 0) + 1
        self._auth_notices.warning(
            "unauthenticated",
            "dropped a datagram from %s:%d that does not authenticate (%s); %d so far",
            address[0], address[1], failure.value, self.unauthenticated,
        )

    def _time_sessions(self) -> None:
        while not self._stopping.is_set():
            self._busy.wait()
            if self._stopping.wait(TICK_S):
                return
            with self._lock:
                self._sessions.tick(time.monotonic())
                if not self._sessions.busy:
                    self._busy.clear()
