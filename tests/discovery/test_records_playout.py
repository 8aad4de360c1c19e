"""The playout keys of a listener's TXT record: ``lat`` (the latency target) and ``net`` (the
last session's :class:`NetworkFigures`): the text, tolerant parsing, sizes, and an advertiser
publishing them over real mDNS on 127.0.0.1 for ``appliance status`` to read back."""

from __future__ import annotations

import argparse
import json
import logging
import math
from dataclasses import replace

import pytest
from discovery_helpers import LO, REGISTER_TIMEOUT_S, TEST_SERVER, AdvertiseFactory, unique_name

from appliance.commands import status
from appliance.discovery import Advertiser, resolve_listener, watch_listeners
from appliance.discovery.advertise import DynamicTxt
from appliance.discovery.records import (
    LARGEST_REALISTIC_LATENCY_MS,
    LARGEST_REALISTIC_NETWORK,
    MAX_DRIFT_PPM,
    MAX_FIGURE_COUNT,
    MAX_JITTER_MS,
    MAX_TXT_STRING_BYTES,
    PLAYOUT_TXT_RESERVE_BYTES,
    TXT_RECORD_BUDGET_BYTES,
    ListenerProperties,
    NetworkFigures,
    txt_record_bytes,
    txt_strings,
)
from appliance.discovery.syncrecord import LARGEST_REALISTIC_SYNC
from appliance.listener.session import Session
from appliance.listener.state import ListenerState, StateMachine
from appliance.wire import Wire
from appliance.wire.payload import RTP_DEFAULT_FORMAT, PayloadMap, l16_table, parse_mapping

pytest_plugins = ("discovery_fixtures",)  # the advertise fixture

S = ListenerState

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
TEXT = "lost=3,late=1,reordered=5,dup=0,jitter=4.2,concealed=120/3,drift=-998"
RAW = NetworkFigures(
    lost=None,
    late=0,
    reordered=2,
    duplicates=1,
    jitter_ms=0.0,
    concealed_ms=0,
    concealments=0,
    drift_ppm=None,
)
RAW_TEXT = "lost=-,late=0,reordered=2,dup=1,jitter=0.0,concealed=0/0,drift=-"
BIGGEST = NetworkFigures(
    lost=MAX_FIGURE_COUNT,
    late=MAX_FIGURE_COUNT,
    reordered=MAX_FIGURE_COUNT,
    duplicates=MAX_FIGURE_COUNT,
    jitter_ms=MAX_JITTER_MS,
    concealed_ms=MAX_FIGURE_COUNT,
    concealments=MAX_FIGURE_COUNT,
    drift_ppm=-MAX_DRIFT_PPM,
)
EIGHT_ENTRIES = (
    "96=L16/48000/2",
    "97=L16/44100/2",
    "98=PCMA/8000",
    "99=PCMU/8000",
    "100=L16/22050/2",
    "101=L16/32000/2",
    "126=PCMU/8000",
    "127=L16/16000/2",
)
"""The records module's largest documented map: a 245-byte record."""


def session(**figures: object) -> Session:
    fields: dict[str, object] = {
        "number": 1,
        "source": ("127.0.0.1", 40000),
        "started_at": 0.0,
        "last_packet_at": 1.0,
        "wire": Wire.RTP,
    }
    return Session(**{**fields, **figures})  # type: ignore[arg-type]


# -- the text --------------------------------------------------------------------------------


def test_the_text_and_the_description() -> None:
    assert FIGURES.to_text() == TEXT
    assert FIGURES.describe() == (
        "lost 3, late 1, reordered 5, duplicates 0, jitter 4.2 ms, concealed 120 ms in 3 gaps, "
        "drift -998 ppm"
    )
    assert RAW.to_text() == RAW_TEXT
    assert RAW.describe() == (
        "late 0, reordered 2, duplicates 1, jitter 0.0 ms, concealed 0 ms in 0 gaps, "
        "drift not measured"
    )
    one_gap = NetworkFigures(0, 0, 0, 0, 12.0, 20, 1, 15)
    assert one_gap.to_text() == (
        "lost=0,late=0,reordered=0,dup=0,jitter=12.0,concealed=20/1,drift=15"
    )
    assert one_gap.describe().endswith("concealed 20 ms in 1 gap, drift +15 ppm")


