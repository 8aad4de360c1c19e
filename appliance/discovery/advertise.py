"""Advertising a listener over DNS-SD while it listens: :class:`Advertiser`.

The advertiser observes the listener's :class:`~appliance.listener.state.StateMachine`:

* entering ``WAITING`` (listening started, from ``IDLE`` or ``ERROR``) registers
  ``NAME._pcmaudio._udp.local.`` on the listener's port, with TXT ``rate``, ``format``,
  ``channels``, ``ptime``, ``version`` and ``state``, and, given the listener's RTP payload
  map, ``rtp``, ``l16``, ``map``, ``maxrate`` and ``maxch`` (see
  :mod:`appliance.discovery.records`);
* every other change updates TXT ``state``, at most once per ``update_interval_s`` (1 s), and
  always with a trailing update so the last state is the one published;
* :meth:`Advertiser.set_playout` sets TXT ``lat`` (the latency target) and ``net`` (the last
  session's :class:`~appliance.discovery.records.NetworkFigures`), published the same way and
  under the same rate limit as ``state`` (changes within one interval go out together);
* entering ``IDLE`` (listening stopped) and :meth:`Advertiser.close` unregister, which browsers
  see at once (a goodbye packet). A process that dies without it stays listed for over 1000 s,
  so a listener must close the advertiser on SIGTERM/SIGINT: see :func:`install_shutdown_signals`.

``register_service`` blocks about 1.6 s (probing), and state observers share one dispatcher
thread with the LEDs, so all zeroconf work happens on the advertiser's own worker thread; the
observer only records what is wanted and wakes the worker, which reconciles ("registered with
TXT X", the dynamic keys being one :class:`DynamicTxt`) with what is published.

Wiring in ``appliance listen`` (the listener sets its state; the port is known after start)::

    advertiser = Advertiser(args.name, lambda: listener.port, args.interface,
                            listener.state_machine, payload_map=listener.payload_map)
    stop = threading.Event()
    restore = install_shutdown_signals(lambda signum: stop.set())
    try:
        advertiser.attach()
        listener.start()
        advertiser.wait_registered(timeout=5)   # then tell systemd READY=1
        stop.wait()
    finally:
        restore()
        advertiser.close()    # unregisters: browsers see the listener leave at once
        listener.close()

A taken name is not an error: the advertiser takes ``NAME-2`` (``-3``...) and logs the name
actually used, which :attr:`Advertiser.registered_name` also gives. python-zeroconf's probe
detects a conflict only if the owner's PTR record is in its cache while it probes, and does not
break simultaneous-probe ties (two listeners started together both kept the name about 1 time
in 3). So the advertiser keeps watching after registering (:mod:`appliance.discovery.conflicts`):
another host's SRV record under our name, with other data, is a conflict, and the host whose
data sorts first (RFC 6762 section 8.2's rule) re-registers as the next free ``NAME-N`` while
the other re-announces; exactly one renames, also when the conflict appears long after start.

On all interfaces (no ``interfaces``) the worker also polls the machine's addresses every
``address_poll_interval_s`` (2 s): a change (Wi-Fi reconnect, DHCP) moves zeroconf's sockets
(``update_interfaces``), sends a goodbye for the addresses no longer held and re-announces.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from types import FrameType, TracebackType

from zeroconf import NonUniqueNameException, ServiceInfo, Zeroconf

from appliance.discovery.conflicts import (
    ConflictWatcher,
    ServiceClaim,
    loses_to,
    reassert_query,
    srv_goodbye,
)
from appliance.discovery.network import (
    address_goodbye,
    advertised_addresses,
    describe_interfaces,
    make_zeroconf,
)
from appliance.discovery.records import (
    MAX_INSTANCE_NAME_BYTES,
    PLAYOUT_TXT_RESERVE_BYTES,
    SERVICE_TYPE,
    TXT_RECORD_BUDGET_BYTES,
    ListenerProperties,
    NetworkFigures,
    instance_name,
    service_name,
    txt_record_bytes,
)
from appliance.discovery.syncrecord import SyncRecord
from appliance.errors import UsageError
from appliance.listener.state import ListenerState, StateMachine, Transition
from appliance.wire.payload import PayloadMap

log = logging.getLogger(__name__)

STATE_UPDATE_INTERVAL_S = 1.0
"""At most one TXT ``state`` update per this many seconds: a stream flapping between
``playing`` and ``underrun`` must not flood the network with multicast."""

CLOSE_TIMEOUT_S = 5.0
"""How long :meth:`Advertiser.close` waits for the worker (a registration in progress takes
about 1.6 s to finish before the goodbye can go out)."""

ADDRESS_POLL_INTERVAL_S = 2.0
"""How often an advertiser on all interfaces checks this machine's addresses (Wi-Fi reconnect,
DHCP): a change is re-announced within about this long. Reading them costs well under 1 ms."""

DEFEND_DELAY_S = 1.5
"""After a name conflict that we win, re-announce this long after noticing it: browsers then
flush the loser's SRV record (RFC 6762 section 10.2 flushes records older than 1 s)."""

