"""``appliance discover`` and ``appliance status`` through their argparse sub-parsers."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

import pytest
from discovery_helpers import TEST_SERVER, AdvertiseFactory, unique_name, wait_all_registered

from appliance import __version__
from appliance.commands import discover, status
from appliance.discovery import ListenerEvent, ListenerProperties, ListenerRecord
from appliance.discovery.records import NetworkFigures
from appliance.wire.payload import RTP_DEFAULT_FORMAT, PayloadMap, l16_table, parse_mapping

pytest_plugins = ("discovery_fixtures",)  # the advertise fixture


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="appliance")
    subparsers = parser.add_subparsers(dest="command", required=True)
    discover.add_parser(subparsers)
    status.add_parser(subparsers)
    args = parser.parse_args(argv)
    result: int = args.run(args)
    return result


USER_MAP = PayloadMap(
    {
        **l16_table(112),
        **dict(parse_mapping(text) for text in ("96=L16/48000/2", "100=PCMA/8000")),
    },
    RTP_DEFAULT_FORMAT,
)
"""An appliance listener's map: the built-in L16 table and two entries of its own."""

RECORD = ListenerRecord(
    "kitchen",
    "raspberrypi.local.",
    ("192.0.2.20", "192.0.2.21"),
    5005,
    ListenerProperties(version="0.1.0", state="playing"),
)


RTP_RECORD = ListenerRecord(
    "attic",
    "attic.local.",
    ("192.0.2.30",),
    5005,
    ListenerProperties(
        rtp=frozenset({0, 8, 10, 11, *range(96, 128)}),
        l16_base=112,
        rtp_map=("96=L16/48000/2", "100=PCMA/8000"),
        max_rate=48000,
        max_channels=2,
        version="0.2.0",
        state="waiting",
    ),
)

PLAYOUT_RECORD = ListenerRecord(
    "porch",
    "porch.local.",
    ("192.0.2.40",),
    5005,
    ListenerProperties(
        version="0.3.0",
        state="playing",
        latency_ms=65,
        network=NetworkFigures(
            lost=3,
            late=1,
            reordered=5,
            duplicates=0,
            jitter_ms=4.2,
            concealed_ms=120,
            concealments=3,
            drift_ppm=-998,
        ),
    ),
)


def test_format_table() -> None:
    other = ListenerRecord("cellar", "c.local.", (), 6000, ListenerProperties.parse({}))
    assert discover.format_table([RECORD, RTP_RECORD, other]).splitlines() == [
        "NAME     HOST               ADDRESSES              PORT  STATE    FORMAT"
        "                 RTP",
        "kitchen  raspberrypi.local  192.0.2.20,192.0.2.21  5005  playing  s16le 8000Hz 1ch 20ms"
        "  -",
        "attic    attic.local        192.0.2.30             5005  waiting  s16le 8000Hz 1ch 20ms"
        "  L16,PCMU,PCMA 8000-48000Hz 1-2ch",
        "cellar   c.local            -                      6000  ?        ? ?Hz ?ch ?ms"
        "          -",
    ]


def test_format_watch_events() -> None:
    assert discover.format_event(ListenerEvent("added", "kitchen", RECORD), False) == (
        "+ kitchen  192.0.2.20,192.0.2.21:5005  playing"
    )
    assert discover.format_event(ListenerEvent("removed", "kitchen", None), False) == "- kitchen"
    assert json.loads(discover.format_event(ListenerEvent("removed", "k", None), True)) == {
        "event": "removed",
        "name": "k",
        "listener": None,
    }


def test_format_status() -> None:
    assert status.format_status(RECORD) == (
        "name:      kitchen\n"
        "state:     playing\n"
        "host:      raspberrypi.local\n"
        "addresses: 192.0.2.20, 192.0.2.21\n"
        "port:      5005\n"
        "format:    s16le 8000Hz 1ch 20ms\n"
        "version:   0.1.0"
    )


