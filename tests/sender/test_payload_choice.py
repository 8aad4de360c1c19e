"""Which wire and payload type a source goes out on (plan_stream), and the errors when none."""

from __future__ import annotations

import logging

import pytest

from appliance.audio.format import SUPPORTED_RATES, AudioFormat
from appliance.discovery.records import (
    ListenerProperties,
    ListenerRecord,
)
from appliance.errors import UsageError
from appliance.sender.conversion import choose_format, sendable_format
from appliance.sender.plan import ASSUMED_LISTENER, StreamPlan, plan_stream, playable_formats
from appliance.wire import Wire
from appliance.wire.payload import (
    RTP_DEFAULT_FORMAT,
    STATIC_FORMATS,
    PayloadMap,
    l16_table,
    parse_mapping,
)

ALL_TYPES = frozenset({0, 8, 10, 11, *range(96, 128)})
TARGET = "kitchen (192.0.2.20:5005)"


def appliance_listener(*texts: str, name: str = "kitchen") -> ListenerRecord:
    """A listener as an appliance advertises it: built-in L16 table plus ``texts``, through a
    real TXT round trip."""
    dynamic = {**l16_table(112), **dict(parse_mapping(t) for t in texts)}
    props = ListenerProperties.for_payload_map(PayloadMap(dynamic, RTP_DEFAULT_FORMAT))
    props = ListenerProperties.parse(props.to_properties())
    return ListenerRecord(name, "pi.local.", ("192.0.2.20",), 5005, props)


def listener_with(props: ListenerProperties, name: str = "kitchen") -> ListenerRecord:
    return ListenerRecord(name, "pi.local.", ("192.0.2.20",), 5005, props)


OLD_LISTENER = listener_with(ListenerProperties.parse({"rate": "8000", "format": "s16le"}))


def plan(
    fmt: AudioFormat,
    listener: ListenerRecord | None,
    force: Wire | None = None,
) -> StreamPlan:
    return plan_stream(
        fmt,
        listener,
        source_name="song.wav",
        target=TARGET if listener is None else f"{listener.name} (192.0.2.20:5005)",
        force=force,
    )


def builtin_type(rate: int, channels: int) -> int:
    return 112 + 2 * SUPPORTED_RATES.index(rate) + channels - 1


COMBINATIONS = [(rate, channels) for rate in SUPPORTED_RATES for channels in (1, 2)]


@pytest.mark.parametrize(("rate", "channels"), COMBINATIONS)
def test_every_rate_and_channel_count_to_an_appliance_listener(rate: int, channels: int) -> None:
    expected = {1: 11, 2: 10}[channels] if rate == 44100 else builtin_type(rate, channels)
    chosen = plan(AudioFormat(rate, channels), appliance_listener())
    assert chosen == StreamPlan(Wire.RTP, AudioFormat(rate, channels), expected)
    # --rtp to an address assumes just that table.
    assert plan(AudioFormat(rate, channels), None, force=Wire.RTP).payload_type == expected


def test_the_builtin_table_is_the_one_of_the_brief() -> None:
    table = l16_table(112)
    assert (table[112].rate, table[112].channels) == (8000, 1)
    assert (table[115].rate, table[115].channels) == (11025, 2)
    assert (table[127].rate, table[127].channels) == (48000, 2)
    assert {fmt.encoding for fmt in table.values()} == {"s16be"}


def test_the_users_map_comes_first() -> None:
    listener = appliance_listener("96=L16/48000/2", "100=L16/16000")
    assert plan(AudioFormat(48000, 2), listener).payload_type == 96
    assert plan(AudioFormat(16000, 1), listener).payload_type == 100
    assert plan(AudioFormat(22050, 2), listener).payload_type == builtin_type(22050, 2)


def test_cd_audio_keeps_its_static_type_whatever_the_map() -> None:
    listener = appliance_listener("96=L16/44100/2")
    assert plan(AudioFormat(44100, 2), listener).payload_type == 10


def test_a_builtin_type_the_user_remapped_is_not_used() -> None:
    listener = appliance_listener("127=PCMU/8000", "126=L16/16000")
    assert listener.properties.l16_base == 112
    assert listener.properties.rtp_map == ("126=L16/16000", "127=PCMU/8000")
    # 48 kHz stereo is no longer played as L16: the best below it is CD audio, type 10.
    assert plan(AudioFormat(48000, 2), listener) == StreamPlan(Wire.RTP, AudioFormat(44100, 2), 10)
    assert plan(AudioFormat(16000, 1), listener).payload_type == 126  # its own map first


def test_8_khz_mono_without_a_table_uses_a_type_mapped_to_the_default() -> None:
    props = ListenerProperties(rtp=ALL_TYPES, rtp_map=("96=L16/48000/2",))
    assert plan(AudioFormat(8000, 1), listener_with(props)).payload_type == 97
    assert plan(AudioFormat(48000, 2), listener_with(props)).payload_type == 96
    # 16 kHz mono: not played; the best not above it is 8000 Hz mono.
    assert plan(AudioFormat(16000, 1), listener_with(props)) == StreamPlan(
        Wire.RTP, AudioFormat(8000, 1), 97
    )


def test_an_unreadable_map_entry_is_never_used() -> None:
    props = ListenerProperties(rtp=ALL_TYPES, rtp_map=("96=OPUS/48000/2", "97=L16/48000/2"))
    assert props.rtp_payload_types() == ALL_TYPES - {96}
    assert plan(AudioFormat(8000, 1), listener_with(props)).payload_type == 98
    assert plan(AudioFormat(48000, 2), listener_with(props)).payload_type == 97


