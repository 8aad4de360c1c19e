"""Where the audio goes: a sound card through PortAudio, or a WAV file.

An output is acquired once (:meth:`AudioOutput.start`: find the device, check that it can be
opened) and then opened for each stream in the stream's format, or the nearest one the device
takes (:meth:`AudioOutput.negotiate`), and closed again when the listener is idle, so that an
idle listener costs no audio callbacks. A new output (an I2S DAC quirk, a network sink) is a
new module here implementing :class:`AudioOutput`.
"""

from __future__ import annotations

from typing import Protocol

from appliance.audio.format import AudioFormat


class Render(Protocol):
    """Given a count of sample frames, return exactly that many, in the output's format.

    ``dac_time``: when the first of them will leave the output (``time.monotonic()``
    seconds), as far as the output knows; what playing in step with other listeners needs."""

    def __call__(self, n_frames: int, dac_time: float | None = None, /) -> bytes: ...


class AudioOutput(Protocol):
    def start(self) -> None:
        """Acquire the output; raises :class:`~appliance.errors.AudioDeviceError`."""
        ...

    def negotiate(self, wanted: AudioFormat) -> AudioFormat:
        """``wanted`` if the output takes it, else the format it will be opened in."""
        ...

    def open(self, audio_format: AudioFormat) -> None:
        """Start playing in ``audio_format`` (a result of :meth:`negotiate`)."""
        ...

    def close(self) -> None:
        """Stop playing; :meth:`open` may follow."""
        ...

    @property
    def opened_format(self) -> AudioFormat | None:
        """The format it plays in, None while closed."""
        ...

    def is_active(self) -> bool:
        """Open, and its callbacks are running."""
        ...

    def stop(self) -> None:
        """Close and release the output."""
        ...

    def reacquire(self) -> None:
        """Release the output and acquire it again, as :meth:`start` does (closed after): a
        failed device that came back may have come back under another index or card.
        Raises :class:`~appliance.errors.AudioDeviceError`, leaving it released."""
        ...
