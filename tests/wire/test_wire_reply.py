"""The listener's reply format (appliance.wire.reply): raw datagram and RTCP APP packet."""

from __future__ import annotations

import pytest

from appliance.wire.reply import (
    SIZE,
    ListenerReply,
    ReplyState,
    app_packet,
    is_reply,
    reply_in_compound,
)
from appliance.wire.rtcp import APP, ReceiverReport, UnknownRtcp, pack_compound, parse_compound
from appliance.wire.rtp import InvalidPacket


@pytest.mark.parametrize("state", list(ReplyState))
def test_a_reply_round_trips(state: ReplyState) -> None:
    reply = ListenerReply(
        state, buffer_ms=85, played_ms=5_200, lost=3, concealed_ms=60, session=7
    )
    data = bytes(reply)
    assert len(data) == SIZE == 24
    assert data[:6] == b"APLR" + bytes([1, int(state)])
    assert is_reply(data)
    assert ListenerReply.parse(data) == reply


def test_the_layout_is_big_endian_and_fixed() -> None:
    reply = ListenerReply(ReplyState.STOPPED, 0x0102, 0x03040506, 7, 8, 9)
    assert bytes(reply) == bytes.fromhex(
        "41504c52" "01" "03" "0102" "03040506" "00000007" "00000008" "00000009"
    )


def test_later_versions_with_more_fields_are_read() -> None:
    data = bytearray(bytes(ListenerReply(ReplyState.PLAYING, 40)))
    data[4] = 2
    reply = ListenerReply.parse(bytes(data) + b"more")
    assert (reply.version, reply.state, reply.buffer_ms) == (2, ReplyState.PLAYING, 40)


@pytest.mark.parametrize(
    "data",
    [b"", b"APLR", bytes(24), b"APLR" + bytes([1, 9]) + bytes(18), b"APLR" + bytes(20)],
    ids=["empty", "magic-only", "zeros", "unknown-state", "version-0"],
)
def test_what_is_not_a_reply_is_refused(data: bytes) -> None:
    with pytest.raises(InvalidPacket):
        ListenerReply.parse(data)


def test_out_of_range_fields_are_refused() -> None:
    with pytest.raises(ValueError, match="buffer depth"):
        ListenerReply(ReplyState.PLAYING, buffer_ms=70_000)
    with pytest.raises(ValueError, match="lost"):
        ListenerReply(ReplyState.PLAYING, lost=-1)


def test_the_app_packet_carries_the_reply_in_a_valid_compound() -> None:
    reply = ListenerReply(ReplyState.BUSY)
    app = app_packet(0x11223344, reply)
    assert (app.packet_type, app.count) == (APP, int(ReplyState.BUSY))
    compound = pack_compound([ReceiverReport(0x11223344), app])
    first, second = parse_compound(compound)
    assert first == ReceiverReport(0x11223344)
    assert isinstance(second, UnknownRtcp)
    assert second.body[4:8] == b"APLR"
    assert reply_in_compound(compound) == reply
    assert reply_in_compound(pack_compound([ReceiverReport(1)])) is None
