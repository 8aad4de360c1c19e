"""pytest fixtures for listener tests (``pytest_plugins = ("listener_fixtures",)``).

``make_listener(**options)``: a :class:`Listener` on 127.0.0.1 and a free port, with any other
:class:`ListenerConfig` options; closed after the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from appliance.listener.listener import Listener, ListenerConfig
from appliance.listener.state import ListenerState

ListenerFactory = Callable[..., Listener]


@pytest.fixture
def make_listener() -> Iterator[ListenerFactory]:
    """Listeners on 127.0.0.1 and a free port, with any other ListenerConfig options."""
    made: list[Listener] = []

    def factory(**options: Any) -> Listener:
        listener = Listener(ListenerConfig(**{"port": 0, "bind": "127.0.0.1", **options}))
        made.append(listener)
        return listener

    yield factory
    for listener in made:
        listener.close()


def states_seen(listener: Listener) -> list[ListenerState]:
    return [t.current for t in listener.state_machine.history()]
