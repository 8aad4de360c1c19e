"""Talk to systemd from a ``Type=notify`` service, without any dependency.

systemd passes a datagram socket in ``NOTIFY_SOCKET`` (a path, or ``@name`` for a Linux
abstract socket); a service tells it ``READY=1`` when it really serves, ``STATUS=...`` for
``systemctl status``, ``STOPPING=1`` on the way out and ``WATCHDOG=1`` at least every
``WatchdogSec=``. Every function here is a no-op when the process is not run by systemd, so
the same code runs from a terminal.

Use from the listener::

    from appliance.pi import systemd

    listener.start()                      # audio device and socket are open
    advertiser.start()                    # mDNS record registered
    systemd.notify_ready("listening on port 5005")
    watchdog = systemd.Watchdog(lambda: time.monotonic() - listener.last_activity() < 5.0)
    watchdog.start()
    ...
    systemd.notify_stopping()
    watchdog.stop()

The watchdog is fed only while ``healthy()`` says so: a hung audio path stops the feeding and
systemd restarts the service (``Restart=on-failure``), a healthy one is left alone.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

NOTIFY_SOCKET_ENV = "NOTIFY_SOCKET"
WATCHDOG_USEC_ENV = "WATCHDOG_USEC"
WATCHDOG_PID_ENV = "WATCHDOG_PID"
MICROSECONDS_PER_SECOND = 1_000_000
ABSTRACT_PREFIX = "@"

READY = "READY=1"
STOPPING = "STOPPING=1"
WATCHDOG = "WATCHDOG=1"


def under_systemd(environ: Mapping[str, str] | None = None) -> bool:
    """True when systemd started this process: it sets ``INVOCATION_ID`` for every service
    it starts, and a login shell has none."""
    env = os.environ if environ is None else environ
    return bool(env.get("INVOCATION_ID"))


def notify(message: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send one ``sd_notify`` message (``"KEY=value"`` lines). True if it was sent.

    Returns False, silently, when ``NOTIFY_SOCKET`` is not set (not under systemd); a socket
    that is set but cannot be reached is logged at debug level and also gives False, because
    a failed status update must never stop the audio.
    """
    env = os.environ if environ is None else environ
    address = env.get(NOTIFY_SOCKET_ENV)
    if not address:
        return False
    if address.startswith(ABSTRACT_PREFIX):
        # Abstract namespace: the kernel expects a leading NUL instead of the '@'.
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode("utf-8"))
    except OSError as error:
        log.debug("sd_notify %r to %r failed: %s", message, address, error)
        return False
    return True


def notify_ready(status: str | None = None) -> bool:
    """Tell systemd the service is up (audio open, mDNS registered); optionally a status."""
    message = READY if status is None else f"{READY}\nSTATUS={status}"
    return notify(message)


def notify_status(text: str) -> bool:
    """Set the one-line status shown by ``systemctl status appliance``."""
    return notify(f"STATUS={text}")


def notify_stopping() -> bool:
    """Tell systemd the service is shutting down on purpose (not a crash)."""
    return notify(STOPPING)


def notify_watchdog() -> bool:
    """Feed the watchdog once."""
    return notify(WATCHDOG)


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """The ``WatchdogSec=`` systemd set for this process, in seconds, or None.

    None when there is no watchdog, when the value is not a positive integer, or when
    ``WATCHDOG_PID`` names another process (the variables were inherited from a parent).
    """
    env = os.environ if environ is None else environ
    usec_text = env.get(WATCHDOG_USEC_ENV)
    if not usec_text:
        return None
    pid_text = env.get(WATCHDOG_PID_ENV)
    if pid_text:
        try:
            if int(pid_text) != os.getpid():
                return None
        except ValueError:
            return None
    try:
        usec = int(usec_text)
    except ValueError:
        return None
    if usec <= 0:
        return None
    return usec / MICROSECONDS_PER_SECOND


class Watchdog:
    """Feeds systemd's watchdog every ``interval / 2`` while ``healthy()`` returns True.

    ``healthy`` is called on the watchdog's own thread; it must be quick and thread-safe
    (reading a monotonic timestamp the audio callback updates is ideal). An exception from it
    counts as unhealthy. Not under a watchdog (``interval`` None), :meth:`start` does nothing.

    >>> dog = Watchdog(lambda: True)   # not under systemd (no WATCHDOG_USEC): a no-op
    >>> dog.start(); dog.running
    False
    """

    def __init__(
        self,
        healthy: Callable[[], bool],
        interval: float | None = None,
        send: Callable[[], bool] = notify_watchdog,
    ) -> None:
        self._healthy = healthy
        self._interval = watchdog_interval() if interval is None else interval
        self._send = send
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def interval(self) -> float | None:
        """The watchdog timeout in seconds (feeding happens at half of it), or None."""
        return self._interval

    @property
    def running(self) -> bool:
        """True while the feeding thread runs."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def start(self) -> None:
        """Start feeding on a daemon thread; a second call does nothing."""
        with self._lock:
            if self._interval is None or self.running:
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="systemd-watchdog", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop feeding and wait for the thread to end."""
        with self._lock:
            thread = self._thread
            self._thread = None
        self._stop.set()
        if thread is not None:
            thread.join()

    def _check(self) -> bool:
        try:
            return bool(self._healthy())
        except Exception:
            log.exception("watchdog health check raised: not feeding the watchdog")
            return False

    def _run(self) -> None:
        assert self._interval is not None
        period = self._interval / 2
        reported_unhealthy = False
        while not self._stop.is_set():
            if self._check():
                self._send()
                reported_unhealthy = False
            elif not reported_unhealthy:
                # Once per bad spell: systemd will restart us if it lasts a whole interval.
                log.warning("audio path looks stuck: not feeding the systemd watchdog")
                reported_unhealthy = True
            self._stop.wait(period)

    def __enter__(self) -> Watchdog:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
