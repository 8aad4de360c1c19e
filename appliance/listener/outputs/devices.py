"""Finding the audio output: PyAudio set-up without ALSA's noise, device listing and choice."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import pyaudio

from appliance.errors import AudioDeviceError

QUIET_ENV = "APPLIANCE_ALSA_NOISE"
"""Set to 1 to see what ALSA prints while PortAudio probes devices (hidden by default)."""


@dataclass(frozen=True, slots=True)
class OutputDevice:
    index: int
    name: str
    max_output_channels: int
    default_sample_rate: float
    is_default: bool

    def __str__(self) -> str:
        mark = " (default)" if self.is_default else ""
        return f"{self.index:3d}  {self.name}{mark}"


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    # PortAudio's ALSA probe prints dozens of lines about PCMs that do not exist on this box;
    # they bury real messages, so fd 2 goes to /dev/null while PyAudio initialises.
    if os.environ.get(QUIET_ENV) == "1":
        yield
        return
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def open_pyaudio() -> pyaudio.PyAudio:
    """A PyAudio instance; the caller must ``terminate()`` it."""
    with _quiet_stderr():
        return pyaudio.PyAudio()


def output_devices(pa: pyaudio.PyAudio) -> list[OutputDevice]:
    try:
        default_index = int(pa.get_default_output_device_info()["index"])
    except OSError:
        default_index = -1
    devices = []
    for index in range(pa.get_device_count()):
        info = pa.get_device_info_by_index(index)
        if int(info["maxOutputChannels"]) > 0:
            devices.append(
                OutputDevice(
                    index=index,
                    name=str(info["name"]),
                    max_output_channels=int(info["maxOutputChannels"]),
                    default_sample_rate=float(info["defaultSampleRate"]),
                    is_default=index == default_index,
                )
            )
    return devices


def resolve_device(pa: pyaudio.PyAudio, spec: str | None) -> int | None:
    """The device index for ``--device``: None (the default output), an index, or a name.

    A name matches case-insensitively, exactly or else as the only device containing it.
    """
    if spec is None:
        return None
    devices = output_devices(pa)
    known = ", ".join(f"{d.index}: {d.name}" for d in devices) or "none"
    if spec.isdigit():
        index = int(spec)
        if any(d.index == index for d in devices):
            return index
        raise AudioDeviceError(f"no output device with index {index} (outputs: {known})")
    wanted = spec.casefold()
    exact = [d for d in devices if d.name.casefold() == wanted]
    partial = [d for d in devices if wanted in d.name.casefold()]
    matches = exact or partial
    if len(matches) == 1:
        return matches[0].index
    if not matches:
        raise AudioDeviceError(f"no output device named {spec!r} (outputs: {known})")
    names = ", ".join(repr(d.name) for d in matches)
    raise AudioDeviceError(f"device name {spec!r} is ambiguous: it matches {names}")
