"""The rig's restricted output (8000 Hz mono and nothing else) and its sinks in other formats.

What the listener relies on when a device refuses a stream's format: PortAudio's ALSA host API
must see the refusal (``is_format_supported`` raising ``ValueError``), and whatever is played in
the accepted format must be recorded bit-exact, as it is for the default 8 kHz mono sink.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyaudio
import pytest
from audio_rig import (
    RESTRICTED_PCM,
    AudioSink,
    RestrictedOutput,
    assert_played,
    silence,
    test_signal,
)

pytestmark = pytest.mark.audio

TAIL_S = 0.1
"""Silence played after the signal: PortAudio's ALSA stop drops the last ~2 periods."""

REFUSED_RATES = (11025, 16000, 22050, 44100, 48000)


def alsa_output_index(pa: Any, name: str) -> int:
    """The index of ALSA output ``name`` (PortAudio also lists JACK ports when JACK runs)."""
    alsa = pa.get_host_api_info_by_type(pyaudio.paALSA)["index"]
    for index in range(pa.get_device_count()):
        info = pa.get_device_info_by_index(index)
        if info["name"] == name and info["hostApi"] == alsa and info["maxOutputChannels"] > 0:
            return index
    names = [pa.get_device_info_by_index(i)["name"] for i in range(pa.get_device_count())]
    raise AssertionError(f"no ALSA output {name!r} among {names}")


def supported(pa: Any, rate: int, channels: int, device: int) -> bool:
    try:
        return bool(
            pa.is_format_supported(
                rate,
                output_device=device,
                output_channels=channels,
                output_format=pyaudio.paInt16,
            )
        )
    except ValueError:
        return False


def play(pa: Any, pcm: bytes, rate: int, channels: int, device: int | None = None) -> None:
    """Play ``pcm`` (s16le) on ``device`` (the default output if None) in 20 ms periods."""
    stream = pa.open(
        rate=rate,
        channels=channels,
        format=pyaudio.paInt16,
        output=True,
        output_device_index=device,
        frames_per_buffer=rate // 50,
    )
    try:
        stream.write(pcm + silence(TAIL_S, rate=rate, channels=channels))
        stream.stop_stream()
    finally:
        stream.close()


def test_restricted_output_takes_8k_mono_only(restricted_output: RestrictedOutput) -> None:
    pa = pyaudio.PyAudio()
    try:
        index = alsa_output_index(pa, RESTRICTED_PCM)
        info = pa.get_device_info_by_index(index)
        assert info["maxOutputChannels"] == 1
        assert info["defaultSampleRate"] == 8000
        assert supported(pa, 8000, 1, index)
        # Raised by the ALSA host API: ('Invalid sample rate', -9997).
        for rate in REFUSED_RATES:
            with pytest.raises(ValueError, match="Invalid sample rate"):
                pa.is_format_supported(
                    rate, output_device=index, output_channels=1, output_format=pyaudio.paInt16
                )
        # ('Invalid number of channels', -9998): more than the device's maxOutputChannels.
        with pytest.raises(ValueError, match="Invalid number of channels"):
            pa.is_format_supported(
                8000, output_device=index, output_channels=2, output_format=pyaudio.paInt16
            )
        # The sink next to it still takes everything: only the restricted output refuses.
        default = pa.get_default_output_device_info()["index"]
        assert all(supported(pa, rate, 2, default) for rate in (8000, *REFUSED_RATES))
    finally:
        pa.terminate()


def test_restricted_output_refuses_to_open_at_48k(restricted_output: RestrictedOutput) -> None:
    pa = pyaudio.PyAudio()
    try:
        index = alsa_output_index(pa, RESTRICTED_PCM)
        with pytest.raises(OSError, match="Invalid sample rate"):
            pa.open(
                rate=48000,
                channels=1,
                format=pyaudio.paInt16,
                output=True,
                output_device_index=index,
            )
    finally:
        pa.terminate()


def test_restricted_output_plays_8k_mono_bit_exact(restricted_output: RestrictedOutput) -> None:
    sent = test_signal(1.0, seed=21)
    restricted_output.start_recording()
    pa = pyaudio.PyAudio()
    try:
        play(pa, sent, 8000, 1, alsa_output_index(pa, RESTRICTED_PCM))
    finally:
        pa.terminate()
    assert_played(restricted_output.stop_recording(), sent)


def test_restricted_output_leaves_the_sink_alone(restricted_output: RestrictedOutput) -> None:
    """Audio for the default output still reaches the sink, and none of it the restricted one."""
    sink = restricted_output.sink
    sent = test_signal(0.5, seed=22)
    sink.start_recording()
    restricted_output.start_recording()
    pa = pyaudio.PyAudio()
    try:
        play(pa, sent, 8000, 1)
    finally:
        pa.terminate()
    assert_played(sink.stop_recording(), sent)
    assert not any(restricted_output.stop_recording(settle_s=0))


def test_48k_stereo_sink_records_bit_exact(audio_sink_at: Callable[..., AudioSink]) -> None:
    sink = audio_sink_at(rate=48000, channels=2)
    sent = test_signal(1.0, seed=23, rate=48000, channels=2)
    sink.start_recording()
    pa = pyaudio.PyAudio()
    try:
        play(pa, sent, 48000, 2)
    finally:
        pa.terminate()
    assert_played(sink.stop_recording(), sent)
    assert sent in sink.tee_bytes()


def test_sink_format_defaults_are_the_old_ones() -> None:
    sink = AudioSink()
    try:
        assert (sink.rate, sink.channels) == (8000, 1)
    finally:
        sink.close()
    assert test_signal(0.25, seed=5) == test_signal(0.25, seed=5, rate=8000, channels=1)
    assert len(test_signal(0.25, seed=5, rate=48000, channels=2)) == 48000 // 4 * 2 * 2
    assert silence(0.5) == bytes(8000)
    assert silence(0.5, rate=44100, channels=2) == bytes(44100 // 2 * 4)
