"""argparse helpers so every command spells the mDNS options the same way.

``listen``::

    add_advertise_arguments(parser)         # --name, --no-mdns, --interface
    ...
    advertiser = advertiser_from_args(args, lambda: listener.port, listener.state_machine)

``send`` (``--to`` itself stays the lead's)::

    add_mdns_arguments(parser)              # --interface, --mdns-timeout
    target = resolve_destination(args.to, DEFAULT_PORT, args.interface, args.mdns_timeout)
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from appliance.commands.types import nonempty_text, positive_seconds
from appliance.discovery.advertise import Advertiser
from appliance.discovery.browse import DEFAULT_RESOLVE_TIMEOUT_S
from appliance.discovery.network import add_interface_argument
from appliance.listener.state import StateMachine
from appliance.wire.payload import PayloadMap


def add_mdns_arguments(
    parser: argparse.ArgumentParser,
    *,
    timeout_option: str | None = "--mdns-timeout",
    default_timeout: float = DEFAULT_RESOLVE_TIMEOUT_S,
) -> None:
    """``--interface ADDR`` (repeatable) and, unless ``timeout_option`` is None, a lookup
    timeout stored in ``args.mdns_timeout``."""
    add_interface_argument(parser)
    if timeout_option is not None:
        parser.add_argument(
            timeout_option,
            dest="mdns_timeout",
            type=positive_seconds,
            default=default_timeout,
            metavar="S",
            help=(
                f"longest wait for a listener name over mDNS (default {default_timeout:g} s; "
                "the lookup ends as soon as it answers)"
            ),
        )


def add_advertise_arguments(parser: argparse.ArgumentParser) -> None:
    """``--name NAME``, ``--no-mdns`` and ``--interface ADDR`` for ``appliance listen``."""
    parser.add_argument(
        "--name",
        default=None,
        type=nonempty_text,
        help=(
            "the name senders use to find this listener (default: the host name); "
            "if taken on the network, NAME-2 (-3...) is used and logged"
        ),
    )
    parser.add_argument(
        "--no-mdns",
        dest="mdns",
        action="store_false",
        help="do not advertise this listener over mDNS/DNS-SD",
    )
    add_interface_argument(parser)


def advertiser_from_args(
    args: argparse.Namespace,
    port: int | Callable[[], int],
    state_machine: StateMachine,
    payload_map: PayloadMap | None = None,
) -> Advertiser | None:
    """The listener's :class:`Advertiser` per ``--name``/``--interface``, or None with
    ``--no-mdns``. Call ``.attach()`` before ``listener.start()``, ``.close()`` at the end.
    ``payload_map``: the listener's RTP payload types, to advertise (None: raw wire only)."""
    if not getattr(args, "mdns", True):
        return None
    return Advertiser(args.name, port, args.interface, state_machine, payload_map=payload_map)
