"""The ``appliance`` command line: one sub-command per module in :mod:`appliance.commands`.

Errors the user can fix (an :class:`~appliance.errors.ApplianceError`) end as one line on
stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from appliance import __version__
from appliance.commands import command_modules
from appliance.errors import ApplianceError

log = logging.getLogger("appliance")

EXIT_INTERRUPTED = 130


class OneLineErrorParser(argparse.ArgumentParser):
    """A usage error is one line, as every other error is: what is wrong and where to look,
    not a screenful of usage with the one line that matters at its bottom."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    # Sub-command parsers are made of the same class (add_subparsers' default).
    parser = OneLineErrorParser(
        prog="appliance",
        description=(
            "Network audio listener appliance. `listen` on the Raspberry Pi plays the UDP PCM "
            "stream it receives; `send` on a laptop streams a file to it in real time."
        ),
        epilog="Run `appliance COMMAND --help` for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log debugging detail as well"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in command_modules():
        command.add_parser(subparsers)
    return parser


def configure_logging(verbose: bool) -> None:
    # Under systemd, journald stamps every line itself: a second timestamp is only noise.
    under_journald = "JOURNAL_STREAM" in os.environ
    fmt = "%(levelname)s %(message)s" if under_journald else "%(asctime)s %(levelname)s %(message)s"
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format=fmt,
        datefmt="%H:%M:%S",
        stream=sys.stderr,
        force=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    try:
        result: int = args.run(args)
        return result
    except ApplianceError as error:
        print(f"appliance {args.command}: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print(f"appliance {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
