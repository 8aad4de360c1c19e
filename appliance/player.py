"""The player: the audio callback that turns the playout buffer into sound.

:class:`Playout` is what runs every 20 ms on the audio thread: it reads one frame from the
buffer, applies the volume, and publishes the buffer's phase as the listener's state. It
never waits for the network, never logs, never allocates more than one frame.

Two outputs drive it: :class:`PyAudioOutput`, a PortAudio callback stream (the real thing),
and :class:`WavFileOutput`, a real-time paced writer for machines without a sound card (the
demo falls back to it).

Example::

    playout = Playout(buffer, state_machine)
    output = PyAudioOutput(playout.render, device=None)
    output.start()
"""

from __future__ import annotations

import errno
import logging
import threading
import time
import wave
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import pyaudio

from appliance.audio_format import (
    CHANNELS,
    FRAME_MS,
    SAMPLE_RATE,
    SAMPLE_WIDTH,
    SAMPLES_PER_FRAME,
)
from appliance.devices import open_pyaudio, resolve_device
from appliance.errors import AudioDeviceError
from appliance.gain import UNITY, apply_gain
from appliance.jitterbuffer import Phase, PlayoutBuffer
from appliance.state import InvalidTransition, ListenerState, StateMachine

log = logging.getLogger(__name__)

PHASE_STATES: Mapping[Phase, ListenerState] = {
    Phase.WAITING: ListenerState.WAITING,
    Phase.BUFFERING: ListenerState.BUFFERING,
    Phase.PLAYING: ListenerState.PLAYING,
    Phase.UNDERRUN: ListenerState.UNDERRUN,
    Phase.DRAINING: ListenerState.DRAINING,
}

Render = Callable[[int], bytes]
"""Given a byte count, return exactly that many bytes of audio."""


class Playout:
    """The body of the audio callback (kept apart from PortAudio so it is easy to test)."""

    def __init__(self, buffer: PlayoutBuffer, state_machine: StateMachine) -> None:
        self._buffer = buffer
        self._state_machine = state_machine
        self.gain = UNITY
        self.callbacks = 0
        self.last_activity = time.monotonic()
        self._published: Phase | None = None

    def render(self, n_bytes: int) -> bytes:
        audio = apply_gain(self._buffer.read(n_bytes), self.gain)
        phase = self._buffer.phase
        if phase is not self._published:
            self._publish(phase)
        self.callbacks += 1
        self.last_activity = time.monotonic()
        return audio

    def reset(self) -> None:
        """Forget what was published (listening restarted from WAITING)."""
        self._published = Phase.WAITING

    def _publish(self, phase: Phase) -> None:
        try:
            self._state_machine.set(PHASE_STATES[phase], "playout")
            self._published = phase
        except InvalidTransition:
            # The controls moved the machine (to IDLE or ERROR) under us: theirs wins.
            self._published = phase


class AudioOutput(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def is_active(self) -> bool: ...


class PyAudioOutput:
    """A PortAudio output stream in callback mode: 8 kHz, 16-bit, mono, 20 ms per callback."""

    def __init__(self, render: Render, device: str | None = None) -> None:
        self._render = render
        self._device = device
        self._pa: pyaudio.PyAudio | None = None
        self._stream: pyaudio.Stream | None = None
        self.output_underflows = 0
        """Callbacks in which PortAudio reported it had run out of data (a late callback)."""

    def start(self) -> None:
        pa = open_pyaudio()
        try:
            index = resolve_device(pa, self._device)
            self._stream = pa.open(
                format=pyaudio.paInt16,
                channels=CHANNELS,
                rate=SAMPLE_RATE,
                output=True,
                output_device_index=index,
                frames_per_buffer=SAMPLES_PER_FRAME,
                stream_callback=self._callback,
            )
        except (OSError, ValueError) as error:
            pa.terminate()
            raise AudioDeviceError(describe_open_error(error, self._device)) from None
        except BaseException:
            pa.terminate()
            raise
        self._pa = pa

    def _callback(
        self, in_data: bytes | None, frame_count: int, time_info: Mapping[str, float], status: int
    ) -> tuple[bytes, int]:
        if status & pyaudio.paOutputUnderflow:
            self.output_underflows += 1
        return self._render(frame_count * SAMPLE_WIDTH * CHANNELS), pyaudio.paContinue

    def is_active(self) -> bool:
        return self._stream is not None and bool(self._stream.is_active())

    def stop(self) -> None:
        if self._stream is not None:
            try:
                self._stream.stop_stream()
                self._stream.close()
            except OSError as error:
                log.warning("audio output did not close cleanly: %s", error)
            self._stream = None
        if self._pa is not None:
            self._pa.terminate()
            self._pa = None


def describe_open_error(error: Exception, device: str | None) -> str:
    code = error.args[0] if error.args else None
    where = "the default audio output" if device is None else f"audio device {device!r}"
    if code == pyaudio.paInvalidDevice:
        return f"cannot open {where}: no audio output device found (see `appliance devices`)"
    if code == pyaudio.paDeviceUnavailable or code == errno.EBUSY:
        return f"cannot open {where}: the device is busy (another program is using it?)"
    if code == pyaudio.paInvalidSampleRate:
        return (
            f"cannot open {where}: it cannot play {SAMPLE_RATE} Hz; choose an ALSA device "
            "that resamples, such as 'default' or 'pulse' (see `appliance devices`)"
        )
    detail = error.args[1] if len(error.args) > 1 else str(error)
    return f"cannot open {where}: {detail}"


class WavFileOutput:
    """Writes what would be played to a WAV file, paced in real time like a sound card."""

    def __init__(self, render: Render, path: Path) -> None:
        self._render = render
        self.path = path
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._wav: Any = None

    def start(self) -> None:
        try:
            self._wav = wave.open(str(self.path), "wb")  # noqa: SIM115 (closed in stop())
        except OSError as error:
            raise AudioDeviceError(f"cannot write {self.path}: {error.strerror}") from None
        self._wav.setnchannels(CHANNELS)
        self._wav.setsampwidth(SAMPLE_WIDTH)
        self._wav.setframerate(SAMPLE_RATE)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="wav-output", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        period = FRAME_MS / 1000
        started = time.monotonic()
        index = 0
        while not self._stop.is_set():
            self._wav.writeframes(self._render(SAMPLES_PER_FRAME * SAMPLE_WIDTH * CHANNELS))
            index += 1
            self._stop.wait(max(0.0, started + index * period - time.monotonic()))

    def is_active(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._wav is not None:
            self._wav.close()
            self._wav = None