@pytest.mark.parametrize(
    "figures",
    [
        FIGURES,
        RAW,
        BIGGEST,
        LARGEST_REALISTIC_NETWORK,
        NetworkFigures(0, 0, 0, 0, 0.0, 0, 0, 0),
        NetworkFigures(7, 0, 0, 0, 0.05, 0, 0, MAX_DRIFT_PPM),
        NetworkFigures(None, 1, 2, 3, 123.456, 4, 5, -1),
    ],
)
def test_parse_round_trips_exactly(figures: NetworkFigures) -> None:
    assert NetworkFigures.parse(figures.to_text()) == figures


def test_jitter_is_kept_to_one_decimal_as_published() -> None:
    figures = NetworkFigures(0, 0, 0, 0, 4.26, 0, 0, None)
    assert figures.jitter_ms == 4.3
    assert "jitter=4.3," in figures.to_text()


def test_from_session() -> None:
    rtp = session(
        lost=3,
        late=1,
        reordered=5,
        duplicates=0,
        jitter_ms=4.2371,
        concealed_ms=120,
        concealments=3,
        target_ms=64.6,
        drift_ppm=-998.4,
        drift_by="resampling",
    )
    assert NetworkFigures.from_session(rtp) == FIGURES
    raw = session(wire=Wire.RAW, lost=0, reordered=2, duplicates=1, drift_ppm=None)
    assert NetworkFigures.from_session(raw) == RAW


def test_from_session_clamps_what_the_text_cannot_carry() -> None:
    wild = session(
        lost=-1,
        late=MAX_FIGURE_COUNT + 10,
        jitter_ms=math.inf,
        concealed_ms=10**12,
        drift_ppm=-(10.0**9),
    )
    figures = NetworkFigures.from_session(wild)
    assert (figures.lost, figures.late, figures.jitter_ms, figures.concealed_ms) == (
        0,
        MAX_FIGURE_COUNT,
        MAX_JITTER_MS,
        MAX_FIGURE_COUNT,
    )
    assert figures.drift_ppm == -MAX_DRIFT_PPM
    assert NetworkFigures.from_session(session(drift_ppm=math.nan)).drift_ppm is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lost": -1},
        {"late": MAX_FIGURE_COUNT + 1},
        {"jitter_ms": -0.1},
        {"jitter_ms": math.nan},
        {"jitter_ms": MAX_JITTER_MS + 1},
        {"drift_ppm": MAX_DRIFT_PPM + 1},
    ],
)
def test_figures_out_of_bounds_are_refused(kwargs: dict[str, object]) -> None:
    fields: dict[str, object] = {
        "lost": 0,
        "late": 0,
        "reordered": 0,
        "duplicates": 0,
        "jitter_ms": 0.0,
        "concealed_ms": 0,
        "concealments": 0,
        "drift_ppm": None,
    }
    with pytest.raises(ValueError):
        NetworkFigures(**{**fields, **kwargs})  # type: ignore[arg-type]


# -- tolerant parsing ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "junk",
        ",,,",
        "=",
        TEXT.replace(",drift=-998", ""),  # a key missing
        TEXT.replace("lost=3,", ""),
        TEXT + ",lost=4",  # a key twice
        TEXT.replace("lost=3", "lost="),
        TEXT.replace("lost=3", "lost=+3"),
        TEXT.replace("lost=3", "lost= 3"),
        TEXT.replace("lost=3", "lost=3_000"),
        TEXT.replace("lost=3", "lost=-3"),
        TEXT.replace("lost=3", "lost=\u0663"),  # ARABIC-INDIC DIGIT THREE
        TEXT.replace("lost=3", f"lost={MAX_FIGURE_COUNT + 1}"),
        TEXT.replace("lost=3", "lost=" + "9" * 5000),  # beyond int()'s digit limit
        TEXT.replace("late=1", "late=-"),  # only lost and drift may be unmeasured
        TEXT.replace("jitter=4.2", "jitter=abc"),
        TEXT.replace("jitter=4.2", "jitter=nan"),
        TEXT.replace("jitter=4.2", "jitter=inf"),
        TEXT.replace("jitter=4.2", "jitter=1e3"),
        TEXT.replace("jitter=4.2", "jitter=-4.2"),
        TEXT.replace("jitter=4.2", "jitter=4."),
        TEXT.replace("concealed=120/3", "concealed=120"),
        TEXT.replace("concealed=120/3", "concealed=120/"),
        TEXT.replace("concealed=120/3", "concealed=/3"),
        TEXT.replace("concealed=120/3", "concealed=120/3/1"),
        TEXT.replace("drift=-998", "drift="),
        TEXT.replace("drift=-998", "drift=--"),
        TEXT.replace("drift=-998", "drift=-998.5"),
        TEXT.replace("drift=-998", f"drift={MAX_DRIFT_PPM + 1}"),
        TEXT.replace(",", ";"),
        TEXT.replace(",", ", "),
        TEXT + ",",
    ],
)
def test_unreadable_text_is_none_never_an_error(text: str | None) -> None:
    assert NetworkFigures.parse(text) is None


