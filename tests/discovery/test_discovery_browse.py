"""Resolving listeners by name (early exit, case, prefixes, errors), discover, watch, async."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from discovery_helpers import (
    LO,
    TEST_SERVER,
    AdvertiseFactory,
    unique_name,
    wait_all_registered,
)
from zeroconf import ServiceInfo

from appliance.discovery import (
    ListenerEvent,
    async_discover_listeners,
    async_resolve_listener,
    discover_listeners,
    make_async_zeroconf,
    resolve_listener,
    watch_listeners,
)
from appliance.errors import DiscoveryError
from appliance.listener.state import ListenerState

pytest_plugins = ("discovery_fixtures",)  # the advertise/presence/raw_register fixtures

SHORT_TIMEOUT_S = 0.5
BROWSE_TIMEOUT_S = 2.0
"""Long enough for a fresh browser to see every listener (about 0.4 s here), with margin."""
NO_FIXED_WAIT_TIMEOUT_S = 30.0
"""Resolving with this timeout would make the test take 30 s if the lookup waited it out:
returning a record proves the early exit without asserting wall-clock times."""


def test_resolve_returns_as_soon_as_the_listener_answers(advertise: AdvertiseFactory) -> None:
    name = unique_name("early")
    advertise(name, port=5555)
    record = resolve_listener(name, LO, NO_FIXED_WAIT_TIMEOUT_S)
    assert (record.name, record.port, record.addresses) == (name, 5555, ("127.0.0.1",))


def test_resolve_is_case_insensitive_and_keeps_the_advertised_case(
    advertise: AdvertiseFactory,
) -> None:
    name = unique_name("Kitchen")
    advertise(name)
    assert resolve_listener(name.upper(), LO, NO_FIXED_WAIT_TIMEOUT_S).name == name


def test_unique_prefix_resolves(advertise: AdvertiseFactory) -> None:
    name = unique_name("prefixed")
    advertise(name)
    assert resolve_listener(name[:-3], LO, BROWSE_TIMEOUT_S).name == name


def test_ambiguous_prefix_names_the_matches(advertise: AdvertiseFactory) -> None:
    stem = unique_name("amb")
    wait_all_registered([advertise(f"{stem}-a", wait=False), advertise(f"{stem}-b", wait=False)])
    with pytest.raises(DiscoveryError) as error:
        resolve_listener(stem, LO, BROWSE_TIMEOUT_S)
    assert str(error.value) == (
        f"listener name '{stem}' is ambiguous: it matches {stem}-a, {stem}-b"
    )


def test_unknown_name_lists_the_names_found(advertise: AdvertiseFactory) -> None:
    names = sorted([unique_name("office"), unique_name("attic")], key=str.lower)
    wait_all_registered([advertise(name, wait=False) for name in names])
    with pytest.raises(DiscoveryError) as error:
        resolve_listener("ghost", LO, BROWSE_TIMEOUT_S)
    assert str(error.value) == f"no listener named 'ghost' (found: {', '.join(names)})"


def test_unknown_name_with_no_listeners_says_where_it_looked() -> None:
    with pytest.raises(DiscoveryError) as error:
        resolve_listener("ghost", LO, SHORT_TIMEOUT_S)
    assert str(error.value) == (
        "no listener named 'ghost': no listeners found within 0.5 s on 127.0.0.1"
    )


def test_incompatible_listener_is_refused(
    raw_register: Callable[[str, int, dict[str, str]], ServiceInfo],
) -> None:
    name = unique_name("hifi")
    raw_register(name, 6000, {"rate": "48000", "format": "s16le", "channels": "2"})
    with pytest.raises(DiscoveryError) as error:
        resolve_listener(name, LO, NO_FIXED_WAIT_TIMEOUT_S)
    assert str(error.value) == (
        f"listener '{name}' cannot play our format: it advertises rate=48000, channels=2; "
        "we send rate=8000, format=s16le, channels=1"
    )
    # `appliance status` still shows it.
    record = resolve_listener(name, LO, NO_FIXED_WAIT_TIMEOUT_S, check_format=False)
    assert (record.port, record.properties.rate, record.properties.state) == (6000, 48000, None)


def test_discover_lists_every_listener_sorted(advertise: AdvertiseFactory) -> None:
    ports = {unique_name("b-room"): 7000, unique_name("a-room"): 7001}
    wait_all_registered([advertise(name, port=port, wait=False) for name, port in ports.items()])
    listed = [(r.name, r.port) for r in discover_listeners(BROWSE_TIMEOUT_S, LO) if r.name in ports]
    assert listed == [(name, ports[name]) for name in sorted(ports, key=str.lower)]


def test_async_resolve_and_discover(advertise: AdvertiseFactory) -> None:
    name = unique_name("async")
    advertise(name, port=7100)

    async def scenario() -> tuple[str, list[str]]:
        aiozc = make_async_zeroconf(LO)
        try:
            record = await async_resolve_listener(aiozc, name, NO_FIXED_WAIT_TIMEOUT_S)
            listed = await async_discover_listeners(aiozc, BROWSE_TIMEOUT_S)
        finally:
            await aiozc.async_close()
        return f"{record.name}:{record.port}", [r.name for r in listed]

    resolved, listed = asyncio.run(scenario())
    assert resolved == f"{name}:7100"
    assert name in listed


def test_watch_sees_added_updated_removed(advertise: AdvertiseFactory) -> None:
    name = unique_name("watched")
    events = watch_listeners(LO)
    seen: list[tuple[str, str | None]] = []
    try:
        advertiser, machine = advertise(name)
        for event in events:
            if event.name != name:
                continue
            seen.append((event.change, event.record.state if event.record else None))
            if event.change == "added":
                machine.set(ListenerState.BUFFERING, "stream")
            elif event.change == "updated":
                advertiser.close()
            else:
                break
    finally:
        events.close()
    assert seen == [("added", "waiting"), ("updated", "buffering"), ("removed", None)]


def test_listener_event_is_plain_data() -> None:
    assert ListenerEvent("removed", "x", None) == ListenerEvent("removed", "x", None)
    assert TEST_SERVER.endswith(".local.")
