"""The wiring diagram: drawn from the code's pin table, and the picture in images/ is current."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from appliance.config import ApplianceConfig, GpioSection
from appliance.pi.wiring import (
    BCM_TO_PHYSICAL,
    GND_PINS,
    HEADER_40PIN,
    SUGGESTED_PINS,
    main,
    render_svg,
)

ROOT = Path(__file__).resolve().parents[2]
DIAGRAM = ROOT / "images" / "wiring.svg"
TEMPLATE = ROOT / "deploy" / "appliance.toml"
SVG = "{http://www.w3.org/2000/svg}"

PI4_REVISION = "d03114"  # Raspberry Pi 4 B: the same 40-pin header as every Pi since the B+


def parts(svg: str) -> dict[str, tuple[int, int, bool]]:
    """role -> (BCM, physical pin, optional) from the diagram's part groups."""
    root = ET.fromstring(svg)
    found = {}
    for group in root.iter(f"{SVG}g"):
        role = group.get("data-role")
        if role and role != "ground":
            found[role] = (
                int(group.get("data-bcm", "")),
                int(group.get("data-physical", "")),
                group.get("data-optional") == "true",
            )
    return found


def grounds(svg: str) -> list[int]:
    root = ET.fromstring(svg)
    return [
        int(g.get("data-physical", ""))
        for g in root.iter(f"{SVG}g")
        if g.get("data-role") == "ground"
    ]


def test_header_map_matches_gpiozeros_board_data() -> None:
    header = MockFactory(revision=PI4_REVISION).board_info.headers["J8"].pins
    assert {number: info.name for number, info in header.items()} == dict(HEADER_40PIN)
    assert BCM_TO_PHYSICAL[17] == 11
    assert GND_PINS == (6, 9, 14, 20, 25, 30, 34, 39)


def test_the_diagram_in_images_is_the_one_the_code_draws() -> None:
    assert DIAGRAM.read_text() == render_svg(ApplianceConfig()), (
        "images/wiring.svg is stale: run `python -m appliance.pi.wiring images/wiring.svg`"
    )


def test_diagram_pins_are_the_default_pins() -> None:
    drawn = parts(DIAGRAM.read_text())
    wired = {role: pins for role, pins in drawn.items() if not pins[2]}
    assert {role: bcm for role, (bcm, _, _) in wired.items()} == GpioSection().pins()
    for bcm, physical, _ in drawn.values():
        assert BCM_TO_PHYSICAL[bcm] == physical
    optional = {role: bcm for role, (bcm, _, opt) in drawn.items() if opt}
    assert optional == dict(SUGGESTED_PINS)
    assert set(grounds(DIAGRAM.read_text())) <= set(GND_PINS)


def test_suggested_pins_do_not_clash_with_the_defaults() -> None:
    assert not set(SUGGESTED_PINS.values()) & set(GpioSection().pins().values())


def test_diagram_shows_the_resistors_and_labels() -> None:
    svg = render_svg(ApplianceConfig())
    texts = [t.text for t in ET.fromstring(svg).iter(f"{SVG}text")]
    assert texts.count("330 Ω") == 3  # one series resistor per LED
    assert "Listen button (hold: power off)" in texts
    assert "BCM 17 = pin 11; listen_button = 17" in texts
    assert "Status LED (green)" in texts
    assert "BCM 13 = pin 33; error_led = 13" in texts


def test_a_custom_config_draws_its_own_pins() -> None:
    gpio = GpioSection(
        listen_button=27, volume_up_button=22, status_led=16, underrun_led=None, error_led=26
    )
    assert parts(render_svg(gpio)) == {
        "listen_button": (27, 13, False),
        "volume_up_button": (22, 15, False),
        "volume_down_button": (23, 16, True),  # still only suggested
        "status_led": (16, 36, False),
        "error_led": (26, 37, False),
    }


def test_command_writes_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "w.svg"
    config = tmp_path / "a.toml"
    config.write_text("[gpio]\nlisten_button = 4\n")
    assert main([str(out), "--config", str(config)]) == 0
    assert parts(out.read_text())["listen_button"] == (4, 7, False)
    assert capsys.readouterr().out == (
        f"wrote {out} (listen_button=BCM4, status_led=BCM5, underrun_led=BCM6, error_led=BCM13)\n"
    )


def test_template_pin_notes_agree_with_the_header_map() -> None:
    # The config template says "BCM 17 is physical pin 11" and so on: check every such note.
    notes = re.findall(r"BCM (\d+) is physical pin (\d+)", TEMPLATE.read_text())
    assert len(notes) == 4
    for bcm, physical in notes:
        assert BCM_TO_PHYSICAL[int(bcm)] == int(physical)
    suggested = re.findall(r"(\d+) \(pin (\d+)\)", TEMPLATE.read_text())
    assert [(int(b), int(p)) for b, p in suggested] == [
        (bcm, BCM_TO_PHYSICAL[bcm]) for bcm in SUGGESTED_PINS.values()
    ]
