"""Who is playing: the listener's sessions, from a stream's first datagram to its end.

A new source opens a session only when its datagrams look like a stream
(:mod:`appliance.listener.admission`: a stray datagram opens nothing, and the datagrams held for
the decision are played). The session then belongs to that source; datagrams from anyone else
are counted and ignored, until it ends: by the end-of-stream marker (an empty datagram; raw
streams only, since anyone can forge one: RTP streams end by an RTCP BYE for their SSRC), by
``timeout_s`` without packets from its source, or by a takeover: once the owner has been
silent for ``takeover_s`` (a sender killed, or re-run without an end marker), a new source's
stream is admitted at once. A stream from another source does not wait behind the previous
one's queued audio (a faster-than-real-time sender's backlog is its own): that is dropped.

Whether a stream is RTP or raw PCM is decided from its first datagrams; from then on a raw
session takes every datagram as PCM (the seed's wire, bit-exact), an RTP session only RTP
packets of its own stream, and RTCP is counted, never played. Sources outside the allow-list
are dropped first of all. Nothing a peer sends can raise out of :meth:`SessionManager.handle`,
and what it costs in memory and log lines is bounded (:mod:`appliance.listener.notices`).

With a :class:`~appliance.listener.feedback.Feedback`, the sources hear back: the session's
source a report at its start, about once a second and at its end; an ignored source that the
listener is busy (see :mod:`appliance.listener.feedback`).

Not thread-safe by itself: the receiver calls it under one lock from its two threads.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from appliance.audio.format import AudioFormat
from appliance.listener.admission import Admission, Admitted, AllowList, Refused
from appliance.listener.defaults import DEFAULT_TAKEOVER_S
from appliance.listener.depacketizer import (
    Depacketizer,
    Detection,
    RawDepacketizer,
    RtpDepacketizer,
    rtp_depacketizer,
)
from appliance.listener.feedback import Feedback, StreamFigures
from appliance.listener.notices import NoticeLimiter
from appliance.listener.playout.buffer import BufferStats, PlayoutBuffer
from appliance.listener.playout.schedule import MAX_HOLD_S, ScheduleState
from appliance.listener.reception import InterarrivalJitter
from appliance.listener.schedule import SessionSchedule
from appliance.listener.session import Address, EndReason, Session
from appliance.listener.timesync import TimeClient
from appliance.sync.clock import Clock, MonotonicClock
from appliance.wire import Wire
from appliance.wire.payload import PayloadMap
from appliance.wire.raw import RAW_FORMAT, InvalidDatagram, RawDatagram
from appliance.wire.rtcp import Bye, is_rtcp, parse_compound
from appliance.wire.rtp import RtpPacket, looks_like_rtp

log = logging.getLogger(__name__)

SessionCallback = Callable[[Session], None]
FormatCallback = Callable[[AudioFormat], None]


class SessionManager:
    def __init__(
        self,
        buffer: PlayoutBuffer,
        timeout_s: float,
        payload_map: PayloadMap,
        on_session_start: SessionCallback | None = None,
        on_session_end: SessionCallback | None = None,
        feedback: Feedback | None = None,
        *,
        takeover_s: float = DEFAULT_TAKEOVER_S,
        allow: AllowList | None = None,
        on_stream_coming: FormatCallback | None = None,
        on_idle: Callable[[], None] | None = None,
        clock: Clock | None = None,
        min_delay: Callable[[], int | None] | None = None,
    ) -> None:
        """``clock``: the listener's own, for the time exchange with an RTP stream's source
        (:mod:`appliance.listener.timesync`; monotonic by default).

        ``on_stream_coming(format)``: a new source's first datagram came to an idle
        listener, in this format if it becomes a stream (the output can open meanwhile);
        ``on_idle()``: no source is being judged any more and none streams; ``min_delay()``:
        the smallest group delay the playout can meet (ns, None if not known yet)."""
        self._buffer = buffer
        self._feedback = feedback
        self._timeout_s = timeout_s
        self._takeover_s = min(takeover_s, timeout_s)
        self._allow = allow or AllowList()
        self._payload_map = payload_map
        self._on_start = on_session_start
        self._on_end = on_session_end
        self._on_coming = on_stream_coming
        self._on_idle = on_idle
        self._session: Session | None = None
        self._depacketizer: Depacketizer | None = None
        self._admission = Admission()
        self._last_source: Address | None = None
        """The source of the last session (its queued audio may still be playing)."""
        self._notices = NoticeLimiter(log)
        self._timeline_end = 0
        """Position just after the last frame pushed: where the next stream starts."""
        self._sessions_started = 0
        self.invalid_outside_sessions = 0
        """Datagrams that opened no session: junk, strays, streams that never took shape."""
        self.rtcp_outside_sessions = 0
        self.refused = 0
        """Datagrams from addresses outside the allow-list."""
        self.displaced_ms = 0
        """Queued audio of earlier streams dropped for a new source's stream."""
        self._before = BufferStats()
        self._jitter: InterarrivalJitter | None = None
        self._clock: Clock = clock or MonotonicClock()
        self._time: TimeClient | None = None
        self._min_delay = min_delay
        self._schedule: SessionSchedule | None = None
        self._sync_said = ScheduleState.OFF
        """What the log has said of the session's schedule (one line when it changes)."""

    @property
    def session(self) -> Session | None:
        return self._session

    @property
    def timesync(self) -> TimeClient | None:
        """The open RTP session's time exchange with its source (None otherwise)."""
        return self._time

    @property
    def busy(self) -> bool:
        """A session is open or a new source's datagrams are being judged."""
        return self._session is not None or self._admission.pending

    # -- datagrams ---------------------------------------------------------------------------

    def handle(self, data: bytes, source: Address, now: float) -> None:
        if not self._allow.permits(source[0]):
            self.refused += 1
            self._notices.warning(
                "refused", "refused %s:%d: not in the allow-list (%s)", *source, self._allow
            )
            return
        session = self._session
        if session is None:
            if data and is_rtcp(data):
                # Reports before a stream or between its first two packets (often from
                # another port of the sender's): never audio, and no reason to drop what is held.
                self.rtcp_outside_sessions += 1
                return
            self._admit(data, source, now)
        elif source == session.source:
            self._owners(session, data, now)
        elif self._is_senders_rtcp(session, source, data):
            self._rtcp(session, data)
        elif now - session.last_packet_at >= self._takeover_s:
            self._admit(data, source, now)  # the owner went quiet: anyone may take over
        else:
            self._ignore(session, source, data, now)

    def tick(self, now: float) -> None:
        """Ends a session after ``timeout_s`` of silence; forgets sources whose datagrams
        never became a stream; says what the notices held back."""
        session = self._session
        if session is not None and now - session.last_packet_at >= self._timeout_s:
            self.end(EndReason.TIMEOUT)
        if self._time is not None:
            self._time.poll()
            if session is not None and self._session is session:
                self._say_sync(session, now)
        refused = self._admission.expire(now)
        if refused is not None:
            self._refuse(refused)
            if self._session is None and not self._admission.pending and self._on_idle:
                self._on_idle()
        self._notices.flush(now)

    def _owners(self, session: Session, data: bytes, now: float) -> None:
        if not data:
            if session.wire is Wire.RAW:
                self.end(EndReason.MARKER)
            else:  # anyone can send an empty datagram with a forged address
                self._count_invalid(session, session.source, ValueError(
                    "an empty datagram does not end an RTP stream (an RTCP BYE does)"
                ))
            return
        session.last_packet_at = now
        self._play(session, data, now)
        feedback = self._feedback
        if feedback is not None and self._session is session and feedback.due(now):
            feedback.report(session.source, self.figures(session), now)
        if self._time is not None:
            self._time.poll()

    def _admit(self, data: bytes, source: Address, now: float) -> None:
        idle = self._session is None and not self._admission.pending
        verdict = self._admission.offer(source, data, now)
        if idle and verdict is None and self._on_coming is not None:
            self._on_coming(self._likely_format(data))
        if isinstance(verdict, Refused):
            self._refuse(verdict, source)
        elif isinstance(verdict, Admitted):
            owner = self._session
            if owner is not None:
                log.info(
                    "%s:%d takes over from %s, silent for %.2f s",
                    source[0], source[1], owner.source_text, now - owner.last_packet_at,
                )
                self.end(EndReason.TAKEN_OVER)
            self._decide(verdict.detection, source, now, verdict.ends)

    def _likely_format(self, data: bytes) -> AudioFormat:
        """The format a first datagram's stream will be played in, if it becomes one."""
        if looks_like_rtp(data):
            played = self._payload_map.format_for(data[1] & 0x7F)
            if played is not None:
                return played.decoded()
        return RAW_FORMAT

    def _refuse(self, refused: Refused, source: Address | None = None) -> None:
        self.invalid_outside_sessions += refused.datagrams
        where = "" if source is None else f" from {source[0]}:{source[1]}"
        self._notices.warning(
            "unadmitted", "dropped %d datagram(s)%s that opened no stream: %s",
            refused.datagrams, where, refused.reason,
        )

    # -- internals -----------------------------------------------------------------------

    def _decide(self, detection: Detection, source: Address, now: float, ends: bool) -> None:
        datagrams = [d for d in detection.datagrams if d]
        displaced_from = self._last_source
        displaced_ms = self._displace(source)
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
        if displaced_ms and displaced_from is not None:
            log.info(
                "session %d: dropped %d ms of audio still queued from %s:%d",
                session.number, displaced_ms, *displaced_from,
            )
        for data in datagrams:
            self._play(session, data, now)
        if self._feedback is not None and self._session is session:
            self._feedback.started(source, self.figures(session), now)
            if isinstance(depacketizer, RtpDepacketizer):
                self._time = TimeClient(
                    self._feedback.send_datagram, source, self._feedback.ssrc,
                    rate=depacketizer.format.rate, clock=self._clock, min_delay=self._min_delay,
                )
                buffer = self._buffer
                self._schedule = SessionSchedule(self._time, depacketizer.timestamp_of)
                self._sync_said = ScheduleState.OFF
                buffer.set_schedule(self._schedule)
                self._time.schedule_error_ms = lambda: buffer.control.schedule_error_ms
                self._time.poll()
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
        received_ns = self._clock.now_ns()  # t4 of a time response
        ssrc = None if self._depacketizer is None else self._depacketizer.ssrc
        try:
            packets = parse_compound(data)
        except ValueError as error:
            log.debug("unreadable RTCP from %s: %s", session.source_text, error)
            return
        if self._time is not None:
            self._time.receive(packets, received_ns)
        if any(isinstance(p, Bye) and ssrc in p.ssrcs for p in packets):
            self.end(EndReason.BYE)

    def _say_sync(self, session: Session, now: float) -> None:
        """One log line when the session starts to play in step with a group, or gives up
        waiting for one (on the session timer: never on the audio thread)."""
        schedule, client = self._schedule, self._time
        if schedule is None or client is None:
            return
        state = schedule.state
        if state is ScheduleState.READY and self._sync_said is not ScheduleState.READY:
            log.info("session %d: in step with the group: %s", session.number,
                     client.figures().describe())
        elif (
            state is ScheduleState.PENDING
            and self._sync_said is ScheduleState.OFF
            and now - session.started_at >= MAX_HOLD_S
        ):
            why = (
                "the sender never agreed a group delay"
                if client.group_delay_ns == 0
                else "the sender's clock could not be measured"
            )
            log.warning("session %d: playing out of step with the group: %s",
                        session.number, why)
        else:
            return
        self._sync_said = state

    def _ignore(self, session: Session, source: Address, data: bytes, now: float) -> None:
        session.ignored += 1
        if self._feedback is not None:
            self._feedback.busy(source, data, now)
        self._notices.warning(
            "ignored", "ignoring %s:%d: session %d belongs to %s",
            source[0], source[1], session.number, session.source_text,
        )

    def _count_invalid(self, session: Session | None, source: Address, error: Exception) -> None:
        if session is None:
            self.invalid_outside_sessions += 1
            first = self.invalid_outside_sessions == 1
        else:
            session.invalid += 1
            first = session.invalid == 1
        if first:
            self._notices.warning(
                "invalid", "dropped a datagram from %s:%d: %s", source[0], source[1], error
            )

    def _begin(
        self, source: Address, now: float, depacketizer: Depacketizer, first: RtpPacket | None
    ) -> Session:
        self._sessions_started += 1
        self._admission.forget(source)
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

    def _displace(self, source: Address) -> int:
        """Drop what an earlier stream from another source has queued beyond the latency
        target (a real-time stream's tail is kept); returns the ms dropped."""
        previous, self._last_source = self._last_source, source
        if previous is None or previous == source:
            return 0  # the same sender's next stream follows on from its last
        dropped = self._buffer.discard_queued()
        if not dropped:
            return 0
        self._timeline_end = self._buffer.queued_end or self._timeline_end
        dropped_ms = dropped * 1000 // self._buffer.format.rate
        self.displaced_ms += dropped_ms
        return dropped_ms

    def end(self, reason: EndReason) -> None:
        """End the open session (if any) for ``reason``."""
        session = self._session
        if session is None:
            return
        depacketizer, self._depacketizer = self._depacketizer, None
        self._session = None
        if self._time is not None:
            session.sync = self._time.figures()
            self._time = None
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
