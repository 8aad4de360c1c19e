"""``appliance discover``: list the listeners on the network (``--watch`` to follow them).

Examples::

    appliance discover                          # table after 2 s (FORMAT: the raw wire;
                                                # RTP: what it plays over RTP, or -)
    appliance discover --json --timeout 5
    appliance discover --watch                  # + added, ~ updated, - removed; Ctrl-C ends
    appliance discover --interface 127.0.0.1    # loopback only
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TextIO

from appliance.commands.types import positive_seconds
from appliance.discovery.arguments import add_mdns_arguments
from appliance.discovery.browse import (
    DEFAULT_DISCOVER_TIMEOUT_S,
    ListenerEvent,
    discover_listeners,
    watch_listeners,
)
from appliance.discovery.network import describe_interfaces
from appliance.discovery.records import ListenerRecord

COLUMNS = ("NAME", "HOST", "ADDRESSES", "PORT", "STATE", "FORMAT", "RTP")
WATCH_MARKS = {"added": "+", "updated": "~", "removed": "-"}


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "discover",
        help="list the listeners on the network",
        description="List the listeners advertised over mDNS/DNS-SD (_pcmaudio._udp).",
    )
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=DEFAULT_DISCOVER_TIMEOUT_S,
        metavar="S",
        help=f"how long to listen for answers (default {DEFAULT_DISCOVER_TIMEOUT_S:g} s)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--watch",
        action="store_true",
        help="keep running and print listeners as they come, change and go (Ctrl-C ends)",
    )
    add_mdns_arguments(parser, timeout_option=None)
    parser.set_defaults(run=run)


def row(record: ListenerRecord) -> tuple[str, ...]:
    return (
        record.name,
        record.server.rstrip("."),
        ",".join(record.addresses) or "-",
        str(record.port),
        record.state or "?",
        record.properties.describe_format(),
        record.properties.describe_rtp(),
    )


def format_table(records: Sequence[ListenerRecord]) -> str:
    """The listeners as an aligned text table with a header line."""
    rows = [COLUMNS, *(row(r) for r in records)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(r, widths, strict=True)).rstrip()
        for r in rows
    )


def format_event(event: ListenerEvent, as_json: bool) -> str:
    """One ``--watch`` line: ``+ kitchen 192.168.1.20:5005 waiting`` or a JSON object."""
    if as_json:
        record = event.record.to_json() if event.record is not None else None
        return json.dumps({"event": event.change, "name": event.name, "listener": record})
    mark = WATCH_MARKS[event.change]
    if event.record is None:
        return f"{mark} {event.name}"
    r = event.record
    return f"{mark} {r.name}  {','.join(r.addresses) or '-'}:{r.port}  {r.state or '?'}"


def watch(args: argparse.Namespace, out: TextIO) -> int:
    try:
        for event in watch_listeners(args.interface):
            print(format_event(event, args.json), file=out, flush=True)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how --watch ends: not an error
    return 0


def run(args: argparse.Namespace) -> int:
    out = sys.stdout
    if args.watch:
        return watch(args, out)
    records = discover_listeners(args.timeout, args.interface)
    if args.json:
        print(json.dumps([r.to_json() for r in records], indent=2), file=out)
    elif records:
        print(format_table(records), file=out)
    else:
        print(
            f"no listeners found within {args.timeout:g} s on "
            f"{describe_interfaces(args.interface)}",
            file=sys.stderr,
        )
    return 0
