"""``appliance listen``: receive the UDP stream and play it, until stopped."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from appliance.audio_format import DEFAULT_PORT, describe
from appliance.listener import (
    DEFAULT_BUFFER_MS,
    DEFAULT_MAX_BUFFER_S,
    DEFAULT_TIMEOUT_S,
    Listener,
    ListenerConfig,
)

log = logging.getLogger(__name__)


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "listen",
        help="receive a UDP audio stream and play it (the Pi side)",
        description=(
            f"Receive UDP datagrams of raw PCM ({describe()}, 20 ms per datagram) and play "
            "them on the audio output. Plays one stream at a time, from its first sender; "
            "keeps listening for the next stream until stopped (Ctrl-C or SIGTERM)."
        ),
    )
    add_listener_arguments(parser)
    parser.add_argument(
        "--once", action="store_true", help="exit after one stream has been played"
    )
    parser.set_defaults(run=run)


def add_listener_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``listen`` and ``demo``."""
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help="UDP port to listen on (default: %(default)s)",
    )
    parser.add_argument(
        "--bind",
        default="0.0.0.0",
        metavar="ADDR",
        help="local address to listen on (default: all, %(default)s)",
    )
    parser.add_argument(
        "--buffer-ms",
        type=int,
        default=DEFAULT_BUFFER_MS,
        metavar="MS",
        help="audio to buffer before playing, in ms: more rides out more network jitter, "
        "less means lower latency (default: %(default)s)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="S",
        help="a stream ends after S seconds without packets (default: %(default)s)",
    )
    parser.add_argument(
        "--max-buffer-s",
        type=float,
        default=DEFAULT_MAX_BUFFER_S,
        metavar="S",
        help="most audio held for a sender faster than real time; beyond it the oldest is "
        "dropped and counted (default: %(default)s)",
    )
    parser.add_argument(
        "--device",
        metavar="NAME|INDEX",
        help="audio output device (default: the system default; see `appliance devices`)",
    )
    parser.add_argument(
        "--output-file",
        type=Path,
        metavar="WAV",
        help="write what would be played to this WAV file instead of a sound card",
    )


def config_from_args(args: argparse.Namespace) -> ListenerConfig:
    return ListenerConfig(
        port=args.port,
        bind=args.bind,
        buffer_ms=args.buffer_ms,
        timeout_s=args.timeout,
        device=args.device,
        max_buffer_s=args.max_buffer_s,
        once=getattr(args, "once", False),
        output_file=args.output_file,
    )


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An Event set by SIGTERM or SIGINT, so the main thread can shut down in order."""
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    with Listener(config) as listener, stop_on_signals() as stop:
        listener.start()
        if config.once:
            while not stop.is_set() and not listener.wait_session_played(timeout=0.2):
                pass
        else:
            stop.wait()
    return 0
