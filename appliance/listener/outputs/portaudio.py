"""The sound card: a PortAudio output stream in callback mode, through PyAudio.

The device is found once (:meth:`PyAudioOutput.start`), then a stream is opened for each
stream of audio, in its format when the device takes it, else in the nearest one it does (a
HDMI output or a USB DAC often takes only 44.1 or 48 kHz stereo), and closed while idle: an
open stream runs its callback every 20 ms whether or not there is anything to play.

Example::

    output = PyAudioOutput(render, device=None)     # render(n_frames) -> bytes
    output.start()                                  # AudioDeviceError if there is no output
    output.open(output.negotiate(AudioFormat(48000, 2)))
    ...
    output.close()
    output.stop()
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Iterator, Mapping

import pyaudio

from appliance.audio.format import MAX_RATE, MIN_RATE, SUPPORTED_RATES, AudioFormat
from appliance.errors import AudioDeviceError
from appliance.listener.defaults import DEFAULT_PERIOD_MS
from appliance.listener.outputs import Render
from appliance.listener.outputs.devices import open_pyaudio, resolve_device
from appliance.wire.raw import RAW_FORMAT

log = logging.getLogger(__name__)

MAX_OUTPUT_LATENCY_S = 2.0
"""A DAC time further ahead than this is not believed (no output buffers seconds)."""
FALLBACK_RATES = (48000, 44100)
"""What outputs that refuse a rate nearly always take."""


class PyAudioOutput:
    """A PortAudio output, opened per stream in the stream's format (or the nearest)."""

    def __init__(
        self, render: Render, device: str | None = None, period_ms: int = DEFAULT_PERIOD_MS
    ) -> None:
        self._render = render
        self._device = device
        self._period_ms = period_ms
        self._pa: pyaudio.PyAudio | None = None
        self._index: int | None = None
        self._stream: pyaudio.Stream | None = None
        self._format: AudioFormat | None = None
        self._frame_bytes = 2
        self.output_underflows = 0
        """Callbacks in which PortAudio reported it had run out of data (a late callback)."""

    def start(self) -> None:
        """Find the device and check that it opens (then close it until a stream comes)."""
        pa = open_pyaudio()
        self._pa = pa
        try:
            self._index = resolve_device(pa, self._device)
            self.open(self.negotiate(RAW_FORMAT))
            self.close()
        except BaseException:
            self.stop()
            raise

    def negotiate(self, wanted: AudioFormat) -> AudioFormat:
        pa = self._pa
        if pa is None:
            return wanted
        index = self._index
        try:
            info = (
                pa.get_default_output_device_info()
                if index is None
                else pa.get_device_info_by_index(index)
            )
        except OSError:
            return wanted  # no default output: open() says so
        device_rate = round(float(info["defaultSampleRate"]))
        for candidate in _candidates(wanted, device_rate):
            try:
                pa.is_format_supported(
                    candidate.rate,
                    output_device=int(info["index"]),
                    output_channels=candidate.channels,
                    output_format=pyaudio.paInt16,
                )
            except ValueError:
                continue
            return candidate
        return wanted

    def open(self, audio_format: AudioFormat) -> None:
        if self._pa is None:
            raise AudioDeviceError("the audio output was not started")
        self.close()
        self._frame_bytes = audio_format.frame_bytes
        try:
            self._stream = self._pa.open(
                format=pyaudio.paInt16,
                channels=audio_format.channels,
                rate=audio_format.rate,
                output=True,
                output_device_index=self._index,
                frames_per_buffer=audio_format.rate * self._period_ms // 1000,
                stream_callback=self._callback,
            )
        except (OSError, ValueError) as error:
            raise AudioDeviceError(describe_open_error(error, self._device, audio_format)) from None
        self._format = audio_format

    @property
    def opened_format(self) -> AudioFormat | None:
        return self._format

    def _callback(
        self, in_data: bytes | None, frame_count: int, time_info: Mapping[str, float], status: int
    ) -> tuple[bytes, int]:
        if status & pyaudio.paOutputUnderflow:
            self.output_underflows += 1
        return self._render(frame_count, self._dac_time(time_info)), pyaudio.paContinue

    def _dac_time(self, time_info: Mapping[str, float]) -> float | None:
        """When this callback's first frame leaves the DAC, on ``time.monotonic()``.

        PortAudio gives it on its own clock, with that clock's reading at the callback
        (``current_time``): wall-clock time in Debian's build, which NTP may step. Only the
        distance between the two is used, added to ``time.monotonic()`` now. None when the
        host gives no DAC time (0), or an absurd one."""
        dac = time_info.get("output_buffer_dac_time", 0.0)
        now = time_info.get("current_time", 0.0)
        ahead = dac - now
        if dac <= 0 or now <= 0 or not 0 <= ahead < MAX_OUTPUT_LATENCY_S:
            return None
        return time.monotonic() + ahead

    def is_active(self) -> bool:
        return self._stream is not None and bool(self._stream.is_active())

    def close(self) -> None:
        stream, self._stream, self._format = self._stream, None, None
        if stream is not None:
            try:
                stream.stop_stream()
                stream.close()
            except OSError as error:
                log.warning("audio output did not close cleanly: %s", error)

    def stop(self) -> None:
        self.close()
        if self._pa is not None:
            self._pa.terminate()
            self._pa = None

    def reacquire(self) -> None:
        # PortAudio lists the devices once, at PyAudio(): only a new instance sees a USB DAC
        # that was plugged back in (and re-reads the ALSA configuration).
        self.stop()
        self.start()


def _candidates(wanted: AudioFormat, device_rate: int) -> Iterator[AudioFormat]:
    """``wanted`` first, then the least conversion: its rate with the other channel count,
    48 and 44.1 kHz (what outputs that refuse a rate nearly always take), the device's own
    default rate, then every other rate from the highest down; its channel count first."""
    other = 2 if wanted.channels == 1 else 1
    rates = (wanted.rate, *FALLBACK_RATES, device_rate, *sorted(SUPPORTED_RATES, reverse=True))
    seen: set[tuple[int, int]] = set()
    for rate in rates:
        for channels in (wanted.channels, other):
            if (rate, channels) not in seen and MIN_RATE <= rate <= MAX_RATE:
                seen.add((rate, channels))
                yield AudioFormat(rate, channels, wanted.encoding, wanted.ptime_ms)


def describe_open_error(
    error: Exception, device: str | None, audio_format: AudioFormat = RAW_FORMAT
) -> str:
    code = error.args[0] if error.args else None
    where = "the default audio output" if device is None else f"audio device {device!r}"
    if code == pyaudio.paInvalidDevice:
        return f"cannot open {where}: no audio output device found (see `appliance devices`)"
    if code == pyaudio.paBadIODeviceCombination:
        # What PortAudio's ALSA host says when the PCM behind the device cannot be opened at
        # all, e.g. ALSA's pulse plugin with no PulseAudio server running.
        return f"cannot open {where}: it is not available (unplugged, or its audio server down?)"
    if code == pyaudio.paDeviceUnavailable or code == errno.EBUSY:
        return f"cannot open {where}: the device is busy (another program is using it?)"
    if code == pyaudio.paInvalidSampleRate:
        return (
            f"cannot open {where}: it cannot play {audio_format.rate} Hz; choose an ALSA device "
            "that resamples, such as 'default' or 'pulse' (see `appliance devices`)"
        )
    detail = error.args[1] if len(error.args) > 1 else str(error)
    return f"cannot open {where}: {detail}"
