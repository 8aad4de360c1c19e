"""Two listeners with one name end with two names: started at the same moment (RFC 6762
section 8.2 ties, which python-zeroconf's probing does not break), or when a second host starts
announcing the name later without probing. Real python-zeroconf on 127.0.0.1; each advertiser
plays a different host (its own Zeroconf and SRV target), as two Pis on one LAN would."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from functools import partial

import pytest
from discovery_helpers import LO, REGISTER_TIMEOUT_S, Presence, unique_name
from zeroconf import ServiceInfo, Zeroconf, current_time_millis
from zeroconf.const import _CLASS_IN, _TYPE_SRV

from appliance.discovery import Advertiser, make_zeroconf
from appliance.discovery.conflicts import ServiceClaim, loses_to
from appliance.discovery.records import SERVICE_TYPE, service_name

pytest_plugins = ("discovery_fixtures",)  # the presence fixture

PORT = 5005
ROUNDS = 4
PAIRS_PER_ROUND = 5
SETTLE_TIMEOUT_S = 30.0
"""Generous: probing (1.6 s), the loser's re-registration (1.6 s) and the winner's
re-announcement (1.5 s later) on a machine shared with other tests."""


def host(tag: str) -> str:
    """An SRV target of fixed length per tag, so that byte order is the tags' order."""
    return f"{tag}-{os.getpid():07d}.local."


def owners_seen(zc: Zeroconf, name: str) -> set[str]:
    """The SRV targets a browser's cache holds for instance ``name`` (live records only)."""
    now = current_time_millis()
    records = zc.cache.get_all_by_details(service_name(name).lower(), _TYPE_SRV, _CLASS_IN)
    return {
        r.server.lower()  # type: ignore[attr-defined]
        for r in records
        if r.ttl and not r.is_expired(now)
    }


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


class _Named:
    """A host that is not an Advertiser, holding a fixed name (for :func:`settled`)."""

    def __init__(self, name: str) -> None:
        self.registered_name: str | None = name


def settled(
    pair: Sequence[Advertiser | _Named], servers: list[str], presence: Presence
) -> bool:
    """Two distinct names, each seen by the browser with its own host only."""
    names = [a.registered_name for a in pair]
    if None in names or len({n.lower() for n in names if n}) != 2:
        return False
    return all(
        owners_seen(presence.zc, n) == {s.lower()} for n, s in zip(names, servers, strict=True) if n
    )


@pytest.fixture
def made() -> Iterator[list[Advertiser]]:
    advertisers: list[Advertiser] = []
    try:
        yield advertisers
    finally:
        for advertiser in advertisers:
            advertiser.close()


def test_simultaneous_start_always_ends_with_two_names(
    presence: Presence, made: list[Advertiser]
) -> None:
    servers = [host("hosta"), host("hostb")]
    outcomes: list[list[str | None]] = []
    for _ in range(ROUNDS):
        pairs: list[tuple[str, list[Advertiser]]] = []
        for _ in range(PAIRS_PER_ROUND):
            name = unique_name("same")
            pair = [Advertiser(name, PORT, LO, server=s) for s in servers]
            made.extend(pair)
            pairs.append((name, pair))
        for _, pair in pairs:  # both hosts of a pair ask within microseconds
            for advertiser in pair:
                advertiser.register()
        for name, pair in pairs:
            assert wait_until(partial(settled, pair, servers, presence), SETTLE_TIMEOUT_S), (
                name,
                [a.registered_name for a in pair],
                [owners_seen(presence.zc, n) for n in (name, f"{name}-2")],
            )
            names = [a.registered_name for a in pair]
            assert sorted(n or "" for n in names) == [name, f"{name}-2"]
            outcomes.append(names)
        for advertiser in made:
            advertiser.close()
        made.clear()
    assert len(outcomes) == ROUNDS * PAIRS_PER_ROUND


