"""Packet loss concealment: fill a gap in s16le PCM with audio that continues what was played.

When a packet is lost the playout buffer has nothing to play for its sample frames. Silence in
its place is heard as a click or a dropout; :class:`Concealer` plays instead a synthetic
continuation of the audio before the gap, fading to silence if the gap goes on, and blends it
back into the real audio when that returns. The timeline is kept: :meth:`Concealer.conceal`
returns exactly the sample frames asked for, so positions after the gap are unchanged.

The algorithm is the one of ITU-T G.711 Appendix I ("A high quality low-complexity algorithm
for packet loss concealment with G.711", the AT&T reference ``LowcFE``), its 8 kHz constants
scaled to the stream's rate and applied to mono or stereo:

* **History.** The last 48.75 ms of what was played (390 frames at 8 kHz) are kept as bytes:
  3 periods of the longest pitch plus a quarter of one. Concealed audio goes into the history
  too -- it is what was played.
* **Pitch.** At the start of a gap, the period is the lag of 5 to 15 ms (40..120 frames at
  8 kHz) whose preceding 20 ms correlate best with the last 20 ms of the history, the
  correlation normalised by the energy of the lagged segment (energy floored, so silence gives
  no division by zero: it picks the shortest lag and conceals silence). As in the reference
  (which searches every 2nd sample at 8 kHz), the search is coarse first, on the history
  decimated to about 4 kHz by averaging (stride 2 at 8 kHz, 12 at 48 kHz), then refined at the
  full rate within one decimation step either side. Stereo: the period is found on the mono
  mix and applied to both channels; each channel is continued from its own samples. Among equal
  correlations the shortest period wins.
* **Synthesis.** The first 10 ms repeat the last period. The loop is made seamless by an
  overlap-add (OLA, linear weights) of a quarter period at its end with the quarter period that
  precedes it. From 10 ms on the repeated segment is the last 2 periods, from 20 ms the last 3
  (fewer audible repetitions, the "pitch buffer" grows), each switch cross-faded over a quarter
  period from the old segment's continuation at the same phase. The output is attenuated
  linearly by 20 % per 10 ms from 10 ms on, so it is silent at 60 ms; after that, silence.
  Successive :meth:`~Concealer.conceal` calls continue the same gap from where the last one
  stopped.
* **The junction with the real signal.** The reference plays everything 3.75 ms late, so that
  it can still cross-fade the last quarter period it has *not yet played* into the loop. The
  concealer adds no delay (:meth:`~Concealer.played` returns audio as it comes), so it smooths
  that junction on the concealment's side: the loop starts one period back, and the difference
  ``e = last played sample - the sample one period before it`` (per channel) is added to the
  first quarter period of the concealment, fading linearly from ``e`` to 0. The first concealed
  sample therefore continues the last played one (for a signal that really is periodic, ``e``
  is 0 and nothing changes).
* **End of a gap.** The first real audio after a gap is cross-faded (linear, triangular
  weights; the concealment's weight falls to 0 as the real audio's rises to 1) from what
  :meth:`~Concealer.conceal` would have produced next -- attenuation included -- into the real
  audio, over a quarter period for a gap up to 10 ms, plus 4 ms for each further 10 ms (or
  part), at most 10 ms: the reference's rule. After a gap that had faded to silence this is a
  10 ms fade-in of the real audio. The blend may cover several :meth:`~Concealer.played`
  calls; after it, audio passes unchanged again.

A gap with no history (at the start, after :meth:`~Concealer.interrupt`) is concealed with
silence, and the audio after it is not blended.

**Both sides known.** A jitter buffer often holds the audio after a gap before the gap is
played. :meth:`~Concealer.conceal` then takes it (``following``) and interpolates instead, so
that the gap ends exactly where the real audio starts (no blend):

* a short gap (up to 40 ms at 8 and 16 kHz; at least 15 ms known on each side) by
  least-squares autoregressive interpolation (:mod:`~appliance.listener.playout.interpolation`):
  on the listener's PESQ benchmark it beat the pitch-based methods by 0.3 to 0.4 at 5 % loss;
* a longer gap with at least 35 ms after it: the past's pitch-period continuation cross-faded
  (raised cosine) into the future's continuation run backwards, each with its own period, both
  fading as an extrapolation does from their own edge of the gap (silent 60 ms from it);
* a longer gap with less after it (a burst of losses that ran the buffer dry): the extrapolation
  goes on, and only its last 40 ms are interpolated into the real audio.

A gap begun blind (``following`` empty: the buffer ran dry, its end not in hand) is re-planned
by the first call that brings ``following``: the rest of it is interpolated from what was
played, the concealment so far included.

Costs. :meth:`~Concealer.played` without a blend due does no numpy work: it appends to the
history bytes (a copy of at most 48.75 ms of audio, 9.4 kB at 48 kHz stereo) and returns its
argument. The work is done once per gap, by its first :meth:`~Concealer.conceal`: the pitch
search (41 lags by 20 ms at ~4 kHz, then 2 x decimation + 1 lags -- 5 at 8 kHz, 25 at
48 kHz -- by 20 ms at the full rate) and the synthesis of the whole 60 ms fade, kept as bytes
that the following calls slice. One blend per gap, at most 10 ms of audio. Measured per call
(best of 7 timeit runs) on the 2-core x86 (AMD EPYC) machine CI uses; no Pi was available to
measure on, expect 10 to 20 times more there:

==============================================  ==========  ==========  ===========
call                                            8 kHz mono  48 kHz      48 kHz
                                                160 frames  stereo 960  stereo 1440
==============================================  ==========  ==========  ===========
first ``conceal()`` of a gap                    68 us       124 us      121 us
further ``conceal()`` of the same gap           0.5 us      0.9 us      1.0 us
``played()`` with nothing to blend              0.3 us      0.6 us      0.6 us
first ``played()`` after a gap (with blend)     12 us       17 us       18 us
==============================================  ==========  ==========  ===========

Not thread-safe: call it from one thread, or under the caller's lock.

Example::

    concealer = Concealer(AudioFormat(rate=48000, channels=2))
    out = concealer.played(pcm)          # real audio: the same object back, remembered
    gap = concealer.conceal(960)         # a lost 20 ms packet: exactly 960 frames = 3840 bytes
    out = concealer.played(next_pcm)     # its start is blended from the concealment
    concealer.interrupt()                # the stream stopped: forget it
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from appliance.audio.format import AudioFormat
from appliance.audio.pcm import S16LE, SAMPLE_MAX, SAMPLE_MIN
from appliance.listener.playout import interpolation

STEP_MS = 10
"""The reference's frame: the pitch buffer grows and the attenuation starts at multiples of it."""

