"""The wiring diagram (SVG), drawn from the same pin table the code uses, so it cannot drift.

Regenerate the README's picture after changing a default pin::

    python -m appliance.pi.wiring images/wiring.svg                 # the defaults
    python -m appliance.pi.wiring my-wiring.svg --config my.toml    # your own [gpio] section

What it draws, for every wired pin: the header pin (physical number and BCM name), the part,
and its way to ground. Buttons go straight to GND, no resistor (gpiozero turns the Pi's
internal pull-up on); each LED goes through a 330 ohm series resistor, anode (long leg)
towards the GPIO, cathode (short leg, flat side) to GND. The volume buttons, not wired by
default, are drawn dashed at :data:`SUGGESTED_PINS`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from appliance.config import ApplianceConfig, GpioSection, load_config
from appliance.pi.leds import LED_COLOURS

HEADER_40PIN: Mapping[int, str] = {
    1: "3V3", 2: "5V", 3: "GPIO2", 4: "5V", 5: "GPIO3", 6: "GND",
    7: "GPIO4", 8: "GPIO14", 9: "GND", 10: "GPIO15", 11: "GPIO17", 12: "GPIO18",
    13: "GPIO27", 14: "GND", 15: "GPIO22", 16: "GPIO23", 17: "3V3", 18: "GPIO24",
    19: "GPIO10", 20: "GND", 21: "GPIO9", 22: "GPIO25", 23: "GPIO11", 24: "GPIO8",
    25: "GND", 26: "GPIO7", 27: "GPIO0", 28: "GPIO1", 29: "GPIO5", 30: "GND",
    31: "GPIO6", 32: "GPIO12", 33: "GPIO13", 34: "GND", 35: "GPIO19", 36: "GPIO16",
    37: "GPIO26", 38: "GPIO20", 39: "GND", 40: "GPIO21",
}  # fmt: skip
"""Physical pin number -> function, for the 40-pin header of every Pi since the B+ (J8)."""

BCM_TO_PHYSICAL: Mapping[int, int] = {
    int(name.removeprefix("GPIO")): physical
    for physical, name in HEADER_40PIN.items()
    if name.startswith("GPIO")
}
"""BCM GPIO number -> physical header pin: ``BCM_TO_PHYSICAL[17] == 11``."""

GND_PINS: tuple[int, ...] = tuple(p for p, name in HEADER_40PIN.items() if name == "GND")

LED_RESISTOR_OHMS = 330
"""Series resistor per LED: about 4 mA from 3.3 V through a red/green LED, kind to the GPIO
(at most 16 mA per pin) and still bright enough."""

SUGGESTED_PINS: Mapping[str, int] = {"volume_up_button": 22, "volume_down_button": 23}
"""Where the diagram suggests wiring the optional parts that the defaults leave unwired."""

PART_NAMES: Mapping[str, str] = {
    "listen_button": "Listen button (hold: power off)",
    "volume_up_button": "Volume up button",
    "volume_down_button": "Volume down button",
    "status_led": f"Status LED ({LED_COLOURS['status']})",
    "underrun_led": f"Underrun LED ({LED_COLOURS['underrun']})",
    "error_led": f"Error LED ({LED_COLOURS['error']})",
}

_FILL: Mapping[str, str] = {"green": "#2e9e3e", "amber": "#f0a020", "red": "#d8322a"}

# Layout, in SVG user units (px).
WIDTH = 1080
TOP = 120
ROW = 26
PIN_R = 9
LEFT_PIN_X = 525
RIGHT_PIN_X = 555
LABEL_W = 84
HEADER_PAD = 20
"""Half the header's width beyond a pin's centre (the dark rectangle)."""
PART_W = 210
BUS_GAP = 14
FONT = "font-family=\"DejaVu Sans, Verdana, sans-serif\""


@dataclass(frozen=True, slots=True)
class Connection:
    """One part on one header pin."""

    key: str
    bcm: int
    physical: int
    optional: bool

    @property
    def is_led(self) -> bool:
        return self.key.endswith("_led")

    @property
    def left(self) -> bool:
        return self.physical % 2 == 1


def connections(gpio: GpioSection, *, suggest: bool = True) -> list[Connection]:
    """Every wired part, plus the suggested optional ones on free pins (dashed)."""
    pins = gpio.pins()
    result = [Connection(key, bcm, BCM_TO_PHYSICAL[bcm], False) for key, bcm in pins.items()]
    if suggest:
        used = set(pins.values())
        for key, bcm in SUGGESTED_PINS.items():
            if key not in pins and bcm not in used:
                result.append(Connection(key, bcm, BCM_TO_PHYSICAL[bcm], True))
    return sorted(result, key=lambda c: c.physical)


def _row_y(physical: int) -> int:
    return TOP + ((physical - 1) // 2) * ROW


def _nearest_gnd(physical: int, rows: Sequence[int]) -> int:
    """The GND pin on the same side as ``physical`` closest to the parts on that side."""
    side = physical % 2
    middle = sum(rows) / len(rows)
    candidates = [p for p in GND_PINS if p % 2 == side]
    return min(candidates, key=lambda p: abs(_row_y(p) - middle))


def _text(x: float, y: float, text: str, *, size: int = 12, anchor: str = "start",
          weight: str = "normal", fill: str = "#222") -> str:
    return (f'<text x="{x:g}" y="{y:g}" font-size="{size}" text-anchor="{anchor}" '
            f'font-weight="{weight}" fill="{fill}" {FONT}>{escape(text)}</text>')


def _header(used: Mapping[int, str]) -> list[str]:
    out = [f'<rect x="{LEFT_PIN_X - HEADER_PAD}" y="{TOP - 20}" '
           f'width="{RIGHT_PIN_X - LEFT_PIN_X + 2 * HEADER_PAD}" '
           f'height="{20 * ROW + 14}" rx="6" fill="#333"/>']
    for physical, name in HEADER_40PIN.items():
        x = LEFT_PIN_X if physical % 2 else RIGHT_PIN_X
        y = _row_y(physical)
        colour = {"GND": "#111", "3V3": "#e07020", "5V": "#c02020"}.get(name, "#e8c040")
        highlight = used.get(physical)
        stroke = f' stroke="{highlight}" stroke-width="3"' if highlight else ""
        if physical == 1:  # pin 1 has the square pad
            out.append(f'<rect x="{x - PIN_R}" y="{y - PIN_R}" width="{2 * PIN_R}" '
                       f'height="{2 * PIN_R}" fill="{colour}"{stroke}/>')
        else:
            out.append(f'<circle cx="{x}" cy="{y}" r="{PIN_R}" fill="{colour}"{stroke}/>')
        out.append(_text(x, y + 3.5, str(physical), size=8, anchor="middle",
                         fill="#fff" if name in ("GND", "5V") else "#000"))
        if highlight:
            # A tinted label box: the wire to the part starts at its outer edge.
            x0 = x - HEADER_PAD - LABEL_W if physical % 2 else x + HEADER_PAD
            out.append(f'<rect x="{x0}" y="{y - ROW / 2 + 2}" width="{LABEL_W}" '
                       f'height="{ROW - 4}" rx="4" fill="{highlight}" fill-opacity="0.15" '
                       f'stroke="{highlight}"/>')
        label = name if not name.startswith("GPIO") else f"BCM {name[4:]}"
        if name in ("GPIO0", "GPIO1"):
            label += " (ID)"
        lx = x - HEADER_PAD - 6 if physical % 2 else x + HEADER_PAD + 6
        out.append(_text(lx, y + 4, label, size=11, anchor="end" if physical % 2 else "start",
                         weight="bold" if highlight else "normal"))
    return out


def _button(x: float, y: float, direction: int, dash: str) -> list[str]:
    """A push button across (x, y) .. (x + 40 * direction, y)."""
    a, b = x, x + 40 * direction
    return [
        f'<circle cx="{a + 6 * direction}" cy="{y}" r="3" fill="#fff" stroke="#222"/>',
        f'<circle cx="{b - 6 * direction}" cy="{y}" r="3" fill="#fff" stroke="#222"/>',
        f'<line x1="{a + 3 * direction}" y1="{y - 9}" x2="{b - 3 * direction}" y2="{y - 9}" '
        f'stroke="#222" stroke-width="2"{dash}/>',
        f'<line x1="{(a + b) / 2}" y1="{y - 9}" x2="{(a + b) / 2}" y2="{y - 14}" '
        f'stroke="#222" stroke-width="2"/>',
    ]


def _resistor_and_led(x: float, y: float, direction: int, colour: str) -> list[str]:
    """330 ohm resistor then an LED (anode first), from x towards x + 100 * direction."""
    r0 = x if direction > 0 else x - 44
    tri_base, tip = x + 64 * direction, x + 80 * direction
    return [
        f'<rect x="{r0}" y="{y - 5}" width="44" height="10" fill="#f4e3c0" stroke="#222"/>',
        _text(x + 22 * direction, y - 8, f"{LED_RESISTOR_OHMS} Ω", size=9, anchor="middle"),
        f'<line x1="{x + 44 * direction}" y1="{y}" x2="{tri_base}" y2="{y}" stroke="#222"/>',
        f'<polygon points="{tri_base},{y - 8} {tri_base},{y + 8} {tip},{y}" '
        f'fill="{_FILL[colour]}" stroke="#222"/>',
        f'<line x1="{tip}" y1="{y - 8}" x2="{tip}" y2="{y + 8}" stroke="#222" '
        f'stroke-width="2"/>',
        _text(tri_base - 2 * direction, y + 18, "+", size=9, anchor="middle"),
    ]


def render_svg(config: ApplianceConfig | GpioSection) -> str:
    """The wiring diagram for ``config``'s ``[gpio]`` pins, as an SVG document."""
    gpio = config.gpio if isinstance(config, ApplianceConfig) else config
    parts = connections(gpio)
    rows = 20
    height = TOP + rows * ROW + 115
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}">',
        f'<rect width="{WIDTH}" height="{height}" fill="#fff"/>',
        _text(WIDTH / 2, 32, "appliance: buttons and LEDs on the Raspberry Pi 40-pin header",
              size=18, anchor="middle", weight="bold"),
        _text(WIDTH / 2, 54, "Header seen from above, pin 1 (square pad, 3V3) top left; "
              "odd pins left, even pins right. BCM = the number in appliance.toml.",
              size=12, anchor="middle"),
    ]
    if any(c.optional for c in parts):
        out.append(_text(WIDTH / 2, 72, "Dashed: optional, not wired by default "
                         "(set the pin in [gpio] to use it).", size=12, anchor="middle"))
    gnd_used: dict[int, str] = {}
    used: dict[int, str] = {c.physical: "#1b6ec2" for c in parts}
    body: list[str] = []
    for left in (True, False):
        side = [c for c in parts if c.left == left]
        if not side:
            continue
        d = -1 if left else 1
        pin_x = LEFT_PIN_X if left else RIGHT_PIN_X
        wire_from = pin_x + d * (HEADER_PAD + LABEL_W)
        part_x = wire_from + d * 20
        bus_x = wire_from + d * (PART_W - BUS_GAP)
        gnd = _nearest_gnd(side[0].physical, [_row_y(c.physical) for c in side])
        gnd_used[gnd] = "#111"
        ys = [_row_y(c.physical) for c in side] + [_row_y(gnd)]
        # Ground bus: one wire from the GND pin, every part returns to it.
        body.append(f'<line x1="{bus_x}" y1="{min(ys)}" x2="{bus_x}" y2="{max(ys)}" '
                    f'stroke="#111" stroke-width="3"/>')
        gy = _row_y(gnd)
        body.append(f'<g data-role="ground" data-physical="{gnd}">')
        body.append(f'<line x1="{wire_from}" y1="{gy}" x2="{bus_x}" y2="{gy}" '
                    f'stroke="#111" stroke-width="2"/>')
        body.append(_text(bus_x + d * 8, gy + 4, f"GND (pin {gnd})", size=11,
                          anchor="end" if left else "start", weight="bold"))
        body.append("</g>")
        for c in side:
            y = _row_y(c.physical)
            dash = ' stroke-dasharray="5 4"' if c.optional else ""
            colour = LED_COLOURS[c.key.removesuffix("_led")] if c.is_led else ""
            body.append(
                f'<g data-role={quoteattr(c.key)} data-bcm="{c.bcm}" '
                f'data-physical="{c.physical}" data-optional="{str(c.optional).lower()}">'
            )
            wire = "#1b6ec2"
            body.append(f'<line x1="{wire_from}" y1="{y}" x2="{part_x}" y2="{y}" '
                        f'stroke="{wire}" stroke-width="2"{dash}/>')
            if c.is_led:
                body.extend(_resistor_and_led(part_x, y, d, colour))
                end = part_x + 80 * d
            else:
                body.extend(_button(part_x, y, d, dash))
                end = part_x + 40 * d
            body.append(f'<line x1="{end}" y1="{y}" x2="{bus_x}" y2="{y}" stroke="#111"'
                        f'{dash}/>')
            name = PART_NAMES[c.key] + (" — optional" if c.optional else "")
            body.append(_text(bus_x + d * 8, y - 1, name, size=11,
                              anchor="end" if left else "start", weight="bold"))
            body.append(_text(bus_x + d * 8, y + 10,
                              f"BCM {c.bcm} = pin {c.physical}; {c.key} = {c.bcm}",
                              size=9, anchor="end" if left else "start", fill="#555"))
            body.append("</g>")
    out.extend(_header({**used, **gnd_used}))
    out.extend(body)
    notes_y = TOP + rows * ROW + 30
    notes = [
        "Buttons: one leg to the GPIO pin, the other to GND. No resistor: the Pi's internal "
        "pull-up is used, a press reads low.",
        f"LEDs: GPIO pin -> {LED_RESISTOR_OHMS} Ω resistor -> LED anode (+, long leg); "
        "cathode (short leg, flat side) -> GND.",
        "Never connect a GPIO to 5V: the pins take 3.3 V only. "
        "Pins 27/28 (BCM 0/1) are reserved for HAT EEPROMs.",
        "Generated by `python -m appliance.pi.wiring` from appliance/config.py's defaults: "
        "do not edit by hand."
        if gpio == GpioSection()
        else "Generated by `python -m appliance.pi.wiring --config` from a [gpio] section.",
    ]
    for i, note in enumerate(notes):
        out.append(_text(40, notes_y + i * 20, note, size=12))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m appliance.pi.wiring",
        description="Write the wiring diagram (SVG) for the default or a given [gpio] section.",
    )
    parser.add_argument("output", type=Path, help="SVG file to write, e.g. images/wiring.svg")
    parser.add_argument("--config", type=Path, default=None,
                        help="take the pins from this file (default: the built-in defaults)")
    args = parser.parse_args(argv)
    config = load_config(args.config) if args.config else ApplianceConfig()
    args.output.write_text(render_svg(config), encoding="utf-8")
    pins = ", ".join(f"{key}=BCM{pin}" for key, pin in config.gpio.pins().items())
    print(f"wrote {args.output} ({pins})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
