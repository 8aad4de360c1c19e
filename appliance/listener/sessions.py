"""Who is playing: the listener's sessions, from a stream's first datagram to its end.

A session belongs to the first source that sends audio; datagrams from anyone else are
counted and ignored until it ends: by the end-of-stream marker (an empty datagram), by an
RTCP BYE for its SSRC, or by ``timeout_s`` without packets from its source. Whether a stream
is RTP or raw PCM is decided from its first datagrams (:class:`StreamDetector`); from then on a
raw session takes every datagram as PCM (the seed's wire, bit-exact), an RTP session only RTP
packets of its own stream, and RTCP is counted, never played. Nothing a peer sends can raise
out of :meth:`SessionManager.handle`.

With a :class:`~appliance.listener.feedback.Feedback`, the sources hear back: the session's
source a report at its start, about once a second and at its end; an ignored source that the
listener is busy (see :mod:`appliance.listener.feedback`).

Not thread-safe by itself: the receiver calls it under one lock from its two threads.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from appliance.listener.depacketizer import (
    Depacketizer,
    Detection,
    RawDepacketizer,
    StreamDetector,
    rtp_depacketizer,
)
from appliance.listener.feedback import Feedback, StreamFigures
from appliance.listener.playout.buffer import BufferStats, PlayoutBuffer
from appliance.listener.reception import InterarrivalJitter
from appliance.listener.session import Address, EndReason, Session
from appliance.wire import Wire
from appliance.wire.payload import PayloadMap
from appliance.wire.raw import InvalidDatagram, RawDatagram
from appliance.wire.rtcp import Bye, is_rtcp, parse_compound
from appliance.wire.rtp import RtpPacket

log = logging.getLogger(__name__)

SessionCallback = Callable[[Session], None]


class SessionManager:
    def __init__(
        self,
        buffer: PlayoutBuffer,
        timeout_s: float,
        payload_map: PayloadMap,
        on_session_start: SessionCallback | None = None,
        on_session_end: SessionCallback | None = None,
        feedback: Feedback | None = None,
    ) -> None:
        self._buffer = buffer
        self._feedback = feedback
        self._timeout_s = timeout_s
        self._payload_map = payload_map
        self._on_start = on_session_start
        self._on_end = on_session_end
        self._session: Session | None = None
        self._depacketizer: Depacketizer | None = None
        self._detector = StreamDetector()
        self._candidate: Address | None = None
        """The source whose first datagram the detector holds."""
        self._candidate_at = 0.0
        self._timeline_end = 0
        """Position just after the last frame pushed: where the next stream starts."""
        self._sessions_started = 0
        self.invalid_outside_sessions = 0
        self.rtcp_outside_sessions = 0
        self._before = BufferStats()
        self._jitter: InterarrivalJitter | None = None

    @property
    def session(self) -> Session | None:
        return self._session

    @property
    def busy(self) -> bool:
        """A session is open or a stream's first datagram is being looked at."""
        return self._session is not None or self._candidate is not None

    # -- datagrams ---------------------------------------------------------------------------

    def handle(self, data: bytes, source: Address, now: float) -> None:
        session = self._session
        if session is not None:
            if source != session.source:
                if self._is_senders_rtcp(session, source, data):
                    self._rtcp(session, data)
                else:
                    self._ignore(session, source, data, now)
            elif not data:
                self.end(EndReason.MARKER)
            else:
                session.last_packet_at = now
                self._play(session, data, now)
                feedback = self._feedback
                if feedback is not None and self._session is session and feedback.due(now):
                    feedback.report(session.source, self.figures(session), now)
            return
        if data and is_rtcp(data):
            # Reports before a stream or between its first two packets (often from another
            # port of the sender's): never audio, and no reason to drop a held packet.
            self.rtcp_outside_sessions += 1
            return
        if self._candidate is not None and source != self._candidate:
            self._drop_candidate(f"{source[0]}:{source[1]} sent before it was decided")
        if not data:  # an end marker with no stream: ends the held one, if any
            held = self._detector.offer(data) if self._candidate is not None else None
            if held is not None:
                self._decide(held, source, now)
            return
        detection = self._detector.offer(data)
        if detection is None:
            self._candidate, self._candidate_at = source, now
            return
        self._decide(detection, source, now)

    def tick(self, now: float) -> None:
        """Ends a session (or drops a held first datagram) after ``timeout_s`` of silence."""
        session = self._session
        if session is not None and now - session.last_packet_at >= self._timeout_s:
            self.end(EndReason.TIMEOUT)
        elif self._candidate is not None and now - self._candidate_at >= self._timeout_s:
            self._drop_candidate("nothing followed it")

    # -- internals -----------------------------------------------------------------------

    def _decide(self, detection: Detection, source: Address, now: float) -> None:
        self._candidate = None
        datagrams = [d for d in detection.datagrams if d]
        ends = len(datagrams) < len(detection.datagrams)
        if detection.wire is Wire.RTP and detection.first_rtp is not None:
            try:
                rtp = rtp_depacketizer(
                    detection.first_rtp, self._payload_map, self._next_position()
                )
            except ValueError as error:
                self._count_invalid(None, source, error)
                return
            rtp.sequence.duplicates += detection.duplicates
            depacketizer: Depacketizer = rtp
        else:
            datagrams = self._raw_audio(datagrams, source)
            if not datagrams:
                return
            depacketizer = RawDepacketizer(self._next_position())
        session = self._begin(source, now, depacketizer, detection.first_rtp)
        for data in datagrams:
            self._play(session, data, now)
        if self._feedback is not None and self._session is session:
            self._feedback.started(source, self.figures(session), now)
        if ends:
            self.end(EndReason.MARKER)

    def _next_position(self) -> int:
        # After the last frame pushed, or after the play cursor if that ran on (concealing).
        cursor = self._buffer.cursor
        return self._timeline_end if cursor is None else max(self._timeline_end, cursor)

    def _raw_audio(self, datagrams: list[bytes], source: Address) -> list[bytes]:
        """The datagrams that are raw audio; the others are counted (no session is open)."""
        audio = []
        for data in datagrams:
            try:
                RawDatagram.parse(data)
            except InvalidDatagram as error:
                self._count_invalid(None, source, error)
                continue
            audio.append(data)
        return audio

    def _play(self, session: Session, data: bytes, now: float) -> None:
        depacketizer = self._depacketizer
        assert depacketizer is not None
        if depacketizer.wire is Wire.RTP and is_rtcp(data):
            self._rtcp(session, data)
            return
        try:
            frame = depacketizer.depacketize(data)
        except ValueError as error:
            self._count_invalid(session, session.source, error)
            return
        session.packets += 1
        if frame is None:
            return
        session.audio_bytes += len(frame.payload)
        self._timeline_end = max(self._timeline_end, frame.end)
        if self._jitter is not None:
            self._jitter.observe(now, frame.position)
        self._buffer.push(frame)

    def _is_senders_rtcp(self, session: Session, source: Address, data: bytes) -> bool:
        # RTCP usually comes from the sender's second socket (RTP port + 1: ffmpeg does so).
        return (
            session.wire is Wire.RTP and source[0] == session.source[0] and is_rtcp(data)
        )

    def _rtcp(self, session: Session, data: bytes) -> None:
        session.rtcp += 1
        ssrc = None if self._depacketizer is None else self._depacketizer.ssrc
        try:
            packets = parse_compound(data)
        except ValueError as error:
            log.debug("unreadable RTCP from %s: %s", session.source_text, error)
            return
        if any(isinstance(p, Bye) and ssrc in p.ssrcs for p in packets):
            self.end(EndReason.BYE)

    def _ignore(self, session: Session, source: Address, data: bytes, now: float) -> None:
        session.ignored += 1
        if self._feedback is not None:
            self._feedback.busy(source, data, now)
        if source not in session.ignored_sources:
            session.ignored_sources.add(source)
            log.warning(
                "ignoring %s:%d: session %d belongs to %s",
                source[0], source[1], session.number, session.source_text,
            )

    def _drop_candidate(self, why: str) -> None:
        source = self._candidate
        assert source is not None
        self._candidate = None
        self._detector = StreamDetector()
        self.invalid_outside_sessions += 1
        log.warning(
            "dropped one datagram from %s:%d that looked like RTP: %s", source[0], source[1], why
        )

    def _count_invalid(self, session: Session | None, source: Address, error: Exception) -> None:
        if session is None:
            self.invalid_outside_sessions += 1
            first = self.invalid_outside_sessions == 1
        else:
            session.invalid += 1
            first = session.invalid == 1
        if first:
            log.warning("dropped a datagram from %s:%d: %s", source[0], source[1], error)

    def _begin(
        self, source: Address, now: float, depacketizer: Depacketizer, first: RtpPacket | None
    ) -> Session:
        self._sessions_started += 1
        session = Session(
            self._sessions_started,
            source,
            now,
            now,
            wire=depacketizer.wire,
            format=depacketizer.wire_format,
            payload_type=None if first is None else first.payload_type,
        )
        self._session = session
        self._depacketizer = depacketizer
        self._jitter = InterarrivalJitter(depacketizer.format.rate)
        self._buffer.begin_stream(
            depacketizer.format, timed=depacketizer.wire is Wire.RTP
        )
        self._before = self._buffer.stats()
        self._buffer.reset_peak()
        log.info(session.start_line())
        if self._on_start is not None:
            self._on_start(session)
        return session

    def end(self, reason: EndReason) -> None:
        """End the open session (if any) for ``reason``."""
        session = self._session
        if session is None:
            return
        depacketizer, self._depacketizer = self._depacketizer, None
        self._session = None
        if reason is not EndReason.STOPPED:
            self._buffer.end_stream()
        self._account(session, depacketizer)
        session.ended_at = time.monotonic()
        session.end_reason = reason
        if self._feedback is not None:
            figures = self.figures(session, depacketizer)
            self._feedback.ended(session.source, figures, session.ended_at)
        log.info(session.end_line())
        if self._on_end is not None:
            self._on_end(session)

    def figures(
        self, session: Session, depacketizer: Depacketizer | None = None
    ) -> StreamFigures:
        """The open (or just ended) session's figures for a report."""
        depacketizer = depacketizer or self._depacketizer
        buffer = self._buffer
        rate = buffer.format.rate
        concealed = buffer.stats().concealed - self._before.concealed
        sequence = None if depacketizer is None else depacketizer.sequence
        ssrc = None if depacketizer is None else depacketizer.ssrc
        return StreamFigures(
            session=session.number,
            wire=session.wire,
            buffer_ms=buffer.depth * 1000 // rate,
            played_ms=round(session.audio_s * 1000),
            concealed_ms=concealed * 1000 // rate,
            sender_ssrc=ssrc,
            highest_sequence=0 if sequence is None else max(sequence.highest, 0),
            expected=0 if sequence is None else sequence.expected,
            received=0 if sequence is None else sequence.received,
            jitter=0 if self._jitter is None else self._jitter.jitter_units,
        )

    def _account(self, session: Session, depacketizer: Depacketizer | None) -> None:
        """The session's figures: the buffer's counters since it began, the network's."""
        buffer = self._buffer
        stats, before = buffer.stats(), self._before
        played = buffer.format
        session.underruns = stats.underruns - before.underruns
        session.dropped_bytes = (stats.dropped - before.dropped) * played.frame_bytes
        session.peak_depth_ms = stats.peak_depth * 1000 // played.rate
        session.late = stats.late_frames - before.late_frames
        session.reordered = stats.reordered_frames - before.reordered_frames
        session.duplicates = stats.duplicate_frames - before.duplicate_frames
        session.concealed_ms = (stats.concealed - before.concealed) * 1000 // played.rate
        session.concealments = stats.concealments - before.concealments
        sequence = None if depacketizer is None else depacketizer.sequence
        if sequence is not None:
            session.lost = sequence.lost
            session.reordered = sequence.reordered
            session.duplicates += sequence.duplicates
        if self._jitter is not None:
            session.jitter_ms = self._jitter.jitter_ms
        session.target_ms = buffer.target_ms
        control = buffer.control
        session.mean_depth_ms = control.mean_depth_ms
        session.drift_ppm = control.drift_ppm
        session.drift_by = control.drift_by
