"""TXT properties <-> ListenerProperties, ListenerRecord from a ServiceInfo, format checks."""

from __future__ import annotations

import pytest
from zeroconf import ServiceInfo

from appliance import __version__
from appliance.discovery.records import (
    SERVICE_TYPE,
    ListenerProperties,
    ListenerRecord,
    NetworkFigures,
    instance_name,
    service_name,
)

FIGURES = NetworkFigures(
    lost=3,
    late=1,
    reordered=5,
    duplicates=0,
    jitter_ms=4.2,
    concealed_ms=120,
    concealments=3,
    drift_ppm=-998,
)


def test_default_properties_are_the_appliance_format() -> None:
    assert ListenerProperties(state="waiting").to_properties() == {
        "rate": "8000",
        "format": "s16le",
        "channels": "1",
        "ptime": "20",
        "version": __version__,
        "state": "waiting",
    }


@pytest.mark.parametrize(
    "properties",
    [
        ListenerProperties(state="playing"),
        ListenerProperties(rate=16000, format="s24le", channels=2, ptime=10, state=None),
        ListenerProperties(version=None, extra={"owner": "kitchen", "flag": None}),
        ListenerProperties(state="playing", latency_ms=65, network=FIGURES),
        ListenerProperties(state="waiting", latency_ms=60, extra={"owner": "kitchen"}),
    ],
)
def test_parse_round_trips(properties: ListenerProperties) -> None:
    assert ListenerProperties.parse(properties.to_properties()) == properties


def test_parse_unreadable_numbers_become_none() -> None:
    parsed = ListenerProperties.parse({"rate": "fast", "channels": "", "format": "s16le"})
    assert (parsed.rate, parsed.channels, parsed.ptime, parsed.state) == (None, None, None, None)


def test_format_mismatch_names_each_wrong_key() -> None:
    theirs = ListenerProperties(rate=16000, channels=2)
    assert theirs.format_mismatch() == (
        "it advertises rate=16000, channels=2; we send rate=8000, format=s16le, channels=1"
    )


def test_missing_format_keys_are_not_a_mismatch() -> None:
    assert ListenerProperties.parse({"state": "waiting"}).format_mismatch() is None


def test_record_from_service_info() -> None:
    info = ServiceInfo(
        SERVICE_TYPE,
        service_name("Kitchen"),
        port=5005,
        properties=ListenerProperties(state="playing").to_properties(),
        server="pi.local.",
        parsed_addresses=["192.0.2.7", "2001:db8::7"],
    )
    record = ListenerRecord.from_service_info(info)
    assert record == ListenerRecord(
        name="Kitchen",
        server="pi.local.",
        addresses=("192.0.2.7",),
        port=5005,
        properties=ListenerProperties(state="playing"),
    )
    assert record.can_play_our_format()
    only_v6 = ServiceInfo(SERVICE_TYPE, service_name("v6"), port=1, parsed_addresses=["::1"])
    assert ListenerRecord.from_service_info(only_v6).addresses == ("::1",)
    assert record.to_json() == {
        "name": "Kitchen",
        "host": "pi.local.",
        "addresses": ["192.0.2.7"],
        "port": 5005,
        "state": "playing",
        "rate": 8000,
        "format": "s16le",
        "channels": 1,
        "ptime": 20,
        "version": __version__,
        "rtp": None,
        "latency_ms": None,
        "network": None,
        "sync": None,
    }


def test_record_to_json_with_rtp() -> None:
    props = ListenerProperties(
        rtp=frozenset({0, 8, 10, 11, *range(96, 128)}),
        l16_base=112,
        rtp_map=("96=L16/48000/2",),
        max_rate=48000,
        max_channels=2,
        state="waiting",
    )
    record = ListenerRecord("x", "pi.local.", ("192.0.2.7",), 5005, props)
    assert record.to_json()["rtp"] == {
        "payload_types": [0, 8, 10, 11, *range(96, 128)],
        "l16_base": 112,
        "map": ["96=L16/48000/2"],
        "max_rate": 48000,
        "max_channels": 2,
    }


def test_record_to_json_with_latency_and_network() -> None:
    props = ListenerProperties(state="waiting", latency_ms=65, network=FIGURES)
    record = ListenerRecord("x", "pi.local.", ("192.0.2.7",), 5005, props)
    json = record.to_json()
    assert (json["latency_ms"], json["network"]) == (
        65,
        {
            "lost": 3,
            "late": 1,
            "reordered": 5,
            "duplicates": 0,
            "jitter_ms": 4.2,
            "concealed_ms": 120,
            "concealments": 3,
            "drift_ppm": -998,
        },
    )


def test_record_with_other_format_cannot_play() -> None:
    props = ListenerProperties(format="s24le")
    record = ListenerRecord("x", "pi.local.", ("192.0.2.7",), 5005, props)
    assert not record.can_play_our_format()
    assert props.describe_format() == "s24le 8000Hz 1ch 20ms"


def test_instance_and_service_names() -> None:
    assert service_name("Living Room") == "Living Room._pcmaudio._udp.local."
    assert instance_name("Living Room._PCMAUDIO._udp.local.") == "Living Room"
    assert instance_name("plain") == "plain"
