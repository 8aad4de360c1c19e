"""A live source: an input device (a microphone, or the monitor of the laptop's own output),
captured with PyAudio in 20 ms blocks until Ctrl-C (``appliance send --input [DEVICE]``).

:func:`open_capture` finds the device as ``listen --device`` finds an output
(:func:`appliance.audio.devices.resolve_device`: an index, a name or a unique part of one;
none: the default input), opens it in a format it takes (:func:`capture_candidates`: 48 kHz
first, then 44.1 kHz, its own default rate and every other rate the appliance plays; stereo
when it has two channels or more) and returns a :class:`CaptureSource`. That is a
:class:`~appliance.sender.source.PcmSource` like a file's: :attr:`~PcmSource.format` starts as
the captured format, the plan converts it to what the listener plays
(:meth:`~PcmSource.convert_to`, libsoxr on the fly) and :meth:`~PcmSource.chunks` yields it.

Unlike a file it is :attr:`~PcmSource.live`: blocks come at the capture's own clock, one every
20 ms, and must be sent as they come (pacing them again against the monotonic clock would add
delay, and the two clocks drift). Nothing is captured before :meth:`~PcmSource.chunks` starts
the stream: audio captured while the listener was looked up would only be latency.

The latency it adds, from the device to the socket: the block (20 ms: a block is handed over
when its last frame is in) plus the device's own input latency (PortAudio's figure,
:attr:`CaptureSource.input_latency_s`) plus the conversion, if any (libsoxr holds about 20 ms
for 44.1 <-> 48 kHz, nothing at equal rates).

Example::

    with open_capture("monitor") as source:          # the only input whose name has "monitor"
        print(source.describe_capture())
        source.convert_to(AudioFormat(48000, 2))
        for chunk in source.chunks():                 # until KeyboardInterrupt
            ...
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from appliance.audio.convert import FormatConverter
from appliance.audio.format import (
    MAX_CHANNELS,
    SUPPORTED_RATES,
    AudioFormat,
    Encoding,
    channel_word,
)
from appliance.errors import AudioDeviceError, SourceError, missing_pyaudio
from appliance.sender.source import PACKET_MS, Origin, PcmSource

log = logging.getLogger(__name__)

BLOCK_MS = PACKET_MS
"""Audio per captured block: one packet (20 ms), so a block goes out as soon as it is in."""

PREFERRED_RATES = (48000, 44100)
"""Tried first: what sound cards and sound servers (PipeWire, PulseAudio) run at, so that
neither resamples; and the best the listener plays."""

STALL_TIMEOUT_S = 2.0
"""An input that delivers nothing for this long has stopped (unplugged, server gone)."""

INPUT_OVERFLOW = 0x2
"""PortAudio's ``paInputOverflow`` callback flag: input was lost before the callback."""


@dataclass(frozen=True, slots=True)
class CaptureFormat:
    """A rate and channel count to try to open an input in."""

    rate: int
    channels: int


def capture_candidates(
    device_rate: float, device_channels: int, rate: int | None = None, channels: int | None = None
) -> list[CaptureFormat]:
    """The formats to try, best first, for an input whose default rate is ``device_rate`` and
    that has ``device_channels`` channels. ``rate`` and ``channels`` (``--rate``,
    ``--channels``) are the only ones tried when given."""
    best_channels = min(max(device_channels, 1), MAX_CHANNELS)
    channel_order = [channels] if channels else [best_channels, 3 - best_channels]
    if rate:
        rates: list[int] = [rate]
    else:
        own = round(device_rate)
        rates = [*PREFERRED_RATES, own, *sorted(SUPPORTED_RATES, reverse=True)]
    seen: list[CaptureFormat] = []
    for r in rates:
        for c in channel_order:
            candidate = CaptureFormat(r, c)
            if r in SUPPORTED_RATES and candidate not in seen:
                seen.append(candidate)
    return seen


