"""What ``appliance send FILE --to TEXT`` means by TEXT, and turning it into an address.

The rule, applied in this order (:func:`parse_destination`):

1. ``[IPV6]`` or ``[IPV6]:PORT``, or an IP address (``192.168.1.20``, ``::1``): that address.
2. ``HOST:PORT``: that host and port; HOST is an IP address or a host name. A HOST without a
   dot (``kitchen:5006``) is first looked up as a listener name (sent to its address at PORT,
   with its record), and only if no listener of that name answers, as a host name.
3. A name ending in ``.local`` (or ``.local.``): a host name looked up over mDNS, on the
   ``--interface`` addresses like every other mDNS lookup (python-zeroconf; the system
   resolver would need nss-mdns and ignores ``--interface``).
4. ``localhost`` or any name containing a dot: a host name for the system resolver (DNS,
   /etc/hosts).
5. Anything else (``kitchen``, ``Living Room``): a listener's DNS-SD instance name, compared
   case-insensitively; no fallback to host names, so a typo fails with the list of listener
   names found instead of a confusing DNS error. (Listener names with a dot cannot be
   given as names: rename such a listener or use its address.)

Without a port (cases 1, 3, 4) ``default_port`` is used.

Example (what ``send`` does)::

    target = resolve_destination(args.to, DEFAULT_PORT, args.interface, args.mdns_timeout)
    sock.sendto(frame, (target.address, target.port))
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from zeroconf import IPVersion, Zeroconf
from zeroconf._services.info import AddressResolverIPv4

from appliance.discovery.browse import DEFAULT_RESOLVE_TIMEOUT_S, resolve_listener
from appliance.discovery.network import describe_interfaces, make_zeroconf, preferred_address
from appliance.discovery.records import ListenerRecord
from appliance.errors import DiscoveryError, NetworkError, UsageError

DestinationKind = Literal["address", "host", "mdns_host", "listener"]

MDNS_HOST_SUFFIX = ".local"
MAX_PORT = 65535


@dataclass(frozen=True, slots=True)
class Destination:
    """A parsed ``--to``: ``host`` is an IP address, a host name or a listener name."""

    kind: DestinationKind
    host: str
    port: int
    port_given: bool = False
    """A listener name with ``:PORT``: that port, not the SRV record's; and a host name if no
    listener has that name."""

    @property
    def needs_mdns(self) -> bool:
        return self.kind in ("mdns_host", "listener")


@dataclass(frozen=True, slots=True)
class ResolvedDestination:
    """Where to send: ``(address, port)``, and the listener's record when found by name."""

    address: str
    port: int
    listener: ListenerRecord | None = None

    def describe(self) -> str:
        where = f"{self.address}:{self.port}"
        return f"{self.listener.name} ({where})" if self.listener is not None else where


def _parse_port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 < int(text) <= MAX_PORT:
        raise UsageError(f"--to {whole!r}: port must be a number from 1 to {MAX_PORT}")
    return int(text)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _host_kind(host: str) -> DestinationKind:
    if _is_ip(host):
        return "address"
    if host.lower().rstrip(".").endswith(MDNS_HOST_SUFFIX):
        return "mdns_host"
    return "host"


def parse_destination(text: str, default_port: int) -> Destination:
    """Classify ``--to TEXT`` by the rule in the module docstring. Raises :class:`UsageError`."""
    value = text.strip()
    if not value:
        raise UsageError("--to must not be empty")
    if value.startswith("["):
        inside, bracket, rest = value[1:].partition("]")
        if not bracket or not _is_ip(inside) or (rest and not rest.startswith(":")):
            raise UsageError(f"--to {text!r}: expected [IPV6] or [IPV6]:PORT")
        port = _parse_port(rest[1:], text) if rest else default_port
        return Destination("address", inside, port)
    if _is_ip(value):
        return Destination("address", value, default_port)
    if ":" in value:
        host, _, port_text = value.rpartition(":")
        if not host or ":" in host:
            raise UsageError(f"--to {text!r}: expected HOST:PORT (IPv6 as [ADDRESS]:PORT)")
        port = _parse_port(port_text, text)
        kind = _host_kind(host)
        if kind == "host" and host.lower() != "localhost" and "." not in host:
            return Destination("listener", host, port, port_given=True)
        return Destination(kind, host, port)
    kind = _host_kind(value)
    if kind == "host" and value.lower() != "localhost" and "." not in value:
        return Destination("listener", value, default_port)
    return Destination(kind, value, default_port)


def resolve_mdns_host(
    host: str,
    interfaces: Sequence[str] | None = None,
    timeout: float = DEFAULT_RESOLVE_TIMEOUT_S,
    *,
    zeroconf: Zeroconf | None = None,
) -> str:
    """The IPv4 address of ``host.local`` over mDNS; returns as soon as it answers."""
    fqdn = host if host.endswith(".") else host + "."
    zc = zeroconf if zeroconf is not None else make_zeroconf(interfaces)
    try:
        resolver = AddressResolverIPv4(fqdn)
        if resolver.request(zc, timeout * 1000):
            return resolver.parsed_addresses(IPVersion.V4Only)[0]
    finally:
        if zeroconf is None:
            zc.close()
    raise NetworkError(
        f"no mDNS answer for {host!r} within {timeout:g} s on {describe_interfaces(interfaces)}"
    )


def _resolve_host(host: str, port: int) -> str:
    try:
        answers = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_DGRAM)
    except socket.gaierror as error:
        raise NetworkError(f"cannot resolve host {host!r}: {error.strerror}") from error
    return str(answers[0][4][0])


def resolve_destination(
    text: str,
    default_port: int,
    interfaces: Sequence[str] | None = None,
    timeout: float = DEFAULT_RESOLVE_TIMEOUT_S,
    *,
    zeroconf: Zeroconf | None = None,
) -> ResolvedDestination:
    """Parse and look up ``--to TEXT``: the address and port to send to.

    A listener name is resolved over DNS-SD (early exit) and refused with
    :class:`~appliance.errors.DiscoveryError` if its TXT says it cannot play our format.
    Raises :class:`UsageError`, :class:`NetworkError` or :class:`DiscoveryError`.
    """
    destination = parse_destination(text, default_port)
    if destination.kind == "address":
        return ResolvedDestination(destination.host, destination.port)
    if destination.kind == "host":
        return ResolvedDestination(
            _resolve_host(destination.host, destination.port), destination.port
        )
    if destination.kind == "mdns_host":
        address = resolve_mdns_host(destination.host, interfaces, timeout, zeroconf=zeroconf)
        return ResolvedDestination(address, destination.port)
    try:
        record = resolve_listener(destination.host, interfaces, timeout, zeroconf=zeroconf)
    except DiscoveryError as not_found:
        if not destination.port_given:
            raise
        try:  # NAME:PORT with no listener of that name: a host name after all
            address = _resolve_host(destination.host, destination.port)
        except NetworkError:
            raise not_found from None
        return ResolvedDestination(address, destination.port)
    port = destination.port if destination.port_given else record.port
    return ResolvedDestination(preferred_address(record.addresses), port, record)
