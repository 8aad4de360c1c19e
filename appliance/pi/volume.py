"""Volume in decibel steps, turned into the listener's software gain, remembered on disk.

The level is kept in dB (what a person hears in equal steps) and handed to the listener as a
linear factor: ``factor = 10 ** (dB / 20)``, so 0 dB is exactly 1.0, the bit-exact
pass-through. The player clips, never wraps, samples pushed past full scale.

Example (the volume buttons call ``up()`` / ``down()``)::

    volume = Volume.from_config(config.volume)     # reads the remembered level
    listener.set_gain(volume.factor)
    volume.up()                                    # +3 dB, written to the state file
    listener.set_gain(volume.factor)
"""

from __future__ import annotations

import logging
import math
import os
import threading
from pathlib import Path

from appliance.config import VolumeSection

log = logging.getLogger(__name__)

DB_DECIMALS = 3
"""Levels are rounded to this many decimals so repeated steps never drift (0.1 + 0.2...)."""


def db_to_factor(db: float) -> float:
    """Linear amplitude factor for a gain in dB: ``db_to_factor(0.0) == 1.0`` exactly."""
    return float(10.0 ** (db / 20.0))


def factor_to_db(factor: float) -> float:
    if factor <= 0:
        raise ValueError(f"gain factor must be more than 0, not {factor}")
    return 20.0 * math.log10(factor)


class Volume:
    """A level between ``min_db`` and ``max_db`` moved in ``step_db`` steps, persisted.

    Thread-safe: the two volume buttons' callbacks may run on different threads.
    """

    def __init__(
        self,
        *,
        step_db: float,
        min_db: float,
        max_db: float,
        initial_db: float,
        state_file: Path | None,
    ) -> None:
        self.step_db = step_db
        self.min_db = min_db
        self.max_db = max_db
        self.state_file = state_file
        self._lock = threading.Lock()
        self._db = self._clamp(initial_db)
        self._save_failed = False

    @classmethod
    def from_config(cls, section: VolumeSection, *, load: bool = True) -> Volume:
        """A volume from ``[volume]``, at the remembered level if ``load`` and one exists."""
        volume = cls(
            step_db=section.step_db,
            min_db=section.min_db,
            max_db=section.max_db,
            initial_db=section.initial_db,
            state_file=section.resolved_state_file(),
        )
        if load:
            volume.load()
        return volume

    @property
    def db(self) -> float:
        return self._db

    @property
    def factor(self) -> float:
        return db_to_factor(self._db)

    def up(self) -> float:
        """One step louder (stays at ``max_db``); returns the new level in dB."""
        return self.set_db(self._db + self.step_db)

    def down(self) -> float:
        """One step quieter (stays at ``min_db``); returns the new level in dB."""
        return self.set_db(self._db - self.step_db)

    def set_db(self, db: float) -> float:
        with self._lock:
            new = self._clamp(db)
            changed = new != self._db
            self._db = new
            if changed:
                self._save(new)
        if changed:
            log.info("volume %+.1f dB", new)
        return new

    def load(self) -> float:
        """Take the level from the state file; a missing or unreadable file keeps the level."""
        if self.state_file is None:
            return self._db
        try:
            text = self.state_file.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return self._db
        except (OSError, UnicodeDecodeError) as error:
            log.warning("cannot read volume from %s: %s", self.state_file, error)
            return self._db
        try:
            value = float(text)
        except ValueError:
            log.warning("ignoring volume file %s: %r is not a number of dB", self.state_file, text)
            return self._db
        if not math.isfinite(value):
            log.warning("ignoring volume file %s: %r is not a number of dB", self.state_file, text)
            return self._db
        with self._lock:
            self._db = self._clamp(value)
        return self._db

    def _clamp(self, db: float) -> float:
        return round(min(self.max_db, max(self.min_db, db)), DB_DECIMALS)

    def _save(self, db: float) -> None:
        if self.state_file is None:
            return
        # Write a sibling and rename over: a power cut mid-write leaves the old level, not a
        # truncated file.
        temporary = self.state_file.with_name(self.state_file.name + ".tmp")
        try:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_text(f"{db}\n", encoding="ascii")
            os.replace(temporary, self.state_file)
        except OSError as error:
            # Run by hand, /var/lib/appliance is usually not writable: say so once, keep going.
            if not self._save_failed:
                log.warning("volume will not be remembered: cannot write %s: %s",
                            self.state_file, error)
            self._save_failed = True
