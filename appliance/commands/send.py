"""``appliance send``: stream a PCM or WAV file to a listener, paced in real time.

Examples::

    appliance send song.wav --to kitchen             # 48 kHz stereo WAV: RTP, type 127
    appliance send song.flac --to kitchen            # 44.1 kHz stereo FLAC: RTP, type 10
    appliance send speech.raw --to 192.168.1.50      # raw wire, 8000 Hz mono
    appliance send song.mp3 --to 192.168.1.50 --rtp  # RTP to an address
    espeak-ng --stdout hello | appliance send - --to kitchen     # a WAV stream on stdin
    appliance send --input --to kitchen              # the default input, until Ctrl-C
    PULSE_SOURCE=$(pactl get-default-sink).monitor appliance send --input pulse --to kitchen

The wire and payload type are chosen by :mod:`appliance.sender.plan`, the format sent by
:mod:`appliance.sender.conversion`.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from typing import Any

from appliance.audio.format import SUPPORTED_RATES
from appliance.commands.types import delay_ms, nonempty_path, nonempty_text
from appliance.discovery import add_mdns_arguments
from appliance.errors import UsageError
from appliance.sender.capture import CaptureSource, open_capture
from appliance.sender.pacing import LivePacer
from appliance.sender.plan import StreamPlan
from appliance.sender.progress import ProgressLine
from appliance.sender.sender import RAW_WITH_KEY, Sender, SendReport
from appliance.sender.source import (
    PcmSource,
    RawFormat,
    RawSampleFormat,
    open_source,
    raw_pcm_format,
)
from appliance.sender.targets import as_target, check_keys, plan_for_all, resolve_targets
from appliance.wire import Wire
from appliance.wire.raw import DEFAULT_PORT
from appliance.wire.srtp import load_key

EXIT_TARGET_FAILED = 3
"""A listener was busy, unreachable or silent (one line says which)."""

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
    "--input [DEVICE] sends what an input device captures instead, in 20 ms blocks as they "
    "come, until Ctrl-C: a microphone, or the monitor of this computer's output to play what "
    "it plays on the listener (see `appliance devices`).",
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
    "It hears the listener: the progress shows its buffer and loss, the end what it played. "
    "It fails (exit code 3) when the listener is busy with another stream, when nothing "
    "listens at the port, or when a listener found by name does not report; an address that "
    "does not report gets one line and the stream. Several --to (or --to all) get one stream "
    "together; a failing one is dropped, the others play on.",
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
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "file",
        metavar="FILE",
        nargs="?",
        type=nonempty_text,
        help="an audio file (MP3, FLAC, WAV...), raw PCM, or - for stdin",
    )
    what.add_argument(
        "--input",
        nargs="?",
        const="",
        metavar="DEVICE",
        help="instead of FILE, capture from an input device until Ctrl-C: a microphone, or the "
        "monitor of this computer's output (what it plays); by index or (part of its) name, see "
        "`appliance devices`; without DEVICE the default input. --rate/--channels choose the "
        "capture format (default: 48 kHz, or what the device takes)",
    )
    parser.add_argument(
        "--to",
        required=True,
        action="append",
        metavar="NAME|HOST[:PORT]",
        help="the listener: its advertised name (found over mDNS, see `appliance discover`), "
        f"or a host name or IP address; each with an optional :PORT (default {DEFAULT_PORT}, "
        "or the listener's own). Repeatable: the same stream to each; all: every listener "
        "found over mDNS",
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
        type=nonempty_text,
        metavar="FMT",
        help=f"sample format of raw PCM input: {SAMPLE_FORMATS_TEXT} (default s16le)",
    )
    parser.add_argument(
        "--key-file",
        type=nonempty_path,
        metavar="FILE",
        help="send SRTP (AES_CM_128_HMAC_SHA1_80) with the 30-byte key in FILE (base64, mode "
        "600), the one the listener's --key-file names; implies --rtp (the raw wire cannot "
        "be authenticated)",
    )
    parser.add_argument(
        "--delay-ms",
        type=delay_ms,
        metavar="MS",
        help="over RTP, play every sample this long after it is sent, on every listener, so "
        "that they play in step (default with two or more targets: the smallest every "
        "listener says it can meet; with one: none, it plays at its own latency)",
    )
    add_mdns_arguments(parser)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary")
    parser.set_defaults(run=run, wire=None)


def run(args: argparse.Namespace) -> int:
    raw_format = None
    if args.rate is not None or args.channels is not None or args.sample_format is not None:
        raw_format = raw_pcm_format(args.rate, args.channels, args.sample_format)
    force: Wire | None = args.wire
    key = None if args.key_file is None else load_key(args.key_file)
    if key is not None:
        if force is Wire.RAW:
            raise UsageError(f"--raw with --key-file: {RAW_WITH_KEY}")
        force = Wire.RTP
    # A bad file, format or input device fails before any network lookup.
    with open_any_source(args, raw_format) as source:
        targets = resolve_targets(args.to, DEFAULT_PORT, args.interface, args.mdns_timeout)
        check_keys(targets, has_key=key is not None)
        plan = plan_for_all(source.format, targets, source_name=source.name, force=force)
        if args.delay_ms is not None and plan.wire is Wire.RAW:
            raise UsageError(
                "--delay-ms needs RTP (the raw wire carries no timeline): add --rtp"
            )
        named = ", ".join(t.describe() for t in targets)
        best = source.format
        source.convert_to(plan.source_format)
        if source.converted and not args.quiet:
            reduced_by_raw = plan.wire is Wire.RAW and force is None and best != source.format
            print(conversion_line(source, plan, reduced_by_raw=reduced_by_raw), file=sys.stderr)
        if isinstance(source, CaptureSource) and not args.quiet:
            print(source.describe_capture(), file=sys.stderr)
        progress = None
        if not args.quiet and sys.stderr.isatty():
            progress = ProgressLine(sys.stderr, source.duration_s, named)
        pacer = LivePacer() if source.live else None  # a live source: its clock is the pace
        notice = progress.note if progress else (None if args.quiet else print_line)
        with Sender(
            targets=[as_target(t) for t in targets],
            pacer=pacer,
            listen=True,
            on_notice=notice,
            key=key,
            group_delay_us=None if args.delay_ms is None else round(args.delay_ms * 1000),
        ) as sender:
            report = sender.send(
                plan.stream(source.chunks()),
                progress.update if progress else None,
                target=named if plan.wire is Wire.RTP or len(targets) > 1 else None,
            )
    if progress is not None:
        progress.finish(report)
    for line in outcome_lines(report, quiet=args.quiet):
        print(line, file=sys.stderr)
    return exit_code(report)


def open_any_source(args: argparse.Namespace, raw_format: RawFormat | None) -> PcmSource:
    """FILE (:func:`open_source`), or the input device of ``--input`` (:func:`open_capture`),
    whose format --rate and --channels choose (--format is for raw PCM only)."""
    if args.input is None:
        return open_source(args.file, raw_format)
    if args.sample_format is not None:
        raise UsageError("--format is for raw PCM; --input captures 16-bit audio")
    return open_capture(args.input or None, rate=args.rate, channels=args.channels)


def conversion_line(source: PcmSource, plan: StreamPlan, *, reduced_by_raw: bool) -> str:
    """``song.flac: 44100 Hz stereo FLAC, sent as L16 48000 Hz stereo``; and, when the raw
    wire (chosen, not forced) is what brought it down to 8000 Hz mono, how to do better."""
    line = f"{source.name}: {source.origin.describe()}, sent as {plan.describe_sent()}"
    if reduced_by_raw:
        line += " (the raw wire's only format: --to NAME or --rtp for better)"
    return line


def print_line(line: str) -> None:
    print(line, file=sys.stderr)


def outcome_lines(report: SendReport, *, quiet: bool) -> list[str]:
    """What ends ``appliance send``: a failed single target's reason alone (even with
    ``--quiet``); else the summary and what the listener says it played
    (``listener played 5.20 s of 5.21 s sent; 0 lost``), one line per target when several."""
    states = report.targets
    rtp = report.wire is Wire.RTP
    if len(states) == 1 and states[0].failure is not None:
        return [states[0].failure]
    lines = [] if quiet else [report.summary()]
    if report.group_delay is not None and not quiet:
        lines.append(report.group_delay)
    if len(states) == 1:
        played = states[0].played_line(report.audio_format, rtp)
        if played and not quiet:
            lines.append(played)
        return lines
    for state in states:
        if state.failure is not None:
            lines.append(state.failure)  # it names the target
        elif not quiet:
            heard = state.played_line(report.audio_format, rtp) or "no report"
            lines.append(f"{state.name}: {heard}")
    return lines


def exit_code(report: SendReport) -> int:
    """130 after Ctrl-C, 3 when a target failed (busy, unreachable, silent), else 0."""
    if report.interrupted:
        return 130
    return EXIT_TARGET_FAILED if any(s.failure for s in report.targets) else 0
