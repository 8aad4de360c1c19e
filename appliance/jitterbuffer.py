"""The playout buffer: positioned frames in, a steady stream of fixed-size reads out.

Fed by the receiving thread (:meth:`PlayoutBuffer.push`) and drained by the audio callback
(:meth:`PlayoutBuffer.read`), which always gets exactly the bytes it asks for: audio when there
is some, silence otherwise. It never blocks beyond a short lock and never grows without bound.

Its phases drive the listener's playout states::

    WAITING --data--> BUFFERING --target reached--> PLAYING --ran dry--> UNDERRUN
                                                       ^                     |
                                                       +----target reached---+
    end of stream (any playing phase) --> DRAINING --rest + tail of silence--> WAITING

An underrun is counted when playing resumes after it: running dry at the very end of a stream
is how every stream without an end-of-stream marker ends, not a fault.

Frames carry a position (their first sample's index), so gaps, late and reordered frames are
handled by position: a gap plays as silence, a frame older than the play cursor is dropped.
"""

from __future__ import annotations

import bisect
import threading
from collections import deque
from dataclasses import dataclass, replace
from enum import StrEnum

from appliance.audio_format import SAMPLE_WIDTH
from appliance.depacketizer import Frame


class Phase(StrEnum):
    WAITING = "waiting"
    BUFFERING = "buffering"
    PLAYING = "playing"
    UNDERRUN = "underrun"
    DRAINING = "draining"


@dataclass(slots=True)
class BufferStats:
    frames_in: int = 0
    bytes_in: int = 0
    bytes_played: int = 0
    """Audio bytes handed to the player (silence excluded)."""
    dropped_bytes: int = 0
    """Oldest audio thrown away because the buffer was full."""
    late_frames: int = 0
    """Frames that arrived after their position had already been played."""
    duplicate_frames: int = 0
    underruns: int = 0
    peak_depth_bytes: int = 0


class PlayoutBuffer:
    """Bounded, position-ordered frame queue with prebuffering and underrun recovery.

    ``target_bytes``: how much to hold before (re)starting playback (the latency target).
    ``capacity_bytes``: the most it holds; past it the oldest audio is dropped and counted.
    ``drain_tail_bytes``: silence played after the last audio of a stream, so that the end is
    heard even by audio stacks that drop their last periods when stopped.
    """

    def __init__(self, target_bytes: int, capacity_bytes: int, drain_tail_bytes: int) -> None:
        if not 0 < target_bytes <= capacity_bytes:
            raise ValueError("need 0 < target_bytes <= capacity_bytes")
        self.target_bytes = target_bytes
        self.capacity_bytes = capacity_bytes
        self.drain_tail_bytes = drain_tail_bytes
        self._lock = threading.Lock()
        self._frames: deque[Frame] = deque()
        self._cursor: int | None = None
        """Position of the next sample to play; None until the first frame is played."""
        self._depth = 0
        self._phase = Phase.WAITING
        self._end_of_stream = False
        self._tail_left = 0
        self._stats = BufferStats()

    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def depth_bytes(self) -> int:
        return self._depth

    def stats(self) -> BufferStats:
        """A snapshot of the counters (they only ever grow, except the peak; see reset_peak)."""
        with self._lock:
            return replace(self._stats)

    def reset_peak(self) -> None:
        """Start measuring the peak depth afresh (at a session's start)."""
        with self._lock:
            self._stats.peak_depth_bytes = self._depth

    # -- producer side ---------------------------------------------------------------------

    def push(self, frame: Frame) -> None:
        with self._lock:
            stats = self._stats
            stats.frames_in += 1
            stats.bytes_in += len(frame.payload)
            if self._cursor is not None and frame.end <= self._cursor:
                stats.late_frames += 1
                return
            if not self._insert(frame):
                stats.duplicate_frames += 1
                return
            self._depth += len(frame.payload)
            self._drop_oldest_beyond_capacity()
            stats.peak_depth_bytes = max(stats.peak_depth_bytes, self._depth)
            if self._phase is Phase.WAITING:
                self._phase = Phase.BUFFERING

    def begin_stream(self) -> None:
        """A new stream starts: any drain of the previous one becomes ordinary playing."""
        with self._lock:
            self._end_of_stream = False
            if self._phase is Phase.DRAINING:
                self._phase = Phase.PLAYING if self._depth else Phase.BUFFERING

    def end_stream(self) -> None:
        """No more data will come: play what is left, then the tail of silence."""
        with self._lock:
            self._end_of_stream = True
            if self._phase is not Phase.WAITING:
                self._phase = Phase.DRAINING
                self._tail_left = self.drain_tail_bytes

    def clear(self) -> None:
        """Drop everything (listening stopped)."""
        with self._lock:
            self._frames.clear()
            self._depth = 0
            self._cursor = None
            self._phase = Phase.WAITING
            self._end_of_stream = False

    # -- consumer side (the audio callback) ----------------------------------------------

    def read(self, n_bytes: int) -> bytes:
        """Exactly ``n_bytes`` of audio, padded with silence where there is none."""
        with self._lock:
            refilling = self._phase in (Phase.BUFFERING, Phase.UNDERRUN)
            if refilling and self._depth >= self.target_bytes:
                if self._phase is Phase.UNDERRUN:
                    self._stats.underruns += 1
                self._phase = Phase.PLAYING
            if self._phase not in (Phase.PLAYING, Phase.DRAINING):
                return bytes(n_bytes)
            audio = self._take(n_bytes)
            shortfall = n_bytes - len(audio)
            if shortfall:
                audio += bytes(shortfall)
                if self._phase is Phase.PLAYING:
                    self._phase = Phase.UNDERRUN
            if self._phase is Phase.DRAINING and not self._depth:
                self._tail_left -= shortfall
                if self._tail_left <= 0:
                    self._phase = Phase.WAITING
                    self._end_of_stream = False
            return audio

    # -- internals (lock held) ------------------------------------------------------------

    def _take(self, n_bytes: int) -> bytes:
        """Up to ``n_bytes`` from the head frames, silence where positions have a gap."""
        if not self._frames:
            return b""
        head = self._frames[0]
        if self._cursor is None or (self._cursor < head.position and not self._mid_stream()):
            self._cursor = head.position
        # Fast path, the usual case: the whole head frame is exactly what was asked for.
        if head.position == self._cursor and len(head.payload) == n_bytes:
            self._pop_head()
            self._stats.bytes_played += n_bytes
            return head.payload
        parts: list[bytes] = []
        wanted = n_bytes
        while wanted and self._frames:
            head = self._frames[0]
            if head.position > self._cursor:
                # A gap in positions (a lost frame, once RTP arrives): conceal with silence.
                gap = min(wanted, (head.position - self._cursor) * SAMPLE_WIDTH)
                parts.append(bytes(gap))
                self._cursor += gap // SAMPLE_WIDTH
                wanted -= gap
                continue
            offset = (self._cursor - head.position) * SAMPLE_WIDTH
            piece = head.payload[offset : offset + wanted]
            parts.append(piece)
            wanted -= len(piece)
            self._cursor += len(piece) // SAMPLE_WIDTH
            self._depth -= len(piece)
            self._stats.bytes_played += len(piece)
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
        self._depth -= len(head.payload)

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
        while self._depth > self.capacity_bytes and self._frames:
            head = self._frames.popleft()
            consumed = 0 if self._cursor is None else max(0, self._cursor - head.position)
            remaining = len(head.payload) - consumed * SAMPLE_WIDTH
            self._depth -= remaining
            self._stats.dropped_bytes += remaining
            self._cursor = head.end
