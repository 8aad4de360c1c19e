"""TXT ``syn`` (discovery/syncrecord.py): exact text both ways, strict parsing (a stranger's
record never costs a traceback), and how ``appliance status`` shows it."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from appliance.commands import status
from appliance.discovery.records import ListenerProperties, ListenerRecord
from appliance.discovery.syncrecord import (
    LARGEST_REALISTIC_SYNC,
    MAX_DELAY_MS,
    MAX_DRIFT_PPM,
    MAX_ERROR_MS,
    MAX_OFFSET_MS,
    MAX_SCHEDULE_MS,
    SyncRecord,
)


@dataclass
class Figures:
    offset_ms: float | None = 37000.1234
    error_ms: float | None = 0.0204
    drift_ppm: float | None = 299.6
    group_delay_ms: float | None = 215.0
    schedule_error_ms: float | None = 0.1249


FULL = SyncRecord(37000.123, 215, 0.12, 0.02, 300)
FULL_TEXT = "o=+37000.123,e=0.020,d=+300,s=+0.12,g=215"


def test_text_round_trips_exactly() -> None:
    assert FULL.to_text() == FULL_TEXT
    assert SyncRecord.parse(FULL_TEXT) == FULL
    unknown = SyncRecord(-2.5, 312.5)
    assert unknown.to_text() == "o=-2.500,e=-,d=-,s=-,g=312.5"
    assert SyncRecord.parse(unknown.to_text()) == unknown
    assert SyncRecord.parse(LARGEST_REALISTIC_SYNC.to_text()) == LARGEST_REALISTIC_SYNC
    assert len(f"syn={LARGEST_REALISTIC_SYNC.to_text()}") == 56  # the module says 57 with
    # the TXT string's length byte


def test_a_newer_listeners_keys_and_order_are_read() -> None:
    assert SyncRecord.parse("g=215,s=+0.12,d=+300,e=0.020,o=+37000.123") == FULL
    assert SyncRecord.parse(f"{FULL_TEXT},x=whatever") == FULL


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "o=+1.000,e=0.020,d=+300,s=-0.12",  # no delay
        "o=+1.000,s=-0.12,g=215",  # no uncertainty nor drift (missing keys)
        "o=1.000,e=0.020,d=+300,s=-0.12,g=215",  # the offset's sign is always written
        "o=+1.0,e=0.020,d=+300,s=-0.12,g=215",  # three decimals
        "o=+1.000,e=-0.020,d=+300,s=-0.12,g=215",  # a negative uncertainty
        "o=+1.000,e=0.020,d=300,s=-0.12,g=215",  # the drift's sign
        "o=+1.000,e=0.020,d=+3.5,s=-0.12,g=215",  # whole ppm
        "o=+1.000,e=0.020,d=+300,s=+0.1,g=215",
        "o=+1.000,e=0.020,d=+300,s=-0.12,g=0",  # 0 is "not agreed": never published
        "o=+1.000,e=0.020,d=+300,s=-0.12,g=215,o=+2.000",  # repeated
        "o=+1.000,e=0.020,d=+300,s=-0.12,g=215,junk",
        "o=+nan,e=0.020,d=+300,s=-0.12,g=215",
        "o=+9999999999999.000,e=0.020,d=+300,s=-0.12,g=215",
        "o=+1.000,e=0.020,d=+9999999,s=-0.12,g=215",  # beyond MAX_DRIFT_PPM
        "o=+1.000,e=0.020,d=+300,s=-0.12,g=999999",  # beyond MAX_DELAY_MS
    ],
)
def test_anything_else_is_no_record(text: str | None) -> None:
    assert SyncRecord.parse(text) is None


def test_bounds_are_enforced_when_built() -> None:
    for bad in (
        {"offset_ms": MAX_OFFSET_MS},
        {"delay_ms": 0.0},
        {"delay_ms": MAX_DELAY_MS},
        {"schedule_ms": MAX_SCHEDULE_MS},
        {"error_ms": -0.001},
        {"error_ms": MAX_ERROR_MS},
        {"drift_ppm": MAX_DRIFT_PPM},
        {"offset_ms": float("nan")},
    ):
        with pytest.raises(ValueError):
            replace(FULL, **bad)


def test_from_a_sessions_figures() -> None:
    assert SyncRecord.from_figures(Figures()) == FULL
    assert SyncRecord.from_figures(
        Figures(schedule_error_ms=None, error_ms=None, drift_ppm=None)
    ) == SyncRecord(37000.123, 215)
    assert SyncRecord.from_figures(None) is None
    assert SyncRecord.from_figures(Figures(offset_ms=None)) is None  # never measured
    assert SyncRecord.from_figures(Figures(group_delay_ms=None)) is None  # no group
    assert SyncRecord.from_figures(Figures(group_delay_ms=0)) is None  # not agreed
    assert SyncRecord.from_figures(Figures(offset_ms=float("inf"))) is None
    assert SyncRecord.from_figures(Figures(drift_ppm=float("nan"))) == replace(
        FULL, drift_ppm=None
    )


def test_txt_properties_carry_it_and_status_shows_it() -> None:
    props = replace(ListenerProperties(state="playing"), sync=FULL)
    txt = props.to_properties()
    assert txt["syn"] == FULL_TEXT
    assert ListenerProperties.parse(txt) == props
    assert ListenerProperties.parse({**txt, "syn": "o=garbage"}).sync is None
    listener = ListenerRecord("kitchen", "pi.local.", ("192.0.2.20",), 5005, props)
    assert status.format_status(listener).splitlines()[6:8] == [
        "sync:      offset +37000.123 ms (+-0.020), drift +300 ppm,",
        "           +0.12 ms off the schedule, group delay 215 ms",
    ]
    assert listener.to_json()["sync"] == {
        "offset_ms": 37000.123,
        "error_ms": 0.02,
        "drift_ppm": 300,
        "schedule_error_ms": 0.12,
        "group_delay_ms": 215,
    }
    not_scheduled = replace(props, sync=SyncRecord(-2.5, 312.5))
    shown = status.format_status(replace(listener, properties=not_scheduled))
    assert "sync:      offset -2.500 ms, not on the schedule, group delay 312.5 ms" in shown
    alone = ListenerRecord("k", "pi.local.", (), 5005, ListenerProperties(state="waiting"))
    assert "sync" not in status.format_status(alone)
    assert alone.to_json()["sync"] is None
