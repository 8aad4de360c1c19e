"""The playout buffer: positioned frames in, a steady stream of fixed-size reads out.

Fed by the receiving thread (:meth:`PlayoutBuffer.push`) and drained by the audio callback
(:meth:`PlayoutBuffer.read`), which always gets exactly the sample frames it asks for: audio
when there is some, silence otherwise. It never blocks beyond a short lock and never grows
without bound. Everything is counted in sample frames of the current stream's
:class:`~appliance.audio.format.AudioFormat` (set by :meth:`begin_stream`); the latency target,
the capacity and the drain tail are durations, so they mean the same at 8 kHz and at 48 kHz.

Its phases drive the listener's playout states::

    WAITING --data--> BUFFERING --target due--> PLAYING --ran dry--> UNDERRUN
                                                    ^                     |
                                                    +----target reached---+
    end of stream (any playing phase) --> DRAINING --rest + tail of silence--> WAITING

A stream starts when its first frame is due: when it would hold the target, had every frame
come over the fastest path seen so far (each frame's arrival time less its position). Without
jitter that is the moment the frame completing the target arrives, as "depth >= target" would
have it; with jitter it is never later, and earlier when the first frames were the fast ones:
the latency is then the target behind the fastest path, not behind whichever frame happened to
complete the target.

An underrun is counted when playing resumes after it: running dry at the very end of a stream
is how every stream without an end-of-stream marker ends, not a fault.

Frames carry a position (their first sample frame's index), so gaps, late and reordered frames
are handled by position: a reordered frame takes its place, a duplicate is dropped, a frame
older than the play cursor is dropped and counted late, and a gap met while playing (a lost
packet) is concealed (:class:`~appliance.listener.playout.concealment.Concealer`): the timeline
is kept, a stream plays for exactly its duration. The audio held after the gap goes to the
concealer with it (interpolated from both sides); a gap met blind, the buffer having run dry,
is re-planned into the real audio once that arrives.

The target depth is a :class:`~appliance.listener.playout.latency.LatencyTarget`, fed with the
slack of every packet pushed while playing and moved by its reader
(:class:`~appliance.listener.playout.drift.DriftControl`) through :meth:`update_target`.

**Playing to a shared schedule** (several listeners in step, issue 12): a stream may come with
a :class:`~appliance.listener.playout.schedule.Schedule` (:meth:`set_schedule`) saying when
each position must be heard, and its reader then says when the audio it reads will be heard
(``read(n, heard_at)``: the output's DAC time). The stream starts, and rejoins after an
underrun, at exactly its due sample: silence up to it within the read, or the audio already
late dropped. While playing, the distance from the schedule is measured at every read
(:attr:`PlayoutBuffer.schedule_error_s`, which the drift control holds at zero) and one
beyond :data:`REALIGN_MS` is put right at once. The latency target then only sizes the
concealment; depth is whatever the group delay leaves.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum

from appliance.audio.format import AudioFormat
from appliance.listener.depacketizer import Frame
from appliance.listener.playout.concealment import Concealer
from appliance.listener.playout.latency import LatencyTarget
from appliance.listener.playout.schedule import MAX_HOLD_S, Schedule, ScheduleState
from appliance.wire.raw import RAW_FORMAT

EXPAND_MS = 250.0
"""Running dry mid-stream is concealed for this long (or the target, if longer): the
concealment fades to silence by 60 ms, then silence keeps the timeline while a burst of losses
lasts (the packets after it come in time); past it the buffer refills as after an underrun."""
START_DEPTH_FACTOR = 2.0
"""A stream starts once its first frame is due (see :meth:`PlayoutBuffer.read`), or at once when
it holds this many times the target: a sender ahead of real time (the seed's, at twice it)."""
EXPAND_AFTER_S = 0.2
"""...and only once the stream has played this long: at first, the output's own start-up (a
PortAudio stream asks for two or three periods at once to fill its queue) and the sender's
pattern (ffmpeg sends 40 ms packets in pairs, GStreamer 87 ms ones) can run the buffer dry
with nothing lost; refilling then costs a short pause and no audio. Not longer: a burst of
losses in that time refilled too, a timeline shifted by the burst and a latency that stayed
higher (0.5 s: 102 ms measured latency on the benchmark's bursty rows)."""
START_LEAD_MS = 10.0
"""A stream of packets longer than a read starts at least one read and this much after its first
packet came (over the fastest path): the next one has that long to come before it is needed."""
EXPAND_RECENT_S = 0.3
"""Running dry is concealed only if a packet came this recently (or within twice the target):
a burst of losses leaves the stream silent for a while; a sender that finished long ago (the
seed's, at twice real time) has ended."""


REALIGN_MS = 10.0
"""Playing further than this off the schedule is corrected at once (audio skipped, or silence
inserted), not by the drift control's slow means: the clock estimate moved a lot, or the
group delay was agreed after this listener had started."""


class Phase(StrEnum):
    WAITING = "waiting"
    BUFFERING = "buffering"
    PLAYING = "playing"
    UNDERRUN = "underrun"
    DRAINING = "draining"


@dataclass(slots=True)
class BufferStats:
    """Counters in sample frames (of the format of the stream they were counted in)."""

    frames_in: int = 0
    """Packets pushed."""
    samples_in: int = 0
    """Sample frames pushed."""
    samples_played: int = 0
    """Sample frames of audio handed to the player (silence excluded)."""
    dropped: int = 0
    """Sample frames of the oldest audio thrown away because the buffer was full, or because
    a stream in another format replaced the one still draining."""
    late_frames: int = 0
    """Frames that arrived after their position had already been played (or concealed)."""
    duplicate_frames: int = 0
    reordered_frames: int = 0
    """Frames that arrived after a frame positioned later (put back in order)."""
    concealed: int = 0
    """Sample frames of synthetic audio played in place of lost ones."""
    concealments: int = 0
    """Gaps concealed (a burst of lost packets is one)."""
    underruns: int = 0
    realigned: int = 0
    """Times the play cursor was moved to meet the schedule (see :data:`REALIGN_MS`)."""
    peak_depth: int = 0
    """Most sample frames held at once."""


@dataclass(slots=True)
class ControlReport:
    """What the buffer's reader did for the current stream (written by
    :class:`~appliance.listener.playout.drift.DriftControl`, read when a session ends)."""

    drift_ppm: float | None = None
    drift_by: str = ""
    """"pauses" or "resampling" once anything was corrected."""
    depth_ms_frames: float = 0.0
    """Sum of depth (ms) x frames played while playing, for the mean."""
    frames: int = 0
    schedule_error_ms: float | None = None
    """Playing to a shared schedule: the smoothed distance from it (>0: late), last read."""

    @property
    def mean_depth_ms(self) -> float | None:
        return self.depth_ms_frames / self.frames if self.frames else None


class PlayoutBuffer:
    """Bounded, position-ordered frame queue with prebuffering and underrun recovery.

    ``target_ms``: how much to hold before (re)starting playback (the latency target).
    ``capacity_s``: the most it holds; past it the oldest audio is dropped and counted.
    ``drain_tail_ms``: silence played after the last audio of a stream, so that the end is
    heard even by audio stacks that drop their last periods when stopped.
    ``latency``: how the target moves (by default it stays at ``target_ms``).
    """

    def __init__(
        self,
        target_ms: float,
        capacity_s: float,
        drain_tail_ms: float,
        audio_format: AudioFormat = RAW_FORMAT,
        latency: LatencyTarget | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < target_ms <= capacity_s * 1000:
            raise ValueError("need 0 < target_ms <= capacity_s")
        self.latency = latency or LatencyTarget(
            target_ms, target_ms, target_ms, adaptive=False
        )
        self.capacity_s = capacity_s
        self.clock = clock
        self._last_push_at = 0.0
        self._last_push_samples = 0
        self._played_before = 0
        """Sample frames played before the current stream began."""
        self._timed = True
        """Positions follow the sender's clock (see :meth:`begin_stream`)."""
        self._anchor = math.inf
        """The earliest (arrival time - position / rate) of the stream's frames: when its
        position 0 would have arrived over the fastest path seen."""
        self.drain_tail_ms = drain_tail_ms
        self._lock = threading.Lock()
        self._frames: deque[Frame] = deque()
        self._cursor: int | None = None
        """Position of the next sample frame to play; None until the first frame is played."""
        self._depth = 0
        self._phase = Phase.WAITING
        self._end_of_stream = False
        self._tail_left = 0
        self._refusing = False
        """The output is down (see :meth:`refuse`): every push is dropped and counted."""
        self._stats = BufferStats()
        self._stream_number = 0
        self._expanded = 0
        """Sample frames concealed since the buffer last ran dry (reset by real audio)."""
        self.control = ControlReport()
        self._schedule: Schedule | None = None
        self._realign_wait = 0
        """Silence still to play to get back on a schedule that moved later."""
        self._began_at = clock()
        self.schedule_error_s: float | None = None
        """How late (>0) the last read's first sample plays against the schedule, in
        seconds; None when not playing to a schedule."""
        self._set_format(audio_format)

    def _set_format(self, audio_format: AudioFormat) -> None:
        self._format = audio_format.decoded()
        self._concealer = Concealer(self._format)
        self._set_target()
        self.capacity = max(self.target, self._format.frames_for(self.capacity_s))
        self.drain_tail = round(self._format.rate * self.drain_tail_ms / 1000)

    def _set_target(self) -> None:
        self.target = max(1, round(self._format.rate * self.latency.target_ms / 1000))

    @property
    def target_ms(self) -> float:
        """The latency target now (it moves when the latency policy is adaptive)."""
        return self.latency.target_ms

    @property
    def stream_number(self) -> int:
        """Changes when a stream begins or the buffer is cleared (for readers with state)."""
        return self._stream_number

    def since_last_push(self, now: float) -> int:
        """Sample frames the sender has produced since the last frame arrived, as if its
        audio flowed continuously (at most that frame's length).

        Depth plus this is a level that does not jump with the phase of arrivals against reads.
        """
        elapsed = max(0.0, now - self._last_push_at)
        return min(self._last_push_samples, round(elapsed * self._format.rate))

    @property
    def last_frame_samples(self) -> int:
        """Sample frames in the last frame pushed (the sender's packet size)."""
        return self._last_push_samples

    @property
    def cursor(self) -> int | None:
        """Position of the next sample frame to play (None before any was played)."""
        return self._cursor

    @property
    def samples_in(self) -> int:
        """Sample frames pushed so far (all streams)."""
        return self._stats.samples_in

    def update_target(self, now: float, pending_ms: float = 0.0) -> bool:
        """Let the latency policy re-evaluate (see :meth:`LatencyTarget.update`)."""
        with self._lock:
            moved = self.latency.update(now, pending_ms)
            if moved:
                self._set_target()
            return moved

    @property
    def format(self) -> AudioFormat:
        """The PCM format of what :meth:`read` returns (s16le)."""
        return self._format

    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def depth(self) -> int:
        """Sample frames held."""
        return self._depth

    def stats(self) -> BufferStats:
        """A snapshot of the counters (they only ever grow, except the peak; see reset_peak)."""
        with self._lock:
            return replace(self._stats)

    def reset_peak(self) -> None:
        """Start measuring the peak depth afresh (at a session's start)."""
        with self._lock:
            self._stats.peak_depth = self._depth

    # -- producer side ---------------------------------------------------------------------

    def push(self, frame: Frame) -> None:
        with self._lock:
            stats = self._stats
            stats.frames_in += 1
            stats.samples_in += frame.samples
            now = self.clock()
            self._last_push_at, self._last_push_samples = now, frame.samples
            if self._refusing:
                stats.dropped += frame.samples
                return
            self._anchor = min(self._anchor, now - frame.position / self._format.rate)
            cursor = self._cursor
            if cursor is not None and self._phase is Phase.PLAYING:
                slack = frame.position - cursor
                self.latency.observe(slack * 1000 / self._format.rate, now)
            if cursor is not None and frame.position < cursor:
                if frame.end <= cursor:
                    stats.late_frames += 1
                    return
                # Its start was already played (concealed): only the rest can still be.
                stats.late_frames += 1
                frame = frame.after(cursor)
            added = self._insert(frame)
            if not added:
                stats.duplicate_frames += 1
                return
            self._depth += added
            self._drop_oldest_beyond_capacity()
            stats.peak_depth = max(stats.peak_depth, self._depth)
            if self._phase is Phase.WAITING:
                self._phase = Phase.BUFFERING

    def begin_stream(self, audio_format: AudioFormat, *, timed: bool = True) -> bool:
        """A new stream starts: any drain of the previous one becomes ordinary playing.

        ``timed``: its frames are positioned by the sender's clock (RTP timestamps), so a frame
        missing when its time comes is lost or late, and running dry is concealed with the
        timeline kept. False (the raw wire, positioned back to back as frames arrive): a frame
        missing is only late, and what comes next is the next audio; running dry is then an
        underrun, or the cursor would skip the late audio.

        A stream in another rate or channel count cannot follow on from the one draining: what
        is left of that is dropped (and counted), and the buffer restarts in the new format.
        Returns True when the format changed.
        """
        with self._lock:
            self._end_of_stream = False
            self._timed = timed
            self._stream_number += 1
            self._played_before = self._stats.samples_played
            self.control = ControlReport()
            self.latency.restart()
            self._anchor = math.inf
            self._schedule = None
            self._realign_wait = 0
            self.schedule_error_s = None
            self._began_at = self.clock()
            changed = not audio_format.same_pcm(self._format)
            if changed:
                self._stats.dropped += self._depth
                self._reset()
                self._set_format(audio_format)
            else:
                self._set_target()
                if self._phase is Phase.DRAINING:
                    self._phase = Phase.PLAYING if self._depth else Phase.BUFFERING
            return changed

    def set_schedule(self, schedule: Schedule | None) -> None:
        """Play the current stream to ``schedule`` (until the next :meth:`begin_stream`)."""
        with self._lock:
            self._schedule = schedule

    @property
    def scheduled(self) -> bool:
        """The stream has a schedule (pending or ready): its start is the schedule's."""
        schedule = self._schedule
        return schedule is not None and schedule.state is not ScheduleState.OFF

    def set_drain_tail(self, drain_tail_ms: float) -> None:
        """Play ``drain_tail_ms`` of silence after the current stream's last audio."""
        with self._lock:
            self.drain_tail_ms = drain_tail_ms
            self.drain_tail = round(self._format.rate * drain_tail_ms / 1000)

    def end_stream(self) -> None:
        """No more data will come: play what is left, then the tail of silence."""
        with self._lock:
            self._end_of_stream = True
            if self._phase is not Phase.WAITING:
                self._phase = Phase.DRAINING
                self._tail_left = self.drain_tail

    def discard_queued(self, keep_ms: float | None = None) -> int:
        """Drop what is queued beyond ``keep_ms`` from the play cursor (by default the
        latency target: what a real-time stream holds); returns the sample frames dropped.

        A new source's stream must not wait behind another's backlog (a faster-than-real-time
        sender queues up to ``capacity_s``), while the usual tail of a stream still plays.
        """
        with self._lock:
            rate = self._format.rate
            keep = self.target if keep_ms is None else round(rate * keep_ms / 1000)
            frames = self._frames
            if self._depth <= keep or not frames:
                return 0
            start = self._cursor if self._cursor is not None else frames[0].position
            limit = start + keep
            dropped = 0
            while frames and frames[-1].position >= limit:
                dropped += frames.pop().samples
            if frames and frames[-1].end > limit:
                last = frames.pop()
                kept = last.payload[: (limit - last.position) * self._format.frame_bytes]
                frames.append(Frame(last.position, kept, last.format))
                dropped += last.end - limit
            self._depth -= dropped
            self._stats.dropped += dropped
            return dropped

    @property
    def queued_end(self) -> int | None:
        """The position just after the last sample frame held (None when empty)."""
        frames = self._frames
        return frames[-1].end if frames else None

    def refuse(self, refusing: bool) -> int:
        """While ``refusing`` (the audio output failed), drop and count every push instead of
        queueing audio nobody can hear, to be played late when the output is back; turning it
        on drops what is queued. Returns the sample frames dropped now."""
        with self._lock:
            self._refusing = refusing
            if not refusing:
                return 0
            dropped = self._depth
            self._stats.dropped += dropped
            self._reset()
            return dropped

    def clear(self) -> None:
        """Drop everything (listening stopped)."""
        with self._lock:
            self._reset()

    def _reset(self) -> None:
        self._stream_number += 1
        self._concealer.interrupt()
        self._frames.clear()
        self._depth = 0
        self._cursor = None
        self._anchor = math.inf
        self._phase = Phase.WAITING
        self._end_of_stream = False

    # -- consumer side (the audio callback) ----------------------------------------------

    def read(self, n_frames: int, heard_at: float | None = None) -> bytes:
        """Exactly ``n_frames`` sample frames of audio, padded with silence where there is none.

        ``heard_at``: when the first of them will be heard (``time.monotonic()`` seconds), if
        the reader knows; it is what playing to a schedule needs."""
        frame_bytes = self._format.frame_bytes
        with self._lock:
            schedule = self._schedule_for(heard_at)
            lead: int | None = 0
            if heard_at is not None and schedule is not None:
                lead = self._scheduled_lead(n_frames, heard_at, schedule)
            if self._phase is Phase.BUFFERING:
                resuming = self._start_due(n_frames) if schedule is None else lead is not None
            elif self._phase is Phase.UNDERRUN:
                resuming = (
                    self._depth >= self.target if schedule is None else lead is not None
                )
            else:
                resuming = False
            if resuming:
                if self._phase is Phase.UNDERRUN:
                    self._stats.underruns += 1
                self._phase = Phase.PLAYING
            if self._phase not in (Phase.PLAYING, Phase.DRAINING) or lead is None:
                return bytes(n_frames * frame_bytes)
            audio = bytes(lead * frame_bytes) + self._take(n_frames - lead, resuming=resuming)
            shortfall = n_frames - len(audio) // frame_bytes
            if shortfall and self._may_expand(shortfall):
                # Ran dry mid-stream while packets are still coming: the next one is late, or
                # lost. Concealed like a gap, the timeline kept (what comes late is dropped).
                audio += self._conceal(shortfall)
                self._expanded += shortfall
            elif shortfall:
                audio += bytes(shortfall * frame_bytes)
                self._concealer.interrupt()
                if self._phase is Phase.PLAYING:
                    self._phase = Phase.UNDERRUN
                    if not self._end_of_stream:
                        self.latency.underrun(self.clock())
                        self._set_target()
            if self._phase is Phase.DRAINING and not self._depth:
                self._tail_left -= shortfall
                if self._tail_left <= 0:
                    self._phase = Phase.WAITING
                    self._end_of_stream = False
            return audio

    # -- the schedule (lock held) ---------------------------------------------------------

    def _schedule_for(self, heard_at: float | None) -> Schedule | None:
        """The schedule to play this read to; None to play as without one. A pending one
        holds a starting stream (see :meth:`_scheduled_lead`) for up to :data:`MAX_HOLD_S`."""
        schedule = self._schedule
        if schedule is None or heard_at is None:
            self.schedule_error_s = None
            return None
        state = schedule.state
        if state is ScheduleState.OFF or (
            state is ScheduleState.PENDING and self.clock() - self._began_at >= MAX_HOLD_S
        ):
            self.schedule_error_s = None
            return None
        return schedule

    def _scheduled_lead(self, n_frames: int, heard_at: float, schedule: Schedule) -> int | None:
        """Silence to play before the audio in this read so that it is heard when due (None:
        nothing to play yet; 0 on time). Late audio is dropped on the way."""
        if schedule.state is not ScheduleState.READY:
            return None if self._phase in (Phase.BUFFERING, Phase.UNDERRUN) else 0
        rate = self._format.rate
        if self._phase is Phase.PLAYING and self._cursor is not None:
            return self._keep_to(n_frames, heard_at, schedule)
        if self._phase not in (Phase.BUFFERING, Phase.UNDERRUN):
            return 0  # draining: the end plays out as it is
        # (Re)starting: at the first sample held, exactly when it is due.
        while self._frames:
            head = self._frames[0]
            position = head.position
            if self._cursor is not None and head.position < self._cursor < head.end:
                position = self._cursor
            lead_s = schedule.due_s(position) - heard_at
            lead = round(lead_s * rate)
            if lead >= n_frames:
                return None
            if lead >= 0:
                self._cursor = position
                self.schedule_error_s = 0.0
                return lead
            self._drop_before(position - lead)  # too late to be heard in time: dropped
        return None

    def _keep_to(self, n_frames: int, heard_at: float, schedule: Schedule) -> int:
        """Measure how far off the schedule this read plays; realign beyond REALIGN_MS."""
        assert self._cursor is not None
        error_s = heard_at - schedule.due_s(self._cursor)
        self.schedule_error_s = error_s
        if self._realign_wait:  # still waiting out an earlier realignment
            lead = min(self._realign_wait, n_frames)
            self._realign_wait -= lead
            self.schedule_error_s = error_s + lead / self._format.rate
            return lead
        if abs(error_s) * 1000 <= REALIGN_MS:
            return 0
        frames = round(abs(error_s) * self._format.rate)
        self._stats.realigned += 1
        self._concealer.interrupt()
        if error_s > 0:  # late: skip ahead
            self._drop_before(self._cursor + frames)
            self.schedule_error_s = 0.0
            return 0
        lead = min(frames, n_frames)  # early: wait (over several reads if need be)
        self._realign_wait = frames - lead
        self.schedule_error_s = error_s + lead / self._format.rate
        return lead

    def _drop_before(self, position: int) -> None:
        """Drop what is held before ``position``; the cursor moves there."""
        frames = self._frames
        while frames and frames[0].position < position:
            head = frames.popleft()
            start = head.position if self._cursor is None else max(self._cursor, head.position)
            if head.end > position:
                frames.appendleft(head.after(position))
                gone = position - start
            else:
                gone = head.end - start
            self._depth -= max(0, gone)
            self._stats.dropped += max(0, gone)
        self._cursor = position if self._cursor is None else max(self._cursor, position)

    # -- internals (lock held) ------------------------------------------------------------

    def _take(self, n_frames: int, *, resuming: bool = False) -> bytes:
        """Up to ``n_frames`` from the head frames, silence where positions have a gap."""
        if not self._frames:
            return b""
        head = self._frames[0]
        if self._cursor is None or (self._cursor < head.position and resuming):
            # Playing (re)starts at the first frame held: after a pause or an underrun there
            # is nothing to conceal, what was missing is behind us.
            self._cursor = head.position
        # Fast path, the usual case: the whole head frame is exactly what was asked for.
        if head.position == self._cursor and head.samples == n_frames:
            self._expanded = 0
            self._pop_head()
            self._stats.samples_played += n_frames
            return self._concealer.played(head.payload)
        frame_bytes = self._format.frame_bytes
        parts: list[bytes] = []
        wanted = n_frames
        while wanted and self._frames:
            head = self._frames[0]
            if head.position > self._cursor:
                # A gap in positions (a lost packet): concealed, in its exact length.
                whole = head.position - self._cursor
                gap = min(wanted, whole)
                parts.append(self._conceal(gap, whole))
                wanted -= gap
                continue
            self._expanded = 0
            offset = self._cursor - head.position
            taken = min(wanted, head.samples - offset)
            piece = head.payload[offset * frame_bytes : (offset + taken) * frame_bytes]
            parts.append(self._concealer.played(piece))
            wanted -= taken
            self._cursor += taken
            self._depth -= taken
            self._stats.samples_played += taken
            if self._cursor >= head.end:
                self._frames.popleft()
        return b"".join(parts)

    def _conceal(self, n_frames: int, gap_frames: int = 0) -> bytes:
        """``n_frames`` of concealment at the cursor, which moves past them; ``gap_frames``:
        the whole gap, when the frames after it are held (it is then interpolated)."""
        assert self._cursor is not None
        concealer = self._concealer
        # The audio after the gap, when it is in hand: the gap is then interpolated (one begun
        # blind, the buffer having run dry, is re-planned from here).
        following = b""
        if gap_frames and not concealer.planned:
            following = self._held_audio(concealer.history_frames)
        erasures = concealer.erasures
        audio = concealer.conceal(n_frames, gap_frames=gap_frames, following=following)
        self._stats.concealments += self._concealer.erasures - erasures
        self._stats.concealed += n_frames
        self._cursor += n_frames
        return audio

    def _start_due(self, n_frames: int) -> bool:
        """Whether a stream may start: it would hold the target now had every frame come over
        the fastest path seen so far (or it holds the target twice over already). The frame
        that completes the target is taken to be as long as the head frame (senders keep one
        packet size).

        Packets longer than a read (``n_frames``) are another matter: the reads then need the
        next packet a read after the start, whatever the target. Such a stream starts at least
        a read and :data:`START_LEAD_MS` after its first packet came (over the fastest path):
        GStreamer's rtpL16pay sends 87 ms packets, which a 90 ms target would start on at once
        and run dry before the second.
        """
        if not self._frames:
            return False
        if self._depth >= START_DEPTH_FACTOR * self.target:
            return True
        head = self._frames[0]
        # The audio up to the target's end (the last frame of it carries its own length).
        ahead = self.target - head.samples
        if head.samples > n_frames:
            ahead = max(ahead, n_frames + round(self._format.rate * START_LEAD_MS / 1000))
        due = self._anchor + (head.position + ahead) / self._format.rate
        return self.clock() >= due

    def _held_audio(self, max_frames: int) -> bytes:
        """Up to ``max_frames`` of the audio held from the head on, while it is contiguous."""
        parts: list[bytes] = []
        frames = 0
        end: int | None = None
        for frame in self._frames:
            if (end is not None and frame.position != end) or frames >= max_frames:
                break
            parts.append(frame.payload)
            frames += frame.samples
            end = frame.end
        return b"".join(parts)[: max_frames * self._format.frame_bytes]

    def _may_expand(self, shortfall: int) -> bool:
        """Whether running dry is concealed rather than an underrun: only while playing a live
        stream (a packet came within :data:`EXPAND_RECENT_S`: a sender far ahead of real time,
        as the seed's, has simply finished), for at most :data:`EXPAND_MS` or the target."""
        if (
            not self._timed
            or self._phase is not Phase.PLAYING
            or self._end_of_stream
            or self._cursor is None
        ):
            return False
        if self._stats.samples_played - self._played_before < EXPAND_AFTER_S * self._format.rate:
            return False
        if self.clock() - self._last_push_at > max(EXPAND_RECENT_S, 2 * self.target_ms / 1000):
            return False
        limit = round(self._format.rate * max(EXPAND_MS, self.target_ms) / 1000)
        return self._expanded + shortfall <= limit

    def _pop_head(self) -> None:
        head = self._frames.popleft()
        self._cursor = head.end
        self._depth -= head.samples

    def _insert(self, frame: Frame) -> int:
        """Hold ``frame``, or the parts of it not held yet; returns the sample frames added
        (0: all of it was held, a duplicate).

        Held frames never overlap: a frame whose positions fall partly inside held ones (a
        sender that repacketizes, a partly late duplicate, a forged packet of the stream)
        adds only what is new, or its audio would be counted and played twice.
        """
        frames = self._frames
        if not frames or frame.position >= frames[-1].end:
            frames.append(frame)
            return frame.samples
        if frame.position < frames[-1].position:
            self._stats.reordered_frames += 1
        positions = [f.position for f in frames]
        index = bisect.bisect_right(positions, frame.position)
        # The uncovered stretches of [position, end): between the held frames around it.
        start = frame.position if index == 0 else max(frame.position, frames[index - 1].end)
        pieces: list[tuple[int, Frame]] = []
        following = index
        while start < frame.end:
            stop = frame.end
            if following < len(frames):
                stop = min(stop, frames[following].position)
            if stop > start:
                pieces.append((following, _slice(frame, start, stop)))
            if following >= len(frames):
                break
            start = max(start, frames[following].end)
            following += 1
        for at, piece in reversed(pieces):  # from the back: earlier indexes stay right
            frames.insert(at, piece)
        return sum(piece.samples for _, piece in pieces)

    def _drop_oldest_beyond_capacity(self) -> None:
        while self._depth > self.capacity and self._frames:
            head = self._frames.popleft()
            consumed = 0 if self._cursor is None else max(0, self._cursor - head.position)
            remaining = head.samples - consumed
            self._depth -= remaining
            self._stats.dropped += remaining
            self._cursor = head.end


def _slice(frame: Frame, start: int, stop: int) -> Frame:
    """The part of ``frame`` from position ``start`` to ``stop`` (both within it)."""
    if start == frame.position and stop == frame.end:
        return frame
    size = frame.format.frame_bytes
    payload = frame.payload[(start - frame.position) * size : (stop - frame.position) * size]
    return Frame(start, payload, frame.format)
