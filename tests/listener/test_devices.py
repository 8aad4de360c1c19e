from collections.abc import Iterator

import pyaudio
import pytest
from audio_rig import AudioSink, NoAudioDevice

from appliance.errors import AudioDeviceError
from appliance.listener.outputs.devices import open_pyaudio, output_devices, resolve_device


@pytest.fixture
def pa(audio_sink: AudioSink) -> Iterator[pyaudio.PyAudio]:
    pa = open_pyaudio()
    yield pa
    pa.terminate()


def test_lists_outputs_and_marks_the_default(pa: pyaudio.PyAudio) -> None:
    devices = output_devices(pa)
    named = [(d.name, d.is_default_output) for d in devices]
    assert named == [("rig_pulse", False), ("default", True)]


def test_resolves_by_index_exact_name_and_unique_part(pa: pyaudio.PyAudio) -> None:
    assert resolve_device(pa, None) is None
    assert resolve_device(pa, "1") == 1
    assert resolve_device(pa, "DEFAULT") == 1
    assert resolve_device(pa, "rig") == 0


def test_unknown_index_and_name_list_the_outputs(pa: pyaudio.PyAudio) -> None:
    with pytest.raises(AudioDeviceError) as caught:
        resolve_device(pa, "7")
    assert str(caught.value) == "no output device with index 7 (outputs: 0: rig_pulse, 1: default)"
    with pytest.raises(AudioDeviceError) as caught:
        resolve_device(pa, "hdmi")
    assert str(caught.value) == "no output device named 'hdmi' (outputs: 0: rig_pulse, 1: default)"


def test_an_ambiguous_name_says_what_it_matches(pa: pyaudio.PyAudio) -> None:
    with pytest.raises(AudioDeviceError) as caught:
        resolve_device(pa, "u")
    assert str(caught.value) == "device name 'u' is ambiguous: it matches 'rig_pulse', 'default'"


def test_no_devices_at_all(no_audio_device: NoAudioDevice) -> None:
    pa = open_pyaudio()
    try:
        assert output_devices(pa) == []
    finally:
        pa.terminate()
