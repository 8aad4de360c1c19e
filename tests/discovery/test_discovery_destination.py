"""The ``--to`` rule: addresses, HOST:PORT, host.local over mDNS, host names, listener names."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest
from discovery_helpers import LO, TEST_SERVER, AdvertiseFactory, unique_name
from zeroconf import ServiceInfo

from appliance.discovery import Destination, ResolvedDestination, parse_destination
from appliance.discovery.destination import resolve_destination, resolve_mdns_host
from appliance.errors import DiscoveryError, NetworkError, UsageError

pytest_plugins = ("discovery_fixtures",)  # the advertise/raw_register fixtures

PORT = 5005
NO_FIXED_WAIT_TIMEOUT_S = 30.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("192.168.1.20", Destination("address", "192.168.1.20", PORT)),
        ("192.168.1.20:6000", Destination("address", "192.168.1.20", 6000)),
        ("::1", Destination("address", "::1", PORT)),
        ("[::1]", Destination("address", "::1", PORT)),
        ("[fe80::1]:6000", Destination("address", "fe80::1", 6000)),
        ("raspberrypi.local", Destination("mdns_host", "raspberrypi.local", PORT)),
        ("Pi.LOCAL.", Destination("mdns_host", "Pi.LOCAL.", PORT)),
        ("raspberrypi.local:6000", Destination("mdns_host", "raspberrypi.local", 6000)),
        ("localhost", Destination("host", "localhost", PORT)),
        ("localhost:6000", Destination("host", "localhost", 6000)),
        ("pi.example.com", Destination("host", "pi.example.com", PORT)),
        ("pi:6000", Destination("listener", "pi", 6000, port_given=True)),
        ("kitchen", Destination("listener", "kitchen", PORT)),
        (" Living Room ", Destination("listener", "Living Room", PORT)),
    ],
)
def test_parse_destination(text: str, expected: Destination) -> None:
    assert parse_destination(text, PORT) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "--to must not be empty"),
        ("pi:http", "--to 'pi:http': port must be a number from 1 to 65535"),
        ("pi:0", "--to 'pi:0': port must be a number from 1 to 65535"),
        ("pi:70000", "--to 'pi:70000': port must be a number from 1 to 65535"),
        (":5005", "--to ':5005': expected HOST:PORT (IPv6 as [ADDRESS]:PORT)"),
        ("a:b:5005", "--to 'a:b:5005': expected HOST:PORT (IPv6 as [ADDRESS]:PORT)"),
        ("[::1", "--to '[::1': expected [IPV6] or [IPV6]:PORT"),
        ("[pi]:5005", "--to '[pi]:5005': expected [IPV6] or [IPV6]:PORT"),
    ],
)
def test_parse_destination_errors(text: str, message: str) -> None:
    with pytest.raises(UsageError) as error:
        parse_destination(text, PORT)
    assert str(error.value) == message


def test_addresses_and_host_names_need_no_mdns() -> None:
    assert resolve_destination("127.0.0.1:6000", PORT, LO) == ResolvedDestination("127.0.0.1", 6000)
    assert resolve_destination("localhost", PORT, LO) == ResolvedDestination("127.0.0.1", PORT)


def test_unknown_host_name_is_a_network_error() -> None:
    with pytest.raises(NetworkError, match=r"^cannot resolve host 'no-such-host\.invalid': "):
        resolve_destination("no-such-host.invalid", PORT, LO)


def test_listener_name_resolves_to_its_address_and_port(advertise: AdvertiseFactory) -> None:
    name = unique_name("dest")
    advertise(name, port=6100)
    target = resolve_destination(name, PORT, LO, NO_FIXED_WAIT_TIMEOUT_S)
    assert (target.address, target.port) == ("127.0.0.1", 6100)
    assert target.listener is not None and target.listener.name == name
    assert target.describe() == f"{name} (127.0.0.1:6100)"


def test_listener_name_with_a_port_resolves_to_its_address_and_that_port(
    advertise: AdvertiseFactory,
) -> None:
    name = unique_name("named-port")
    advertise(name, port=6110)
    target = resolve_destination(f"{name}:6111", PORT, LO, NO_FIXED_WAIT_TIMEOUT_S)
    assert (target.address, target.port) == ("127.0.0.1", 6111)
    assert target.listener is not None and target.listener.name == name


def test_a_name_with_a_port_that_no_listener_has_is_a_host_name_after_all() -> None:
    host = socket.gethostname()
    try:
        address = socket.gethostbyname(host)
    except OSError:
        pytest.skip(f"this machine's name {host!r} does not resolve")
    if "." in host:
        pytest.skip(f"this machine's name {host!r} has a dot: it is a host name anyway")
    target = resolve_destination(f"{host}:6000", PORT, LO, 0.3)
    assert target == ResolvedDestination(address, 6000)


def test_an_unknown_name_with_a_port_is_refused_as_a_listener_name() -> None:
    with pytest.raises(DiscoveryError, match=r"^no listener named 'no-such-listener-zq'"):
        resolve_destination("no-such-listener-zq:6000", PORT, LO, 0.3)


def test_local_host_name_resolves_over_mdns(advertise: AdvertiseFactory) -> None:
    advertise(unique_name("hosted"))  # answers A queries for TEST_SERVER
    host = TEST_SERVER.rstrip(".")
    assert resolve_mdns_host(host, LO, NO_FIXED_WAIT_TIMEOUT_S) == "127.0.0.1"
    assert resolve_destination(f"{host}:6200", PORT, LO) == ResolvedDestination("127.0.0.1", 6200)


def test_unanswered_local_host_name() -> None:
    with pytest.raises(NetworkError) as error:
        resolve_mdns_host("nobody-here.local", LO, 0.5)
    assert str(error.value) == "no mDNS answer for 'nobody-here.local' within 0.5 s on 127.0.0.1"


def test_incompatible_listener_is_refused_before_sending(
    raw_register: Callable[[str, int, dict[str, str]], ServiceInfo],
) -> None:
    name = unique_name("stereo")
    raw_register(name, 6300, {"rate": "8000", "format": "s16le", "channels": "2"})
    with pytest.raises(DiscoveryError) as error:
        resolve_destination(name, PORT, LO, NO_FIXED_WAIT_TIMEOUT_S)
    assert str(error.value) == (
        f"listener '{name}' cannot play our format: it advertises channels=2; "
        "we send rate=8000, format=s16le, channels=1"
    )


def test_a_listener_playing_rtp_is_accepted_whatever_its_raw_format(
    raw_register: Callable[[str, int, dict[str, str]], ServiceInfo],
) -> None:
    # Which wire and format suit the file is decided later (appliance.sender.plan).
    name = unique_name("rtp-only")
    raw_register(name, 6310, {"rate": "16000", "rtp": "0,8,10,11,96-127", "l16": "112"})
    target = resolve_destination(name, PORT, LO, NO_FIXED_WAIT_TIMEOUT_S)
    assert target.listener is not None and target.listener.properties.plays_rtp
    assert (target.address, target.port) == ("127.0.0.1", 6310)
