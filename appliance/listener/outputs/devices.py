"""Finding the audio output: PortAudio's outputs, named as ``listen --device`` names them.

The listing and the naming rules are shared with the sender's inputs
(:mod:`appliance.audio.devices`); this module keeps the listener's output-only names.
"""

from __future__ import annotations

import pyaudio

from appliance.audio.alsa_noise import QUIET_ENV
from appliance.audio.devices import AudioDevice, Direction, list_devices, open_pyaudio
from appliance.audio.devices import resolve_device as resolve_any_device

__all__ = ["QUIET_ENV", "AudioDevice", "open_pyaudio", "output_devices", "resolve_device"]


def output_devices(pa: pyaudio.PyAudio) -> list[AudioDevice]:
    """The devices that play (``is_default_output`` marks the default)."""
    return list_devices(pa, Direction.OUTPUT)


def resolve_device(pa: pyaudio.PyAudio, spec: str | None) -> int | None:
    """The output index for ``--device``: None (the default output), an index, or a name."""
    return resolve_any_device(pa, spec, Direction.OUTPUT)
