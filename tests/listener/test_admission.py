"""Admission, takeover, displacement, the allow-list and bounded notices, on the session logic
itself (a real playout buffer, datagrams handed in with chosen arrival times)."""

from __future__ import annotations

import gc
import logging
import random
import tracemalloc

import pytest

from appliance.listener.admission import (
    ADMIT_RAW_DATAGRAMS,
    CANDIDATE_WINDOW_S,
    MAX_CANDIDATES,
    Admission,
    Admitted,
    AllowList,
    Refused,
)
from appliance.listener.notices import NoticeLimiter
from appliance.listener.playout.buffer import PlayoutBuffer
from appliance.listener.session import EndReason, Session
from appliance.listener.sessions import SessionManager
from appliance.wire import Wire
from appliance.wire.payload import PayloadMap
from appliance.wire.raw import RAW_FORMAT
from appliance.wire.rtcp import bye
from appliance.wire.rtp import RtpPacket

FRAME = bytes(range(1, 161)) * 2
A = ("192.0.2.1", 4000)
B = ("192.0.2.2", 4000)


def rtp(sequence: int, ssrc: int = 0x1234) -> bytes:
    return bytes(
        RtpPacket(payload_type=97, sequence=sequence, timestamp=sequence * 160, ssrc=ssrc,
                  payload=bytes(320))
    )


class Sessions:
    """A SessionManager over a real buffer, recording the sessions that start and end."""

    def __init__(self, **options: object) -> None:
        self.buffer = PlayoutBuffer(target_ms=60, capacity_s=30.0, drain_tail_ms=0)
        self.started: list[Session] = []
        self.ended: list[Session] = []
        self.manager = SessionManager(
            self.buffer, 5.0, PayloadMap({}, RAW_FORMAT), self.started.append,
            self.ended.append, **options,  # type: ignore[arg-type]
        )

    def send(self, source: tuple[str, int], *datagrams: bytes, at: float) -> None:
        for data in datagrams:
            self.manager.handle(data, source, at)


# -- Admission -------------------------------------------------------------------------------


def test_equal_raw_datagrams_in_a_row_are_a_stream_and_none_is_lost() -> None:
    admission = Admission()
    verdicts = [admission.offer(A, FRAME, 0.0) for _ in range(ADMIT_RAW_DATAGRAMS)]
    assert verdicts[:-1] == [None] * (ADMIT_RAW_DATAGRAMS - 1)
    admitted = verdicts[-1]
    assert isinstance(admitted, Admitted)
    assert admitted.detection.wire is Wire.RAW
    assert admitted.detection.datagrams == (FRAME,) * ADMIT_RAW_DATAGRAMS
    assert not admitted.ends and not admission.pending


def test_random_even_lengths_never_make_a_stream() -> None:
    admission = Admission()
    rng = random.Random(1)
    refused = 0
    for _ in range(10_000):
        data = rng.randbytes(rng.randrange(1, 700) * 2)
        verdict = admission.offer(A, data, 0.0)
        assert not isinstance(verdict, Admitted)
        if isinstance(verdict, Refused):
            refused += verdict.datagrams
    assert refused + admission.clear() == 10_000


def test_a_short_stream_with_its_end_marker_is_admitted_and_ends() -> None:
    admission = Admission()
    assert admission.offer(A, FRAME, 0.0) is None
    verdict = admission.offer(A, b"", 0.0)
    assert isinstance(verdict, Admitted) and verdict.ends
    assert verdict.detection.datagrams == (FRAME, b"")


def test_two_rtp_packets_of_one_ssrc_are_a_stream() -> None:
    admission = Admission()
    assert admission.offer(A, rtp(10), 0.0) is None
    verdict = admission.offer(A, rtp(11), 0.01)
    assert isinstance(verdict, Admitted)
    assert verdict.detection.wire is Wire.RTP


