"""``appliance status NAME``: one listener's advertised state and details.

Example::

    $ appliance status kitchen
    name:      kitchen
    state:     playing
    host:      raspberrypi.local
    addresses: 192.168.1.20
    port:      5005
    format:    s16le 8000Hz 1ch 20ms
    rtp:       L16,PCMU,PCMA 8000-48000Hz 1-2ch
    rtp types: 0,8,10,11,96-127 (L16 table from 112)
    rtp map:   96=L16/48000/2
    latency:   target 65 ms
    network:   lost 3, late 1, reordered 5, duplicates 0, jitter 4.2 ms,
               concealed 120 ms in 3 gaps, drift -998 ppm
    sync:      offset +37000.123 ms (+-0.020), drift +300 ppm,
               +0.12 ms off the schedule, group delay 215 ms
    version:   0.1.0

``format`` is the raw wire; the ``rtp`` lines are left out for a listener without RTP, and
``rtp map`` when it has no map entries of its own. ``latency`` is the listener's current
latency target and ``network`` what the network did to its last session (``no session yet``
before one ended): both are left out for a listener that does not advertise them (TXT ``lat``
and ``net``, older versions). ``sync`` is the listener playing in step with a group of
speakers (TXT ``syn``: the current session's, or the last one's), left out when it has not.
``--json`` gives them as ``latency_ms``, ``network`` and ``sync`` (null when not advertised).
Values that would run past :data:`WIDTH` columns continue on the next line, broken between
figures.
"""

from __future__ import annotations

import argparse
import json

from appliance.commands.types import nonempty_text
from appliance.discovery.arguments import add_mdns_arguments
from appliance.discovery.browse import DEFAULT_RESOLVE_TIMEOUT_S, resolve_listener
from appliance.discovery.records import ListenerRecord, format_payload_types

WIDTH = 80
KEY_WIDTH = 10


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "status",
        help="show one listener's advertised state",
        description="Look a listener up by name over mDNS and print what it advertises.",
    )
    parser.add_argument(
        "name", type=nonempty_text, help="the listener's name (case-insensitive)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    add_mdns_arguments(
        parser, timeout_option="--timeout", default_timeout=DEFAULT_RESOLVE_TIMEOUT_S
    )
    parser.set_defaults(run=run)


def rtp_fields(record: ListenerRecord) -> list[tuple[str, str]]:
    p = record.properties
    if p.rtp is None:
        return []
    types = format_payload_types(p.rtp) or "none"
    if p.l16_base is not None:
        types += f" (L16 table from {p.l16_base})"
    fields = [("rtp", p.describe_rtp()), ("rtp types", types)]
    if p.rtp_map:
        fields.append(("rtp map", ", ".join(p.rtp_map)))
    return fields


def playout_fields(record: ListenerRecord) -> list[tuple[str, str]]:
    p = record.properties
    if p.latency_ms is None and p.network is None:
        return []
    latency = "?" if p.latency_ms is None else f"target {p.latency_ms} ms"
    network = "no session yet" if p.network is None else p.network.describe()
    return [("latency", latency), ("network", wrap_list(network, WIDTH - KEY_WIDTH - 1))]


def sync_fields(record: ListenerRecord) -> list[tuple[str, str]]:
    """``sync:`` when the listener plays (or last played) in step with a group."""
    sync = record.properties.sync
    if sync is None:
        return []
    return [("sync", wrap_list(sync.describe(), WIDTH - KEY_WIDTH - 1))]


def wrap_list(text: str, width: int) -> str:
    """A ``", "``-separated list in lines of at most ``width`` characters where it can be
    (an item is never broken), continued lines indented under the value column."""
    lines: list[str] = []
    for item in text.split(", "):
        if lines and len(f"{lines[-1]}, {item}") <= width:
            lines[-1] = f"{lines[-1]}, {item}"
        else:
            lines.append(item)
    return f",\n{' ' * (KEY_WIDTH + 1)}".join(lines)


def format_status(record: ListenerRecord) -> str:
    fields = [
        ("name", record.name),
        ("state", record.state or "?"),
        ("host", record.server.rstrip(".")),
        ("addresses", ", ".join(record.addresses) or "-"),
        ("port", str(record.port)),
        ("format", record.properties.describe_format()),
        *rtp_fields(record),
        *playout_fields(record),
        *sync_fields(record),
        ("version", record.properties.version or "?"),
    ]
    return "\n".join(f"{key + ':':<{KEY_WIDTH}} {value}" for key, value in fields)


def run(args: argparse.Namespace) -> int:
    # No format check: status must show any listener, even one we could not send to.
    record = resolve_listener(args.name, args.interface, args.mdns_timeout, check_format=False)
    if args.json:
        print(json.dumps(record.to_json(), indent=2))
    else:
        print(format_status(record))
    return 0
