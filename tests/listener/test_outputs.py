"""Format negotiation with the output: the stream's format when the device takes it, else the
nearest one it does (real PortAudio, on the rig's sinks and its 8 kHz-mono-only output)."""

from __future__ import annotations

import pytest
from audio_rig import RESTRICTED_PCM, AudioSink, RestrictedOutput

from appliance.audio.format import AudioFormat, Encoding
from appliance.listener.outputs.portaudio import PyAudioOutput, _candidates


def silence_render(n_frames: int, dac_time: float | None = None) -> bytes:
    return bytes(n_frames * 4)


def test_candidates_go_from_least_to_most_conversion() -> None:
    wanted = AudioFormat(16000, 1, Encoding.S16LE)
    order = [(f.rate, f.channels) for f in _candidates(wanted, device_rate=32000)]
    assert order[:8] == [
        (16000, 1), (16000, 2), (48000, 1), (48000, 2),
        (44100, 1), (44100, 2), (32000, 1), (32000, 2),
    ]
    assert len(order) == len(set(order)) == 16  # every supported rate, mono and stereo, once


@pytest.mark.audio
def test_a_device_that_takes_the_stream_format_is_asked_for_nothing_else(
    audio_sink: AudioSink,
) -> None:
    output = PyAudioOutput(silence_render)
    output.start()
    try:
        cd = AudioFormat(44100, 2)
        assert output.negotiate(cd) == cd
        assert output.opened_format is None  # proven at start, then closed until a stream
        output.open(cd)
        assert output.opened_format == cd and output.is_active()
        output.close()
        assert output.opened_format is None and not output.is_active()
    finally:
        output.stop()


@pytest.mark.audio
def test_a_device_that_refuses_gets_the_nearest_format_it_takes(
    restricted_output: RestrictedOutput,
) -> None:
    output = PyAudioOutput(silence_render, device=RESTRICTED_PCM)
    output.start()
    try:
        assert output.negotiate(AudioFormat(48000, 2)) == AudioFormat(8000, 1)
        assert output.negotiate(AudioFormat(8000, 2)) == AudioFormat(8000, 1)
        assert output.negotiate(AudioFormat(8000, 1)) == AudioFormat(8000, 1)
    finally:
        output.stop()
