"""Zero-configuration discovery of listeners over mDNS/DNS-SD (python-zeroconf).

A listener advertises ``NAME._pcmaudio._udp.local.`` while it listens (:class:`Advertiser`);
senders and ``appliance discover``/``status`` find it (:func:`resolve_listener`,
:func:`discover_listeners`, :func:`watch_listeners`, :func:`resolve_destination`).

Modules: ``records`` (service type, TXT <-> :class:`ListenerRecord`), ``network`` (Zeroconf on
the chosen interfaces, advertised addresses), ``advertise``, ``browse``, ``destination``
(the ``--to`` rule), ``arguments`` (argparse helpers).
"""

from __future__ import annotations

from appliance.discovery.advertise import (
    STATE_UPDATE_INTERVAL_S,
    Advertiser,
    default_listener_name,
    install_shutdown_signals,
)
from appliance.discovery.arguments import (
    add_advertise_arguments,
    add_mdns_arguments,
    advertiser_from_args,
)
from appliance.discovery.browse import (
    DEFAULT_DISCOVER_TIMEOUT_S,
    DEFAULT_RESOLVE_TIMEOUT_S,
    ListenerEvent,
    async_discover_listeners,
    async_resolve_listener,
    discover_listeners,
    resolve_listener,
    watch_listeners,
)
from appliance.discovery.destination import (
    Destination,
    ResolvedDestination,
    parse_destination,
    resolve_destination,
    resolve_mdns_host,
)
from appliance.discovery.network import (
    LOOPBACK_INTERFACES,
    make_async_zeroconf,
    make_zeroconf,
    preferred_address,
)
from appliance.discovery.records import SERVICE_TYPE, ListenerProperties, ListenerRecord

__all__ = [
    "DEFAULT_DISCOVER_TIMEOUT_S",
    "DEFAULT_RESOLVE_TIMEOUT_S",
    "LOOPBACK_INTERFACES",
    "SERVICE_TYPE",
    "STATE_UPDATE_INTERVAL_S",
    "Advertiser",
    "Destination",
    "ListenerEvent",
    "ListenerProperties",
    "ListenerRecord",
    "ResolvedDestination",
    "add_advertise_arguments",
    "add_mdns_arguments",
    "advertiser_from_args",
    "async_discover_listeners",
    "async_resolve_listener",
    "default_listener_name",
    "discover_listeners",
    "install_shutdown_signals",
    "make_async_zeroconf",
    "make_zeroconf",
    "parse_destination",
    "preferred_address",
    "resolve_destination",
    "resolve_listener",
    "resolve_mdns_host",
    "watch_listeners",
]