@pytest.mark.parametrize("incumbent_tag, latecomer_tag", [("hosta", "hostz"), ("hostz", "hosta")])
def test_late_conflict_is_resolved_by_exactly_one_rename(
    presence: Presence,
    made: list[Advertiser],
    caplog: pytest.LogCaptureFixture,
    incumbent_tag: str,
    latecomer_tag: str,
) -> None:
    caplog.set_level(logging.INFO, logger="appliance.discovery.advertise")
    name = unique_name("late")
    servers = [host(incumbent_tag), host(latecomer_tag)]
    incumbent = Advertiser(name, PORT, LO, server=servers[0])
    made.append(incumbent)
    incumbent.register()
    assert incumbent.wait_registered(REGISTER_TIMEOUT_S), incumbent.last_error
    assert presence.wait_present(name)
    assert incumbent.registered_name == name

    # A host that was offline during our probe: it announces the name without probing.
    latecomer = Advertiser(name, PORT, LO, server=servers[1], probe=False)
    made.append(latecomer)
    latecomer.register()
    assert latecomer.wait_registered(REGISTER_TIMEOUT_S), latecomer.last_error

    pair = [incumbent, latecomer]
    assert wait_until(lambda: settled(pair, servers, presence), SETTLE_TIMEOUT_S), [
        a.registered_name for a in pair
    ]
    # The rule: the host whose SRV data is lexicographically earlier renames.
    incumbent_loses = loses_to(
        ServiceClaim(servers[0], PORT), ServiceClaim(servers[1], PORT)
    )
    assert incumbent_loses == (incumbent_tag < latecomer_tag)
    loser, winner = (incumbent, latecomer) if incumbent_loses else (latecomer, incumbent)
    assert (winner.registered_name, loser.registered_name) == (name, f"{name}-2")

    loser_server = servers[0] if incumbent_loses else servers[1]
    winner_server = servers[1] if incumbent_loses else servers[0]
    renames = [r.getMessage() for r in caplog.records if "now advertising as" in r.getMessage()]
    assert renames == [
        f"mDNS name {name!r} is also claimed by {winner_server.rstrip('.')}:{PORT}: "
        f"now advertising as {name + '-2'!r}"
    ]
    # The winner says so if it heard the conflict (it may not: the loser can hear it first and
    # leave before the winner hears the loser again); it never renames.
    kept = [r.getMessage() for r in caplog.records if "keeping it" in r.getMessage()]
    assert set(kept) <= {
        f"mDNS name {name!r} is also claimed by {loser_server.rstrip('.')}:{PORT}: "
        f"keeping it (RFC 6762 tie-break)"
    }


def test_identical_records_are_not_a_conflict() -> None:
    ours = ServiceClaim("pi.local.", PORT)
    assert not loses_to(ours, ServiceClaim("PI.local", PORT))
    assert ours.rdata() == ServiceClaim("PI.local", PORT).rdata()
    assert loses_to(ours, ServiceClaim("pi.local.", PORT + 1))
    assert not loses_to(ServiceClaim("pi.local.", PORT + 1), ours)


def test_foreign_host_announcing_our_name_later_makes_us_rename(
    presence: Presence, made: list[Advertiser]
) -> None:
    """The other host is plain python-zeroconf (not this project), registered without probing
    and with record data that sorts after ours: we are the one to rename, and its record is
    left alone (browsers still see it under the name)."""
    name = unique_name("foreign")
    ours, theirs = host("hosta"), host("hostz")
    advertiser = Advertiser(name, PORT, LO, server=ours)
    made.append(advertiser)
    advertiser.register()
    assert advertiser.wait_registered(REGISTER_TIMEOUT_S), advertiser.last_error
    assert presence.wait_present(name)

    foreign_zc = make_zeroconf(LO)
    try:
        info = ServiceInfo(
            SERVICE_TYPE, service_name(name), port=PORT, server=theirs,
            parsed_addresses=["127.0.0.1"], properties={"rate": "8000"},
        )  # fmt: skip
        foreign_zc.register_service(info, cooperating_responders=True)
        assert wait_until(
            partial(settled, [advertiser, _Named(name)], [ours, theirs], presence),
            SETTLE_TIMEOUT_S,
        ), (advertiser.registered_name, owners_seen(presence.zc, name))
        assert advertiser.registered_name == f"{name}-2"
        assert owners_seen(presence.zc, name) == {theirs.lower()}
    finally:
        foreign_zc.close()
