"""Advertiser: registration follows the StateMachine, TXT state is rate-limited, unregister
is seen at once (also when a subprocess gets SIGTERM/SIGINT), name conflicts become NAME-2."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from discovery_helpers import (
    LO,
    REGISTER_TIMEOUT_S,
    TEST_SERVER,
    AdvertiseFactory,
    Presence,
    unique_name,
)

from appliance import __version__
from appliance.discovery import (
    Advertiser,
    ListenerProperties,
    ListenerRecord,
    discover_listeners,
    make_zeroconf,
    resolve_listener,
    watch_listeners,
)
from appliance.errors import NetworkError, UsageError
from appliance.listener.state import ListenerState, StateMachine

pytest_plugins = ("discovery_fixtures",)  # the advertise/presence/raw_register fixtures

S = ListenerState
CHILD = Path(__file__).resolve().parents[1] / "discovery_child.py"
REPO = Path(__file__).resolve().parents[2]
CHILD_EXIT_TIMEOUT_S = 10.0


def test_advertised_listener_is_discovered_with_its_txt(advertise: AdvertiseFactory) -> None:
    name = unique_name("kitchen")
    advertiser, _ = advertise(name, port=5123)
    assert advertiser.registered_name == name
    found = [r for r in discover_listeners(2.0, LO) if r.name == name]
    assert found == [
        ListenerRecord(
            name=name,
            server=TEST_SERVER,
            addresses=("127.0.0.1",),
            port=5123,
            properties=ListenerProperties(
                rate=8000,
                format="s16le",
                channels=1,
                ptime=20,
                version=__version__,
                state="waiting",
            ),
        )
    ]


def test_state_updates_are_rate_limited_and_the_last_one_is_published(
    advertise: AdvertiseFactory,
) -> None:
    name = unique_name("rate")
    events = watch_listeners(LO)
    try:
        advertiser, machine = advertise(name)
        # Four changes within microseconds of registering: inside one update interval, so
        # none goes out on its own; the trailing update publishes the last one.
        for state in (S.BUFFERING, S.PLAYING, S.UNDERRUN, S.PLAYING):
            machine.set(state, "test")
        assert advertiser.wait_published("playing", REGISTER_TIMEOUT_S)
        seen: list[str | None] = []
        for event in events:
            if event.name == name and event.record is not None:
                seen.append(event.record.state)
                if event.record.state == "playing":
                    break
    finally:
        events.close()
    assert seen[-1] == "playing"
    assert set(seen) <= {"waiting", "playing"}, seen
    assert resolve_listener(name, LO, 30).state == "playing"


def test_stop_listening_unregisters_and_listening_again_registers(
    advertise: AdvertiseFactory, presence: Presence
) -> None:
    name = unique_name("restart")
    advertiser, machine = advertise(name)
    assert presence.wait_present(name)
    machine.set(S.IDLE, "stopped")
    assert presence.wait_removed(name)
    assert advertiser.wait_unregistered(REGISTER_TIMEOUT_S)
    assert advertiser.registered_name is None
    machine.set(S.WAITING, "listening again")
    assert advertiser.wait_registered(REGISTER_TIMEOUT_S)
    assert resolve_listener(name, LO, 30).state == "waiting"


def test_error_while_playing_is_published(advertise: AdvertiseFactory) -> None:
    name = unique_name("err")
    advertiser, machine = advertise(name)
    machine.set(S.ERROR, "audio device gone")
    assert advertiser.wait_published("error", REGISTER_TIMEOUT_S)
    assert resolve_listener(name, LO, 30, check_format=False).state == "error"


def test_failed_start_is_not_advertised() -> None:
    machine = StateMachine()
    machine.start()
    advertiser = Advertiser(unique_name("failed"), 5005, LO, machine, server=TEST_SERVER)
    try:
        advertiser.attach()
        machine.set(S.ERROR, "port in use")
        machine.close()  # delivers the transition to the advertiser
        assert advertiser.registered_name is None
        assert advertiser.published_state is None
    finally:
        advertiser.close()


def test_close_unregisters_at_once(advertise: AdvertiseFactory, presence: Presence) -> None:
    name = unique_name("close")
    advertiser, _ = advertise(name)
    assert presence.wait_present(name)
    advertiser.close()
    assert presence.wait_removed(name)


def test_port_may_be_a_function_called_at_registration(advertise: AdvertiseFactory) -> None:
    ports = iter([40123])
    name = unique_name("port")
    advertise(name, port=lambda: next(ports))
    assert resolve_listener(name, LO, 30).port == 40123


def test_taken_name_becomes_name_2_and_is_logged(
    advertise: AdvertiseFactory, caplog: pytest.LogCaptureFixture
) -> None:
    name = unique_name("dup")
    first, _ = advertise(name)
    # python-zeroconf renames only if the owner's PTR record is in the new registrant's
    # cache when it probes: give the second advertiser a Zeroconf that has seen the first
    # (as a listener started after another with the same name has, once its browser answered).
    zc = make_zeroconf(LO)
    try:
        assert name in [r.name for r in discover_listeners(2.0, LO, zeroconf=zc)]
        with caplog.at_level(logging.WARNING, logger="appliance.discovery.advertise"):
            second, _ = advertise(name, zeroconf=zc)
        assert (first.registered_name, second.registered_name) == (name, f"{name}-2")
        assert f"listener name '{name}' is taken: advertising as '{name}-2'" in caplog.messages
        assert resolve_listener(f"{name}-2", LO, 30).name == f"{name}-2"
        second.close()
    finally:
        zc.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_subprocess_unregisters_on_signal(presence: Presence, sig: signal.Signals) -> None:
    name = unique_name(f"child-{sig.name}")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, str(CHILD), name, "5005", "127.0.0.1", TEST_SERVER],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == f"registered {name}\n"
        assert presence.wait_present(name)
        assert resolve_listener(name, LO, 30).name == name
        child.send_signal(sig)
        assert presence.wait_removed(name)
        assert child.wait(CHILD_EXIT_TIMEOUT_S) == 0
        assert child.stdout.read() == "closed\n"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_bad_names_and_interfaces_are_refused() -> None:
    with pytest.raises(UsageError, match=r"^--name must not be empty$"):
        Advertiser("  ", 5005, LO)
    with pytest.raises(UsageError, match="too long: at most 63 bytes"):
        Advertiser("x" * 64, 5005, LO)
    with pytest.raises(UsageError) as usage:
        Advertiser("x", 5005, ["eth0"])
    assert str(usage.value) == (
        "--interface 'eth0' is not an IP address (give a local address such as "
        "192.168.1.20 or 127.0.0.1)"
    )
    with pytest.raises(NetworkError) as network:
        Advertiser("x", 5005, ["192.0.2.1"])  # TEST-NET-1: never an address of this machine
    assert str(network.value).startswith("cannot open mDNS on 192.0.2.1: ")
    assert str(network.value).endswith("(is each --interface an address of this machine?)")