def test_format_status_with_rtp() -> None:
    assert status.format_status(RTP_RECORD).splitlines()[5:] == [
        "format:    s16le 8000Hz 1ch 20ms",
        "rtp:       L16,PCMU,PCMA 8000-48000Hz 1-2ch",
        "rtp types: 0,8,10,11,96-127 (L16 table from 112)",
        "rtp map:   96=L16/48000/2, 100=PCMA/8000",
        "version:   0.2.0",
    ]


def test_format_status_with_latency_and_network() -> None:
    assert status.format_status(PLAYOUT_RECORD).splitlines()[5:] == [
        "format:    s16le 8000Hz 1ch 20ms",
        "latency:   target 65 ms",
        "network:   lost 3, late 1, reordered 5, duplicates 0, jitter 4.2 ms,",
        "           concealed 120 ms in 3 gaps, drift -998 ppm",
        "version:   0.3.0",
    ]


def test_format_status_before_any_session_and_for_a_raw_stream() -> None:
    props = PLAYOUT_RECORD.properties
    before = ListenerRecord("p", "p.local.", (), 1, replace(props, network=None))
    assert status.format_status(before).splitlines()[6:8] == [
        "latency:   target 65 ms",
        "network:   no session yet",
    ]
    assert props.network is not None
    raw = replace(props.network, lost=None, concealments=1, drift_ppm=None)
    record = ListenerRecord("p", "p.local.", (), 1, replace(props, network=raw))
    assert status.format_status(record).splitlines()[7:9] == [
        "network:   late 1, reordered 5, duplicates 0, jitter 4.2 ms,",
        "           concealed 120 ms in 1 gap, drift not measured",
    ]
    # Only the figures, no target (a listener that publishes just one of the keys): "?".
    record = ListenerRecord("p", "p.local.", (), 1, replace(props, latency_ms=None))
    assert status.format_status(record).splitlines()[6] == "latency:   ?"


def test_discover_json_lists_the_listener(
    advertise: AdvertiseFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    name, rtp_name = unique_name("json"), unique_name("json-rtp")
    # Registrations probe for 1.6 s each: in parallel.
    wait_all_registered(
        [
            advertise(name, port=6400, wait=False),
            advertise(rtp_name, port=6401, wait=False, payload_map=USER_MAP),
        ]
    )
    assert run("discover", "--interface", "127.0.0.1", "--timeout", "4", "--json") == 0
    listed = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    common = {
        "host": TEST_SERVER,
        "addresses": ["127.0.0.1"],
        "state": "waiting",
        "rate": 8000,
        "format": "s16le",
        "channels": 1,
        "ptime": 20,
        "version": __version__,
        "latency_ms": None,
        "network": None,
        "sync": None,
    }
    assert listed[name] == {"name": name, "port": 6400, **common, "rtp": None}
    assert listed[rtp_name] == {
        "name": rtp_name,
        "port": 6401,
        **common,
        "rtp": {
            "payload_types": [0, 8, 10, 11, *range(96, 128)],
            "l16_base": 112,
            "map": ["96=L16/48000/2", "100=PCMA/8000"],
            "max_rate": 48000,
            "max_channels": 2,
        },
    }


def test_discover_with_nothing_found_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("discover", "--interface", "127.0.0.1", "--timeout", "0.5") == 0
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == (
        "",
        "no listeners found within 0.5 s on 127.0.0.1\n",
    )


def test_status_prints_the_advertised_state(
    advertise: AdvertiseFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    name = unique_name("status")
    advertise(name, port=6500)
    assert run("status", name.upper(), "--interface", "127.0.0.1", "--timeout", "30") == 0
    assert capsys.readouterr().out.splitlines()[:2] == [f"name:      {name}", "state:     waiting"]


def test_timeouts_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        run("discover", "--timeout", "0")
    assert "must be more than 0 seconds: '0'" in capsys.readouterr().err
