"""Helpers shared by the discovery tests: loopback-only zeroconf, unique names, a presence
browser. The fixtures are in discovery_fixtures.py (``pytest_plugins``).

Every zeroconf here is on 127.0.0.1 only (never the machine's real interfaces).
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable

from zeroconf import ServiceBrowser, ServiceStateChange, Zeroconf

from appliance.discovery import Advertiser, make_zeroconf
from appliance.discovery.records import SERVICE_TYPE, instance_name
from appliance.listener.state import StateMachine

LO = ["127.0.0.1"]
REGISTER_TIMEOUT_S = 10.0
"""Generous: registration probes for about 1.6 s; a loaded CI machine may be slower."""
UNREGISTER_SEEN_S = 1.0
"""A goodbye is seen within milliseconds; without one a listener stays listed for 1125 s."""
TEST_SERVER = f"pid{os.getpid()}.local."

_counter = itertools.count()


def unique_name(tag: str) -> str:
    """A listener name no other test (or concurrent test run) uses."""
    return f"t{os.getpid()}-{next(_counter)}-{tag}"


AdvertiseFactory = Callable[..., tuple[Advertiser, StateMachine]]


class Presence:
    """A browser on its own Zeroconf recording which instances come and go."""

    def __init__(self) -> None:
        self.zc = make_zeroconf(LO)
        self._lock = threading.Lock()
        self._events: dict[tuple[str, str], threading.Event] = {}
        self.browser = ServiceBrowser(self.zc, [SERVICE_TYPE], handlers=[self._on_change])

    def _event(self, name: str, change: str) -> threading.Event:
        with self._lock:
            return self._events.setdefault((name.lower(), change), threading.Event())

    def _on_change(
        self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        change = "removed" if state_change is ServiceStateChange.Removed else "present"
        self._event(instance_name(name), change).set()

    def wait_present(self, name: str, timeout: float = REGISTER_TIMEOUT_S) -> bool:
        return self._event(name, "present").wait(timeout)

    def wait_removed(self, name: str, timeout: float = UNREGISTER_SEEN_S) -> bool:
        return self._event(name, "removed").wait(timeout)

    def close(self) -> None:
        self.browser.cancel()
        self.zc.close()


def wait_all_registered(advertisers: list[tuple[Advertiser, StateMachine]]) -> None:
    for advertiser, _ in advertisers:
        assert advertiser.wait_registered(REGISTER_TIMEOUT_S), advertiser.last_error
