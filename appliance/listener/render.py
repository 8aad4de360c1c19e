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
from appliance.listener.playout.drift import (
    VR_LAG_FRAMES,
    VR_LOOKAHEAD_FRAMES,
    DriftControl,
)
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

DELAY_MARGIN_MS = 2.0
"""Added to what a listener reports it can meet: a period's scheduling jitter."""
LATENCY_CALLBACKS = 5
"""Callbacks whose latency is seen before it is reported (their longest: it varies by up to a
period with when each callback runs; the sender's margin covers the rest). Few: a group's
stream waits for every listener's need, and what is late when it starts is lost."""

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
        self.output_latency_s: float | None = None
        """The longest the output took to play what a callback returned (its DAC time less
        now; it varies by up to a period with when the callback runs) since it was opened;
        None until it said."""
        self._latencies_seen = 0
        self._known_latency_s: float | None = None
        """The output's latency as the last stream measured it: the next stream's need is
        known from its first request (the output is the same device)."""
        self._heard_at: float | None = None

    def prepare(self, stream: AudioFormat, output: AudioFormat) -> bool:
        """Play ``stream`` audio on an output opened in ``output``; True if it is converted.

        Call it before the output opens (no callback may run meanwhile).
        """
        self._output_format = output.decoded()
        self._stream_format = stream.decoded()
        self._prefill_left = MAX_PREFILL_CALLBACKS
        self._last_callback_at = None
        if self._latencies_seen >= LATENCY_CALLBACKS:
            self._known_latency_s = self.output_latency_s
        self.output_latency_s = None
        self._latencies_seen = 0
        if stream.same_pcm(output):
            self._converter = None
            self.conversion_latency_ms = 0.0
            return False
        converter = BlockConverter(
            FormatConverter(stream.decoded(), output.decoded()), self._read_converted
        )
        converter.prime()
        self._converter = converter
        self.conversion_latency_ms = converter.buffered_frames * 1000 / output.rate
        return True

    def render(self, n_frames: int, dac_time: float | None = None) -> bytes:
        """``n_frames`` for the output; ``dac_time``: when they leave it (``time.monotonic()``
        seconds), which lets a stream play to a shared schedule."""
        converter = self._converter
        heard_at = None
        if dac_time is not None:
            latency = dac_time - time.monotonic()
            self.output_latency_s = max(latency, self.output_latency_s or latency)
            self._latencies_seen += 1
            heard_at = dac_time + self.conversion_latency_ms / 1000
        if (self._prefill_left and self._prefilling(n_frames)) or (
            self._stream_format is not None
            and not self._buffer.format.same_pcm(self._stream_format)
        ):
            assert self._output_format is not None
            audio = bytes(n_frames * self._output_format.frame_bytes)
        elif converter is None:
            audio = self.drift.read(n_frames, heard_at)
        else:
            self._heard_at = heard_at
            audio = converter.render(n_frames)
        audio = apply_gain(audio, self.gain)
        phase = self._buffer.phase
        if phase is not self._published:
            self._publish(phase)
        self.callbacks += 1
        self.last_activity = time.monotonic()
        return audio

    def _read_converted(self, n_frames: int) -> bytes:
        # Pulled by the converter in about one block per render: heard about when the
        # render's block is, behind the converter's own latency (added in render()).
        return self.drift.read(n_frames, self._heard_at)

    def min_delay_ns(self) -> int | None:
        """The smallest group delay this listener can meet (what it tells the sender): its
        latency target (the margin against late packets), the output's latency and the
        conversion's, the drift resampler's look-ahead and :data:`DELAY_MARGIN_MS`. None
        until the output runs for this stream (a group's first samples are due some time after
        the slowest listener's output starts) and has said its latency over
        :data:`LATENCY_CALLBACKS` callbacks (of this stream, or one and those of the last)."""
        output_s = self.output_latency_s
        if output_s is None:
            return None  # the output is not running yet: nothing can be played before it is
        if self._latencies_seen < LATENCY_CALLBACKS:
            if self._known_latency_s is None:
                return None
            output_s = max(output_s, self._known_latency_s)
        rate = self._buffer.format.rate
        ms = (
            self._buffer.target_ms
            + max(0.0, output_s) * 1000
            + self.conversion_latency_ms
            + (VR_LOOKAHEAD_FRAMES + VR_LAG_FRAMES) * 1000 / rate
            + DELAY_MARGIN_MS
        )
        return round(ms * 1_000_000)

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
        # A stream with a schedule starts when it says, also within the output's first
        # callbacks (it never starts early, so never loses depth to them).
        if (
            spaced
            or self._buffer.scheduled
            or self._buffer.phase not in (Phase.WAITING, Phase.BUFFERING)
        ):
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
