"""``appliance send``: stream a PCM or WAV file to a listener, paced in real time.

Examples::

    appliance send song.wav --to kitchen             # 48 kHz stereo WAV: RTP, type 127
    appliance send song.flac --to kitchen            # 44.1 kHz stereo FLAC: RTP, type 10
    appliance send speech.raw --to 192.168.1.50      # raw wire, 8000 Hz mono
    appliance send song.mp3 --to 192.168.1.50 --rtp  # RTP to an address
    espeak-ng --stdout hello | appliance send - --to kitchen     # a WAV stream on stdin

The wire and payload type are chosen by :mod:`appliance.sender.plan`, the format sent by
:mod:`appliance.sender.conversion`.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from typing import Any

from appliance.audio.format import SUPPORTED_RATES
from appliance.discovery import add_mdns_arguments, resolve_destination
from appliance.sender.plan import StreamPlan, plan_stream
from appliance.sender.progress import ProgressLine
from appliance.sender.sender import Sender, SendReport
from appliance.sender.source import PcmSource, RawSampleFormat, open_source, raw_pcm_format
from appliance.wire import Wire
from appliance.wire.raw import DEFAULT_PORT

HELP_WIDTH = 88
"""The description is wrapped here (argparse leaves a raw description as it is)."""

RATES_TEXT = ", ".join(str(rate) for rate in SUPPORTED_RATES)
SAMPLE_FORMATS_TEXT = ", ".join(fmt.value for fmt in RawSampleFormat)

DESCRIPTION_PARAGRAPHS = (
    "Send FILE to a listener in real time: one 20 ms packet every 20 ms on a deadline schedule.",
    "FILE is any audio file: MP3, AAC/M4A, FLAC, Ogg Vorbis or Opus, WAV or AIFF of any rate, "
    "sample width and channel count (decoded by PyAV; more than two channels are mixed to "
    "stereo). A file named .raw, .pcm, .s16 or .sln, or any file given with --rate, --channels "
    "or --format, is raw PCM (16-bit little-endian 8000 Hz mono unless they say otherwise). - "
    "reads standard input: a WAV stream (espeak-ng --stdout, ffmpeg -f wav -), MP3, FLAC or "
    "Ogg, else raw PCM. Anything that is not audio is refused with a one-line error.",
    "The format sent: the file's own rate and channels if the listener plays them; otherwise "
    "the best it plays that is not above them (resampled with libsoxr; one line says so). A "
    f"rate the appliance does not play is converted to a supported one ({RATES_TEXT} Hz): the "
    "next one up, or 48000 from above 48 kHz.",
    "The wire: to a listener named with --to NAME (found over mDNS) that advertises RTP, the "
    "audio goes as RTP (RFC 3550) L16, ended by an RTCP BYE. To an IP address or host name, or "
    "to an older listener, it goes over the raw wire (the seed's 8000 Hz mono datagrams, ended "
    "by an empty datagram), which carries nothing else: other audio is converted to 8000 Hz "
    "mono. --rtp or --raw force either.",
    "The RTP payload type is 11 or 10 for 44100 Hz mono or stereo; otherwise one that the "
    "listener plays as the format sent: from its own payload map first, then from its "
    "built-in L16 table (112-127).",
)
DESCRIPTION = "\n\n".join(
    textwrap.fill(p, HELP_WIDTH, break_on_hyphens=False) for p in DESCRIPTION_PARAGRAPHS
)


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "send",
        help="stream an audio file to a listener in real time (the laptop side)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "file", metavar="FILE", help="an audio file (MP3, FLAC, WAV...), raw PCM, or - for stdin"
    )
    parser.add_argument(
        "--to",
        required=True,
        metavar="NAME|HOST[:PORT]",
        help="the listener: its advertised name (found over mDNS, see `appliance discover`), "
        f"or a host name or IP address; each with an optional :PORT (default {DEFAULT_PORT}, "
        "or the listener's own)",
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
    parser.add_argument(
        "--format",
        dest="sample_format",
        metavar="FMT",
        help=f"sample format of raw PCM input: {SAMPLE_FORMATS_TEXT} (default s16le)",
    )
    add_mdns_arguments(parser)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary")
    parser.set_defaults(run=run, wire=None)


def run(args: argparse.Namespace) -> int:
    raw_format = None
    if args.rate is not None or args.channels is not None or args.sample_format is not None:
        raw_format = raw_pcm_format(args.rate, args.channels, args.sample_format)
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
        best = source.format
        source.convert_to(plan.source_format)
        if source.converted and not args.quiet:
            reduced_by_raw = plan.wire is Wire.RAW and force is None and best != source.format
            print(conversion_line(source, plan, reduced_by_raw=reduced_by_raw), file=sys.stderr)
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


def conversion_line(source: PcmSource, plan: StreamPlan, *, reduced_by_raw: bool) -> str:
    """``song.flac: 44100 Hz stereo FLAC, sent as L16 48000 Hz stereo``; and, when the raw
    wire (chosen, not forced) is what brought it down to 8000 Hz mono, how to do better."""
    line = f"{source.name}: {source.origin.describe()}, sent as {plan.describe_sent()}"
    if reduced_by_raw:
        line += " (the raw wire's only format: --to NAME or --rtp for better)"
    return line


def exit_code(report: SendReport) -> int:
    return 130 if report.interrupted else 0
