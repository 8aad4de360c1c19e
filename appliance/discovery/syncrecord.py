"""TXT ``syn``: how a listener plays in step with a group (issue 12), for ``appliance status``.

Published while a session plays to a group's schedule (refreshed when a figure moves) and for
the last one that ended, as comma-separated ``key=value`` pairs, like ``net``::

    o=+37000.123,e=0.020,d=+300,s=+0.12,g=215

``o`` the sender's clock minus the listener's, in ms (3 decimals); ``e`` that estimate's
uncertainty, in ms (3 decimals); ``d`` the drift of the sender's clock against the listener's
in whole ppm; ``s`` how far the listener plays off the group's schedule, in ms (2 decimals;
>0 behind it); ``g`` the group playout delay in ms. ``e``, ``d`` and ``s`` are ``-`` when not
known (``s``: not playing to the schedule, e.g. it gave up waiting for the group). Short keys:
the TXT record is small (see :mod:`.records`).

Versionable like ``net``: keys may come in any order and readers ignore keys they do not know
(a newer listener may add figures); a missing or repeated key, or a value not exactly in the
format, makes the whole key absent to readers: a stranger's record never costs a traceback.

Example::

    record = SyncRecord.from_figures(session.sync)     # None: the session had no group
    properties = replace(properties, sync=record)
    record.describe()  # "offset +37000.123 ms (+-0.020), drift +300 ppm, ..."
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Protocol

MAX_OFFSET_MS = 1e12
"""Clocks further apart than this (31 years) are not believed."""
MAX_ERROR_MS = 1e6
MAX_DRIFT_PPM = 1_000_000
MAX_SCHEDULE_MS = 1e6
MAX_DELAY_MS = 100_000.0

_UNKNOWN = "-"
_KEYS = ("o", "e", "d", "s", "g")
_OFFSET = re.compile(r"[-+]\d{1,12}\.\d{3}")
_ERROR = re.compile(r"\d{1,7}\.\d{3}")
_DRIFT = re.compile(r"[-+]\d{1,7}")
_SCHEDULE = re.compile(r"[-+]\d{1,7}\.\d{2}")
_DELAY = re.compile(r"\d{1,6}(\.\d{1,3})?")


class SyncFiguresLike(Protocol):
    """What :meth:`SyncRecord.from_figures` reads (a listener's ``SyncFigures`` has it)."""

    @property
    def offset_ms(self) -> float | None: ...
    @property
    def error_ms(self) -> float | None: ...
    @property
    def drift_ppm(self) -> float | None: ...
    @property
    def group_delay_ms(self) -> float | None: ...
    @property
    def schedule_error_ms(self) -> float | None: ...


@dataclass(frozen=True, slots=True)
class SyncRecord:
    """The figures as published: rounded as :meth:`to_text` writes them, so that
    ``SyncRecord.parse(r.to_text()) == r``. Values out of bounds raise ValueError."""

    offset_ms: float
    """The sender's clock minus the listener's."""
    delay_ms: float
    """The group playout delay."""
    schedule_ms: float | None = None
    """Off the schedule (>0: behind it); None when not playing to it."""
    error_ms: float | None = None
    """The offset estimate's uncertainty; None: not known."""
    drift_ppm: int | None = None
    """The sender's clock against the listener's; None: not measured yet."""

    def __post_init__(self) -> None:
        values = (self.offset_ms, self.delay_ms, self.schedule_ms or 0.0, self.error_ms or 0.0)
        if not all(math.isfinite(v) for v in values):
            raise ValueError("sync figures must be finite")
        if abs(self.offset_ms) >= MAX_OFFSET_MS or not 0 < self.delay_ms < MAX_DELAY_MS:
            raise ValueError("offset or group delay out of range")
        if abs(self.schedule_ms or 0.0) >= MAX_SCHEDULE_MS:
            raise ValueError("schedule error out of range")
        if not 0 <= (self.error_ms or 0.0) < MAX_ERROR_MS:
            raise ValueError("uncertainty out of range")
        if abs(self.drift_ppm or 0) >= MAX_DRIFT_PPM:
            raise ValueError("drift out of range")

    @classmethod
    def from_figures(cls, figures: SyncFiguresLike | None) -> SyncRecord | None:
        """A session's figures; None when it measured no offset or had no agreed group."""
        if figures is None or figures.offset_ms is None or not figures.group_delay_ms:
            return None
        schedule, error, drift = figures.schedule_error_ms, figures.error_ms, figures.drift_ppm
        try:
            return cls(
                round(figures.offset_ms, 3),
                round(figures.group_delay_ms, 3),
                None if schedule is None else round(schedule, 2),
                None if error is None else round(error, 3),
                None if drift is None or not math.isfinite(drift) else round(drift),
            )
        except ValueError:
            return None

    def to_text(self) -> str:
        """``"o=+37000.123,e=0.020,d=+300,s=+0.12,g=215"``."""
        error = _UNKNOWN if self.error_ms is None else f"{self.error_ms:.3f}"
        drift = _UNKNOWN if self.drift_ppm is None else f"{self.drift_ppm:+d}"
        schedule = _UNKNOWN if self.schedule_ms is None else f"{self.schedule_ms:+.2f}"
        return (
            f"o={self.offset_ms:+.3f},e={error},d={drift},s={schedule},g={self.delay_ms:g}"
        )

    @classmethod
    def parse(cls, text: str | None) -> SyncRecord | None:
        """The record in ``text``; None if absent or unreadable (see the module docstring)."""
        if not isinstance(text, str):
            return None
        values: dict[str, str] = {}
        for part in text.split(","):
            key, equals, value = part.partition("=")
            if not equals or key in values:
                return None
            values[key] = value
        if not set(_KEYS).issubset(values):
            return None
        offset, error, drift, schedule, delay = (values[key] for key in _KEYS)
        if not (
            _OFFSET.fullmatch(offset)
            and _DELAY.fullmatch(delay)
            and (error == _UNKNOWN or _ERROR.fullmatch(error))
            and (drift == _UNKNOWN or _DRIFT.fullmatch(drift))
            and (schedule == _UNKNOWN or _SCHEDULE.fullmatch(schedule))
        ):
            return None
        try:
            return cls(
                float(offset),
                float(delay),
                None if schedule == _UNKNOWN else float(schedule),
                None if error == _UNKNOWN else float(error),
                None if drift == _UNKNOWN else int(drift),
            )
        except ValueError:
            return None

    def describe(self) -> str:
        """``offset +37000.123 ms (+-0.020), drift +300 ppm, +0.12 ms off the schedule, group
        delay 215 ms``; what is not known is left out (the schedule says so)."""
        offset = f"offset {self.offset_ms:+.3f} ms"
        if self.error_ms is not None:
            offset += f" (+-{self.error_ms:.3f})"
        parts = [offset]
        if self.drift_ppm is not None:
            parts.append(f"drift {self.drift_ppm:+d} ppm")
        if self.schedule_ms is None:
            parts.append("not on the schedule")
        else:
            parts.append(f"{self.schedule_ms:+.2f} ms off the schedule")
        parts.append(f"group delay {self.delay_ms:g} ms")
        return ", ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "offset_ms": self.offset_ms,
            "error_ms": self.error_ms,
            "drift_ppm": self.drift_ppm,
            "schedule_error_ms": self.schedule_ms,
            "group_delay_ms": self.delay_ms,
        }


LARGEST_REALISTIC_SYNC = SyncRecord(
    offset_ms=-999_999_999.999, delay_ms=10_000, schedule_ms=-99.99, error_ms=999.999,
    drift_ppm=-99_999,
)  # fmt: skip
"""Clocks 11 days apart, the longest group delay ``--delay-ms`` takes, the most a listener
plays off the schedule before it realigns at once (10 ms) ten times over, an uncertainty of
a second and a drift of 10 %: the largest ``syn`` to plan for (57 bytes)."""
