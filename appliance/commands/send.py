"""``appliance send``: stream a PCM or WAV file to a listener, paced in real time."""

from __future__ import annotations

import argparse
import socket
import sys
from typing import Any

from appliance.audio_format import DEFAULT_PORT, describe
from appliance.errors import NetworkError, UsageError
from appliance.framing import frame_pcm
from appliance.progress import ProgressLine
from appliance.sender import Address, Sender, SendReport
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
        metavar="HOST[:PORT]",
        help=f"the listener: a host name or IP address, with :PORT (default {DEFAULT_PORT})",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bar and no summary"
    )
    parser.set_defaults(run=run)


def parse_host_port(text: str, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    host, sep, port_text = text.rpartition(":")
    if not sep:
        return text, default_port
    if not host or not port_text.isdigit() or not 0 < int(port_text) <= 65535:
        raise UsageError(f"--to {text!r}: expected HOST or HOST:PORT with a port 1-65535")
    return host, int(port_text)


def resolve_address(host: str, port: int) -> Address:
    try:
        infos = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_DGRAM)
    except socket.gaierror:
        raise NetworkError(f"unknown host {host!r}") from None
    address = infos[0][4]
    return str(address[0]), int(address[1])


def run(args: argparse.Namespace) -> int:
    destination = resolve_address(*parse_host_port(args.to))
    with open_source(args.file) as source:
        target = f"{args.to} ({destination[0]}:{destination[1]})"
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
