"""``appliance listen``: receive the UDP stream and play it, until stopped."""

from __future__ import annotations

import argparse
import threading
from typing import Any

from appliance.commands.types import nonempty_path, nonempty_text, positive_seconds
from appliance.config import add_config_arguments, apply_overrides, load_config
from appliance.discovery import add_advertise_arguments, install_shutdown_signals
from appliance.listener.defaults import (
    DEFAULT_BUFFER_MS,
    DEFAULT_MAX_BUFFER_S,
    DEFAULT_MAX_LATENCY_MS,
    DEFAULT_PERIOD_MS,
    DEFAULT_TAKEOVER_S,
    DEFAULT_TIMEOUT_S,
)
from appliance.listener.listener import ListenerConfig
from appliance.pi.app import ListenerApp
from appliance.wire.raw import DEFAULT_PORT, RAW_FORMAT


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "listen",
        help="receive a UDP audio stream and play it (the Pi side)",
        description=(
            "Receive an audio stream over UDP and play it on the audio output: RTP (RFC 3550) "
            "with L16 at 8 to 48 kHz, mono or stereo, or G.711 (PCMU, PCMA), as ffmpeg, "
            "GStreamer and `appliance send` send it; or the seed's raw PCM "
            f"({RAW_FORMAT}, 20 ms per datagram), told apart by the first datagrams. "
            "Plays one stream at a time, from its first sender; "
            "keeps listening for the next stream until stopped (Ctrl-C or SIGTERM). While "
            "listening it is advertised over mDNS, so senders can find it by name. Settings "
            "come from the configuration file, and the options below override it."
        ),
    )
    add_listener_arguments(parser)
    parser.add_argument(
        "--once", action="store_true", help="exit after one stream has been played"
    )
    add_advertise_arguments(parser)
    add_config_arguments(parser)
    parser.set_defaults(run=run)


def add_listener_arguments(parser: argparse.ArgumentParser) -> None:
    # Defaults are None so that a value from the configuration file is not overridden by a
    # flag the user never gave; the help shows the built-in default.
    parser.add_argument(
        "--port", type=int, help=f"UDP port to listen on (default: {DEFAULT_PORT})"
    )
    parser.add_argument(
        "--bind",
        type=nonempty_text,
        metavar="ADDR",
        help="local address to listen on: IPv4 or IPv6 (:: takes both) (default: all, 0.0.0.0)",
    )
    parser.add_argument(
        "--buffer-ms",
        type=int,
        metavar="MS",
        help="the starting latency target, in ms: a stream starts playing this long after its "
        "audio would have come over the fastest path seen. It then follows the network: up "
        "when more than 1%% of the packets come late, slowly down while they are on time "
        f"(default: {DEFAULT_BUFFER_MS})",
    )
    parser.add_argument(
        "--fixed-latency",
        action="store_const",
        const=True,
        help="keep the latency target at --buffer-ms instead of following the network "
        "(clock drift is still corrected)",
    )
    parser.add_argument(
        "--max-latency-ms",
        type=int,
        metavar="MS",
        help="the ceiling of the adaptive latency target: past it, late packets are concealed "
        f"instead of waited for (default: {DEFAULT_MAX_LATENCY_MS})",
    )
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        metavar="S",
        help=f"a stream ends after S seconds without packets (default: {DEFAULT_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--max-buffer-s",
        type=positive_seconds,
        metavar="S",
        help="most audio held for a sender faster than real time; beyond it the oldest is "
        f"dropped and counted (default: {DEFAULT_MAX_BUFFER_S:g})",
    )
    parser.add_argument(
        "--device",
        type=nonempty_text,
        metavar="NAME|INDEX",
        help="audio output device (default: the system default; see `appliance devices`)",
    )
    parser.add_argument(
        "--period-ms",
        type=int,
        metavar="MS",
        help="audio per output callback: less lowers the output's latency (about twice this), "
        f"more costs less CPU (default: {DEFAULT_PERIOD_MS})",
    )
    parser.add_argument(
        "--payload-map",
        action="append",
        type=nonempty_text,
        metavar="PT=ENC/RATE[/CH]",
        help="what a dynamic RTP payload type (96-127) carries, e.g. 96=L16/48000/2 or "
        "100=PCMA/8000; repeatable. Types not named are L16 8000 Hz mono (what ffmpeg's 97 "
        "and GStreamer's 96 are by default); static types 0, 8, 10 and 11 need no map",
    )
    parser.add_argument(
        "--allow",
        action="append",
        type=nonempty_text,
        metavar="NET",
        help="only this address or network may stream, e.g. 192.168.1.0/24; repeatable "
        "(default: anyone who can reach the port; see --key-file for real protection)",
    )
    parser.add_argument(
        "--takeover-s",
        type=positive_seconds,
        metavar="S",
        help="once the playing sender has been silent this long, another sender's stream "
        "takes over at once (a sender re-run without an end marker loses at most this; "
        f"default: {DEFAULT_TAKEOVER_S:g})",
    )
    parser.add_argument(
        "--key-file",
        type=nonempty_path,
        metavar="FILE",
        help="play only SRTP streams (AES_CM_128_HMAC_SHA1_80) that authenticate with the "
        "30-byte key in FILE (base64, mode 600; the sender's --key-file, ffmpeg's "
        "-srtp_out_params); raw and plain RTP datagrams are then dropped. Default: no key, "
        "anyone on the network may play or stop the speaker",
    )
    parser.add_argument(
        "--output-file",
        type=nonempty_path,
        metavar="WAV",
        help="write what would be played to this WAV file instead of a sound card",
    )


def run(args: argparse.Namespace) -> int:
    config = apply_overrides(load_config(args.config), args)
    listener_config = ListenerConfig(
        **config.listen.listener_kwargs(), once=args.once, output_file=args.output_file
    )
    stop = threading.Event()
    restore_signals = install_shutdown_signals(lambda signum: stop.set())
    try:
        app = ListenerApp(config, listener_config, mdns=args.mdns)
        try:
            app.run(stop)
        finally:
            app.close()
    finally:
        restore_signals()
    return 0
