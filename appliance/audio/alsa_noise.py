"""Silencing what ALSA prints while PortAudio probes devices, without importing PyAudio (the
listener's watchdog uses it, and must import on a machine without the ``audio`` extra)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

QUIET_ENV = "APPLIANCE_ALSA_NOISE"
"""Set to 1 to see what ALSA prints while PortAudio probes devices (hidden by default)."""


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """File descriptor 2 goes to /dev/null meanwhile (unless :data:`QUIET_ENV` is 1)."""
    # PortAudio's ALSA probe prints dozens of lines about PCMs that do not exist on this box;
    # they bury real messages.
    if os.environ.get(QUIET_ENV) == "1":
        yield
        return
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
