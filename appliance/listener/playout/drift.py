"""Clock-drift control: the playout buffer's depth held at its target, inaudibly.

The sender's clock and the sound card's never tick at exactly the same rate: a sender 0.1 %
slower than the card empties a 60 ms buffer in a minute, a faster one makes the latency creep
up. :class:`DriftControl` sits between the playout buffer and the output (``read(n)`` in,
``read(n)`` out) and measures the buffer's *level*: its depth, smoothed over about a second.
Once a stream has played for :data:`SETTLE_S`, the level it settled at is its reference (the
target plus what packet and period sizes add); then two actuators keep it there:

1. **Silence.** While the level is more than :data:`SILENCE_MS` off, a block that is quiet
   throughout (peak below :data:`QUIET_PEAK`, about -50 dBFS) is shortened or stretched by up
   to half its length. Speech pauses do it all: the audio itself is played bit-exact.
2. **Resampling.** When the level stays more than :data:`RESAMPLE_MS` off for
   :data:`GRACE_S` (music with no pauses, or a large move of the target), the stream goes
   through libsoxr's variable-rate resampler for the rest of the session, its ratio set by a
   PI controller on the level: at most :data:`MAX_PPM` from 1 (8.6 cents at most, heard by
   nobody), the integral term learning the drift.

A stream that comes much faster than real time (the seed's sender runs at 2x) is a burst, not
drift: it is played whole and bit-exact, never corrected. Moving the latency target (see
:mod:`appliance.listener.playout.latency`) moves the reference, and the same actuators follow.

The estimated drift is what was corrected: frames taken from the buffer per frame played, in
parts per million, since the level settled.

**Playing to a shared schedule** (several listeners in step): when the buffer measures how far
off the group's schedule it plays (:attr:`PlayoutBuffer.schedule_error_s`, given the DAC time
of each read), that distance, smoothed over :data:`SYNC_TIME_CONSTANT_S`, replaces the level's
distance from its reference, with tighter bands (:data:`SYNC_SILENCE_MS`,
:data:`SYNC_RESAMPLE_MS`): the same two actuators then hold the schedule to a fraction of a
millisecond, whatever the depth. There is nothing to settle: the schedule is the reference.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import soxr  # type: ignore[import-untyped]  # no stubs or py.typed in python-soxr 1.1

from appliance.audio.format import AudioFormat
from appliance.audio.pcm import S16LE
from appliance.listener.playout.buffer import Phase, PlayoutBuffer
from appliance.listener.playout.concealment import Concealer

SETTLE_S = 3.0
"""Played before the level is trusted as the reference (the first arrivals' phase settles)."""
LEVEL_TIME_CONSTANT_S = 1.5
"""Smoothing of the depth: packet arrivals and reads make it a sawtooth of tens of ms."""
SILENCE_MS = 4.0
QUIET_PEAK = 100
"""Peak sample below which a block counts as a pause (-50 dBFS)."""
RESAMPLE_MS = 6.0
SPREAD_DEADBAND = 1.0
"""Dead bands are at least this times the depth's mean deviation from the level (with +-30 ms of
jitter about 10 ms: nothing is moved in pauses for less than 10 ms, nor resampled for less than
15 ms; on a clean LAN the bands stay at SILENCE_MS and RESAMPLE_MS)."""
GRACE_S = 2.0
MAX_PPM = 5000.0
MAX_DRIFT_PPM = 2000.0
"""The integral term's bound: twice the largest drift expected (crystals are within 100 ppm;
the issue's worst case is 1000)."""
KP_PPM_PER_MS = 200.0
"""Proportional gain: 10 ms off the reference asks for 0.2 % faster or slower."""
KI_PPM_PER_MS_S = 10.0
"""Integral gain: with KP, a critically damped loop (time constant about 10 s)."""
DRIFT_REPORT_AFTER_S = 20.0
"""The drift is reported once this much has played since the level settled: the level wanders by
a few ms with the network's jitter, which over a shorter time would read as hundreds of ppm."""
BURST_RATIO = 0.05
"""A stream arriving more than 5 % faster (or slower) than real time is not drift."""
ENGAGE_HISTORY_MS = 60.0
"""Already-played audio kept for the resampler's start: it is fed first, so that the resampler
starts mid-signal, and the concealer finds its pitch in it (it needs 48.75 ms)."""
VR_LOOKAHEAD_FRAMES = 240
"""libsoxr's variable-rate engine holds this many input frames back, whatever the rate and
quality (measured: 30 ms at 8 kHz, 5 ms at 48 kHz). Taken from the buffer at once it would cut
the margin against late packets by as much: instead, that much audio is synthesised at the
switch (pitch-period repetition, as for a lost packet) and blended back into the stream."""
RESAMPLE_QUALITY = "HQ"
VR_LAG_FRAMES = 2
"""libsoxr's variable-rate engine delays its output by about two frames: dropped at the start."""
SYNC_TIME_CONSTANT_S = 2.0
"""Smoothing of the distance from the schedule: the output's DAC times wander by tenths of a
millisecond from one callback to the next (PulseAudio's, measured)."""
SYNC_SILENCE_MS = 1.5
SYNC_RESAMPLE_MS = 2.0
"""Bands while playing to a schedule. Narrower ones chase the DAC times' wander: with 0.25 ms,
two listeners that each read under 0.3 ms off drifted 3 ms apart in the rig, and with 1 ms one
was moved 3 ms off for a moment on a loaded CI machine; with these they hold a constant skew,
and a real drift is put right before it costs 2 ms between two listeners."""

log = logging.getLogger(__name__)
_vr_missing = False
"""Set once python-soxr turned out too old for variable-rate resampling (warned once)."""

Samples = npt.NDArray[np.int16]
Read = Callable[[int], bytes]


class DriftControl:
    """The buffer's reader that keeps its level at the target (see the module's docstring)."""

    def __init__(self, buffer: PlayoutBuffer) -> None:
        self._buffer = buffer
        self._clock = buffer.clock
        self._stream = -1
        self._format = buffer.format
        self._heard_at: float | None = None
        """When the current read's first frame will be heard (None: the output did not say)."""
        self._pending = b""
        """Audio read from the buffer and not played yet: what a stretched pause pushed out."""
        self._reset(buffer.format)

    # -- observation ------------------------------------------------------------------------

    @property
    def engaged(self) -> bool:
        """The resampler is in the chain (until the stream ends)."""
        return self._resampler is not None

    @property
    def drift_ppm(self) -> float:
        """Correction applied since the level settled: >0 when the sender is the faster."""
        if self._played <= 0 or self._level is None or self._settled_level is None:
            return 0.0
        # Frames taken beyond those played, plus what the depth gained meanwhile: what came
        # in beyond what was played. Moves of the target cancel out.
        gained = self._level - self._settled_level
        return (self._excess + gained) * 1e6 / self._played

    @property
    def level_ms(self) -> float | None:
        """The smoothed depth (None before any playing)."""
        if self._level is None:
            return None
        return self._level * 1000 / self._format.rate

    @property
    def error_ms(self) -> float:
        """Smoothed depth minus the reference, once settled (else 0)."""
        if self._offset is None or self._level is None:
            return 0.0
        reference = self._buffer.target + self._offset
        return (self._level - reference) * 1000 / self._format.rate

    @property
    def adjusted_frames(self) -> int:
        """Frames dropped (negative: inserted) in pauses this stream."""
        return self._adjusted

    # -- the reader -------------------------------------------------------------------------

    def read(self, n_frames: int, heard_at: float | None = None) -> bytes:
        """``n_frames`` for the output; ``heard_at``: when the first will be heard
        (``time.monotonic()`` seconds, the output's DAC time), if the output says."""
        buffer = self._buffer
        if buffer.stream_number != self._stream:
            self._reset(buffer.format)
            self._stream = buffer.stream_number
        self._heard_at = heard_at
        if self._resampler is not None:
            audio = self._resample(n_frames)
        elif self._pending:
            audio = self._read_with_pending(n_frames)
        else:
            audio = buffer.read(n_frames, heard_at)
        if buffer.phase is Phase.PLAYING:
            audio = self._control(audio, n_frames)
        else:
            self._not_playing(buffer.phase)
        return audio

    def _after(self, frames: int) -> float | None:
        """When audio read from the buffer now is heard, ``frames`` played before it."""
        heard_at = self._heard_at
        return None if heard_at is None else heard_at + frames / self._format.rate

    def _read_with_pending(self, n_frames: int) -> bytes:
        frame_bytes = self._format.frame_bytes
        pending, self._pending = self._pending, b""
        have = len(pending) // frame_bytes
        if have >= n_frames:
            self._pending = pending[n_frames * frame_bytes :]
            return pending[: n_frames * frame_bytes]
        return pending + self._buffer.read(n_frames - have, self._after(have))

    # -- control ----------------------------------------------------------------------------

    def _reset(self, audio_format: AudioFormat) -> None:
        self._format = audio_format
        self._pending = b""
        self._resampler: soxr.ResampleStream | None = None
        self._ratio_ppm = 0.0
        self._integral_ppm = 0.0
        self._level: float | None = None
        self._spread = 0.0
        """Mean absolute deviation of the depth from the level, in frames (smoothed alike)."""
        self._offset: float | None = None
        """The settled level minus the target, in frames: what packet and period sizes add."""
        self._playing_since: float | None = None
        self._in_at_start = 0
        self._far_since: float | None = None
        self._excess = 0
        """Frames taken from the buffer beyond those played, since the level settled."""
        self._settled_level: float | None = None
        self._played = 0
        self._adjusted = 0
        self._history = b""
        self._last_tick: float | None = None
        self._skip = 0
        self._out = np.zeros(0, dtype=np.float32)
        self._blend: Concealer | None = None
        self._heard_at = None
        self._sync_error: float | None = None
        """The distance from the schedule, smoothed (seconds; >0: late)."""

    def _not_playing(self, phase: Phase) -> None:
        # Before playing, while refilling after an underrun and while draining, nothing is
        # corrected; after an underrun the level settles afresh (the refill set a new phase).
        self._playing_since = None
        self._last_tick = None
        if phase is not Phase.DRAINING:
            self._level = None
            self._offset = None

    def _control(self, audio: bytes, n_frames: int) -> bytes:
        buffer = self._buffer
        rate = self._format.rate
        now = self._clock()
        # The buffer's depth (and what waits stretched): the margin against late packets. What
        # the resampler holds (its look-ahead) adds latency but no margin, so is not counted.
        depth = (
            buffer.depth
            + len(self._pending) // self._format.frame_bytes
            + buffer.since_last_push(now)
        )
        if self._playing_since is None:
            self._playing_since = now
            self._in_at_start = buffer.samples_in
            self._level = float(depth)
            self._last_tick = now
            return self._remember(audio)
        assert self._level is not None
        alpha = min(1.0, n_frames / (rate * LEVEL_TIME_CONSTANT_S))
        deviation = abs(depth - self._level)
        self._level += alpha * (depth - self._level)
        self._spread += alpha * (deviation - self._spread)
        report = buffer.control
        report.depth_ms_frames += depth * 1000 / rate * n_frames
        report.frames += n_frames
        if self._offset is not None and self._played >= DRIFT_REPORT_AFTER_S * rate:
            report.drift_ppm = self.drift_ppm
            if self._resampler is not None:
                report.drift_by = "resampling"
            elif self._adjusted:
                report.drift_by = "pauses"
        schedule_error = buffer.schedule_error_s
        if schedule_error is not None:
            return self._follow_schedule(audio, n_frames, schedule_error, now)
        self._sync_error = None
        elapsed = now - self._playing_since
        if self._offset is None:
            if elapsed < SETTLE_S:
                return self._remember(audio)
            if self._is_burst(elapsed):
                return audio
            # Above the target, what packet and read sizes add at most: a level further up (a
            # burst after a stall) is latency to give back, not the stream's natural level.
            # Below it, whatever it is: the stream started once the target had passed since the
            # fastest packet's arrival, so the level is lower by how much the others were later.
            bound = (buffer.last_frame_samples + n_frames) // 2
            self._offset = min(bound, self._level - buffer.target)
            self._settled_level = self._level
            self._excess = self._played = 0
        elif self._is_burst(elapsed):
            self._far_since = None
            return audio
        # The reference follows the target; error > 0: too much buffered.
        reference = buffer.target + self._offset
        error_frames = self._level - reference
        error_ms = error_frames * 1000 / rate
        buffer.update_target(now, pending_ms=-error_ms)
        dt = now - (self._last_tick or now)
        self._last_tick = now
        if self._resampler is not None:
            self._steer(error_ms, dt)
            return audio
        # Jitter makes the smoothed level wander too: the dead bands widen with the spread of
        # the depth around it, so that a jittery network alone moves nothing.
        spread_ms = self._spread * 1000 / rate
        if abs(error_ms) > max(SILENCE_MS, SPREAD_DEADBAND * spread_ms):
            audio = self._in_pause(audio, n_frames, error_frames)
        # Remembered before a switch: the resampler's output must follow this block's end.
        self._remember(audio)
        if abs(error_ms) > max(RESAMPLE_MS, 1.5 * SPREAD_DEADBAND * spread_ms):
            if self._far_since is None:
                self._far_since = now
            elif now - self._far_since >= GRACE_S:
                self._engage()
        else:
            self._far_since = None
        self._played += n_frames
        return audio

    def _follow_schedule(
        self, audio: bytes, n_frames: int, error_s: float, now: float
    ) -> bytes:
        """The control loop on the distance from the shared schedule (see the module's
        docstring): >0, playing late, is what "too deep" is otherwise."""
        rate = self._format.rate
        smoothed = self._sync_error
        if smoothed is None:
            smoothed = error_s
        else:
            smoothed += min(1.0, n_frames / (rate * SYNC_TIME_CONSTANT_S)) * (error_s - smoothed)
        self._sync_error = smoothed
        error_ms = smoothed * 1000
        self._buffer.control.schedule_error_ms = error_ms
        dt = now - (self._last_tick or now)
        self._last_tick = now
        if self._resampler is not None:
            self._steer(error_ms, dt)
            return audio
        if abs(error_ms) > SYNC_SILENCE_MS:
            before = self._adjusted
            audio = self._in_pause(audio, n_frames, smoothed * rate)
            # What was dropped (or inserted) is off the distance at once, not a second later.
            self._sync_error = smoothed - (self._adjusted - before) / rate
        self._remember(audio)
        if abs(error_ms) > SYNC_RESAMPLE_MS:
            if self._far_since is None:
                self._far_since = now
            elif now - self._far_since >= GRACE_S:
                self._engage(n_frames)
        else:
            self._far_since = None
        self._played += n_frames
        return audio

    def _is_burst(self, elapsed: float) -> bool:
        arrived = self._buffer.samples_in - self._in_at_start
        expected = elapsed * self._format.rate
        return expected > 0 and abs(arrived / expected - 1) > BURST_RATIO

    def _remember(self, audio: bytes) -> bytes:
        # The last few ms played, for a seamless start of the resampler; none once it runs.
        keep = round(self._format.rate * ENGAGE_HISTORY_MS / 1000) * self._format.frame_bytes
        self._history = (self._history + audio)[-keep:]
        return audio

    # -- actuator 1: pauses ---------------------------------------------------------------

    def _in_pause(self, audio: bytes, n_frames: int, error_frames: float) -> bytes:
        samples = np.frombuffer(audio, dtype=S16LE)
        if not samples.size or max(int(samples.max()), -int(samples.min())) > QUIET_PEAK:
            return audio
        frame_bytes = self._format.frame_bytes
        k = min(round(abs(error_frames)), n_frames // 2)
        if k <= 0:
            return audio
        middle = (n_frames // 2) * frame_bytes
        if error_frames > 0:
            # Too deep: drop k quiet frames and read k more to fill the block.
            audio = audio[:middle] + audio[middle + k * frame_bytes :]
            audio += self._buffer.read(k, self._after(n_frames - k))
            self._excess += k
            self._adjusted += k
        else:
            # Too shallow: stretch the pause by k frames; the block's last k wait for the next.
            stretched = audio[:middle] + bytes(k * frame_bytes) + audio[middle:]
            cut = n_frames * frame_bytes
            audio, self._pending = stretched[:cut], stretched[cut:] + self._pending
            self._excess -= k
            self._adjusted -= k
        assert self._level is not None
        self._level -= k if error_frames > 0 else -k
        return audio

    # -- actuator 2: the resampler ----------------------------------------------------------

    def _engage(self, n_frames: int = 0) -> None:
        """Put the resampler in the chain (``n_frames``: the block just read)."""
        global _vr_missing
        fmt = self._format
        if _vr_missing:
            return
        try:
            resampler = soxr.ResampleStream(
                fmt.rate * (1 + MAX_PPM * 1e-6),
                fmt.rate,
                fmt.channels,
                dtype="float32",
                quality=RESAMPLE_QUALITY,
                vr=True,
            )
        except TypeError:  # python-soxr before 1.1: no variable-rate engine
            _vr_missing = True
            log.warning(
                "clock drift is corrected in pauses only: python-soxr %s has no variable-rate "
                "resampler (1.1 or later has)",
                getattr(soxr, "__version__", "?"),
            )
            return
        resampler.set_io_ratio(fmt.rate, fmt.rate, 0)
        self._resampler = resampler
        self._ratio_ppm = 0.0
        # Start mid-signal: the recent past goes in first and its output (with the engine's lag)
        # is dropped, so that the first new output sample follows the last one played.
        history = self._history
        self._skip = len(history) // fmt.frame_bytes + VR_LAG_FRAMES
        self._out = np.zeros(0, dtype=np.float32)
        self._feed(history, count_in=False)
        if self._sync_error is not None:
            # Playing to a schedule: the look-ahead is the stream's own next audio (the delay
            # the listener said it can meet has room for it). Synthesised, it would put what
            # follows that much behind the schedule, and a realignment would cut it out.
            self._feed(self._buffer.read(VR_LOOKAHEAD_FRAMES, self._after(n_frames)))
            return
        # The engine's look-ahead, filled with a continuation of the signal rather than taken
        # from the buffer; the real audio that follows is blended in from it.
        blend = Concealer(fmt)
        blend.played(history)
        self._feed(blend.conceal(VR_LOOKAHEAD_FRAMES), count_in=False)
        self._blend = blend

    def _steer(self, error_ms: float, dt: float) -> None:
        assert self._resampler is not None
        self._integral_ppm += KI_PPM_PER_MS_S * error_ms * dt
        self._integral_ppm = max(-MAX_DRIFT_PPM, min(MAX_DRIFT_PPM, self._integral_ppm))
        ppm = max(-MAX_PPM, min(MAX_PPM, KP_PPM_PER_MS * error_ms + self._integral_ppm))
        if abs(ppm - self._ratio_ppm) >= 1.0:
            rate = self._format.rate
            slew = rate // 10
            self._resampler.set_io_ratio(rate * (1 + ppm * 1e-6), rate, slew)
            self._ratio_ppm = ppm

    def _feed(self, pcm: bytes, *, count_in: bool = True) -> None:
        assert self._resampler is not None
        channels = self._format.channels
        floats = np.frombuffer(pcm, dtype=S16LE).astype(np.float32) * (1 / 32768)
        out = self._resampler.resample_chunk(floats.reshape(-1, channels))
        out = np.asarray(out, dtype=np.float32).reshape(-1)
        if self._skip:
            drop = min(self._skip, len(out) // channels)
            out = out[drop * channels :]
            self._skip -= drop
        self._out = np.concatenate((self._out, out)) if self._out.size else out
        if count_in:
            self._excess += len(pcm) // self._format.frame_bytes

    def _resample(self, n_frames: int) -> bytes:
        channels = self._format.channels
        wanted = n_frames * channels
        guard = 0
        while self._out.size < wanted:
            need = (wanted - self._out.size) // channels
            chunk = max(32, need + need * int(abs(self._ratio_ppm)) // 100_000 + 2)
            # Heard after what waits converted, and what the engine holds back.
            held = self._out.size // channels + VR_LOOKAHEAD_FRAMES + VR_LAG_FRAMES
            pcm = self._buffer.read(chunk, self._after(held))
            if self._blend is not None:
                pcm = self._blend.played(pcm)
                if not self._blend.blending:
                    self._blend = None
            self._feed(pcm)
            guard += 1
            if guard > 1000:  # pragma: no cover - a resampler that never answers is a bug
                raise RuntimeError("the drift resampler produced no output")
        out, self._out = self._out[:wanted], self._out[wanted:]
        self._excess -= n_frames
        self._played += n_frames
        scaled = out * 32768.0
        np.rint(scaled, out=scaled)
        np.clip(scaled, -32768, 32767, out=scaled)
        return scaled.astype(S16LE).tobytes()
