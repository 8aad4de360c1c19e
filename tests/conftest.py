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

``audio_sink_at``: a factory for sinks in other formats, ``audio_sink_at(rate=48000,
channels=2)``; the last one made is PyAudio's default output.

``restricted_output``: besides the 8 kHz mono sink, an ALSA output named ``only8k`` that takes
8000 Hz mono and nothing else (``is_format_supported`` raises ``ValueError`` for other rates or
channel counts), recorded bit-exact with its own ``start_recording()``/``stop_recording()``.
Skipped without JACK (``apt-get install jackd2 pulseaudio-module-jack``).

All set ``ALSA_CONFIG_PATH`` for the test only. ALSA reads it at each ``pyaudio.PyAudio()``,
so create the PyAudio instance (or the object that owns it) inside the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from audio_rig import (
    JACK_TOOLS_HINT,
    MISSING_TOOLS_HINT,
    SAMPLE_RATE,
    AudioSink,
    NoAudioDevice,
    RestrictedOutput,
    missing_programs,
    pulse_alsa_plugin_installed,
    restricted_output_missing,
)

ALSA_CONFIG_ENV = "ALSA_CONFIG_PATH"

pytest_plugins = ("listener_fixtures",)  # make_listener, for the listener tests


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


def _require_audio_rig() -> None:
    missing = missing_programs()
    if missing:
        pytest.skip(f"audio rig needs {', '.join(missing)}: {MISSING_TOOLS_HINT}")
    if not pulse_alsa_plugin_installed():
        pytest.fail(f"ALSA's pulse plugin is missing: {MISSING_TOOLS_HINT}")


AudioSinkFactory = Callable[..., AudioSink]
"""``audio_sink_at(rate=..., channels=...)``: a started sink, PyAudio's default output."""


@pytest.fixture
def audio_sink_at(monkeypatch: pytest.MonkeyPatch) -> Iterator[AudioSinkFactory]:
    """Make sinks in any format; each becomes PyAudio's default output; all torn down after."""
    _require_audio_rig()
    sinks: list[AudioSink] = []

    def make(rate: int = SAMPLE_RATE, channels: int = 1) -> AudioSink:
        sink = AudioSink(rate=rate, channels=channels)
        sinks.append(sink)  # closed at teardown even if start() fails half-way
        sink.start()
        monkeypatch.setenv(ALSA_CONFIG_ENV, str(sink.asound_conf))
        return sink

    try:
        yield make
    finally:
        for sink in reversed(sinks):
            sink.close()


@pytest.fixture
def restricted_output(monkeypatch: pytest.MonkeyPatch) -> Iterator[RestrictedOutput]:
    """An ALSA output ``only8k`` that takes only 8000 Hz mono, next to the 8 kHz mono sink.

    ``restricted_output.sink`` is the sink (still PyAudio's default output).
    """
    _require_audio_rig()
    missing = restricted_output_missing()
    if missing:
        pytest.skip(f"the restricted output needs {', '.join(missing)}: {JACK_TOOLS_HINT}")
    with AudioSink() as sink, RestrictedOutput(sink) as output:
        monkeypatch.setenv(ALSA_CONFIG_ENV, str(sink.asound_conf))
        for name, value in output.env.items():
            monkeypatch.setenv(name, value)
        yield output