def test_an_end_marker_alone_and_a_lone_datagram_open_nothing() -> None:
    admission = Admission()
    assert admission.offer(A, b"", 0.0) == Refused(1, "an end marker with no stream")
    assert admission.offer(A, b"\x01\x02", 0.0) is None
    assert admission.expire(CANDIDATE_WINDOW_S / 2) is None
    assert admission.expire(CANDIDATE_WINDOW_S) == Refused(1, "nothing like a stream followed")
    assert not admission.pending


def test_sources_are_judged_apart_and_their_number_is_bounded() -> None:
    admission = Admission()
    for port in range(1000):  # a spoofed flood, one datagram per source
        admission.offer(("192.0.2.9", port), FRAME, 0.0)
    assert admission.clear() == MAX_CANDIDATES
    admission.offer(A, FRAME, 0.0)
    admission.offer(B, bytes(7), 0.0)  # another source's junk in between
    admission.offer(A, FRAME, 0.0)
    assert isinstance(admission.offer(A, FRAME, 0.0), Admitted)


# -- AllowList -------------------------------------------------------------------------------


def test_the_allow_list_takes_addresses_and_networks_of_both_families() -> None:
    allow = AllowList.parse(["192.168.1.0/24", "10.0.0.5", "fd00::/8"])
    assert [allow.permits(h) for h in ("192.168.1.20", "192.168.2.1", "10.0.0.5", "10.0.0.6")] == [
        True, False, True, False,
    ]
    assert allow.permits("fd12::1") and not allow.permits("fe80::1%eth0")
    assert allow.permits("::ffff:192.168.1.7")  # an IPv4 sender seen by a dual-stack socket
    assert AllowList().permits("203.0.113.1")  # empty: everyone
    assert str(allow) == "192.168.1.0/24, 10.0.0.5/32, fd00::/8"


def test_a_bad_allow_entry_is_named() -> None:
    with pytest.raises(ValueError, match=r"'192\.168\.1' is not an IP address or network"):
        AllowList.parse(["192.168.1"])


# -- NoticeLimiter ---------------------------------------------------------------------------