MAX_RENAME_ATTEMPTS = 100
"""``NAME-2`` ... ``NAME-101``: a bound, so that a network that claims every name cannot keep
the advertiser probing forever."""

SHUTDOWN_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT)


def default_listener_name() -> str:
    """The host name without any domain (``"raspberrypi"``): the default ``--name``."""
    return socket.gethostname().split(".")[0] or "appliance"


def default_server_name() -> str:
    """This host's mDNS name, ``"raspberrypi.local."``, which the SRV record points at."""
    return f"{default_listener_name()}.local."


def validate_listener_name(name: str) -> str:
    """Return ``name`` stripped, or raise :class:`UsageError` if it cannot be an instance name."""
    stripped = name.strip()
    if not stripped:
        raise UsageError("--name must not be empty")
    if len(stripped.encode()) > MAX_INSTANCE_NAME_BYTES:
        raise UsageError(
            f"--name {stripped!r} is too long: at most {MAX_INSTANCE_NAME_BYTES} bytes"
        )
    return stripped


def install_shutdown_signals(callback: Callable[[int], None]) -> Callable[[], None]:
    """Call ``callback(signum)`` on SIGTERM and SIGINT instead of dying; returns ``restore()``.

    Call from the main thread. The callback runs on the main thread between bytecodes and
    should only ask for shutdown (set an Event); the code that waits for that Event then
    closes the advertiser and the listener in a ``finally`` (see this module's docstring), so
    normal exit, Ctrl-C and ``systemctl stop`` all unregister, and systemd sees exit code 0.
    """
    previous = {sig: signal.getsignal(sig) for sig in SHUTDOWN_SIGNALS}

    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("received %s: shutting down", signal.Signals(signum).name)
        callback(signum)

    for sig in SHUTDOWN_SIGNALS:
        signal.signal(sig, handler)

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore


@dataclass(frozen=True, slots=True)
class DynamicTxt:
    """The TXT keys that change while registered: what is wanted, or what is published."""

    state: str = ListenerState.WAITING.value
    latency_ms: int | None = None
    """TXT ``lat``."""
    network: NetworkFigures | None = None
    """TXT ``net``."""
    sync: SyncRecord | None = None
    """TXT ``syn``."""

    def apply_to(self, properties: ListenerProperties) -> ListenerProperties:
        return replace(
            properties,
            state=self.state,
            latency_ms=self.latency_ms,
            network=self.network,
            sync=self.sync,
        )


class _Action(enum.Enum):
    REGISTER = "register"
    UPDATE = "update"
    UNREGISTER = "unregister"
    CONFLICT = "conflict"
    POLL_ADDRESSES = "poll addresses"


