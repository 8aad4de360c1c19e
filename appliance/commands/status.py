"""``appliance status NAME``: one listener's advertised state and details.

Example::

    $ appliance status kitchen
    name:      kitchen
    state:     playing
    host:      raspberrypi.local
    addresses: 192.168.1.20
    port:      5005
    format:    s16le 8000Hz 1ch 20ms
    version:   0.1.0
"""

from __future__ import annotations

import argparse
import json

from appliance.discovery.arguments import add_mdns_arguments
from appliance.discovery.browse import DEFAULT_RESOLVE_TIMEOUT_S, resolve_listener
from appliance.discovery.records import ListenerRecord


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "status",
        help="show one listener's advertised state",
        description="Look a listener up by name over mDNS and print what it advertises.",
    )
    parser.add_argument("name", help="the listener's name (case-insensitive)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    add_mdns_arguments(
        parser, timeout_option="--timeout", default_timeout=DEFAULT_RESOLVE_TIMEOUT_S
    )
    parser.set_defaults(run=run)


def format_status(record: ListenerRecord) -> str:
    fields = (
        ("name", record.name),
        ("state", record.state or "?"),
        ("host", record.server.rstrip(".")),
        ("addresses", ", ".join(record.addresses) or "-"),
        ("port", str(record.port)),
        ("format", record.properties.describe_format()),
        ("version", record.properties.version or "?"),
    )
    return "\n".join(f"{key + ':':<10} {value}" for key, value in fields)


def run(args: argparse.Namespace) -> int:
    # No format check: status must show any listener, even one we could not send to.
    record = resolve_listener(args.name, args.interface, args.mdns_timeout, check_format=False)
    if args.json:
        print(json.dumps(record.to_json(), indent=2))
    else:
        print(format_status(record))
    return 0
