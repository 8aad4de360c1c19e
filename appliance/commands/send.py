"""``appliance send``: stream a PCM or WAV file to a listener, paced in real time."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from appliance.audio_format import DEFAULT_PORT, describe
from appliance.discovery import add_mdns_arguments, resolve_destination
from appliance.framing import frame_pcm
from appliance.progress import ProgressLine
from appliance.sender import Sender, SendReport
from appliance.source import open_source


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "send",
        help="stream an audio file to a listener in real time (the laptop side)",
        description=(
            f"Send FILE to a listener as UDP datagrams of 20 ms of raw PCM ({describe()}), "
            "one every 20 ms on a deadline schedule. FILE is raw PCM in that format, a WAV "
            "file in that format, or - for raw PCM on standard input."
        ),
    )
    parser.add_argument("file", metavar="FILE", help="raw PCM or WAV file, or - for stdin")
    parser.add_argument(
        "--to",
        required=True,
        metavar="NAME|HOST[:PORT]",
        help="the listener: its advertised name (found over mDNS, see `appliance discover`), "
        f"or a host name or IP address with an optional :PORT (default {DEFAULT_PORT})",
    )
    add_mdns_arguments(parser)
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bar and no summary"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    with open_source(args.file) as source:  # a bad file fails before any network lookup
        resolved = resolve_destination(args.to, DEFAULT_PORT, args.interface, args.mdns_timeout)
        destination = (resolved.address, resolved.port)
        target = f"{args.to} ({resolved.address}:{resolved.port})"
        progress = None
        if not args.quiet and sys.stderr.isatty():
            progress = ProgressLine(sys.stderr, source.duration_s, target)
        with Sender(destination) as sender:
            report = sender.send(
                frame_pcm(source.chunks()), progress.update if progress else None
            )
    if progress is not None:
        progress.finish(report)
    if not args.quiet:
        print(report.summary(), file=sys.stderr)
    return exit_code(report)


def exit_code(report: SendReport) -> int:
    return 130 if report.interrupted else 0
