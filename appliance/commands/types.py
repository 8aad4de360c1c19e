"""argparse ``type=`` functions shared by every command, so that a flag's value is refused by
name, in one line, before anything runs: ``float("nan")`` and ``float("inf")`` parse, and an
empty string is a string, yet none of them means anything for a duration, a size or a name.

The limits that depend on other settings (``--takeover-s`` at most ``--timeout``...) stay in
the one place that sees them all: :func:`appliance.config.validate` and
``ListenerConfig.validate``.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path


def _finite(text: str, unit: str = "") -> float:
    """``text`` as a finite float; the errors name ``unit`` ("seconds": "not a number of
    seconds: 'x'"), or plain "number" without one."""
    of = f" of {unit}" if unit else ""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number{of}: {text!r}") from None
    if not math.isfinite(value):
        wording = f"must be a finite number{of}" if unit else "not a finite number"
        raise argparse.ArgumentTypeError(f"{wording}: {text!r}")
    return value


def finite_float(text: str) -> float:
    """A number that is neither NaN nor infinite."""
    return _finite(text)


def positive_seconds(text: str) -> float:
    """A duration: a finite number of seconds greater than zero."""
    value = _finite(text, "seconds")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds: {text!r}")
    return value


MIN_DELAY_MS = 1
MAX_DELAY_MS = 10_000
"""The longest playout delay a group can be given: more than any buffer a listener keeps."""


def delay_ms(text: str) -> float:
    """A group playout delay: a finite number of milliseconds from :data:`MIN_DELAY_MS` to
    :data:`MAX_DELAY_MS` (0 would mean "not agreed yet" on the wire, and no speaker plays a
    sample the moment it is sent)."""
    value = _finite(text, "milliseconds")
    if not MIN_DELAY_MS <= value <= MAX_DELAY_MS:
        raise argparse.ArgumentTypeError(
            f"must be from {MIN_DELAY_MS} to {MAX_DELAY_MS} ms: {text!r}"
        )
    return value


def nonempty_text(text: str) -> str:
    """A name, address or device: something, not an empty or all-blank string."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def nonempty_path(text: str) -> Path:
    """A file: ``Path("")`` is the current directory, which no option means."""
    return Path(nonempty_text(text))