def test_notices_are_limited_and_summarised(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    notices = NoticeLimiter(logging.getLogger("test.notices"), 10.0, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, "test.notices"):
        for i in range(5000):
            notices.warning("ignored", "ignoring 10.0.0.%d", i)
        assert notices.suppressed("ignored") == 4999
        now[0] = 10.0
        notices.flush()
        notices.warning("ignored", "ignoring %s", "again")  # within 10 s of the summary
        now[0] = 20.0
        notices.warning("ignored", "ignoring %s", "later")
    assert [r.getMessage() for r in caplog.records] == [
        "ignoring 10.0.0.0",
        "4999 more like 'ignored' in the last 10 s",
        "ignoring later (and 1 more like it in the last 10 s)",
    ]


# -- SessionManager --------------------------------------------------------------------------


def test_junk_to_an_idle_listener_opens_nothing_and_the_next_stream_starts_at_once() -> None:
    sessions = Sessions()
    rng = random.Random(2)
    for i in range(2000):
        sessions.send(A, rng.randbytes(rng.randrange(1, 700) * 2), at=i * 0.00005)
    sessions.send(B, FRAME, FRAME, FRAME, at=0.1)
    assert [s.source for s in sessions.started] == [B]
    assert sessions.buffer.depth * 2 == 3 * len(FRAME)  # no noise queued ahead of it
    assert sessions.manager.invalid_outside_sessions >= 2000 - ADMIT_RAW_DATAGRAMS


def test_a_stray_datagram_does_not_hold_the_listener() -> None:
    sessions = Sessions()
    sessions.send(A, b"\x00\x01", at=0.0)
    sessions.send(B, FRAME, FRAME, FRAME, at=0.01)
    assert [s.source for s in sessions.started] == [B]


def test_a_silent_owner_is_taken_over_after_the_takeover_time() -> None:
    sessions = Sessions(takeover_s=0.5)
    sessions.send(A, FRAME, FRAME, FRAME, at=0.0)
    sessions.send(B, FRAME, FRAME, FRAME, at=0.3)  # the owner may just be late: ignored
    assert len(sessions.started) == 1 and sessions.manager.session is not None
    assert sessions.manager.session.ignored == 3
    sessions.send(B, FRAME, FRAME, FRAME, at=0.5)
    assert [s.source for s in sessions.started] == [A, B]
    [ended] = sessions.ended
    assert ended.end_reason is EndReason.TAKEN_OVER


def test_a_displaced_backlog_goes_and_a_real_time_tail_stays() -> None:
    sessions = Sessions()
    sessions.send(A, *[FRAME] * 500, b"", at=0.0)  # 10 s at once, as a fast sender would
    assert sessions.buffer.depth == 500 * 160
    sessions.send(B, FRAME, FRAME, FRAME, at=0.1)
    target = sessions.buffer.target
    assert sessions.buffer.depth == target + 3 * 160
    assert sessions.manager.displaced_ms == (500 * 160 - target) * 1000 // 8000
    played = sessions.buffer.read(target + 3 * 160)
    assert played[: target * 2] == (FRAME * 500)[: target * 2]
    assert played[target * 2 :] == FRAME * 3  # B's stream follows the kept tail seamlessly


def test_the_same_source_s_next_stream_queues_behind_its_last() -> None:
    sessions = Sessions()
    sessions.send(A, *[FRAME] * 100, b"", at=0.0)
    sessions.send(A, *[FRAME] * 100, b"", at=0.1)
    assert sessions.buffer.depth == 200 * 160
    assert sessions.manager.displaced_ms == 0


def test_an_empty_datagram_does_not_end_an_rtp_stream_but_its_bye_does() -> None:
    sessions = Sessions()
    sessions.send(A, rtp(1), rtp(2), b"", rtp(3), at=0.0)
    session = sessions.manager.session
    assert session is not None and session.invalid == 1
    sessions.send(A, bye(0x9999), at=0.1)  # another stream's BYE
    assert sessions.manager.session is session
    sessions.send(A, bye(0x1234), at=0.1)
    assert [s.end_reason for s in sessions.ended] == [EndReason.BYE]


def test_the_allow_list_drops_strangers_first(caplog: pytest.LogCaptureFixture) -> None:
    sessions = Sessions(allow=AllowList.parse(["192.0.2.2"]))
    with caplog.at_level(logging.WARNING, "appliance.listener.sessions"):
        for _ in range(100):
            sessions.send(A, FRAME, at=0.0)
    sessions.send(B, FRAME, FRAME, FRAME, at=0.0)
    assert [s.source for s in sessions.started] == [B]
    assert sessions.manager.refused == 100
    assert [r.getMessage() for r in caplog.records] == [
        "refused 192.0.2.1:4000: not in the allow-list (192.0.2.2/32)"
    ]


def test_ignored_sources_cost_one_log_line_not_one_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sessions = Sessions()
    sessions.send(A, FRAME, FRAME, FRAME, at=0.0)
    with caplog.at_level(logging.WARNING, "appliance.listener.sessions"):
        for port in range(5000):
            sessions.send(("192.0.2.7", port), FRAME, at=0.01)
    assert len(caplog.records) == 1
    assert sessions.manager.session is not None
    assert sessions.manager.session.ignored == 5000


def test_memory_is_flat_over_50000_sessions() -> None:
    sessions = Sessions()
    manager, buffer = sessions.manager, sessions.buffer
    sessions.started = sessions.ended = []  # what a listener keeps is bounded elsewhere
    manager._on_start = manager._on_end = None

    def churn(count: int, offset: int) -> None:
        for i in range(count):
            source = ("192.0.2.3", 1024 + (offset + i) % 60000)
            at = (offset + i) * 0.001
            manager.handle(FRAME, source, at)
            manager.handle(FRAME, source, at)
            manager.handle(FRAME, source, at)
            manager.handle(b"", source, at)
            manager.handle(FRAME, ("192.0.2.4", i), at)  # a stray in between
            buffer.read(3 * 160)

    churn(10_000, 0)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        churn(40_000, 10_000)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert manager.session is None
    # Before: about 0.7 kB per session kept for good (28 MB for these 40,000).
    assert after - before < 64 * 1024, f"grew {after - before} bytes over 40,000 sessions"
