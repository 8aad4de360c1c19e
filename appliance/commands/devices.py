"""``appliance devices``: list the audio outputs that ``listen --device`` can name."""

from __future__ import annotations

import argparse
from typing import Any

from appliance.errors import AudioDeviceError, missing_pyaudio


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "devices",
        help="list audio output devices",
        description="List the audio output devices PortAudio sees, by index and name; either "
        "can be given to `appliance listen --device`.",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:  # imported here: PyAudio is an optional extra (`send` needs none)
        from appliance.listener.outputs.devices import open_pyaudio, output_devices
    except ModuleNotFoundError as error:
        raise missing_pyaudio(error) from None
    pa = open_pyaudio()
    try:
        devices = output_devices(pa)
    finally:
        pa.terminate()
    if not devices:
        raise AudioDeviceError("no audio output devices found")
    print("index  name")
    for device in devices:
        print(device)
    return 0
