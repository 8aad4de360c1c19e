"""Finding listeners: list them, follow them, or resolve one by name.

Synchronous API (each opens its own Zeroconf on ``interfaces`` unless given one)::

    listeners = discover_listeners(timeout=2.0, interfaces=["127.0.0.1"])
    record = resolve_listener("kitchen", interfaces=None, timeout=3.0)
    for event in watch_listeners(interfaces=None):      # Ctrl-C ends it
        print(event.change, event.name, event.record)

Asynchronous twins take a running ``Zeroconf``/``AsyncZeroconf`` (python-zeroconf style)::

    aiozc = make_async_zeroconf(["127.0.0.1"])
    record = await async_resolve_listener(aiozc, "kitchen", timeout=3.0)
    await aiozc.async_close()

Name matching (:func:`resolve_listener`): the instance name is compared case-insensitively.
An exact match returns as soon as its SRV, TXT and address records arrive (a direct query is
sent at once; there is no fixed wait). Only if no exact match answers within ``timeout`` are
the names seen by a browser meanwhile tried as prefixes: one match is used, several are an
"ambiguous" error, none an "unknown name" error that lists the names found.
"""

from __future__ import annotations

import asyncio
import logging
import queue
from collections.abc import Callable, Coroutine, Generator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from zeroconf import (
    BadTypeInNameException,
    ServiceBrowser,
    ServiceInfo,
    ServiceStateChange,
    Zeroconf,
)
from zeroconf._dns import DNSService
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from appliance.discovery.network import describe_interfaces, make_zeroconf
from appliance.discovery.records import (
    MAX_INSTANCE_NAME_BYTES,
    SERVICE_TYPE,
    ListenerRecord,
    instance_name,
    service_name,
)
from appliance.errors import DiscoveryError

log = logging.getLogger(__name__)

DEFAULT_DISCOVER_TIMEOUT_S = 2.0
"""How long ``appliance discover`` listens. A browser started after a listener registered
sees it in about 0.1 s; the rest is margin for slow Wi-Fi and sleeping hosts."""

DEFAULT_RESOLVE_TIMEOUT_S = 3.0
"""Longest wait for a named listener (the lookup returns as soon as it answers)."""

PREFIX_RESOLVE_TIMEOUT_S = 1.0
"""Extra time to resolve a listener matched by prefix (usually already cached by then)."""

WATCH_POLL_S = 0.25
"""How often :func:`watch_listeners` wakes to let KeyboardInterrupt through."""

SYNC_MARGIN_S = 2.0
"""Grace beyond ``timeout`` for the synchronous wrappers waiting on the event loop."""

T = TypeVar("T")
AnyZeroconf = Zeroconf | AsyncZeroconf


def _zeroconf_of(zc: AnyZeroconf) -> Zeroconf:
    return zc.zeroconf if isinstance(zc, AsyncZeroconf) else zc


def _seconds(value: float) -> str:
    return f"{value:g} s"


def _run_sync(
    zeroconf: Zeroconf | None,
    interfaces: Sequence[str] | None,
    timeout: float,
    make_coroutine: Callable[[Zeroconf], Coroutine[Any, Any, T]],
) -> T:
    """Run a coroutine on a (possibly new) threaded Zeroconf's loop and wait for its result."""
    zc = zeroconf if zeroconf is not None else make_zeroconf(interfaces)
    try:
        assert zc.loop is not None
        future = asyncio.run_coroutine_threadsafe(make_coroutine(zc), zc.loop)
        try:
            return future.result(timeout + SYNC_MARGIN_S)
        except BaseException:
            future.cancel()
            raise
    finally:
        if zeroconf is None:
            zc.close()


