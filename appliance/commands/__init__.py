"""One module per sub-command. Each has ``add_parser(subparsers)``, which sets ``run`` as the
parser's default: ``run(args) -> int`` is the command's exit code."""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

COMMAND_MODULES = ("listen", "send", "discover", "status", "devices", "demo")


def command_modules() -> tuple[ModuleType, ...]:
    return tuple(import_module(f"appliance.commands.{name}") for name in COMMAND_MODULES)
