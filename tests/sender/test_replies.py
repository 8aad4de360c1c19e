"""What the sender makes of the listener's replies and silences (appliance.sender.replies)."""

from __future__ import annotations

from appliance.sender.replies import REPORT_WAIT_S, TargetState
from appliance.wire.reply import ListenerReply, ReplyState, app_packet
from appliance.wire.rtcp import ReceiverReport, ReportBlock, pack_compound

KITCHEN = "kitchen (192.0.2.20:5005)"


def test_a_listener_found_by_name_that_never_reports_fails() -> None:
    state = TargetState(("192.0.2.20", 5005), KITCHEN, required=True, first_sent_at=10.0)
    assert state.check(10.0 + REPORT_WAIT_S / 2) is None and state.live
    assert state.check(10.0 + REPORT_WAIT_S) is None
    assert state.failure == f"no report from {KITCHEN}: it is not playing this stream"


def test_an_address_that_never_reports_gets_one_warning() -> None:
    state = TargetState(("192.0.2.30", 5005), "192.0.2.30:5005", first_sent_at=0.0)
    assert state.check(REPORT_WAIT_S) == (
        "no report from 192.0.2.30:5005: playback cannot be confirmed"
    )
    assert state.check(REPORT_WAIT_S * 5) is None
    assert state.live


def test_rtcp_reports_busy_and_stopped() -> None:
    state = TargetState(("192.0.2.20", 5005), KITCHEN, required=True, first_sent_at=0.0)
    block = ReportBlock(0xABC, 16, 3, 70_000, 12, 0, 0)
    playing = ListenerReply(ReplyState.PLAYING, buffer_ms=90, lost=3)
    state.receive(pack_compound([ReceiverReport(7, (block,)), app_packet(7, playing)]), 0xABC)
    assert (state.reports, state.last, state.lost, state.block) == (1, playing, 3, block)
    stopped = ListenerReply(ReplyState.STOPPED, played_ms=5_200, lost=3)
    state.receive(bytes(stopped))
    state.audio_bytes = 5_210 * 16  # 5.21 s of 8000 Hz mono s16
    assert state.played_line(rtp=True) == "listener played 5.20 s of 5.21 s sent; 3 lost"
    state.refused()  # a --once listener closing its port after the stream: no failure
    assert state.live and state.check(100.0) is None
    state.receive(bytes(ListenerReply(ReplyState.BUSY)))
    assert state.failure == f"{KITCHEN} is busy playing another stream"


def test_anything_else_is_ignored() -> None:
    state = TargetState(("192.0.2.20", 5005), KITCHEN)
    for data in (b"", bytes(320), b"APLR", b"\x80\xc9\x00\x05junk"):
        state.receive(data)
    assert (state.reports, state.failure) == (0, None)
