"""The audio callback's work: the playout buffer in, what the output plays out.

:class:`Playout` runs every 20 ms on the audio thread: it reads from the buffer (through
:class:`~appliance.listener.playout.drift.DriftControl`, which holds its depth), converts to
the output's format when the output could not take the stream's (rate and channels, through
:class:`~appliance.audio.convert.BlockConverter`), applies the volume, and publishes the
buffer's phase as the listener's state. It never waits for the network and never logs.

Example::

    playout = Playout(buffer, state_machine)
    playout.prepare(stream_format, output.negotiate(stream_format))
    output.open(...)                 # its callback calls playout.render(n_frames)
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from appliance.audio.convert import BlockConverter, FormatConverter
from appliance.audio.format import AudioFormat
from appliance.audio.pcm import UNITY, apply_gain
from appliance.listener.playout.buffer import Phase, PlayoutBuffer
from appliance.listener.playout.drift import DriftControl
from appliance.listener.state import (
    ALLOWED_TRANSITIONS,
    InvalidTransition,
    ListenerState,
    StateMachine,
)

MAX_PREFILL_CALLBACKS = 8
"""A freshly opened output calls back several times at once to fill its device buffer (2-3
periods with PortAudio on ALSA and PulseAudio); at most this many are taken for that."""
PREFILL_SPACING = 0.5
"""A callback less than this fraction of its period after the previous one is prefill."""

PHASE_STATES: Mapping[Phase, ListenerState] = {
    Phase.WAITING: ListenerState.WAITING,
    Phase.BUFFERING: ListenerState.BUFFERING,
    Phase.PLAYING: ListenerState.PLAYING,
    Phase.UNDERRUN: ListenerState.UNDERRUN,
    Phase.DRAINING: ListenerState.DRAINING,
}


class Playout:
    """The body of the audio callback (kept apart from PortAudio so it is easy to test)."""

    def __init__(self, buffer: PlayoutBuffer, state_machine: StateMachine) -> None:
        self._buffer = buffer
        self.drift = DriftControl(buffer)
        """Reads the buffer for the output, holding its depth at the target."""
        self._state_machine = state_machine
        self.gain = UNITY
        self.callbacks = 0
        self.last_activity = time.monotonic()
        self._published: Phase | None = None
        self._converter: BlockConverter | None = None
        self._output_format: AudioFormat | None = None
        self._stream_format: AudioFormat | None = None
        """What the output was prepared for: until the buffer holds that (the output may
        open as a stream's first datagram comes, before the stream begins), silence."""
        self._prefill_left = 0
        """Callbacks that may still be the output's prefill (see :meth:`_prefilling`)."""
        self._last_callback_at: float | None = None
        self.conversion_latency_ms = 0.0
        """How far the converter's output lags what it reads from the buffer (about one
        resampler block); 0 when nothing is converted."""

    def prepare(self, stream: AudioFormat, output: AudioFormat) -> bool:
        """Play ``stream`` audio on an output opened in ``output``; True if it is converted.

        Call it before the output opens (no callback may run meanwhile).
        """
        self._output_format = output.decoded()
        self._stream_format = stream.decoded()
        self._prefill_left = MAX_PREFILL_CALLBACKS
        self._last_callback_at = None
        if stream.same_pcm(output):
            self._converter = None
            self.conversion_latency_ms = 0.0
            return False
        converter = BlockConverter(
            FormatConverter(stream.decoded(), output.decoded()), self.drift.read
        )
        converter.prime()
        self._converter = converter
        self.conversion_latency_ms = converter.buffered_frames * 1000 / output.rate
        return True

    def render(self, n_frames: int) -> bytes:
        converter = self._converter
        if (self._prefill_left and self._prefilling(n_frames)) or (
            self._stream_format is not None
            and not self._buffer.format.same_pcm(self._stream_format)
        ):
            assert self._output_format is not None
            audio = bytes(n_frames * self._output_format.frame_bytes)
        elif converter is None:
            audio = self.drift.read(n_frames)
        else:
            audio = converter.render(n_frames)
        audio = apply_gain(audio, self.gain)
        phase = self._buffer.phase
        if phase is not self._published:
            self._publish(phase)
        self.callbacks += 1
        self.last_activity = time.monotonic()
        return audio

    def _prefilling(self, n_frames: int) -> bool:
        """The output is filling its device buffer and no stream has started playing: its
        callbacks get silence without touching the buffer.

        They come back to back, as fast as the device takes them. Had they read the buffer,
        a stream due to start would lose its depth to them at once (a listener opens its
        output when a stream begins, which may be just when it is due) and run low from then
        on; silence instead delays nothing that was playing.
        """
        now = time.monotonic()
        previous, self._last_callback_at = self._last_callback_at, now
        assert self._output_format is not None
        spaced = previous is not None and (
            now - previous >= PREFILL_SPACING * n_frames / self._output_format.rate
        )
        if spaced or self._buffer.phase not in (Phase.WAITING, Phase.BUFFERING):
            self._prefill_left = 0
            return False
        self._prefill_left -= 1
        return True

    def reset(self) -> None:
        """Forget what was published (listening restarted from WAITING)."""
        self._published = Phase.WAITING

    def _publish(self, phase: Phase) -> None:
        self._published = phase
        machine = self._state_machine
        if machine.state is ListenerState.ERROR:
            # Only whoever set the error clears it: a last callback of a failed output, run
            # as it closes, would otherwise take ERROR to WAITING (legal) while nothing plays.
            return
        for state in steps_to(machine.state, PHASE_STATES[phase]):
            try:
                machine.set(state, "playout")
            except InvalidTransition:
                # The controls moved the machine (to IDLE or ERROR) under us: theirs wins.
                return


def steps_to(current: ListenerState, target: ListenerState) -> tuple[ListenerState, ...]:
    """The states to publish to go from ``current`` to ``target`` along legal transitions.

    The buffer can pass phases between two callbacks: while the output opens for a new stream,
    frames pile up, and the first callback finds the buffer already playing. The state machine
    (and the LEDs, the log, the mDNS record that follow it) still sees buffering first.
    """
    if target is current or target in ALLOWED_TRANSITIONS[current]:
        return (target,)
    if current is ListenerState.WAITING:
        via = {
            ListenerState.PLAYING: (ListenerState.BUFFERING,),
            ListenerState.UNDERRUN: (ListenerState.BUFFERING, ListenerState.PLAYING),
            ListenerState.DRAINING: (ListenerState.BUFFERING,),
        }.get(target, ())
        return (*via, target)
    if current is ListenerState.BUFFERING and target is ListenerState.UNDERRUN:
        return (ListenerState.PLAYING, target)
    return (target,)
