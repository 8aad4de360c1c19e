"""The playout buffer: positioned frames in, a steady stream of fixed-size reads out.

Fed by the receiving thread (:meth:`PlayoutBuffer.push`) and drained by the audio callback
(:meth:`PlayoutBuffer.read`), which always gets exactly the sample frames it asks for: audio
when there is some, silence otherwise. It never blocks beyond a short lock and never grows
without bound. Everything is counted in sample frames of the current stream's
:class:`~appliance.audio.format.AudioFormat` (set by :meth:`begin_stream`); the latency target,
the capacity and the drain tail are durations, so they mean the same at 8 kHz and at 48 kHz.

Its phases drive the listener's playout states::

    WAITING --data--> BUFFERING --target reached--> PLAYING --ran dry--> UNDERRUN
                                                       ^                     |
                                                       +----target reached---+
    end of stream (any playing phase) --> DRAINING --rest + tail of silence--> WAITING

An underrun is counted when playing resumes after it: running dry at the very end of a stream
is how every stream without an end-of-stream marker ends, not a fault.

Frames carry a position (their first sample frame's index), so gaps, late and reordered frames
are handled by position: a gap plays as silence, a frame older than the play cursor is dropped.
"""

from __future__ import annotations

import bisect
import threading
from collections import deque
from dataclasses import dataclass, replace
from enum import StrEnum

from appliance.audio.format import AudioFormat
from appliance.listener.depacketizer import Frame
from appliance.wire.raw import RAW_FORMAT


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
    """Frames that arrived after their position had already been played."""
    duplicate_frames: int = 0
    underruns: int = 0
    peak_depth: int = 0
    """Most sample frames held at once."""