class CaptureSource(PcmSource):
    """An input device's audio, captured in :data:`BLOCK_MS` blocks (made by
    :func:`open_capture`). Endless: its :meth:`chunks` ends only with KeyboardInterrupt or a
    :class:`SourceError` when the input stops."""

    live = True

    def __init__(self, pa: Any, device_index: int, device_name: str, captured: AudioFormat) -> None:
        origin = Origin(captured.rate, captured.channels, "capture")
        super().__init__(
            f"input {device_name!r}", origin, self._produce, None, close=self._release, exact=True
        )
        self.device_index = device_index
        self.device_name = device_name
        self.captured = captured
        """The format the device is opened in (s16le, 20 ms blocks)."""
        self.overflows = 0
        """Blocks before which the device lost input (the sender did not keep up)."""
        self._pa: Any = pa
        self._blocks: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self._stream = pa.open(
            format=_pyaudio().paInt16,
            channels=captured.channels,
            rate=captured.rate,
            input=True,
            input_device_index=device_index,
            frames_per_buffer=captured.packet_frames,
            stream_callback=self._callback,
            start=False,
        )

    @property
    def input_latency_s(self) -> float:
        """The device's input latency as PortAudio reports it (seconds)."""
        return float(self._stream.get_input_latency())

    @property
    def block_s(self) -> float:
        return self.captured.packet_frames / self.captured.rate

    def describe_capture(self) -> str:
        """``capturing from input 'pulse' (index 5): 48000 Hz stereo in 20 ms blocks, input
        latency 21.3 ms; Ctrl-C stops``: said once before the stream starts."""
        fmt = self.captured
        return (
            f"capturing from {self.name} (index {self.device_index}): {fmt.rate} Hz "
            f"{channel_word(fmt.channels)} in {self.block_s * 1000:.0f} ms blocks, input "
            f"latency {self.input_latency_s * 1000:.1f} ms; Ctrl-C stops"
        )

    def _callback(
        self, in_data: bytes | None, frame_count: int, time_info: Mapping[str, float], status: int
    ) -> tuple[None, int]:
        # PortAudio's thread: hand the block over, nothing else.
        if status & INPUT_OVERFLOW:
            self.overflows += 1
        if in_data:
            self._blocks.put(in_data)
        return None, _pyaudio().paContinue

    def _captured_blocks(self) -> Iterator[bytes]:
        self._stream.start_stream()
        try:
            while True:
                try:
                    yield self._blocks.get(timeout=STALL_TIMEOUT_S)
                except queue.Empty:
                    raise SourceError(
                        f"{self.name}: no audio for {STALL_TIMEOUT_S:.0f} s (unplugged?)"
                    ) from None
        finally:
            self._stop()

    def _produce(self, fmt: AudioFormat) -> Iterator[bytes]:
        converter = FormatConverter(self.captured, fmt)
        for block in self._captured_blocks():
            if out := converter.convert(block):
                yield out

    def _stop(self) -> None:
        if self._pa is None:
            return  # released: the stream is closed already
        try:
            if self._stream.is_active():
                self._stream.stop_stream()
        except OSError as error:
            log.warning("%s did not stop cleanly: %s", self.name, error)
        if self.overflows:
            log.warning(
                "%s lost input %d time(s): the sender did not keep up", self.name, self.overflows
            )
            self.overflows = 0

    def _release(self) -> None:
        pa = self._pa
        if pa is None:
            return
        self._stop()
        self._pa = None
        try:
            self._stream.close()
        finally:
            pa.terminate()


def _pyaudio() -> Any:
    try:  # imported here: PyAudio is an optional extra (a file can be sent without it)
        import pyaudio
    except ModuleNotFoundError as error:
        raise missing_pyaudio(error) from None
    return pyaudio


def open_capture(
    spec: str | None, *, rate: int | None = None, channels: int | None = None
) -> CaptureSource:
    """Open the input ``spec`` names (None: the default input) for capture, not yet started.

    Raises :class:`AudioDeviceError` naming the device (and listing the inputs) when there is
    no such input or it takes none of the appliance's rates, and
    :class:`~appliance.errors.MissingDependencyError` without PyAudio.
    """
    pyaudio = _pyaudio()
    from appliance.audio.devices import Direction, open_pyaudio, resolve_device

    pa = open_pyaudio()
    try:
        index = resolve_device(pa, spec, Direction.INPUT)
        try:
            info = (
                pa.get_default_input_device_info()
                if index is None
                else pa.get_device_info_by_index(index)
            )
        except OSError:
            raise AudioDeviceError(
                "no default audio input device (see `appliance devices`)"
            ) from None
        index = int(info["index"])
        name = str(info["name"])
        captured = _negotiate(pa, pyaudio, index, name, info, rate, channels)
        try:
            return CaptureSource(pa, index, name, captured)
        except (OSError, ValueError) as error:
            detail = error.args[1] if len(error.args) > 1 else str(error)
            raise AudioDeviceError(f"cannot open input {name!r}: {detail}") from None
    except BaseException:
        pa.terminate()
        raise


def _negotiate(
    pa: Any,
    pyaudio: Any,
    index: int,
    name: str,
    info: Mapping[str, Any],
    rate: int | None,
    channels: int | None,
) -> AudioFormat:
    candidates = capture_candidates(
        float(info["defaultSampleRate"]), int(info["maxInputChannels"]), rate, channels
    )
    for candidate in candidates:
        try:
            pa.is_format_supported(
                candidate.rate,
                input_device=index,
                input_channels=candidate.channels,
                input_format=pyaudio.paInt16,
            )
        except ValueError:
            continue
        return AudioFormat(candidate.rate, candidate.channels, Encoding.S16LE, BLOCK_MS)
    tried = ", ".join(f"{c.rate} Hz {channel_word(c.channels)}" for c in candidates)
    raise AudioDeviceError(f"input {name!r} cannot capture 16-bit audio at {tried}")