HISTORY_MS = 48.75
"""Audio remembered: 3 periods of the longest pitch and a quarter of one (390 frames at 8 kHz)."""

PITCH_MIN_MS = 5.0
"""Shortest period searched (200 Hz; 40 frames at 8 kHz)."""

PITCH_MAX_MS = 15.0
"""Longest period searched (66.7 Hz; 120 frames at 8 kHz)."""

CORRELATION_MS = 20.0
"""Length of the segments correlated by the pitch search (160 frames at 8 kHz)."""

PITCH_BUFFER_PERIODS = 3
"""Periods repeated at most (from 20 ms on): with a quarter period more, the history's length."""

ATTENUATION_PER_STEP = 0.2
"""Gain lost per 10 ms from 10 ms into a gap on: silent at 10 ms + 5 x 10 ms = 60 ms."""

FADE_STEPS = 6
"""Steps of 10 ms after which a gap is concealed with silence."""

BLEND_INCREMENT_MS = 4.0
"""The end-of-gap blend grows by this for each 10 ms of gap after the first (reference: 32 at
8 kHz)..."""

BLEND_MAX_MS = 10.0
"""...up to this."""

INTERPOLATION_HOLD_MS = 10.0
"""Between two known stretches of audio (below), each side's continuation fades as a gap with
no end in sight does: its level for this long from its own edge of the gap..."""