def test_readable_variations() -> None:
    # The raw wire's "-" and an unmeasured drift.
    assert NetworkFigures.parse(RAW_TEXT) == RAW
    assert NetworkFigures.parse(TEXT.replace("lost=3", "lost=-")) == NetworkFigures(
        None, 1, 5, 0, 4.2, 120, 3, -998
    )
    assert NetworkFigures.parse(TEXT.replace("drift=-998", "drift=-")) == NetworkFigures(
        3, 1, 5, 0, 4.2, 120, 3, None
    )
    # Any order, unknown keys (a newer listener's) ignored, a sign on the drift, more decimals.
    reordered = ",".join(reversed(TEXT.split(",")))
    assert NetworkFigures.parse(reordered) == FIGURES
    assert NetworkFigures.parse(TEXT + ",fec=12,x=") == FIGURES
    assert NetworkFigures.parse(TEXT.replace("drift=-998", "drift=+998")) == NetworkFigures(
        3, 1, 5, 0, 4.2, 120, 3, 998
    )
    assert NetworkFigures.parse(TEXT.replace("jitter=4.2", "jitter=4.16")) == FIGURES
    assert NetworkFigures.parse(TEXT.replace("jitter=4.2", "jitter=4")) == NetworkFigures(
        3, 1, 5, 0, 4.0, 120, 3, -998
    )


# -- in the TXT record -----------------------------------------------------------------------


def test_lat_and_net_in_the_txt_record() -> None:
    props = ListenerProperties(state="playing", latency_ms=65, network=FIGURES)
    txt = props.to_properties()
    assert list(txt)[-3:] == ["state", "lat", "net"]
    assert (txt["lat"], txt["net"]) == ("65", TEXT)
    assert ListenerProperties.parse(txt) == props
    # Absent keys stay absent: an older listener, or no session yet.
    assert "lat" not in ListenerProperties().to_properties()
    assert "net" not in ListenerProperties(latency_ms=60).to_properties()
    parsed = ListenerProperties.parse({"state": "waiting"})
    assert (parsed.latency_ms, parsed.network) == (None, None)


@pytest.mark.parametrize("lat", ["", "fast", "-5", "+5", " 5", "6.5", "\u0665"])
def test_unreadable_lat_and_net_become_none_and_unknown_keys_are_still_kept(lat: str) -> None:
    parsed = ListenerProperties.parse(
        {"state": "waiting", "lat": lat, "net": "lost=3,late", "owner": "kitchen", "flag": None}
    )
    assert (parsed.latency_ms, parsed.network) == (None, None)
    assert parsed.extra == {"owner": "kitchen", "flag": None}
    no_values = ListenerProperties.parse({"lat": None, "net": None})
    assert (no_values.latency_ms, no_values.network, no_values.extra) == (None, None, {})


def test_the_record_stays_within_budget_with_lat_net_and_syn_at_their_largest() -> None:
    payloads = PayloadMap(
        {**l16_table(112), **dict(map(parse_mapping, EIGHT_ENTRIES))}, RTP_DEFAULT_FORMAT
    )
    props = ListenerProperties.for_payload_map(payloads, state="underrun")
    assert txt_record_bytes(props.to_properties()) == 245
    largest = replace(
        props,
        latency_ms=LARGEST_REALISTIC_LATENCY_MS,
        network=LARGEST_REALISTIC_NETWORK,
        sync=LARGEST_REALISTIC_SYNC,
    )
    txt = largest.to_properties()
    assert txt_record_bytes(txt) == 245 + PLAYOUT_TXT_RESERVE_BYTES == 426
    assert PLAYOUT_TXT_RESERVE_BYTES == 181  # as the records module says
    assert txt_record_bytes(txt) < TXT_RECORD_BUDGET_BYTES
    assert all(len(string) <= MAX_TXT_STRING_BYTES for string in txt_strings(txt))
    assert ListenerProperties.parse(txt) == largest
    # Even the largest figures NetworkFigures takes make one valid TXT string.
    biggest = ListenerProperties(latency_ms=LARGEST_REALISTIC_LATENCY_MS, network=BIGGEST)
    [net] = [s for s in txt_strings(biggest.to_properties()) if s.startswith(b"net=")]
    assert len(net) == 132 <= MAX_TXT_STRING_BYTES


