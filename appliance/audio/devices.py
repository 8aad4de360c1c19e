"""PortAudio's devices, both ways: PyAudio set-up without ALSA's noise, listing and choosing.

The listener plays to an *output* (``listen --device``), the sender captures from an *input*
(``send --input``); both name a device the same way (:func:`resolve_device`): by its index, its
exact name, or a part of its name that only one device of that direction contains, compared
case-insensitively. ``appliance devices`` lists both.

This module imports PyAudio, which is an optional extra (``audio``): import it lazily, where a
missing PyAudio can become one line (:func:`appliance.errors.missing_pyaudio`).

Example::

    pa = open_pyaudio()
    try:
        index = resolve_device(pa, "monitor", Direction.INPUT)   # None: the default input
        for device in list_devices(pa, Direction.INPUT):
            print(device.describe(Direction.INPUT))
    finally:
        pa.terminate()
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import pyaudio

from appliance.audio.alsa_noise import quiet_stderr
from appliance.errors import AudioDeviceError


class Direction(StrEnum):
    """Which way audio goes through a device."""

    OUTPUT = "output"
    INPUT = "input"

    @property
    def plural(self) -> str:
        return f"{self.value}s"


@dataclass(frozen=True, slots=True)
class AudioDevice:
    """One PortAudio device: a sound card, an ALSA PCM (``default``, ``pulse``) and so on."""

    index: int
    name: str
    max_output_channels: int
    max_input_channels: int
    default_sample_rate: float
    is_default_output: bool = False
    is_default_input: bool = False

    def channels(self, direction: Direction) -> int:
        """Most channels it plays (output) or captures (input); 0: not that way at all."""
        if direction is Direction.OUTPUT:
            return self.max_output_channels
        return self.max_input_channels

    def is_default(self, direction: Direction) -> bool:
        if direction is Direction.OUTPUT:
            return self.is_default_output
        return self.is_default_input

    def describe(self, direction: Direction) -> str:
        """``"  1  default (default)"``: the line ``appliance devices`` prints for it."""
        mark = " (default)" if self.is_default(direction) else ""
        return f"{self.index:3d}  {self.name}{mark}"


def open_pyaudio() -> pyaudio.PyAudio:
    """A PyAudio instance; the caller must ``terminate()`` it."""
    with quiet_stderr():
        return pyaudio.PyAudio()


def _default_index(pa: pyaudio.PyAudio, direction: Direction) -> int:
    try:
        if direction is Direction.OUTPUT:
            return int(pa.get_default_output_device_info()["index"])
        return int(pa.get_default_input_device_info()["index"])
    except OSError:  # no default device that way
        return -1


def all_devices(pa: pyaudio.PyAudio) -> list[AudioDevice]:
    """Every device PortAudio sees, inputs and outputs, in index order."""
    default_output = _default_index(pa, Direction.OUTPUT)
    default_input = _default_index(pa, Direction.INPUT)
    devices = []
    for index in range(pa.get_device_count()):
        info = pa.get_device_info_by_index(index)
        devices.append(
            AudioDevice(
                index=index,
                name=str(info["name"]),
                max_output_channels=int(info["maxOutputChannels"]),
                max_input_channels=int(info["maxInputChannels"]),
                default_sample_rate=float(info["defaultSampleRate"]),
                is_default_output=index == default_output,
                is_default_input=index == default_input,
            )
        )
    return devices


def list_devices(pa: pyaudio.PyAudio, direction: Direction) -> list[AudioDevice]:
    """The devices that play (:attr:`Direction.OUTPUT`) or capture (:attr:`Direction.INPUT`)."""
    return [d for d in all_devices(pa) if d.channels(direction) > 0]


def known_devices(devices: list[AudioDevice]) -> str:
    """``"0: rig_pulse, 1: default"`` (``"none"``): what an error lists."""
    return ", ".join(f"{d.index}: {d.name}" for d in devices) or "none"


def resolve_device(pa: pyaudio.PyAudio, spec: str | None, direction: Direction) -> int | None:
    """The device index for ``spec``: None (the default device) for None, an index, or a name.

    A name matches case-insensitively, exactly or else as the only device of ``direction``
    containing it. Anything else is an :class:`AudioDeviceError` naming ``spec`` and listing
    the devices of that direction.
    """
    if spec is None:
        return None
    devices = list_devices(pa, direction)
    known = f"{direction.plural}: {known_devices(devices)}"
    if spec.isdigit():
        index = int(spec)
        if any(d.index == index for d in devices):
            return index
        raise AudioDeviceError(f"no {direction} device with index {index} ({known})")
    wanted = spec.casefold()
    exact = [d for d in devices if d.name.casefold() == wanted]
    partial = [d for d in devices if wanted in d.name.casefold()]
    matches = exact or partial
    if len(matches) == 1:
        return matches[0].index
    if not matches:
        raise AudioDeviceError(f"no {direction} device named {spec!r} ({known})")
    names = ", ".join(repr(d.name) for d in matches)
    raise AudioDeviceError(f"device name {spec!r} is ambiguous: it matches {names}")