INTERPOLATION_ATTENUATION_PER_MS = 0.02
"""...then 20 % less per 10 ms, silent 60 ms from its edge: a burst longer than 120 ms fades to
silence and back (gentler fades scored better in PESQ on bursts, but a long gap filled with
60 ms-old pitch periods buzzes)."""

COARSE_RATE = 4000
"""Rate (about) of the decimated signal of the coarse pitch search: 8 kHz decimated by 2, as the
reference's search of every 2nd sample."""

MAX_PLANNED_GAP_MS = 1000.0
"""A gap longer than this (a sender's timestamps jumping, a forged packet far ahead) is not
planned from both sides: its concealment has long faded to silence, and planning costs time
in proportion to the gap, in the audio callback."""
MIN_CORRELATION_POWER = 250 / 160
"""Floor of the mean square (s16 units) of a lagged segment in the pitch search (the reference's
CORRMINPOWER of 250 over 160 samples): silence has no period and divides by nothing."""

Floats = npt.NDArray[np.float64]


class Concealer:
    """Conceals gaps in a stream of s16le PCM in ``audio_format`` (G.711 Appendix I).

    Feed it every piece of real audio just before it is played (:meth:`played`) and ask it for
    the audio of every gap (:meth:`conceal`). Counts sample frames, never bytes.
    """

    concealed_frames: int
    """Sample frames returned by :meth:`conceal` (silence included: after the fade or with no
    history)."""
    erasures: int
    """Separate gaps concealed: a :meth:`conceal` that follows :meth:`played` (of at least one
    frame), the start or :meth:`interrupt` counts one."""

    def __init__(self, audio_format: AudioFormat) -> None:
        fmt = audio_format.decoded()
        rate = fmt.rate
        self._format = fmt
        self._channels = fmt.channels
        self._frame_bytes = fmt.frame_bytes
        self._step = rate * STEP_MS // 1000
        self._pitch_min = math.ceil(rate * PITCH_MIN_MS / 1000)
        self._pitch_max = int(rate * PITCH_MAX_MS / 1000)
        self._corr_len = int(rate * CORRELATION_MS / 1000)
        self._decimation = max(1, round(rate / COARSE_RATE))
        self._history_frames = max(
            round(rate * HISTORY_MS / 1000),
            PITCH_BUFFER_PERIODS * self._pitch_max + self._pitch_max // 4,  # what is needed
        )
        self._history_bytes = self._history_frames * self._frame_bytes
        self._fade_frames = FADE_STEPS * self._step
        self._positions = np.arange(self._fade_frames)
        gain = np.ones((self._fade_frames, 1), dtype=np.float64)
        gain[self._step :, 0] -= ATTENUATION_PER_STEP * self._positions[: -self._step] / self._step
        self._gain = gain
        """The fade: 1 for 10 ms, then down by 20 % per 10 ms."""
        self._blend_increment = round(rate * BLEND_INCREMENT_MS / 1000)
        self._blend_max = round(rate * BLEND_MAX_MS / 1000)

        self._history = b""
        self._in_erasure = False
        self._erasure_frames = 0
        """Frames concealed so far in the current gap."""
        self._pitch = 0
        self._synth: bytes | None = None
        """The whole fade of the current gap (60 ms), or the whole interpolated gap, or None
        when it had no history."""
        self._interpolated = 0
        """Where the current gap ends (frames into it) when it was interpolated (0: it is
        extrapolated)."""
        self._synth_origin = 0
        """Frames into the gap at which the synthesis starts (re-planned gaps: not 0)."""
        self._blend_in: Floats | None = None
        """Weights of the real audio in the blend being played, shape (length, 1)."""
        self._blend_from: Floats | None = None
        """The concealment's continuation, already weighted, shape (length, channels)."""
        self._blend_pos = 0
        self.concealed_frames = 0
        self.erasures = 0

    @property
    def format(self) -> AudioFormat:
        """The PCM format concealed (s16le)."""
        return self._format

    @property
    def history_frames(self) -> int:
        """Sample frames of history kept (48.75 ms)."""
        return self._history_frames

    @property
    def pitch(self) -> int:
        """Period (sample frames) used for the last gap; 0 before any."""
        return self._pitch

    @property
    def blending(self) -> bool:
        """Whether the next :meth:`played` will be changed by the end-of-gap blend."""
        return (self._in_erasure and self._synth is not None) or self._blend_in is not None

    def blend_frames(self, erasure_frames: int, pitch: int) -> int:
        """Length of the blend after a gap of ``erasure_frames`` concealed with ``pitch``:
        a quarter period, plus 4 ms per 10 ms (or part) after the first, at most 10 ms."""
        steps = max(1, -(-erasure_frames // self._step))
        return min(pitch // 4 + (steps - 1) * self._blend_increment, self._blend_max)

    def played(self, pcm: bytes) -> bytes:
        """Real audio about to be played, remembered as history.

        ``pcm`` is returned unchanged -- the very same object -- unless it follows a concealed
        gap: then its start is cross-faded from the concealment's continuation into it (see the
        module's description), and the blend may go on into the next calls. ``pcm`` may be empty
        (returned as is; a gap before it goes on). Raises ValueError if it is not whole frames.
        """
        size = len(pcm)
        if size % self._frame_bytes:
            raise ValueError(
                f"PCM length {size} is not a whole number of {self._frame_bytes}-byte frames"
            )
        if not size:
            return pcm
        if self._in_erasure:
            self._end_erasure()
        if self._blend_in is not None:
            pcm = self._blend(pcm)
        self._remember(pcm)
        return pcm

    @property
    def planned(self) -> bool:
        """The gap being concealed is interpolated to its end (the audio after it changes
        nothing more)."""
        return self._in_erasure and self._interpolated > 0

    @property
    def concealing(self) -> bool:
        """A gap is being concealed (no real audio since the last :meth:`conceal`)."""
        return self._in_erasure

    def conceal(self, n_frames: int, *, gap_frames: int = 0, following: bytes = b"") -> bytes:
        """Exactly ``n_frames`` sample frames of synthetic audio continuing what was played.

        Successive calls without :meth:`played` in between continue the same gap. With no
        history, silence.

        When the audio after the gap is already known (a jitter buffer holds it), a call may
        pass ``gap_frames``, the rest of the gap from here, and ``following``, the audio that
        comes after it (up to the history's length): the gap is then interpolated (see the
        module's description) so that it ends where the real audio starts and needs no blend.
        The first such call of a gap plans it; later ones of an interpolated gap change
        nothing.
        """
        if n_frames < 0:
            raise ValueError(f"cannot conceal {n_frames} frames")
        if n_frames == 0:
            return b""
        if not self._in_erasure:
            self._start_erasure(gap_frames, following)
        elif gap_frames and following and not self._interpolated and self._history:
            self._plan(gap_frames, following)
        fb = self._frame_bytes
        start = (self._erasure_frames - self._synth_origin) * fb
        size = n_frames * fb
        synth = self._synth
        if synth is None or start >= len(synth):
            out = bytes(size)
        else:
            out = synth[start : start + size]
            if len(out) < size:
                out += bytes(size - len(out))
        self._erasure_frames += n_frames
        self.concealed_frames += n_frames
        self._remember(out)
        return out

    def interrupt(self) -> None:
        """The audio was interrupted by silence (the buffer ran dry, a new stream, a new
        format): forget the history. The next :meth:`played` is not blended, the next
        :meth:`conceal` gives silence and starts a new gap."""
        self._history = b""
        self._in_erasure = False
        self._erasure_frames = 0
        self._synth = None
        self._blend_in = None
        self._blend_from = None

    # -- internals ------------------------------------------------------------------------

    def _remember(self, pcm: bytes) -> None:
        if len(pcm) >= self._history_bytes:
            self._history = pcm[-self._history_bytes :]
        else:
            self._history = (self._history + pcm)[-self._history_bytes :]

    @property
    def min_following_frames(self) -> int:
        """Audio after a gap needed to interpolate it: a correlation window and the longest
        period (35 ms), what the pitch search reads."""
        return self._corr_len + self._pitch_max

    def _start_erasure(self, gap_frames: int = 0, following: bytes = b"") -> None:
        self.erasures += 1
        self._in_erasure = True
        self._erasure_frames = 0
        self._interpolated = 0
        self._synth_origin = 0
        self._blend_in = None  # a gap during a blend: the blend is abandoned
        self._blend_from = None
        if not self._history:
            self._synth = None
            return
        past = self._as_history(self._history)
        self._pitch = self._find_pitch(_mono(past))
        self._synth = _to_pcm(self._synthesize(past, self._pitch))
        if gap_frames and following:
            self._plan(gap_frames, following)

    def _plan(self, gap_frames: int, following: bytes) -> None:
        """Interpolate the rest of the gap (``gap_frames`` from here) into ``following``, the
        audio after it, if enough is known; else the extrapolation goes on. A gap begun blind
        (the buffer ran dry: its end was not in hand) is re-planned so when its end arrives."""
        filled = self._interpolation(gap_frames, following)
        if filled is not None:
            self._synth = _to_pcm(filled)
            self._synth_origin = self._erasure_frames
            self._interpolated = self._erasure_frames + gap_frames

    def _interpolation(self, gap_frames: int, following: bytes) -> Floats | None:
        """The rest of the gap, from the history (what was played, the concealment so far
        included) into ``following``; None when too little of either is known."""
        rate = self._format.rate
        if gap_frames > rate * MAX_PLANNED_GAP_MS / 1000:
            return None
        order = interpolation.order_for(rate)
        past = self._as_history(self._history)
        past_frames = len(self._history) // self._frame_bytes
        future_frames = len(following) // self._frame_bytes
        known = np.frombuffer(following, dtype=S16LE).reshape(-1, self._channels)
        if interpolation.can_interpolate(rate, gap_frames, past_frames, future_frames):
            # A short gap: the most likely audio under a linear-prediction model of both sides.
            return interpolation.interpolate(
                past[self._history_frames - past_frames :],
                known.astype(np.float64),
                gap_frames,
                order,
            )
        if future_frames >= self.min_following_frames:
            return self._pitch_interpolation(past, gap_frames, following)
        longest = interpolation.max_gap_frames(rate)
        if gap_frames <= longest or not interpolation.can_interpolate(
            rate, longest, past_frames, future_frames
        ):
            return None
        # A long gap and a short future (a burst of losses that ran the buffer dry): the
        # extrapolation goes on, and only its end is interpolated into the real audio.
        head = self._extrapolation(gap_frames - longest)
        before = np.concatenate([past[self._history_frames - past_frames :], head])
        # The model needs only recent audio (its cost grows with the square of what it gets).
        before = before[-self._history_frames :]
        tail = interpolation.interpolate(before, known.astype(np.float64), longest, order)
        return np.concatenate([head, tail])

    def _extrapolation(self, frames: int) -> Floats:
        """The next ``frames`` of the current extrapolation (silence past its fade)."""
        out = np.zeros((frames, self._channels), dtype=np.float64)
        synth = self._synth
        if synth is not None:
            start = (self._erasure_frames - self._synth_origin) * self._frame_bytes
            piece = np.frombuffer(synth[start : start + frames * self._frame_bytes], dtype=S16LE)
            out[: piece.size // self._channels] = piece.reshape(-1, self._channels)
        return out

    def _pitch_interpolation(self, past: Floats, gap_frames: int, following: bytes) -> Floats:
        """The past's continuation cross-faded into the future's, run backwards, each with its
        own period (for gaps too long for the linear-prediction interpolation)."""
        gain = self._interpolation_gain(gap_frames)
        forward = self._synthesize(past, self._find_pitch(_mono(past)), gap_frames, gain)
        # Run backwards: the audio just after the gap ends the "history" the future's
        # continuation is made from (a short future is preceded by silence, as a short past).
        ahead = np.frombuffer(following[: self._history_bytes], dtype=S16LE)
        backwards = ahead.reshape(-1, self._channels)[::-1].tobytes()
        future = self._as_history(backwards)
        backward = self._synthesize(future, self._find_pitch(_mono(future)), gap_frames, gain)
        into = (0.5 - 0.5 * np.cos(np.pi * (np.arange(gap_frames) + 0.5) / gap_frames))[
            :, np.newaxis
        ]
        result: Floats = forward * (1.0 - into) + backward[::-1] * into
        return result

    def _as_history(self, pcm: bytes) -> Floats:
        """``pcm`` as ``history_frames`` float frames, preceded by silence if shorter."""
        frames = self._history_frames
        x = np.zeros((frames, self._channels), dtype=np.float64)
        known = np.frombuffer(pcm, dtype=S16LE).reshape(-1, self._channels)[-frames:]
        x[frames - known.shape[0] :] = known
        return x

    def _interpolation_gain(self, frames: int) -> Floats:
        hold = self._format.rate * INTERPOLATION_HOLD_MS / 1000
        per_frame = INTERPOLATION_ATTENUATION_PER_MS * 1000 / self._format.rate
        positions = np.arange(max(frames, 1), dtype=np.float64)
        gain = np.clip(1.0 - per_frame * np.maximum(0.0, positions - hold), 0.0, 1.0)
        return gain[:, np.newaxis]

    def _end_erasure(self) -> None:
        self._in_erasure = False
        synth = self._synth
        self._synth = None
        if synth is None or (self._interpolated and self._erasure_frames >= self._interpolated):
            return  # an interpolated gap ends where the real audio starts: nothing to blend
        length = self.blend_frames(self._erasure_frames, self._pitch)
        fb = self._frame_bytes
        start = (self._erasure_frames - self._synth_origin) * fb
        following = np.zeros((length, self._channels), dtype=np.float64)
        tail = np.frombuffer(synth[start : start + length * fb], dtype=S16LE)
        following[: tail.size // self._channels] = tail.reshape(-1, self._channels)
        weights_in = (np.arange(1, length + 1, dtype=np.float64) / length)[:, np.newaxis]
        self._blend_in = weights_in
        self._blend_from = following * (1.0 - weights_in)
        self._blend_pos = 0

    def _blend(self, pcm: bytes) -> bytes:
        weights_in = self._blend_in
        weighted_from = self._blend_from
        assert weights_in is not None and weighted_from is not None
        pos = self._blend_pos
        n = min(weights_in.shape[0] - pos, len(pcm) // self._frame_bytes)
        real = np.frombuffer(pcm, dtype=S16LE, count=n * self._channels).reshape(n, -1)
        mixed = real * weights_in[pos : pos + n] + weighted_from[pos : pos + n]
        np.rint(mixed, out=mixed)
        np.clip(mixed, SAMPLE_MIN, SAMPLE_MAX, out=mixed)
        self._blend_pos = pos + n
        if self._blend_pos == weights_in.shape[0]:
            self._blend_in = None
            self._blend_from = None
        return mixed.astype(S16LE).tobytes() + pcm[n * self._frame_bytes :]

    def _find_pitch(self, mono: Floats) -> int:
        """The period (frames) of the end of ``mono`` (the history, ``history_frames`` long)."""
        d = self._decimation
        lo, hi = self._pitch_min, self._pitch_max
        if d > 1:
            usable = mono.shape[0] - mono.shape[0] % d
            coarse = mono[mono.shape[0] - usable :].reshape(-1, d).mean(axis=1)
            lag = _best_lag(coarse, self._corr_len // d, -(-lo // d), hi // d) * d
            lo, hi = max(lo, lag - d), min(hi, lag + d)
        return _best_lag(mono, self._corr_len, lo, hi)

    @staticmethod
    def _junction_ramp(overlap: int) -> Floats:
        """Weights of the junction's correction, (overlap - k) / (overlap + 1) for k in
        0..overlap-1: the line from 1 at the last played frame to 0 a quarter period on."""
        ramp = np.arange(overlap, 0, -1, dtype=np.float64) / (overlap + 1)
        return ramp[:, np.newaxis]

    def _synthesize(
        self, x: Floats, pitch: int, frames: int | None = None, gain: Floats | None = None
    ) -> Floats:
        """``frames`` (default: the whole fade, ``FADE_STEPS`` x 10 ms) continuing ``x`` with
        period ``pitch``, times ``gain`` (default: the fade's)."""
        step = self._step
        end = x.shape[0]
        total = self._fade_frames if frames is None else frames
        positions = self._positions if total <= self._positions.shape[0] else np.arange(total)
        overlap = pitch // 4
        rising = (np.arange(1, overlap + 1, dtype=np.float64) / overlap)[:, np.newaxis]
        falling = 1.0 - rising

        def pitch_buffer(periods: int) -> Floats:
            """The last ``periods`` periods, their end cross-faded into what precedes them."""
            length = periods * pitch
            buffer = x[end - length :].copy()
            before = x[end - length - overlap : end - length]
            buffer[length - overlap :] = x[end - overlap :] * falling + before * rising
            return buffer

        out = np.empty((max(total, step), self._channels), dtype=np.float64)
        buffer = pitch_buffer(1)
        np.take(buffer, positions[:step] % pitch, axis=0, out=out[:step])
        # The junction with what was played: start at its level, converge on the loop.
        step_error = x[end - 1] - x[end - 1 - pitch]
        out[:overlap] += step_error * self._junction_ramp(overlap)
        phase = step % pitch
        size = out.shape[0]
        for periods, first, last in ((2, step, min(2 * step, size)), (3, 2 * step, size)):
            if first >= last:
                break
            old, old_phase = buffer, phase
            buffer = pitch_buffer(periods)
            length = buffer.shape[0]
            phase = old_phase % pitch  # the same place in the period, in the oldest period
            segment = out[first:last]
            np.take(buffer, (positions[: last - first] + phase) % length, axis=0, out=segment)
            fade = min(overlap, last - first)  # a gap ending within the cross-fade
            old_tail = np.take(old, (positions[:fade] + old_phase) % old.shape[0], axis=0)
            segment[:fade] *= rising[:fade]
            segment[:fade] += old_tail * falling[:fade]
            phase = (phase + last - first) % length
        out = out[:total]
        out *= self._gain if gain is None else gain[:total]
        return out


def _mono(x: Floats) -> Floats:
    return x[:, 0] if x.shape[1] == 1 else (x[:, 0] + x[:, 1]) * 0.5


def _to_pcm(x: Floats) -> bytes:
    out = np.rint(x)
    np.clip(out, SAMPLE_MIN, SAMPLE_MAX, out=out)
    return out.astype(S16LE).tobytes()


def _best_lag(signal: Floats, window: int, lo: int, hi: int) -> int:
    """The lag in ``lo..hi`` whose segment best matches the last ``window`` samples of
    ``signal``: highest correlation over the root of the segment's energy (floored). Ties go to
    the shortest lag."""
    end = signal.shape[0]
    # The segments ending ``hi`` down to ``lo`` samples before the end, as one span.
    span = signal[end - window - hi : end - lo]
    correlation = np.correlate(span, signal[end - window :], mode="valid")
    squares = np.empty(span.shape[0] + 1, dtype=np.float64)
    squares[0] = 0.0
    np.cumsum(span * span, out=squares[1:])
    energy = squares[window:] - squares[: squares.shape[0] - window]
    np.maximum(energy, MIN_CORRELATION_POWER * window, out=energy)
    score = correlation / np.sqrt(energy)
    return lo + int(np.argmax(score[::-1]))  # by ascending lag: the first best is the shortest
