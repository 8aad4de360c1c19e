"""PortAudio's devices both ways (appliance/audio/devices.py): inputs are listed and named by
the same rules as outputs, on the rig with its sink's monitor added as an ALSA input."""

from __future__ import annotations

from collections.abc import Iterator

import pyaudio
import pytest
from audio_rig import MONITOR_PCM, AudioSink

from appliance.audio.devices import Direction, list_devices, open_pyaudio, resolve_device
from appliance.errors import AudioDeviceError


@pytest.fixture
def pa(audio_sink: AudioSink) -> Iterator[pyaudio.PyAudio]:
    audio_sink.add_monitor_input()  # the fixture's ALSA_CONFIG_PATH is this sink's file
    pa = open_pyaudio()
    yield pa
    pa.terminate()


def test_inputs_are_listed_with_the_monitor_and_the_default(pa: pyaudio.PyAudio) -> None:
    inputs = list_devices(pa, Direction.INPUT)
    assert [d.name for d in inputs] == ["rig_pulse", MONITOR_PCM, "default"]
    assert [d.is_default(Direction.INPUT) for d in inputs] == [False, False, True]
    assert all(d.max_input_channels > 0 for d in inputs)
    assert inputs[1].describe(Direction.INPUT) == f"  1  {MONITOR_PCM}"


def test_an_input_is_named_by_index_exact_name_or_unique_part(pa: pyaudio.PyAudio) -> None:
    assert resolve_device(pa, None, Direction.INPUT) is None
    assert resolve_device(pa, "1", Direction.INPUT) == 1
    assert resolve_device(pa, "RIG_MONITOR", Direction.INPUT) == 1
    assert resolve_device(pa, "monitor", Direction.INPUT) == 1


def test_unknown_and_ambiguous_inputs_say_what_there_is(pa: pyaudio.PyAudio) -> None:
    known = f"inputs: 0: rig_pulse, 1: {MONITOR_PCM}, 2: default"
    with pytest.raises(AudioDeviceError, match=rf"^no input device with index 7 \({known}\)$"):
        resolve_device(pa, "7", Direction.INPUT)
    with pytest.raises(AudioDeviceError) as caught:
        resolve_device(pa, "mic", Direction.INPUT)
    assert str(caught.value) == f"no input device named 'mic' ({known})"
    with pytest.raises(AudioDeviceError) as caught:
        resolve_device(pa, "rig", Direction.INPUT)
    assert str(caught.value) == (
        f"device name 'rig' is ambiguous: it matches 'rig_pulse', '{MONITOR_PCM}'"
    )


def test_outputs_keep_the_listener_s_messages(pa: pyaudio.PyAudio) -> None:
    with pytest.raises(AudioDeviceError) as caught:
        resolve_device(pa, "hdmi", Direction.OUTPUT)
    assert str(caught.value) == (
        f"no output device named 'hdmi' (outputs: 0: rig_pulse, 1: {MONITOR_PCM}, 2: default)"
    )