class PlayoutBuffer:
    """Bounded, position-ordered frame queue with prebuffering and underrun recovery.

    ``target_ms``: how much to hold before (re)starting playback (the latency target).
    ``capacity_s``: the most it holds; past it the oldest audio is dropped and counted.
    ``drain_tail_ms``: silence played after the last audio of a stream, so that the end is
    heard even by audio stacks that drop their last periods when stopped.
    """

    def __init__(
        self,
        target_ms: float,
        capacity_s: float,
        drain_tail_ms: float,
        audio_format: AudioFormat = RAW_FORMAT,
    ) -> None:
        if not 0 < target_ms <= capacity_s * 1000:
            raise ValueError("need 0 < target_ms <= capacity_s")
        self.target_ms = target_ms
        self.capacity_s = capacity_s
        self.drain_tail_ms = drain_tail_ms
        self._lock = threading.Lock()
        self._frames: deque[Frame] = deque()
        self._cursor: int | None = None
        """Position of the next sample frame to play; None until the first frame is played."""
        self._depth = 0
        self._phase = Phase.WAITING
        self._end_of_stream = False
        self._tail_left = 0
        self._stats = BufferStats()
        self._set_format(audio_format)

    def _set_format(self, audio_format: AudioFormat) -> None:
        self._format = audio_format.decoded()
        self.target = max(1, round(self._format.rate * self.target_ms / 1000))
        self.capacity = max(self.target, self._format.frames_for(self.capacity_s))
        self.drain_tail = round(self._format.rate * self.drain_tail_ms / 1000)

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
            if self._cursor is not None and frame.end <= self._cursor:
                stats.late_frames += 1
                return
            if not self._insert(frame):
                stats.duplicate_frames += 1
                return
            self._depth += frame.samples
            self._drop_oldest_beyond_capacity()
            stats.peak_depth = max(stats.peak_depth, self._depth)
            if self._phase is Phase.WAITING:
                self._phase = Phase.BUFFERING

    def begin_stream(self, audio_format: AudioFormat) -> bool:
        """A new stream starts: any drain of the previous one becomes ordinary playing.

        A stream in another rate or channel count cannot follow on from the one draining: what
        is left of that is dropped (and counted), and the buffer restarts in the new format.
        Returns True when the format changed.
        """
        with self._lock:
            self._end_of_stream = False
            changed = not audio_format.same_pcm(self._format)
            if changed:
                self._stats.dropped += self._depth
                self._reset()
                self._set_format(audio_format)
            elif self._phase is Phase.DRAINING:
                self._phase = Phase.PLAYING if self._depth else Phase.BUFFERING
            return changed

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

    def clear(self) -> None:
        """Drop everything (listening stopped)."""
        with self._lock:
            self._reset()

    def _reset(self) -> None:
        self._frames.clear()
        self._depth = 0
        self._cursor = None
        self._phase = Phase.WAITING
        self._end_of_stream = False

    # -- consumer side (the audio callback) ----------------------------------------------

    def read(self, n_frames: int) -> bytes:
        """Exactly ``n_frames`` sample frames of audio, padded with silence where there is none."""
        frame_bytes = self._format.frame_bytes
        with self._lock:
            refilling = self._phase in (Phase.BUFFERING, Phase.UNDERRUN)
            if refilling and self._depth >= self.target:
                if self._phase is Phase.UNDERRUN:
                    self._stats.underruns += 1
                self._phase = Phase.PLAYING
            if self._phase not in (Phase.PLAYING, Phase.DRAINING):
                return bytes(n_frames * frame_bytes)
            audio = self._take(n_frames)
            shortfall = n_frames - len(audio) // frame_bytes
            if shortfall:
                audio += bytes(shortfall * frame_bytes)
                if self._phase is Phase.PLAYING:
                    self._phase = Phase.UNDERRUN
            if self._phase is Phase.DRAINING and not self._depth:
                self._tail_left -= shortfall
                if self._tail_left <= 0:
                    self._phase = Phase.WAITING
                    self._end_of_stream = False
            return audio

    # -- internals (lock held) ------------------------------------------------------------

    def _take(self, n_frames: int) -> bytes:
        """Up to ``n_frames`` from the head frames, silence where positions have a gap."""
        if not self._frames:
            return b""
        head = self._frames[0]
        if self._cursor is None or (self._cursor < head.position and not self._mid_stream()):
            self._cursor = head.position
        # Fast path, the usual case: the whole head frame is exactly what was asked for.
        if head.position == self._cursor and head.samples == n_frames:
            self._pop_head()
            self._stats.samples_played += n_frames
            return head.payload
        frame_bytes = self._format.frame_bytes
        parts: list[bytes] = []
        wanted = n_frames
        while wanted and self._frames:
            head = self._frames[0]
            if head.position > self._cursor:
                # A gap in positions (a lost packet): silence for now.
                gap = min(wanted, head.position - self._cursor)
                parts.append(bytes(gap * frame_bytes))
                self._cursor += gap
                wanted -= gap
                continue
            offset = self._cursor - head.position
            taken = min(wanted, head.samples - offset)
            parts.append(head.payload[offset * frame_bytes : (offset + taken) * frame_bytes])
            wanted -= taken
            self._cursor += taken
            self._depth -= taken
            self._stats.samples_played += taken
            if self._cursor >= head.end:
                self._frames.popleft()
        return b"".join(parts)

    def _mid_stream(self) -> bool:
        # Only a gap met while playing is concealed; after a pause playing starts at the
        # first frame held, since there is nothing missing to hide.
        return self._phase is Phase.PLAYING

    def _pop_head(self) -> None:
        head = self._frames.popleft()
        self._cursor = head.end
        self._depth -= head.samples

    def _insert(self, frame: Frame) -> bool:
        frames = self._frames
        if not frames or frame.position >= frames[-1].end:
            frames.append(frame)
            return True
        positions = [f.position for f in frames]
        index = bisect.bisect_left(positions, frame.position)
        if index < len(frames) and frames[index].position == frame.position:
            return False
        frames.insert(index, frame)
        return True

    def _drop_oldest_beyond_capacity(self) -> None:
        while self._depth > self.capacity and self._frames:
            head = self._frames.popleft()
            consumed = 0 if self._cursor is None else max(0, self._cursor - head.position)
            remaining = head.samples - consumed
            self._depth -= remaining
            self._stats.dropped += remaining
            self._cursor = head.end
