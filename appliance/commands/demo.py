"""``appliance demo``: a listener and a sender on loopback playing the built-in sample."""

from __future__ import annotations

import argparse
import logging
from importlib import resources
from pathlib import Path
from typing import Any

from appliance.commands.types import nonempty_path, nonempty_text
from appliance.discovery import Advertiser, resolve_destination
from appliance.errors import AudioDeviceError, DiscoveryError
from appliance.listener.listener import Listener, ListenerConfig
from appliance.sender.plan import plan_stream
from appliance.sender.sender import Sender
from appliance.sender.source import PcmSource, open_source
from appliance.wire.raw import DEFAULT_PORT

log = logging.getLogger(__name__)

FALLBACK_FILE = Path("appliance-demo.wav")
LOOPBACK = "127.0.0.1"
DEMO_NAME = "appliance-demo"
REGISTER_TIMEOUT_S = 10.0


def sample_path() -> Path:
    return Path(str(resources.files("appliance") / "data" / "sample.wav"))


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="hear it work: play the built-in sample through a local listener",
        description=(
            "Start a listener on 127.0.0.1, advertise it over mDNS (on loopback only), find it "
            "by name and send it the built-in speech sample in real time over real UDP: the "
            "whole appliance on one machine. Plays on the default audio output; on a machine "
            f"without one it writes what it would have played to {FALLBACK_FILE} instead."
        ),
    )
    parser.add_argument(
        "--device", type=nonempty_text, metavar="NAME|INDEX", help="audio output device"
    )
    parser.add_argument(
        "--output-file",
        type=nonempty_path,
        metavar="WAV",
        help="write the played audio to this WAV file",
    )
    parser.add_argument(
        "--file", type=nonempty_path, help="send this file instead of the sample"
    )
    parser.set_defaults(run=run)


def send_by_name(listener: Listener, source: PcmSource) -> None:
    """Advertise the listener on loopback, look it up by name and stream ``source`` to it,
    as ``appliance send FILE --to NAME`` does (RTP, since the listener advertises it)."""
    with Advertiser(
        DEMO_NAME,
        listener.port,
        [LOOPBACK],
        listener.state_machine,
        payload_map=listener.payload_map,
    ) as ad:
        ad.attach()
        if not ad.wait_registered(REGISTER_TIMEOUT_S) or ad.registered_name is None:
            raise DiscoveryError(f"could not advertise the demo listener: {ad.last_error}")
        name = ad.registered_name
        target = resolve_destination(name, DEFAULT_PORT, [LOOPBACK])
        log.info("found %r over mDNS at %s:%d", name, target.address, target.port)
        log.info("sending %s (%.1f s)", source.name, source.duration_s or 0)
        plan = plan_stream(
            source.format, target.listener, source_name=source.name, target=target.describe()
        )
        source.convert_to(plan.source_format)
        if source.converted:
            log.info(
                "%s: %s, sent as %s", source.name, source.origin.describe(), plan.describe_sent()
            )
        with Sender((target.address, target.port)) as sender:
            report = sender.send(plan.stream(source.chunks()), target=target.describe())
            log.info(report.summary())


def run(args: argparse.Namespace) -> int:
    config = ListenerConfig(
        port=0, bind=LOOPBACK, device=args.device, output_file=args.output_file, once=True
    )
    # The file is checked before anything starts: a bad --file fails at once, not after the
    # 1.6 s mDNS registration.
    with open_source(args.file or sample_path()) as source:
        listener = Listener(config)
        try:
            try:
                listener.start()
            except AudioDeviceError as error:
                if args.output_file is not None or args.device is not None:
                    raise
                log.warning("%s; writing the audio to %s instead", error, FALLBACK_FILE)
                listener.close()
                config.output_file = FALLBACK_FILE
                listener = Listener(config)
                listener.start()
            send_by_name(listener, source)
            listener.wait_session_played()
        finally:
            listener.close()
    if config.output_file is not None:
        print(f"demo finished: the played audio is in {config.output_file}")
    else:
        print("demo finished: you should have heard the sample on your audio output")
    return 0
