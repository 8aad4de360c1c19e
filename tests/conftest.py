"""Shared pytest fixtures: a real-time audio output without a sound card (see audio_rig.py).

``audio_sink``: PyAudio's default output plays, in real time, into a private PulseAudio null
sink (8000 Hz, s16le, mono) that the test can record::

    @pytest.mark.audio
    def test_plays(audio_sink: AudioSink) -> None:
        audio_sink.start_recording()
        ...  # play through pyaudio.PyAudio() -- create it inside the test
        assert_played(audio_sink.stop_recording(), sent)

``no_audio_device``: there is no output at all; ``PyAudio().open(output=True, ...)`` raises
``OSError(-9996, 'Invalid output device (no default output device)')``.

Both set ``ALSA_CONFIG_PATH`` for the test only. ALSA reads it at each ``pyaudio.PyAudio()``,
so create the PyAudio instance (or the object that owns it) inside the test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from audio_rig import (
    MISSING_TOOLS_HINT,
    AudioSink,
    NoAudioDevice,
    missing_programs,
    pulse_alsa_plugin_installed,
)

ALSA_CONFIG_ENV = "ALSA_CONFIG_PATH"


@pytest.fixture
def audio_sink(monkeypatch: pytest.MonkeyPatch) -> Iterator[AudioSink]:
    """A private PulseAudio null sink as PyAudio's default output; torn down after the test."""
    missing = missing_programs()
    if missing:
        pytest.skip(f"audio rig needs {', '.join(missing)}: {MISSING_TOOLS_HINT}")
    if not pulse_alsa_plugin_installed():
        pytest.fail(f"ALSA's pulse plugin is missing: {MISSING_TOOLS_HINT}")
    with AudioSink() as sink:
        monkeypatch.setenv(ALSA_CONFIG_ENV, str(sink.asound_conf))
        yield sink


@pytest.fixture
def no_audio_device(monkeypatch: pytest.MonkeyPatch) -> Iterator[NoAudioDevice]:
    """ALSA configured with no usable output device (the default names a missing card)."""
    rig = NoAudioDevice()
    monkeypatch.setenv(ALSA_CONFIG_ENV, str(rig.asound_conf))
    try:
        yield rig
    finally:
        rig.close()
