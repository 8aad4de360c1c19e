"""pytest fixtures for GPIO tests: gpiozero mock pins and a listener stand-in.

Use in a test module (tests/ is on sys.path, like audio_rig)::

    pytest_plugins = ("gpio_fixtures",)  # mock_factory, fake_listener

    def test_x(mock_factory: MockFactory) -> None:
        pin = mock_factory.pin(17)
        pin.drive_low()   # press (buttons pull up)
        pin.drive_high()  # release

The helpers (FakeListener, delivered, wait_until, changes) are in gpio_helpers.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gpio_helpers import FakeListener
from gpiozero import Device
from gpiozero.pins.mock import MockFactory


@pytest.fixture
def mock_factory() -> Iterator[MockFactory]:
    """``Device.pin_factory`` set to a fresh MockFactory, and everything reset afterwards."""
    previous = Device.pin_factory
    factory = MockFactory()
    Device.pin_factory = factory
    try:
        yield factory
    finally:
        factory.reset()
        Device.pin_factory = previous


@pytest.fixture
def fake_listener() -> Iterator[FakeListener]:
    """A :class:`~gpio_helpers.FakeListener` whose state machine is closed afterwards."""
    listener = FakeListener()
    try:
        yield listener
    finally:
        listener.close()
