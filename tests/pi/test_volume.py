"""Volume steps, dB <-> factor, and the level remembered across restarts."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest

from appliance.audio.pcm import apply_gain
from appliance.config import VolumeSection
from appliance.pi.volume import Volume, db_to_factor, factor_to_db


def make(tmp_path: Path, **overrides: float) -> Volume:
    section = VolumeSection(state_file=tmp_path / "state" / "volume")
    return Volume(
        step_db=overrides.get("step_db", section.step_db),
        min_db=overrides.get("min_db", section.min_db),
        max_db=overrides.get("max_db", section.max_db),
        initial_db=overrides.get("initial_db", section.initial_db),
        state_file=section.state_file,
    )


def test_zero_db_is_exactly_unity_so_the_stream_stays_bit_exact() -> None:
    assert db_to_factor(0.0) == 1.0
    pcm = bytes(range(256)) * 2
    assert apply_gain(pcm, db_to_factor(0.0)) is pcm


def test_db_and_factor_round_trip() -> None:
    assert db_to_factor(20.0) == pytest.approx(10.0)
    assert db_to_factor(-6.0) == pytest.approx(0.501187, rel=1e-6)
    assert factor_to_db(db_to_factor(-9.0)) == pytest.approx(-9.0)
    with pytest.raises(ValueError, match=r"^gain factor must be more than 0, not 0\.0$"):
        factor_to_db(0.0)


def test_steps_stop_at_the_limits(tmp_path: Path) -> None:
    volume = make(tmp_path, step_db=5.0, min_db=-10.0, max_db=6.0)
    assert [volume.up() for _ in range(3)] == [5.0, 6.0, 6.0]
    assert [volume.down() for _ in range(5)] == [1.0, -4.0, -9.0, -10.0, -10.0]
    assert volume.factor == db_to_factor(-10.0)


def test_many_small_steps_do_not_drift(tmp_path: Path) -> None:
    volume = make(tmp_path, step_db=0.1, min_db=-30.0, max_db=30.0)
    for _ in range(30):
        volume.up()
    assert volume.db == 3.0


def test_level_is_remembered_across_restarts(tmp_path: Path) -> None:
    first = make(tmp_path)
    first.down()
    first.down()
    assert (tmp_path / "state" / "volume").read_text() == "-6.0\n"
    assert not (tmp_path / "state" / "volume.tmp").exists()
    second = make(tmp_path)
    assert second.db == 0.0  # not read until load()
    assert second.load() == -6.0
    assert second.factor == db_to_factor(-6.0)


def test_from_config_loads_the_level(tmp_path: Path) -> None:
    path = tmp_path / "volume"
    path.write_text("-3.0\n")
    volume = Volume.from_config(VolumeSection(state_file=path))
    assert volume.db == -3.0
    assert Volume.from_config(VolumeSection(state_file=path), load=False).db == 0.0


def test_remembered_level_is_clamped_to_the_configured_range(tmp_path: Path) -> None:
    path = tmp_path / "volume"
    path.write_text("40\n")
    assert Volume.from_config(VolumeSection(state_file=path)).db == 12.0


@pytest.mark.parametrize("content", ["loud\n", "nan\n", ""])
def test_a_bad_state_file_is_ignored_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: str
) -> None:
    path = tmp_path / "volume"
    path.write_text(content)
    volume = Volume.from_config(VolumeSection(state_file=path, initial_db=-3.0))
    assert volume.db == -3.0
    shown = content.strip()
    assert caplog.messages == [f"ignoring volume file {path}: {shown!r} is not a number of dB"]


def test_an_unwritable_state_file_warns_once_and_volume_still_works(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    volume = Volume.from_config(VolumeSection(state_file=blocker / "volume"))
    caplog.clear()
    caplog.set_level(logging.WARNING, logger="appliance.pi.volume")
    assert volume.up() == 3.0
    assert volume.up() == 6.0
    assert caplog.messages == [
        f"volume will not be remembered: cannot write {blocker / 'volume'}: "
        f"[Errno 17] File exists: '{blocker}'"
    ]
    assert math.isclose(volume.factor, db_to_factor(6.0))
