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
        self.conversion_latency_ms = 0.0
        """How far the converter's output lags what it reads from the buffer (about one
        resampler block); 0 when nothing is converted."""

    def prepare(self, stream: AudioFormat, output: AudioFormat) -> bool:
        """Play ``stream`` audio on an output opened in ``output``; True if it is converted.

        Call it before the output opens (no callback may run meanwhile).
        """
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
        audio = self.drift.read(n_frames) if converter is None else converter.render(n_frames)
        audio = apply_gain(audio, self.gain)
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
        self._published = phase
        machine = self._state_machine
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