def test_a_listener_playing_only_g711_over_rtp() -> None:
    props = ListenerProperties(rtp=frozenset({0, 8}))
    with pytest.raises(UsageError) as caught:
        plan(AudioFormat(8000, 1), listener_with(props, "phone"))
    assert str(caught.value) == (
        "listener 'phone' plays no RTP payload type for song.wav (8000 Hz mono L16); over RTP "
        "it plays PCMU 8000 Hz mono, PCMA 8000 Hz mono"
    )


# -- the wire ------------------------------------------------------------------------------


def test_8_khz_mono_to_an_address_goes_raw() -> None:
    assert plan(AudioFormat(8000, 1), None) == StreamPlan(Wire.RAW, AudioFormat(8000, 1))


def test_a_listener_advertising_rtp_gets_rtp_even_for_8_khz_mono() -> None:
    assert plan(AudioFormat(8000, 1), appliance_listener()) == StreamPlan(
        Wire.RTP, AudioFormat(8000, 1), 112
    )


def test_raw_can_be_forced_for_8_khz_mono() -> None:
    assert plan(AudioFormat(8000, 1), appliance_listener(), force=Wire.RAW).wire == "raw"


def test_an_old_listener_gets_the_raw_wire() -> None:
    assert plan(AudioFormat(8000, 1), OLD_LISTENER).wire == "raw"


@pytest.mark.parametrize(
    ("fmt", "listener", "force"),
    [
        pytest.param(AudioFormat(48000, 2), None, None, id="to-an-address"),
        pytest.param(AudioFormat(16000, 1), appliance_listener(), Wire.RAW, id="forced-raw"),
        pytest.param(AudioFormat(8000, 2), OLD_LISTENER, None, id="to-an-old-listener"),
    ],
)
def test_other_audio_on_the_raw_wire_is_sent_as_8_khz_mono(
    fmt: AudioFormat, listener: ListenerRecord | None, force: Wire | None
) -> None:
    assert plan(fmt, listener, force=force) == StreamPlan(Wire.RAW, AudioFormat(8000, 1))


def test_rtp_forced_to_an_old_listener_warns_and_assumes_the_defaults(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        chosen = plan(AudioFormat(48000, 2), OLD_LISTENER, force=Wire.RTP)
    assert chosen == StreamPlan(Wire.RTP, AudioFormat(48000, 2), 127)
    assert "listener 'kitchen' advertises no RTP; sending RTP anyway (--rtp)" in caplog.text


def test_the_assumed_listener_is_an_appliance_without_a_map() -> None:
    assert ASSUMED_LISTENER.rtp == ALL_TYPES
    assert ASSUMED_LISTENER.rtp_formats() == {
        **STATIC_FORMATS,
        **{pt: RTP_DEFAULT_FORMAT for pt in range(96, 112)},
        **l16_table(112),
    }


def test_plan_descriptions() -> None:
    assert StreamPlan(Wire.RTP, AudioFormat(48000, 2), 127).describe() == (
        "RTP type 127 (L16 48000 Hz stereo)"
    )
    assert StreamPlan(Wire.RAW, AudioFormat()).describe() == "raw (8000 Hz mono s16le)"


# -- what is sent: the conversion rule -----------------------------------------------------

APPLIANCE = playable_formats(Wire.RTP, appliance_listener().properties)
RAW = {(8000, 1)}


@pytest.mark.parametrize(
    ("rate", "channels", "playable", "sent"),
    [
        pytest.param(44100, 2, APPLIANCE, (44100, 2), id="cd-flac-kept"),
        pytest.param(44100, 2, RAW, (8000, 1), id="cd-to-raw"),
        pytest.param(22050, 1, APPLIANCE, (22050, 1), id="22050-kept"),
        pytest.param(96000, 2, APPLIANCE, (48000, 2), id="96k-down-to-48k"),
        pytest.param(88200, 6, APPLIANCE, (48000, 2), id="88k2-5.1-to-48k-stereo"),
        pytest.param(12000, 1, APPLIANCE, (16000, 1), id="12k-up-to-16k"),
        pytest.param(11000, 2, APPLIANCE, (11025, 2), id="11k-up-to-11025"),
        pytest.param(48000, 2, {(8000, 1), (44100, 2), (48000, 1)}, (48000, 1), id="rate-first"),
        pytest.param(32000, 2, {(8000, 1), (44100, 2)}, (8000, 1), id="best-not-above"),
        pytest.param(8000, 1, {(48000, 2), (16000, 2)}, (16000, 2), id="smallest-above"),
    ],
)
def test_the_format_sent(
    rate: int, channels: int, playable: set[tuple[int, int]], sent: tuple[int, int]
) -> None:
    chosen = choose_format(sendable_format(rate, channels), playable)
    assert chosen is not None and (chosen.rate, chosen.channels) == sent


def test_a_listener_playing_no_l16_gets_nothing() -> None:
    assert choose_format(AudioFormat(8000, 1), set()) is None
    assert playable_formats(Wire.RTP, ListenerProperties(rtp=frozenset({0, 8}))) == set()


def test_an_appliance_listener_plays_every_supported_format() -> None:
    assert {(r, c) for r in SUPPORTED_RATES for c in (1, 2)} == APPLIANCE
