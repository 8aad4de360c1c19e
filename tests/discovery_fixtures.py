"""pytest fixtures for the discovery tests (``pytest_plugins = ("discovery_fixtures",)``):
``presence``, ``advertise`` and ``raw_register``. All zeroconf use is on 127.0.0.1 only."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from discovery_helpers import LO, REGISTER_TIMEOUT_S, TEST_SERVER, AdvertiseFactory, Presence
from zeroconf import ServiceInfo

from appliance.discovery import Advertiser, make_zeroconf
from appliance.discovery.records import SERVICE_TYPE
from appliance.listener.state import ListenerState, StateMachine


@pytest.fixture
def presence() -> Iterator[Presence]:
    watcher = Presence()
    try:
        yield watcher
    finally:
        watcher.close()


@pytest.fixture
def advertise() -> Iterator[AdvertiseFactory]:
    """``advertise(name, port=5005, wait=True, **kw)``: an Advertiser driven by a StateMachine
    in WAITING, registered on return unless ``wait=False`` (then call ``wait_registered``:
    registrations probe in parallel). Everything is closed (unregistered) after the test."""
    made: list[tuple[Advertiser, StateMachine]] = []

    def factory(
        name: str, port: int = 5005, wait: bool = True, **kwargs: Any
    ) -> tuple[Advertiser, StateMachine]:
        machine = StateMachine()
        machine.start()
        kwargs.setdefault("server", TEST_SERVER)
        advertiser = Advertiser(name, port, LO, machine, **kwargs)
        made.append((advertiser, machine))
        advertiser.attach()
        machine.set(ListenerState.WAITING, "test listening")
        if wait:
            assert advertiser.wait_registered(REGISTER_TIMEOUT_S), advertiser.last_error
        return advertiser, machine

    try:
        yield factory
    finally:
        for advertiser, machine in made:
            advertiser.close()
            machine.close()


@pytest.fixture
def raw_register() -> Iterator[Callable[[str, int, dict[str, str]], ServiceInfo]]:
    """Register a hand-made ``_pcmaudio._udp`` service (any TXT) on its own Zeroconf."""
    zc = make_zeroconf(LO)

    def register(name: str, port: int, properties: dict[str, str]) -> ServiceInfo:
        info = ServiceInfo(
            SERVICE_TYPE,
            f"{name}.{SERVICE_TYPE}",
            port=port,
            properties=properties,
            server=TEST_SERVER,
            parsed_addresses=["127.0.0.1"],
        )
        zc.register_service(info)
        return info

    try:
        yield register
    finally:
        zc.close()  # unregisters everything it registered
