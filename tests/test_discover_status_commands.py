"""``appliance discover`` and ``appliance status`` through their argparse sub-parsers."""

from __future__ import annotations

import argparse
import json

import pytest
from discovery_helpers import TEST_SERVER, AdvertiseFactory, unique_name

from appliance import __version__
from appliance.commands import discover, status
from appliance.discovery import ListenerEvent, ListenerProperties, ListenerRecord

pytest_plugins = ("discovery_fixtures",)  # the advertise fixture


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="appliance")
    subparsers = parser.add_subparsers(dest="command", required=True)
    discover.add_parser(subparsers)
    status.add_parser(subparsers)
    args = parser.parse_args(argv)
    result: int = args.run(args)
    return result


RECORD = ListenerRecord(
    "kitchen",
    "raspberrypi.local.",
    ("192.0.2.20", "192.0.2.21"),
    5005,
    ListenerProperties(version="0.1.0", state="playing"),
)


def test_format_table() -> None:
    other = ListenerRecord("attic", "a.local.", (), 6000, ListenerProperties.parse({}))
    assert discover.format_table([RECORD, other]).splitlines() == [
        "NAME     HOST               ADDRESSES              PORT  STATE    FORMAT",
        "kitchen  raspberrypi.local  192.0.2.20,192.0.2.21  5005  playing  s16le 8000Hz 1ch 20ms",
        "attic    a.local            -                      6000  ?        ? ?Hz ?ch ?ms",
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


def test_discover_json_lists_the_listener(
    advertise: AdvertiseFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    name = unique_name("json")
    advertise(name, port=6400)
    assert run("discover", "--interface", "127.0.0.1", "--timeout", "2", "--json") == 0
    listed = [r for r in json.loads(capsys.readouterr().out) if r["name"] == name]
    assert listed == [
        {
            "name": name,
            "host": TEST_SERVER,
            "addresses": ["127.0.0.1"],
            "port": 6400,
            "state": "waiting",
            "rate": 8000,
            "format": "s16le",
            "channels": 1,
            "ptime": 20,
            "version": __version__,
        }
    ]


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