def test_an_advertiser_with_a_large_map_does_not_warn(caplog: pytest.LogCaptureFixture) -> None:
    payloads = PayloadMap.from_texts(EIGHT_ENTRIES, RTP_DEFAULT_FORMAT)
    with (
        caplog.at_level(logging.WARNING),
        Advertiser(unique_name("eight"), 6710, LO, payload_map=payloads),
    ):
        pass
    assert "TXT record" not in caplog.text


# -- over mDNS -------------------------------------------------------------------------------


def run_status(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="appliance")
    status.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["status", *argv])
    result: int = args.run(args)
    return result


def test_the_first_registration_carries_lat_set_before_it() -> None:
    machine = StateMachine()
    machine.start()
    advertiser = Advertiser(unique_name("lat-first"), 6720, LO, machine, server=TEST_SERVER)
    try:
        advertiser.set_playout(60, None)
        advertiser.attach()
        machine.set(S.WAITING, "test listening")
        assert advertiser.wait_registered(REGISTER_TIMEOUT_S), advertiser.last_error
        assert advertiser.published == DynamicTxt("waiting", 60, None)
    finally:
        advertiser.close()
        machine.close()
    assert advertiser.published is None
    with pytest.raises(ValueError):
        advertiser.set_playout(-1, None)


def test_an_advertiser_publishes_lat_and_net_and_status_reads_them(
    advertise: AdvertiseFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    name = unique_name("playout")
    events = watch_listeners(LO)
    try:
        advertiser, machine = advertise(name, port=6730)
        assert advertiser.published == DynamicTxt("waiting", None, None)
        # A stream plays and ends within one update interval of registering, with the figures
        # of an earlier wish overtaken by later ones: none goes out on its own, the trailing
        # update publishes the last state and figures together.
        for state in (S.BUFFERING, S.PLAYING, S.DRAINING):
            machine.set(state, "test")
        advertiser.set_playout(80, RAW)
        advertiser.set_playout(65, FIGURES)
        machine.set(S.WAITING, "test")
        assert advertiser.wait_published_playout(65, FIGURES, REGISTER_TIMEOUT_S)
        assert advertiser.published == DynamicTxt("waiting", 65, FIGURES)
        seen: list[tuple[str | None, int | None, NetworkFigures | None]] = []
        for event in events:
            if event.name == name and event.record is not None:
                p = event.record.properties
                seen.append((p.state, p.latency_ms, p.network))
                if p.network is not None:
                    break
    finally:
        events.close()
    assert seen[-1] == ("waiting", 65, FIGURES)
    assert set(seen) <= {("waiting", None, None), ("waiting", 65, FIGURES)}, seen

    record = resolve_listener(name, LO, 30)
    assert (record.state, record.properties.latency_ms) == ("waiting", 65)
    assert record.properties.network == FIGURES

    assert run_status(name, "--interface", "127.0.0.1", "--timeout", "30") == 0
    assert capsys.readouterr().out.splitlines()[6:9] == [
        "latency:   target 65 ms",
        "network:   lost 3, late 1, reordered 5, duplicates 0, jitter 4.2 ms,",
        "           concealed 120 ms in 3 gaps, drift -998 ppm",
    ]
    assert run_status(name, "--interface", "127.0.0.1", "--timeout", "30", "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["latency_ms"], shown["network"]) == (65, FIGURES.to_json())

    # The next session: a raw stream, its figures replace the last ones.
    advertiser.set_playout(70, RAW)
    assert advertiser.wait_published_playout(70, RAW, REGISTER_TIMEOUT_S)
    record = resolve_listener(name, LO, 30)
    assert (record.properties.latency_ms, record.properties.network) == (70, RAW)
