"""``appliance send``: stream a PCM or WAV file to a listener, paced in real time.

Examples::

    appliance send song.wav --to kitchen             # 48 kHz stereo WAV: RTP, type 127
    appliance send speech.raw --to 192.168.1.50      # raw wire, 8000 Hz mono
    appliance send song.wav --to 192.168.1.50 --rtp  # RTP to an address
    ffmpeg -i in.mp3 -ar 16000 -ac 2 -f s16le - | appliance send - --rate 16000 --channels 2 \\
        --to kitchen

The wire and payload type are chosen by :mod:`appliance.sender.plan`.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from typing import Any

from appliance.audio.format import SUPPORTED_RATES
from appliance.discovery import add_mdns_arguments, resolve_destination
from appliance.sender.plan import plan_stream
from appliance.sender.progress import ProgressLine
from appliance.sender.sender import Sender, SendReport
from appliance.sender.source import accepted_formats_text, open_source, raw_pcm_format
from appliance.wire import Wire
from appliance.wire.raw import DEFAULT_PORT

HELP_WIDTH = 88
"""The description is wrapped here (argparse leaves a raw description as it is)."""

RATES_TEXT = ", ".join(str(rate) for rate in SUPPORTED_RATES)

DESCRIPTION_PARAGRAPHS = (
    "Send FILE to a listener in real time: one 20 ms packet every 20 ms on a deadline schedule.",
    f"FILE is a WAV file of {accepted_formats_text()}; or raw 16-bit little-endian PCM "
    "(8000 Hz mono unless --rate and --channels say otherwise); or - for raw PCM on standard "
    "input. Other files (MP3, FLAC, 24-bit or float WAV...) are refused with the ffmpeg "
    "command that converts them.",
    "The wire: to a listener named with --to NAME (found over mDNS) that advertises RTP, the "
    "audio goes as RTP (RFC 3550) L16 at the file's own rate and channels, ended by an RTCP "
    "BYE. To an IP address or host name, or to an older listener, it goes over the raw wire "
    "(the seed's 8000 Hz mono datagrams, ended by an empty datagram), which carries nothing "
    "else. --rtp or --raw force either.",
    "The RTP payload type is 11 or 10 for 44100 Hz mono or stereo; otherwise one that the "
    "listener plays as the file's format: from its own payload map first, then from its "
    "built-in L16 table (112-127).",
)
DESCRIPTION = "\n\n".join(textwrap.fill(p, HELP_WIDTH) for p in DESCRIPTION_PARAGRAPHS)


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "send",
        help="stream an audio file to a listener in real time (the laptop side)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", metavar="FILE", help="WAV or raw PCM file, or - for stdin")
    parser.add_argument(
        "--to",
        required=True,
        metavar="NAME|HOST[:PORT]",
        help="the listener: its advertised name (found over mDNS, see `appliance discover`), "
        f"or a host name or IP address with an optional :PORT (default {DEFAULT_PORT})",
    )
    wire = parser.add_mutually_exclusive_group()
    wire.add_argument(
        "--rtp",
        dest="wire",
        action="store_const",
        const=Wire.RTP,
        help="send RTP whatever the listener advertises (to an address: assume an appliance "
        "listener's payload types)",
    )
    wire.add_argument(
        "--raw",
        dest="wire",
        action="store_const",
        const=Wire.RAW,
        help="send the seed's raw wire (8000 Hz mono only) even to a listener that plays RTP",
    )
    parser.add_argument(
        "--rate",
        type=int,
        metavar="HZ",
        help=f"sample rate of raw PCM input ({RATES_TEXT}; default 8000)",
    )
    parser.add_argument(
        "--channels",
        type=int,
        metavar="N",
        help="channels of raw PCM input: 1 (mono, the default) or 2 (stereo, interleaved)",
    )
    add_mdns_arguments(parser)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary")
    parser.set_defaults(run=run, wire=None)


def run(args: argparse.Namespace) -> int:
    raw_format = None
    if args.rate is not None or args.channels is not None:
        raw_format = raw_pcm_format(args.rate, args.channels)
    force: Wire | None = args.wire
    # A bad file or format fails before any network lookup.
    with open_source(args.file, raw_format) as source:
        resolved = resolve_destination(args.to, DEFAULT_PORT, args.interface, args.mdns_timeout)
        where = f"{resolved.address}:{resolved.port}"
        plan = plan_stream(
            source.format,
            resolved.listener,
            source_name=source.name,
            target=resolved.describe(),
            force=force,
        )
        progress = None
        if not args.quiet and sys.stderr.isatty():
            progress = ProgressLine(sys.stderr, source.duration_s, f"{args.to} ({where})")
        with Sender((resolved.address, resolved.port)) as sender:
            report = sender.send(
                plan.stream(source.chunks()),
                progress.update if progress else None,
                target=resolved.describe() if plan.wire is Wire.RTP else None,
            )
    if progress is not None:
        progress.finish(report)
    if not args.quiet:
        print(report.summary(), file=sys.stderr)
    return exit_code(report)


def exit_code(report: SendReport) -> int:
    return 130 if report.interrupted else 0
