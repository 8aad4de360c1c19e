"""Opening python-zeroconf on the right interfaces, and the addresses a listener advertises.

Every command that speaks mDNS takes ``--interface ADDR`` (repeatable, see
:func:`add_interface_argument`): a list of local IP addresses to restrict mDNS to. No
``--interface`` means every interface, which is what a Pi on a LAN wants; tests always pass
``["127.0.0.1"]`` so that nothing is multicast on the machine's real network.

Example::

    zc = make_zeroconf(["127.0.0.1"])   # or make_zeroconf(None) for all interfaces
    try:
        ...
    finally:
        zc.close()
"""

from __future__ import annotations

import argparse
import ipaddress
from collections.abc import Sequence

import ifaddr
from zeroconf import InterfaceChoice, IPVersion, Zeroconf
from zeroconf._dns import DNSAddress
from zeroconf._protocol.outgoing import DNSOutgoing
from zeroconf.asyncio import AsyncZeroconf
from zeroconf.const import _CLASS_IN, _CLASS_UNIQUE, _FLAGS_AA, _FLAGS_QR_RESPONSE, _TYPE_A

from appliance.errors import NetworkError, UsageError

LOOPBACK_INTERFACES: tuple[str, ...] = ("127.0.0.1",)
"""Interfaces for mDNS that never leaves the machine (``appliance demo``, tests). Loopback has
no MULTICAST flag, yet python-zeroconf works across processes on it; IPv6 ``::1`` does not."""


def normalize_interfaces(interfaces: Sequence[str] | None, *, ipv6: bool = False) -> list[str]:
    """Validate ``--interface`` values: IP addresses, IPv4 unless ``ipv6``. Empty means all.

    Raises :class:`UsageError` with the offending value.
    """
    result: list[str] = []
    for text in interfaces or ():
        try:
            address = ipaddress.ip_address(text.strip())
        except ValueError:
            raise UsageError(
                f"--interface {text!r} is not an IP address (give a local address such as "
                f"192.168.1.20 or 127.0.0.1)"
            ) from None
        if address.version == 6 and not ipv6:
            raise UsageError(f"--interface {text!r}: only IPv4 mDNS is supported")
        if str(address) not in result:
            result.append(str(address))
    return result


def describe_interfaces(interfaces: Sequence[str] | None) -> str:
    """``"all interfaces"`` or ``"127.0.0.1"`` / ``"10.0.0.1, 10.0.1.1"``, for messages."""
    return ", ".join(interfaces) if interfaces else "all interfaces"


def _zeroconf_arguments(
    interfaces: Sequence[str] | None, ipv6: bool
) -> tuple[list[str] | InterfaceChoice, IPVersion]:
    chosen = normalize_interfaces(interfaces, ipv6=ipv6)
    choice: list[str] | InterfaceChoice = chosen if chosen else InterfaceChoice.All
    return choice, IPVersion.All if ipv6 else IPVersion.V4Only


def _open_error(interfaces: Sequence[str] | None, error: OSError) -> NetworkError:
    hint = " (is each --interface an address of this machine?)" if interfaces else ""
    return NetworkError(
        f"cannot open mDNS on {describe_interfaces(interfaces)}: {error.strerror or error}{hint}"
    )


def make_zeroconf(interfaces: Sequence[str] | None = None, *, ipv6: bool = False) -> Zeroconf:
    """A started ``Zeroconf`` (own thread and event loop) on ``interfaces`` (None: all), IPv4 only
    unless ``ipv6``. Close it with ``.close()``.

    Raises :class:`NetworkError` if the sockets cannot be opened (an address that is not local).
    """
    choice, version = _zeroconf_arguments(interfaces, ipv6)
    try:
        return Zeroconf(interfaces=choice, ip_version=version)
    except OSError as error:
        raise _open_error(interfaces, error) from error


def make_async_zeroconf(
    interfaces: Sequence[str] | None = None, *, ipv6: bool = False
) -> AsyncZeroconf:
    """Like :func:`make_zeroconf`, attached to the running asyncio loop. Close it with
    ``await aiozc.async_close()``."""
    choice, version = _zeroconf_arguments(interfaces, ipv6)
    try:
        return AsyncZeroconf(interfaces=choice, ip_version=version)
    except OSError as error:
        raise _open_error(interfaces, error) from error


def local_ipv4_networks() -> list[ipaddress.IPv4Interface]:
    """Every IPv4 address of this machine with its prefix, loopback included."""
    networks: list[ipaddress.IPv4Interface] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str):
                networks.append(ipaddress.IPv4Interface(f"{ip.ip}/{ip.network_prefix}"))
    return networks


def advertised_addresses(interfaces: Sequence[str] | None) -> list[str]:
    """The IPv4 addresses a listener puts in its A records.

    Restricted to interfaces: exactly those addresses, since mDNS answers go out on them only
    and a sender reaching us there can use them. Unrestricted: every non-loopback IPv4 address
    (a Pi on wired and wireless LANs advertises both; senders pick one on their own subnet,
    see :func:`preferred_address`); loopback only if the machine has nothing else.
    """
    chosen = normalize_interfaces(interfaces)
    if chosen:
        return chosen
    found = [str(n.ip) for n in local_ipv4_networks()]
    outside = [a for a in found if not ipaddress.ip_address(a).is_loopback]
    return sorted(set(outside or found), key=lambda a: found.index(a))


def address_goodbye(server: str, addresses: Sequence[str]) -> DNSOutgoing:
    """An mDNS response withdrawing ``server``'s A records for ``addresses`` (TTL 0, RFC 6762
    section 10.1): sent when an interface loses an address, so that browsers stop offering an
    address we no longer hold instead of keeping it for the record's TTL."""
    out = DNSOutgoing(_FLAGS_QR_RESPONSE | _FLAGS_AA)
    for text in addresses:
        packed = ipaddress.IPv4Address(text).packed
        out.add_answer_at_time(DNSAddress(server, _TYPE_A, _CLASS_IN | _CLASS_UNIQUE, 0, packed), 0)
    return out


def preferred_address(addresses: Sequence[str]) -> str:
    """The advertised address to send to: the first IPv4 one on one of our own subnets, else
    the first IPv4 one, else the first. Raises :class:`NetworkError` if there is none."""
    ipv4 = [a for a in addresses if ipaddress.ip_address(a).version == 4]
    if not ipv4:
        if addresses:
            return addresses[0]
        raise NetworkError("the listener advertises no address")
    networks = local_ipv4_networks()
    for text in ipv4:
        address = ipaddress.IPv4Address(text)
        if any(address in n.network for n in networks if not n.ip.is_loopback):
            return text
    return ipv4[0]


def add_interface_argument(parser: argparse.ArgumentParser) -> None:
    """``--interface ADDR`` (repeatable; ``args.interface`` is a list or None)."""
    parser.add_argument(
        "--interface",
        action="append",
        metavar="ADDR",
        default=None,
        help=(
            "speak mDNS only on the interface with this local IP address (repeatable; "
            "default: all interfaces)"
        ),
    )
