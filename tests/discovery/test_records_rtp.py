"""The RTP keys of a listener's TXT record: rtp, l16, map, maxrate, maxch; round trips, sizes,
the payload map rebuilt from them, and an advertiser publishing them over real mDNS."""

from __future__ import annotations

import logging

import pytest
from discovery_helpers import LO, AdvertiseFactory, unique_name

from appliance import __version__
from appliance.audio.format import AudioFormat, Encoding
from appliance.discovery import Advertiser, discover_listeners
from appliance.discovery.records import (
    MAX_TXT_STRING_BYTES,
    PLAYOUT_TXT_RESERVE_BYTES,
    TXT_RECORD_BUDGET_BYTES,
    ListenerProperties,
    format_payload_types,
    parse_payload_types,
    txt_record_bytes,
    txt_strings,
)
from appliance.listener.listener import ListenerConfig
from appliance.wire.payload import (
    BUILTIN_DYNAMIC,
    BUILTIN_L16_BASE,
    RTP_DEFAULT_FORMAT,
    PayloadMap,
    l16_table,
    parse_mapping,
)

pytest_plugins = ("discovery_fixtures",)  # the advertise fixture

ALL_TYPES = frozenset({0, 8, 10, 11, *range(96, 128)})


def appliance_map(*texts: str) -> PayloadMap:
    """An appliance listener's payload map: the built-in L16 table, then ``texts``."""
    return PayloadMap({**l16_table(112), **dict(map(parse_mapping, texts))}, RTP_DEFAULT_FORMAT)


def same_wire(a: AudioFormat | None, b: AudioFormat | None) -> bool:
    if a is None or b is None:
        return a is b
    return (a.rate, a.channels, a.encoding) == (b.rate, b.channels, b.encoding)


@pytest.mark.parametrize(
    ("types", "text"),
    [
        (ALL_TYPES, "0,8,10,11,96-127"),
        ({1, 2}, "1,2"),
        ({1, 2, 3}, "1-3"),
        ({5, 0, 127, 126, 125, 7}, "0,5,7,125-127"),
        (set(), ""),
    ],
)
def test_payload_type_lists(types: set[int], text: str) -> None:
    assert format_payload_types(types) == text
    assert parse_payload_types(text) == frozenset(types)


@pytest.mark.parametrize("text", ["96-", "a", "5-3", "0-128", "-1"])
def test_unreadable_payload_type_lists_mean_no_rtp(text: str) -> None:
    assert parse_payload_types(text) is None


def test_an_appliance_listener_advertises_its_table_and_its_own_entries() -> None:
    props = ListenerProperties.for_payload_map(
        appliance_map("96=L16/48000/2", "100=PCMA/8000"), state="waiting"
    )
    txt = props.to_properties()
    assert txt == {
        "rate": "8000",
        "format": "s16le",
        "channels": "1",
        "ptime": "20",
        "rtp": "0,8,10,11,96-127",
        "l16": "112",
        "map": "96=L16/48000/2,100=PCMA/8000",
        "maxrate": "48000",
        "maxch": "2",
        "version": __version__,
        "state": "waiting",
    }
    assert txt_record_bytes(txt) == 155  # the example record in the records module
    assert ListenerProperties.parse(txt) == props


def test_without_user_entries_there_is_no_map_key() -> None:
    txt = ListenerProperties.for_payload_map(appliance_map(), state="underrun").to_properties()
    assert "map" not in txt
    assert (txt["rtp"], txt["l16"], txt["maxrate"], txt["maxch"]) == (
        "0,8,10,11,96-127",
        "112",
        "48000",
        "2",
    )


def test_entries_that_repeat_the_defaults_are_not_advertised() -> None:
    # 112 is the table's already, 97 the default's: neither needs saying.
    props = ListenerProperties.for_payload_map(appliance_map("112=L16/8000", "97=L16/8000"))
    assert props.rtp_map == ()


def test_an_entry_overriding_the_table_is_one_map_entry() -> None:
    props = ListenerProperties.for_payload_map(appliance_map("127=PCMU/8000"))
    assert (props.l16_base, props.rtp_map) == (112, ("127=PCMU/8000",))
    assert (props.max_rate, props.max_channels) == (48000, 2)  # 126: 48 kHz mono; 10, 113...


def test_a_listener_without_the_table_lists_its_entries() -> None:
    payloads = PayloadMap(dict([parse_mapping("96=L16/48000/2")]), RTP_DEFAULT_FORMAT, {})
    props = ListenerProperties.for_payload_map(payloads)
    assert (props.rtp, props.l16_base, props.rtp_map) == (ALL_TYPES, None, ("96=L16/48000/2",))
    rebuilt = props.payload_map()
    assert rebuilt is not None
    for pt in range(128):
        assert same_wire(rebuilt.format_for(pt), payloads.format_for(pt)), pt


def test_the_listeners_own_payload_map_advertises_the_builtin_table() -> None:
    # What `appliance listen --payload-map 96=L16/48000/2` advertises.
    payloads = ListenerConfig(payload_map=("96=L16/48000/2",)).rtp_payloads()
    props = ListenerProperties.for_payload_map(payloads)
    assert (props.rtp, props.l16_base, props.rtp_map) == (ALL_TYPES, 112, ("96=L16/48000/2",))
    assert l16_table(BUILTIN_L16_BASE) == BUILTIN_DYNAMIC
    # What the TXT's ``rtp`` implies for an unmapped dynamic type is what the listener plays.
    assert ListenerConfig().rtp_payloads().format_for(97) == RTP_DEFAULT_FORMAT


