"""``appliance devices``: list the audio outputs (``listen --device``) and the audio inputs
(``send --input``), each by index and name; either can be given to those options."""

from __future__ import annotations

import argparse
from typing import Any

from appliance.errors import AudioDeviceError, missing_pyaudio

SECTIONS = (("output", "appliance listen --device"), ("input", "appliance send --input"))
"""The two lists, in order: the direction and the option that takes their devices."""


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "devices",
        help="list audio output and input devices",
        description="List the audio devices PortAudio sees, by index and name: the outputs, "
        "which `appliance listen --device` can name, then the inputs, which `appliance send "
        "--input` can name (a microphone, or the monitor of the laptop's own output).",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:  # imported here: PyAudio is an optional extra (sending a file needs none)
        from appliance.audio.devices import Direction, list_devices, open_pyaudio
    except ModuleNotFoundError as error:
        raise missing_pyaudio(error) from None
    pa = open_pyaudio()
    try:
        listed = {d: list_devices(pa, d) for d in Direction}
    finally:
        pa.terminate()
    if not any(listed.values()):
        raise AudioDeviceError("no audio devices found (no outputs, no inputs)")
    blocks = []
    for value, option in SECTIONS:
        direction = Direction(value)
        lines = [f"{direction.plural} ({option}):", "index  name"]
        lines += [d.describe(direction) for d in listed[direction]] or ["  (none)"]
        blocks.append("\n".join(lines))
    print("\n\n".join(blocks))
    return 0
