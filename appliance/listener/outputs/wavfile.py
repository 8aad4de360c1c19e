"""A WAV file as the output, paced in real time like a sound card (for machines without one).

The file takes the format of the first stream; later streams in another format are converted
to it (:meth:`WavFileOutput.negotiate`), so one file holds everything that was played.
"""

from __future__ import annotations

import threading
import time
import wave
from pathlib import Path
from typing import Any

from appliance.audio.format import AudioFormat
from appliance.errors import AudioDeviceError
from appliance.listener.defaults import DEFAULT_PERIOD_MS
from appliance.listener.outputs import Render


class WavFileOutput:
    def __init__(self, render: Render, path: Path, period_ms: int = DEFAULT_PERIOD_MS) -> None:
        self._render = render
        self.path = path
        self._period_ms = period_ms
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._wav: Any = None
        self._file_format: AudioFormat | None = None
        self._format: AudioFormat | None = None

    def start(self) -> None:
        """Check that the file can be written; it is created when the first stream comes."""
        existed = self.path.exists()
        try:
            self.path.open("ab").close()
            if not existed:
                self.path.unlink()
        except OSError as error:
            raise AudioDeviceError(f"cannot write {self.path}: {error.strerror}") from None

    def negotiate(self, wanted: AudioFormat) -> AudioFormat:
        return self._file_format or wanted

    def open(self, audio_format: AudioFormat) -> None:
        self.close()
        if self._wav is None:
            try:
                self._wav = wave.open(str(self.path), "wb")  # noqa: SIM115 (closed in stop())
            except OSError as error:
                raise AudioDeviceError(f"cannot write {self.path}: {error.strerror}") from None
            self._wav.setnchannels(audio_format.channels)
            self._wav.setsampwidth(2)
            self._wav.setframerate(audio_format.rate)
            self._file_format = audio_format
        self._format = audio_format
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(audio_format,), name="wav-output", daemon=True
        )
        self._thread.start()

    @property
    def opened_format(self) -> AudioFormat | None:
        return self._format

    def _run(self, audio_format: AudioFormat) -> None:
        period = self._period_ms / 1000
        n_frames = audio_format.rate * self._period_ms // 1000
        started = time.monotonic()
        index = 0
        while not self._stop.is_set():
            # Written in real time: each block is "heard" when its turn comes.
            self._wav.writeframes(self._render(n_frames, started + index * period))
            index += 1
            self._stop.wait(max(0.0, started + index * period - time.monotonic()))

    def is_active(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._format = None

    def stop(self) -> None:
        self.close()
        if self._wav is not None:
            self._wav.close()
            self._wav = None

    def reacquire(self) -> None:
        # The file stays open (a new one would lose what was played): check only that the
        # directory can still be written.
        self.start()