def test_no_payload_map_is_the_raw_wire_only_as_before() -> None:
    assert ListenerProperties.for_payload_map(None, state="waiting").to_properties() == {
        "rate": "8000",
        "format": "s16le",
        "channels": "1",
        "ptime": "20",
        "version": __version__,
        "state": "waiting",
    }


@pytest.mark.parametrize(
    "texts",
    [
        (),
        ("96=L16/48000/2",),
        ("96=L16/48000/2", "100=PCMA/8000", "101=PCMU/8000", "127=L16/8000"),
        ("96=L16/11025/2", "113=PCMA/8000", "120=L16/48000"),
    ],
)
def test_the_payload_map_rebuilt_from_txt_plays_what_the_listener_plays(
    texts: tuple[str, ...],
) -> None:
    original = appliance_map(*texts)
    props = ListenerProperties.parse(ListenerProperties.for_payload_map(original).to_properties())
    rebuilt = props.payload_map()
    assert rebuilt is not None
    assert props.rtp_payload_types() == ALL_TYPES
    for pt in ALL_TYPES:
        assert same_wire(rebuilt.format_for(pt), original.format_for(pt)), pt
        assert same_wire(props.rtp_formats()[pt], original.format_for(pt)), pt


def test_old_listeners_and_the_seed_have_no_payload_map() -> None:
    assert ListenerProperties.parse({"rate": "8000", "state": "waiting"}).payload_map() is None
    assert ListenerProperties.parse({}).payload_map() is None
    assert ListenerProperties.parse({}).describe_rtp() == "-"


@pytest.mark.parametrize(
    "props",
    [
        ListenerProperties(rtp=ALL_TYPES, l16_base=112, max_rate=48000, max_channels=2),
        ListenerProperties(rtp=frozenset(), state="idle"),
        ListenerProperties(rtp=frozenset({0, 8}), rtp_map=("96=OPUS/48000/2",), extra={"x": "1"}),
        ListenerProperties.for_payload_map(appliance_map("96=L16/48000/2"), state="playing"),
    ],
)
def test_rtp_properties_round_trip(props: ListenerProperties) -> None:
    assert ListenerProperties.parse(props.to_properties()) == props


def test_unknown_keys_are_kept_next_to_the_rtp_ones() -> None:
    txt = {"rtp": "0,8", "owner": "kitchen", "flag": None, "l16": "112"}
    props = ListenerProperties.parse(txt)
    assert props.extra == {"owner": "kitchen", "flag": None}
    assert (props.rtp, props.l16_base) == (frozenset({0, 8}), 112)


def test_the_raw_wire_check_is_unchanged_by_rtp_keys() -> None:
    props = ListenerProperties.parse({"rate": "16000", "rtp": "0,8,10,11,96-127"})
    assert props.format_mismatch() == (
        "it advertises rate=16000; we send rate=8000, format=s16le, channels=1"
    )
    assert props.plays_rtp


def test_several_user_entries_keep_every_string_and_the_record_small() -> None:
    texts = (
        "96=L16/48000/2",
        "97=L16/44100/2",
        "98=PCMA/8000",
        "99=PCMU/8000",
        "100=L16/22050/2",
        "101=L16/32000/2",
        "126=PCMU/8000",
        "127=L16/16000/2",
    )
    props = ListenerProperties.for_payload_map(appliance_map(*texts), state="underrun")
    txt = props.to_properties()
    assert all(len(string) <= MAX_TXT_STRING_BYTES for string in txt_strings(txt))
    assert txt_record_bytes(txt) < TXT_RECORD_BUDGET_BYTES
    assert len(props.rtp_map) == len(texts)
    assert ListenerProperties.parse(txt) == props


def test_a_map_too_long_for_one_string_continues_in_map2() -> None:
    entries = tuple(f"{pt}=L16/11025/2" for pt in range(96, 128))
    props = ListenerProperties(rtp=ALL_TYPES, rtp_map=entries)
    txt = props.to_properties()
    assert [k for k in txt if k.startswith("map")] == ["map", "map2", "map3"]
    assert all(len(string) <= MAX_TXT_STRING_BYTES for string in txt_strings(txt))
    assert ListenerProperties.parse(txt) == props


def test_describe_rtp() -> None:
    props = ListenerProperties.for_payload_map(appliance_map())
    assert props.describe_rtp() == "L16,PCMU,PCMA 8000-48000Hz 1-2ch"
    only_g711 = ListenerProperties(rtp=frozenset({0}))
    assert only_g711.describe_rtp() == "PCMU 8000Hz 1ch"


def test_an_advertiser_publishes_the_rtp_keys(advertise: AdvertiseFactory) -> None:
    name = unique_name("rtp-txt")
    payloads = appliance_map("96=L16/48000/2")
    advertise(name, port=6600, payload_map=payloads)
    [record] = [r for r in discover_listeners(2.0, LO) if r.name == name]
    assert record.properties == ListenerProperties.for_payload_map(payloads, state="waiting")
    rebuilt = record.properties.payload_map()
    assert rebuilt is not None
    assert rebuilt.format_for(96) == AudioFormat(48000, 2, Encoding.S16BE)


def test_an_oversized_record_is_advertised_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    texts = [f"{pt}=L16/11025/2" for pt in range(96, 112)] + [
        f"{pt}=PCMU/8000" for pt in range(112, 128)
    ]
    payloads = PayloadMap.from_texts(texts, RTP_DEFAULT_FORMAT)
    with (
        caplog.at_level(logging.WARNING),
        Advertiser(unique_name("big"), 6700, LO, payload_map=payloads),
    ):
        pass
    # 585 bytes, and room for lat, net and syn at their largest realistic values.
    assert (
        f"the mDNS TXT record can reach {585 + PLAYOUT_TXT_RESERVE_BYTES} bytes (over 450) "
        "because of the payload map's 32 " in caplog.text
    )