class _NameCollector:
    """Browser handler keeping the instance names currently on the network."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        """lower-case instance name -> name as advertised."""

    def __call__(
        self,
        zeroconf: Zeroconf,
        service_type: str,
        name: str,
        state_change: ServiceStateChange,
    ) -> None:
        instance = instance_name(name)
        if state_change is ServiceStateChange.Removed:
            self.names.pop(instance.lower(), None)
        else:
            self.names[instance.lower()] = instance

    def sorted_names(self) -> list[str]:
        return sorted(self.names.values(), key=str.lower)


# -- discover ----------------------------------------------------------------------------


async def async_discover_listeners(
    zc: AnyZeroconf, timeout: float = DEFAULT_DISCOVER_TIMEOUT_S
) -> list[ListenerRecord]:
    """Every listener that answers within ``timeout`` seconds, sorted by name.

    Each name is resolved as soon as a browser sees it; those still unresolved at the end
    (no SRV/TXT/address answer) are left out.
    """
    zeroconf = _zeroconf_of(zc)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    collector = _NameCollector()
    tasks: dict[str, asyncio.Task[bool]] = {}

    def on_change(
        zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        collector(zeroconf, service_type, name, state_change)
        if state_change is not ServiceStateChange.Removed and name.lower() not in tasks:
            remaining_ms = max(0.0, deadline - loop.time()) * 1000
            info = AsyncServiceInfo(SERVICE_TYPE, name)
            tasks[name.lower()] = loop.create_task(info.async_request(zeroconf, remaining_ms))

    browser = AsyncServiceBrowser(zeroconf, [SERVICE_TYPE], handlers=[on_change])
    try:
        await asyncio.sleep(timeout)
    finally:
        await browser.async_cancel()
    if tasks:
        await asyncio.gather(*tasks.values(), return_exceptions=True)
    records = []
    for name in collector.sorted_names():
        # Read back from the cache rather than keep the task's object: a TXT update that
        # arrived after the first resolution must show (the latest state).
        info = AsyncServiceInfo(SERVICE_TYPE, service_name(name))
        if info.load_from_cache(zeroconf):
            records.append(ListenerRecord.from_service_info(info))
        else:
            log.debug("listener %r did not resolve within %s", name, _seconds(timeout))
    return records


def discover_listeners(
    timeout: float = DEFAULT_DISCOVER_TIMEOUT_S,
    interfaces: Sequence[str] | None = None,
    *,
    zeroconf: Zeroconf | None = None,
) -> list[ListenerRecord]:
    """Blocking :func:`async_discover_listeners` on ``interfaces`` (None: all)."""
    return _run_sync(
        zeroconf, interfaces, timeout, lambda zc: async_discover_listeners(zc, timeout)
    )


# -- resolve -----------------------------------------------------------------------------


def _advertised_name(zeroconf: Zeroconf, fully_qualified: str) -> str:
    """The instance name with the case its owner gave it (our query may differ in case)."""
    for record in zeroconf.cache.entries_with_name(fully_qualified):
        if isinstance(record, DNSService):
            return instance_name(record.name)
    return instance_name(fully_qualified)


def _check_format(record: ListenerRecord) -> None:
    """Refuse a listener that plays nothing we send: neither RTP nor the raw wire's format.
    (Which wire and format suit a particular file is the sender's choice, later.)"""
    reason = record.properties.format_mismatch()
    if reason is not None and not record.properties.plays_rtp:
        raise DiscoveryError(f"listener {record.name!r} cannot play our format: {reason}")


async def async_resolve_listener(
    zc: AnyZeroconf,
    name: str,
    timeout: float = DEFAULT_RESOLVE_TIMEOUT_S,
    *,
    check_format: bool = True,
    interfaces: Sequence[str] | None = None,
) -> ListenerRecord:
    """The listener called ``name`` (case-insensitive; see the module docstring for prefixes).

    Returns as soon as it resolves. Raises :class:`DiscoveryError` when the name is unknown,
    ambiguous, or (with ``check_format``) the listener's TXT says it plays neither RTP nor
    the raw wire's format.
    ``interfaces`` only names where ``zc`` listens, for the error message.
    """
    zeroconf = _zeroconf_of(zc)
    wanted = name.strip()
    collector = _NameCollector()
    browser = AsyncServiceBrowser(zeroconf, [SERVICE_TYPE], handlers=[collector])
    try:
        record = await _resolve_exact(zeroconf, wanted, timeout)
        if record is None:
            record = await _resolve_prefix(zeroconf, wanted, collector, timeout, interfaces)
    finally:
        await browser.async_cancel()
    if check_format:
        _check_format(record)
    return record


async def _resolve_exact(zeroconf: Zeroconf, wanted: str, timeout: float) -> ListenerRecord | None:
    if not wanted or len(wanted.encode()) > MAX_INSTANCE_NAME_BYTES:
        await asyncio.sleep(timeout)  # still give the browser its time, for the name list
        return None
    try:
        info = AsyncServiceInfo(SERVICE_TYPE, service_name(wanted))
    except BadTypeInNameException:
        await asyncio.sleep(timeout)
        return None
    if not await info.async_request(zeroconf, timeout * 1000):
        return None
    record = ListenerRecord.from_service_info(info)
    advertised = _advertised_name(zeroconf, info.name)
    if advertised != record.name:
        record = ListenerRecord(
            advertised, record.server, record.addresses, record.port, record.properties
        )
    return record


async def _resolve_prefix(
    zeroconf: Zeroconf,
    wanted: str,
    collector: _NameCollector,
    timeout: float,
    interfaces: Sequence[str] | None,
) -> ListenerRecord:
    found = collector.sorted_names()
    matches = [n for n in found if n.lower().startswith(wanted.lower())]
    if len(matches) > 1:
        raise DiscoveryError(
            f"listener name {wanted!r} is ambiguous: it matches {', '.join(matches)}"
        )
    if matches:
        info = AsyncServiceInfo(SERVICE_TYPE, service_name(matches[0]))
        if await info.async_request(zeroconf, PREFIX_RESOLVE_TIMEOUT_S * 1000):
            log.info("listener name %r matched %r", wanted, matches[0])
            return ListenerRecord.from_service_info(info)
    if found:
        raise DiscoveryError(f"no listener named {wanted!r} (found: {', '.join(found)})")
    raise DiscoveryError(
        f"no listener named {wanted!r}: no listeners found within {_seconds(timeout)} "
        f"on {describe_interfaces(interfaces)}"
    )


def resolve_listener(
    name: str,
    interfaces: Sequence[str] | None = None,
    timeout: float = DEFAULT_RESOLVE_TIMEOUT_S,
    *,
    check_format: bool = True,
    zeroconf: Zeroconf | None = None,
) -> ListenerRecord:
    """Blocking :func:`async_resolve_listener` on ``interfaces`` (None: all)."""
    return _run_sync(
        zeroconf,
        interfaces,
        timeout + PREFIX_RESOLVE_TIMEOUT_S,
        lambda zc: async_resolve_listener(
            zc, name, timeout, check_format=check_format, interfaces=interfaces
        ),
    )


# -- watch -------------------------------------------------------------------------------

Change = Literal["added", "updated", "removed"]


@dataclass(frozen=True, slots=True)
class ListenerEvent:
    """One change seen by :func:`watch_listeners`. ``record`` is None for ``"removed"``."""

    change: Change
    name: str
    record: ListenerRecord | None


def watch_listeners(
    interfaces: Sequence[str] | None = None,
    *,
    zeroconf: Zeroconf | None = None,
    resolve_timeout: float = DEFAULT_RESOLVE_TIMEOUT_S,
) -> Generator[ListenerEvent, None, None]:
    """Yield listeners as they come (``added``), change TXT (``updated``) and go (``removed``).

    Runs until the consumer stops iterating (``break``, ``.close()``, or Ctrl-C: the wait wakes
    every :data:`WATCH_POLL_S` so KeyboardInterrupt is delivered promptly); then the browser is
    cancelled and an own Zeroconf closed.
    """
    zc = zeroconf if zeroconf is not None else make_zeroconf(interfaces)
    changes: queue.SimpleQueue[tuple[str, ServiceStateChange]] = queue.SimpleQueue()

    def on_change(
        zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        changes.put((name, state_change))

    browser = ServiceBrowser(zc, [SERVICE_TYPE], handlers=[on_change])
    known: dict[str, ListenerRecord] = {}
    try:
        while True:
            try:
                name, state_change = changes.get(timeout=WATCH_POLL_S)
            except queue.Empty:
                continue
            key = name.lower()
            if state_change is ServiceStateChange.Removed:
                if known.pop(key, None) is not None:
                    yield ListenerEvent("removed", instance_name(name), None)
                continue
            info = ServiceInfo(SERVICE_TYPE, name)
            if not info.request(zc, resolve_timeout * 1000):
                log.debug("listener %r did not resolve", name)
                continue
            record = ListenerRecord.from_service_info(info)
            previous = known.get(key)
            if previous == record:
                continue  # an address or TTL refresh with nothing new to show
            known[key] = record
            yield ListenerEvent("added" if previous is None else "updated", record.name, record)
    finally:
        browser.cancel()
        if zeroconf is None:
            zc.close()