class Advertiser:
    """Keeps one DNS-SD registration in line with a listener's state (see module docstring).

    :param name: wanted instance name (None: the host name); ``NAME-2`` etc. if taken.
    :param port: the UDP port, or a function returning it, called at registration time (so a
        listener bound to port 0 can be advertised once it knows its port).
    :param interfaces: local IPv4 addresses to advertise on (None: all interfaces).
    :param state_machine: the listener's machine, observed after :meth:`attach`.
    :param server: the SRV target host name (default ``HOSTNAME.local.``).
    :param zeroconf: a Zeroconf to use instead of opening one; it is not closed by
        :meth:`close` then.
    :param payload_map: the RTP payload types the listener plays (``Listener.payload_map``),
        advertised in TXT so that senders choose RTP and a payload type; None advertises the
        raw wire only (what listeners before RTP did).
    :param address_poll_interval_s: how often to look for changed addresses when on all
        interfaces (None: never); tests make it short.
    :param probe: False registers without probing, as a host that was offline during our probe
        would: for tests of conflicts that appear after registration.

    Opens its zeroconf sockets in the constructor, so a bad ``--interface`` fails at once with
    :class:`~appliance.errors.NetworkError`.
    """

    def __init__(
        self,
        name: str | None,
        port: int | Callable[[], int],
        interfaces: Sequence[str] | None = None,
        state_machine: StateMachine | None = None,
        *,
        server: str | None = None,
        update_interval_s: float = STATE_UPDATE_INTERVAL_S,
        zeroconf: Zeroconf | None = None,
        payload_map: PayloadMap | None = None,
        auth: str | None = None,
        address_poll_interval_s: float | None = ADDRESS_POLL_INTERVAL_S,
        probe: bool = True,
    ) -> None:
        self.requested_name = validate_listener_name(
            default_listener_name() if name is None else name
        )
        self._port = port
        self._interfaces = list(interfaces or [])
        self._addresses = advertised_addresses(self._interfaces)
        self._server = server or default_server_name()
        self._state_machine = state_machine
        # ``auth`` (TXT ``auth=srtp``) says that a key is required, never the key.
        self._properties = replace(ListenerProperties.for_payload_map(payload_map), auth=auth)
        # With room for ``lat`` and ``net`` at their largest realistic values.
        size = txt_record_bytes(self._properties.to_properties()) + PLAYOUT_TXT_RESERVE_BYTES
        if size > TXT_RECORD_BUDGET_BYTES:
            # Still valid DNS (every string is within 255 bytes), but larger than some mDNS
            # browsers expect: say why, once.
            log.warning(
                "the mDNS TXT record can reach %d bytes (over %d) because of the payload map's "
                "%d entries; some browsers may not show it",
                size,
                TXT_RECORD_BUDGET_BYTES,
                len(self._properties.rtp_map),
            )
        self._update_interval_s = update_interval_s
        self._owns_zeroconf = zeroconf is None
        self._zc = zeroconf if zeroconf is not None else make_zeroconf(self._interfaces)
        self._unsubscribe: Callable[[], None] | None = None
        # Addresses are followed only on all interfaces: an explicit --interface list is
        # exactly what is advertised. None (or no interval) follows nothing.
        self._poll_interval_s = None if self._interfaces else address_poll_interval_s
        self._next_poll = 0.0
        # False registers without probing (as a host that was offline during our probe does):
        # for tests of conflicts that appear after registration.
        self._probe = probe
        self._conflict: ServiceClaim | None = None
        self._lost_names: set[str] = set()
        self._watcher = ConflictWatcher(self._on_conflict)
        self._zc.add_listener(self._watcher, None)

        self._condition = threading.Condition()
        # What is wanted (set by observers and callers)...
        self._want_registered = False
        self._wanted = DynamicTxt()
        self._closing = False
        # ...and what is published (owned by the worker; read under the condition).
        self._info: ServiceInfo | None = None
        self._published: DynamicTxt | None = None
        self._last_publish = 0.0
        self._last_error: str | None = None

        self._worker = threading.Thread(
            target=self._run, name=f"mdns-advertiser-{self.requested_name}", daemon=True
        )
        self._worker.start()

    # -- wiring ---------------------------------------------------------------------------

    def attach(self) -> None:
        """Subscribe to the state machine; register at once if it is already listening."""
        if self._state_machine is None or self._unsubscribe is not None:
            return
        self._unsubscribe = self._state_machine.subscribe(self.on_transition)
        current = self._state_machine.state
        if current not in (ListenerState.IDLE, ListenerState.ERROR):
            self.register(current.value)

    def on_transition(self, transition: Transition) -> None:
        """The state observer: never blocks (it runs on the shared dispatcher thread)."""
        if transition.current == ListenerState.WAITING and transition.previous in (
            ListenerState.IDLE,
            ListenerState.ERROR,
        ):
            self.register(transition.current.value)
        elif transition.current == ListenerState.IDLE:
            self.unregister()
        else:
            self.set_state(transition.current.value)

    # -- requests (non-blocking, any thread) ----------------------------------------------

    def register(self, state: str | None = None) -> None:
        """Ask for the service to be registered (with TXT ``state`` if given)."""
        with self._condition:
            self._want_registered = True
            if state is not None:
                self._wanted = replace(self._wanted, state=state)
            self._condition.notify_all()

    def set_state(self, state: str) -> None:
        """Ask for TXT ``state`` to become ``state`` (rate-limited, last one always wins)."""
        with self._condition:
            self._wanted = replace(self._wanted, state=state)
            self._condition.notify_all()

    def set_playout(self, latency_ms: int | None, network: NetworkFigures | None) -> None:
        """Ask for TXT ``lat`` and ``net`` to become these (None: leave the key out); like
        :meth:`set_state`, rate-limited and the last one always wins. Kept while not
        registered, for the next registration."""
        if latency_ms is not None and latency_ms < 0:
            raise ValueError("the latency target cannot be negative")
        with self._condition:
            self._wanted = replace(self._wanted, latency_ms=latency_ms, network=network)
            self._condition.notify_all()

    def set_sync(self, sync: SyncRecord | None) -> None:
        """Ask for TXT ``syn`` to become this (None: leave it out); as :meth:`set_playout`."""
        with self._condition:
            self._wanted = replace(self._wanted, sync=sync)
            self._condition.notify_all()

    def wait_sync(self, sync: SyncRecord | None, timeout: float | None = None) -> bool:
        """Block until TXT ``syn`` on the network is ``sync``."""
        return self._wait_published(lambda p: p.sync == sync, timeout)

    def unregister(self) -> None:
        """Ask for the service to be withdrawn."""
        with self._condition:
            self._want_registered = False
            self._condition.notify_all()

    # -- observation ----------------------------------------------------------------------

    @property
    def registered_name(self) -> str | None:
        """The instance name actually registered (``"kitchen-2"`` if taken), or None."""
        with self._condition:
            return instance_name(self._info.name) if self._info is not None else None

    @property
    def published_state(self) -> str | None:
        """The TXT ``state`` currently on the network, or None when not registered."""
        with self._condition:
            return None if self._published is None else self._published.state

    @property
    def published(self) -> DynamicTxt | None:
        """The dynamic TXT keys currently on the network, or None when not registered."""
        with self._condition:
            return self._published

    @property
    def last_error(self) -> str | None:
        """Why the last registration failed, if it did."""
        with self._condition:
            return self._last_error

    def wait_registered(self, timeout: float | None = None) -> bool:
        """Block until registered (True) or ``timeout`` seconds pass (False)."""
        with self._condition:
            return self._condition.wait_for(lambda: self._info is not None, timeout)

    def wait_unregistered(self, timeout: float | None = None) -> bool:
        """Block until not registered (True) or ``timeout`` seconds pass (False)."""
        with self._condition:
            return self._condition.wait_for(lambda: self._info is None, timeout)

    def wait_published(self, state: str, timeout: float | None = None) -> bool:
        """Block until TXT ``state`` on the network is ``state``."""
        return self._wait_published(lambda p: p.state == state, timeout)

    def wait_published_playout(
        self,
        latency_ms: int | None,
        network: NetworkFigures | None,
        timeout: float | None = None,
    ) -> bool:
        """Block until TXT ``lat`` and ``net`` on the network are these."""
        return self._wait_published(
            lambda p: (p.latency_ms, p.network) == (latency_ms, network), timeout
        )

    def _wait_published(
        self, predicate: Callable[[DynamicTxt], bool], timeout: float | None
    ) -> bool:
        with self._condition:
            return self._condition.wait_for(
                lambda: self._published is not None and predicate(self._published), timeout
            )

    # -- shutdown -------------------------------------------------------------------------

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Stop observing, unregister (goodbye packets), close zeroconf. Idempotent."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        with self._condition:
            self._closing = True
            self._condition.notify_all()
        if self._worker.is_alive() and self._worker is not threading.current_thread():
            self._worker.join(timeout)
            if self._worker.is_alive():
                log.warning("mDNS advertiser did not stop within %.1f s", timeout)

    def __enter__(self) -> Advertiser:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- worker ---------------------------------------------------------------------------

    def _next_action(self) -> tuple[_Action | None, float | None]:
        """Under the condition: what to do now, or how long to sleep (None: until woken)."""
        want_registered = self._want_registered and not self._closing
        if want_registered and self._info is None:
            return _Action.REGISTER, None
        if not want_registered and self._info is not None:
            return _Action.UNREGISTER, None
        if self._info is None:
            return None, None
        if self._conflict is not None:
            return _Action.CONFLICT, None
        now = time.monotonic()
        sleeps: list[float] = []
        if self._poll_interval_s is not None:
            if now >= self._next_poll:
                return _Action.POLL_ADDRESSES, None
            sleeps.append(self._next_poll - now)
        if self._wanted != self._published:
            remaining = self._last_publish + self._update_interval_s - now
            if remaining <= 0:
                return _Action.UPDATE, None
            sleeps.append(remaining)
        return None, min(sleeps, default=None)

    def _run(self) -> None:
        try:
            while True:
                with self._condition:
                    action, sleep = self._next_action()
                    if action is None:
                        if self._closing and self._info is None:
                            return
                        self._condition.wait(sleep)
                        continue
                    wanted = self._wanted
                    info = self._info
                if action is _Action.REGISTER:
                    self._do_register(wanted)
                elif action is _Action.UPDATE and info is not None:
                    self._do_update(info, wanted)
                elif action is _Action.UNREGISTER and info is not None:
                    self._do_unregister(info)
                elif action is _Action.CONFLICT and info is not None:
                    self._resolve_conflict(info)
                elif action is _Action.POLL_ADDRESSES and info is not None:
                    self._follow_addresses(info)
        finally:
            # A shared Zeroconf whose owner closed it first: nothing left to detach from.
            with contextlib.suppress(RuntimeError):
                self._zc.remove_listener(self._watcher)
            if self._owns_zeroconf:
                self._zc.close()

    def _service_info(self, name: str, port: int, dynamic: DynamicTxt) -> ServiceInfo:
        properties = dynamic.apply_to(self._properties).to_properties()
        return ServiceInfo(
            SERVICE_TYPE,
            name,
            port=port,
            properties=properties,
            server=self._server,
            parsed_addresses=self._addresses,
        )

    def _do_register(self, wanted: DynamicTxt) -> None:
        try:
            port = self._port() if callable(self._port) else self._port
            info = self._service_info(service_name(self.requested_name), port, wanted)
            self._zc.register_service(
                info, allow_name_change=True, cooperating_responders=not self._probe
            )
        except Exception as error:
            # Not fatal to the listener: it still plays, it just cannot be found by name.
            log.exception("cannot advertise %r over mDNS", self.requested_name)
            with self._condition:
                self._last_error = str(error) or type(error).__name__
                self._want_registered = False  # until the next WAITING: no retry loop
                self._condition.notify_all()
            return
        used = instance_name(info.name)
        if used != self.requested_name:
            log.warning("listener name %r is taken: advertising as %r", self.requested_name, used)
        log.info(
            "advertising %r (%s) on %s, port %d",
            used,
            SERVICE_TYPE,
            describe_interfaces(self._interfaces),
            port,
        )
        self._start_watching(info)
        with self._condition:
            self._info = info
            self._published = wanted
            self._last_publish = time.monotonic()
            self._last_error = None
            self._next_poll = time.monotonic() + (self._poll_interval_s or 0.0)
            self._condition.notify_all()

    def _do_update(self, info: ServiceInfo, wanted: DynamicTxt) -> None:
        updated = self._service_info(info.name, info.port or 0, wanted)
        try:
            self._zc.update_service(updated)
        except Exception:
            log.exception("cannot update the mDNS TXT record of %r", instance_name(info.name))
        with self._condition:
            # Even on failure: the rate limit holds, and a retry comes with the next change.
            self._info = updated
            self._published = wanted
            self._last_publish = time.monotonic()
            self._condition.notify_all()

    def _do_unregister(self, info: ServiceInfo) -> None:
        self._watcher.watch(None, None)
        try:
            self._zc.unregister_service(info)
            log.info("stopped advertising %r", instance_name(info.name))
        except Exception:
            log.exception("cannot unregister %r from mDNS", instance_name(info.name))
        with self._condition:
            self._info = None
            self._published = None
            self._condition.notify_all()

    # -- name conflicts after registration (see appliance.discovery.conflicts) -------------

    def _start_watching(self, info: ServiceInfo) -> None:
        self._watcher.watch(info.name, ServiceClaim(self._server, info.port or 0))
        # A claim that reached the cache between our probe and now has no update to come.
        self._watcher.check_cache(self._zc)

    def _on_conflict(self, theirs: ServiceClaim) -> None:
        """The watcher's callback, on zeroconf's event loop: record it and wake the worker."""
        with self._condition:
            self._conflict = theirs
            self._condition.notify_all()

    def _resolve_conflict(self, info: ServiceInfo) -> None:
        with self._condition:
            theirs, self._conflict = self._conflict, None
        if theirs is None:
            return
        ours = ServiceClaim(self._server, info.port or 0)
        name = instance_name(info.name)
        if not loses_to(ours, theirs):
            log.info(
                "mDNS name %r is also claimed by %s: keeping it (RFC 6762 tie-break)",
                name,
                theirs.describe(),
            )
            self._defend(info)
            return
        self._watcher.watch(None, None)
        self._lost_names.add(name.lower())
        # No full goodbye: the PTR record is the same for both hosts, and a goodbye for it
        # would make browsers drop the name that the other host keeps. Our SRV goes now; the
        # winner's answer to the query below (1.6 s of probing later) flushes the rest.
        loop = self._zc.loop
        assert loop is not None
        loop.call_soon_threadsafe(self._zc.registry.async_remove, info)
        self._zc.send(srv_goodbye(info))
        renamed = self._register_renamed(info)
        self._zc.send(reassert_query(info.name))
        with self._condition:
            self._info = renamed
            if renamed is None:
                self._published = None
                self._want_registered = False
            self._condition.notify_all()
        if renamed is not None:
            log.warning(
                "mDNS name %r is also claimed by %s: now advertising as %r",
                name,
                theirs.describe(),
                instance_name(renamed.name),
            )

    def _defend(self, info: ServiceInfo) -> None:
        with self._condition:
            if self._condition.wait_for(lambda: self._closing, DEFEND_DELAY_S):
                return
            current = self._info
        if current is not None and current.name == info.name:
            try:
                self._zc.update_service(current)
            except Exception:
                log.exception("cannot re-announce %r over mDNS", instance_name(info.name))

    def _register_renamed(self, lost: ServiceInfo) -> ServiceInfo | None:
        """Register under the first ``NAME-N`` not claimed (in the cache) and not lost before;
        probing still runs, so a name claimed by a host we have not heard is skipped too."""
        with self._condition:
            published = self._published or self._wanted
        for number in range(2, 2 + MAX_RENAME_ATTEMPTS):
            candidate = f"{self.requested_name}-{number}"
            full = service_name(candidate)
            claimed = self._zc.cache.current_entry_with_name_and_alias(SERVICE_TYPE, full)
            if candidate.lower() in self._lost_names or claimed is not None:
                continue
            info = self._service_info(full, lost.port or 0, published)
            try:
                self._zc.register_service(info, allow_name_change=False)
            except NonUniqueNameException:
                continue
            except Exception as error:
                log.exception("cannot advertise %r over mDNS", candidate)
                with self._condition:
                    self._last_error = str(error) or type(error).__name__
                return None
            self._start_watching(info)
            return info
        log.error("no free mDNS name after %d attempts: not advertised", MAX_RENAME_ATTEMPTS)
        return None

    # -- addresses that change (Wi-Fi reconnect, DHCP) ------------------------------------

    def _follow_addresses(self, info: ServiceInfo) -> None:
        with self._condition:
            self._next_poll = time.monotonic() + (self._poll_interval_s or 0.0)
            published = self._published or self._wanted
        current = advertised_addresses(None)
        if current == self._addresses:
            return
        gone = [a for a in self._addresses if a not in current]
        log.info(
            "addresses changed from %s to %s: re-announcing %r",
            ", ".join(self._addresses) or "none",
            ", ".join(current) or "none",
            instance_name(info.name),
        )
        self._addresses = current
        updated = self._service_info(info.name, info.port or 0, published)
        try:
            # Sockets for new addresses first, so that the announcement goes out on them.
            self._zc.update_interfaces()
            if gone:
                self._zc.send(address_goodbye(self._server, gone))
            self._zc.update_service(updated)
        except Exception:
            log.exception("cannot re-announce %r with new addresses", instance_name(info.name))
        with self._condition:
            if self._info is info:
                self._info = updated
            self._condition.notify_all()
