"""The appliance's configuration: one TOML file, then command-line flags over it.

The file (default :data:`DEFAULT_CONFIG_PATH`, another with ``--config``) has three sections,
every key optional; ``deploy/appliance.toml`` is the installed copy with every key documented::

    [listen]
    port = 5005
    autostart = true

    [gpio]
    listen_button = 17        # BCM number (not the physical pin number)
    volume_up_button = 22     # false = not wired

    [volume]
    step_db = 3.0

Unknown sections and keys, and values of the wrong type, are refused with a
:class:`~appliance.errors.UsageError` naming the key, so a typo never silently does nothing.
A missing file at the default path means "all defaults"; a missing file named with
``--config`` is an error.

Wiring it into a command::

    add_config_arguments(parser)                     # --config, --no-gpio, --listen-pin ...
    ...
    config = apply_overrides(load_config(args.config), args)
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from appliance.errors import UsageError
from appliance.listener.admission import AllowList
from appliance.listener.defaults import (
    DEFAULT_BUFFER_MS,
    DEFAULT_MAX_LATENCY_MS,
    DEFAULT_PERIOD_MS,
    DEFAULT_TAKEOVER_S,
    MAX_BUFFER_LIMIT_S,
    MAX_PERIOD_MS,
    MIN_BUFFER_MS,
    MIN_PERIOD_MS,
)
from appliance.pi.systemd import under_systemd
from appliance.wire.payload import RTP_DEFAULT_FORMAT, PayloadMap
from appliance.wire.raw import DEFAULT_PORT

DEFAULT_CONFIG_PATH = Path("/etc/appliance/appliance.toml")

DEFAULT_STATE_FILE = Path("/var/lib/appliance/volume")
"""Where the volume is remembered when neither the config nor systemd names a place."""

STATE_FILE_NAME = "volume"
"""The file's name inside systemd's ``$STATE_DIRECTORY`` (``StateDirectory=appliance``)."""

HEADER_GPIO_MIN = 2
HEADER_GPIO_MAX = 27
"""BCM GPIOs usable on the 40-pin header. 0 and 1 are there too, but reserved for the HAT
identification EEPROM: the firmware probes them at boot."""

ShutdownSetting = bool | Literal["auto"]

# Not wired: a pin key set to false (TOML has no null).
NOT_WIRED = False


@dataclass(frozen=True, slots=True)
class ListenSection:
    """``[listen]``: the UDP listener, the audio device, the mDNS name."""

    port: int = DEFAULT_PORT
    bind: str = "0.0.0.0"
    buffer_ms: int = DEFAULT_BUFFER_MS
    timeout_s: float = 5.0
    device: str | None = None
    """Output device name (or part of it); None = the system default (TOML: ``""``)."""
    max_buffer_s: float = 120.0
    name: str | None = None
    """mDNS instance name; None = the host name (TOML: ``""``)."""
    interfaces: tuple[str, ...] = ()
    """Addresses to advertise on; empty = all interfaces."""
    period_ms: int = DEFAULT_PERIOD_MS
    """Audio per output callback, in ms (the output's own latency is about twice this)."""
    fixed_latency: bool = False
    """Keep the latency target at buffer_ms instead of following the network."""
    max_latency_ms: int = DEFAULT_MAX_LATENCY_MS
    """The adaptive latency target's ceiling."""
    payload_map: tuple[str, ...] = ()
    """Dynamic RTP payload types the listener plays, e.g. ``("96=L16/48000/2",)``; other
    dynamic types are L16 at 8000 Hz mono (see :mod:`appliance.wire.payload`)."""
    allow: tuple[str, ...] = ()
    """Addresses and networks that may stream (e.g. ``("192.168.1.0/24",)``); empty =
    anyone (see :class:`appliance.listener.admission.AllowList`)."""
    takeover_s: float = DEFAULT_TAKEOVER_S
    """A silent session's source loses the speaker to a new stream after this long."""
    key_file: Path | None = None
    """SRTP key file (base64, mode 0600): only streams it authenticates play. TOML ``""`` or
    absent: no key, anyone on the network may play or stop the speaker."""
    autostart: bool = True
    """Start listening at once. False waits for a press of the listen button (without GPIO
    controls the appliance listens anyway: see :func:`should_autostart`)."""

    def listener_kwargs(self) -> dict[str, Any]:
        """The keyword arguments for ``ListenerConfig`` (the listener's own dataclass)."""
        return {
            "port": self.port,
            "bind": self.bind,
            "buffer_ms": self.buffer_ms,
            "timeout_s": self.timeout_s,
            "device": self.device,
            "max_buffer_s": self.max_buffer_s,
            "payload_map": self.payload_map,
            "period_ms": self.period_ms,
            "fixed_latency": self.fixed_latency,
            "max_latency_ms": self.max_latency_ms,
            "allow": self.allow,
            "takeover_s": self.takeover_s,
            "key_file": self.key_file,
        }


@dataclass(frozen=True, slots=True)
class GpioSection:
    """``[gpio]``: buttons (to GND, internal pull-up) and LEDs (330 ohm to GND), BCM numbers."""

    enabled: bool = True
    listen_button: int | None = 17
    volume_up_button: int | None = None
    volume_down_button: int | None = None
    status_led: int | None = 5
    """Green: listening / buffering / playing (see :mod:`appliance.pi.leds`)."""
    underrun_led: int | None = 6
    """Amber: one flash per underrun."""
    error_led: int | None = 13
    """Red: the listener is in error."""
    hold_time_s: float = 3.0
    """How long the listen button is held to shut the Pi down."""
    shutdown_on_hold: ShutdownSetting = "auto"
    """``"auto"``: on when run by systemd (the installed service), off when run by hand."""

    def pins(self) -> dict[str, int]:
        """Every wired pin by key name, in the order of the section (unwired ones left out)."""
        return {key: pin for key in PIN_KEYS if (pin := getattr(self, key)) is not None}


PIN_KEYS: tuple[str, ...] = (
    "listen_button",
    "volume_up_button",
    "volume_down_button",
    "status_led",
    "underrun_led",
    "error_led",
)


@dataclass(frozen=True, slots=True)
class VolumeSection:
    """``[volume]``: software gain steps for the volume buttons, and where the level is kept."""

    step_db: float = 3.0
    min_db: float = -30.0
    max_db: float = 12.0
    """Above 0 dB the player clips (never wraps) loud samples."""
    initial_db: float = 0.0
    """The level before any button was pressed (0 dB = bit-exact pass-through)."""
    state_file: Path | None = None
    """None = ``$STATE_DIRECTORY/volume`` under systemd, else /var/lib/appliance/volume."""

    def resolved_state_file(self, environ: Mapping[str, str] | None = None) -> Path:
        """The file the volume level is remembered in."""
        if self.state_file is not None:
            return self.state_file
        env = os.environ if environ is None else environ
        state_directory = env.get("STATE_DIRECTORY", "")
        if state_directory:
            # systemd passes a colon-separated list when the unit names several directories.
            return Path(state_directory.split(":")[0]) / STATE_FILE_NAME
        return DEFAULT_STATE_FILE


@dataclass(frozen=True, slots=True)
class ApplianceConfig:
    listen: ListenSection = field(default_factory=ListenSection)
    gpio: GpioSection = field(default_factory=GpioSection)
    volume: VolumeSection = field(default_factory=VolumeSection)
    source: Path | None = None
    """The file this was read from (None: defaults only); for messages."""


def resolve_shutdown_on_hold(
    setting: ShutdownSetting, environ: Mapping[str, str] | None = None
) -> bool:
    """Whether a long press powers off. ``"auto"`` is on under systemd only: systemd sets
    ``INVOCATION_ID`` for every service it starts, a login shell has none."""
    if setting == "auto":
        return under_systemd(environ)
    return setting


def should_autostart(config: ApplianceConfig, has_listen_button: bool) -> bool:
    """Listen at start-up? Yes if configured, and always when no button could start it."""
    return config.listen.autostart or not has_listen_button


# --- loading -----------------------------------------------------------------------------

_Kind = Literal[
    "int", "float", "str", "bool", "pin", "shutdown", "str_list", "path_or_auto", "path_or_none"
]

_EXPECTED: Mapping[_Kind, str] = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "bool": "true or false",
    "pin": "a BCM pin number (integer) or false",
    "shutdown": 'true, false or "auto"',
    "str_list": "a list of strings",
    "path_or_auto": 'a path (string; "" = automatic)',
    "path_or_none": 'a path (string; "" = none)',
}

_SCHEMA: Mapping[str, Mapping[str, _Kind]] = {
    "listen": {
        "port": "int",
        "bind": "str",
        "buffer_ms": "int",
        "timeout_s": "float",
        "device": "str",
        "max_buffer_s": "float",
        "name": "str",
        "interfaces": "str_list",
        "payload_map": "str_list",
        "period_ms": "int",
        "fixed_latency": "bool",
        "max_latency_ms": "int",
        "allow": "str_list",
        "takeover_s": "float",
        "key_file": "path_or_none",
        "autostart": "bool",
    },
    "gpio": {
        "enabled": "bool",
        **dict.fromkeys(PIN_KEYS, "pin"),
        "hold_time_s": "float",
        "shutdown_on_hold": "shutdown",
    },
    "volume": {
        "step_db": "float",
        "min_db": "float",
        "max_db": "float",
        "initial_db": "float",
        "state_file": "path_or_auto",
    },
}

_SECTION_TYPES: Mapping[str, type[Any]] = {
    "listen": ListenSection,
    "gpio": GpioSection,
    "volume": VolumeSection,
}

# Which of the TOML's "empty" values stand for a None field.
_EMPTY_MEANS_NONE = frozenset({("listen", "device"), ("listen", "name")})

MAX_PORT = 65535


def _type_name(value: object) -> str:
    names = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array"}
    return names.get(type(value), "table" if isinstance(value, dict) else type(value).__name__)


def _convert(where: str, kind: _Kind, value: object) -> object:
    """The dataclass value for one TOML value, or UsageError naming the key."""

    def wrong() -> UsageError:
        return UsageError(f"{where} must be {_EXPECTED[kind]}, not {_type_name(value)}")

    # bool is an int subclass in Python: check it first everywhere.
    if kind == "bool":
        if not isinstance(value, bool):
            raise wrong()
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong()
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise wrong()
        return float(value)
    if kind == "str":
        if not isinstance(value, str):
            raise wrong()
        return value
    if kind == "pin":
        if value is False:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong()
        return value
    if kind == "shutdown":
        if isinstance(value, bool) or value == "auto":
            return value
        raise wrong()
    if kind == "str_list":
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise wrong()
        return tuple(value)
    if kind in ("path_or_auto", "path_or_none"):
        if not isinstance(value, str):
            raise wrong()
        return Path(value) if value else None
    raise AssertionError(kind)


def _section_from_table(name: str, table: Mapping[str, object], origin: str) -> object:
    schema = _SCHEMA[name]
    values: dict[str, object] = {}
    for key, raw in table.items():
        where = f"{origin}: [{name}] {key}"
        if key not in schema:
            raise UsageError(f"{origin}: unknown key [{name}] {key}")
        converted = _convert(where, schema[key], raw)
        if (name, key) in _EMPTY_MEANS_NONE and converted == "":
            converted = None
        values[key] = converted
    return _SECTION_TYPES[name](**values)


def parse_config(text: str, origin: str = "<config>") -> ApplianceConfig:
    """Parse and check a whole configuration file's text."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise UsageError(f"{origin}: invalid TOML: {error}") from None
    sections: dict[str, object] = {}
    for name, table in document.items():
        if name not in _SCHEMA:
            raise UsageError(f"{origin}: unknown section [{name}]")
        if not isinstance(table, dict):
            raise UsageError(f"{origin}: {name} must be a section ([{name}]), not a value")
        sections[name] = _section_from_table(name, table, origin)
    config = ApplianceConfig(**sections)  # type: ignore[arg-type]
    validate(config, origin)
    return config


def load_config(path: Path | None) -> ApplianceConfig:
    """Read the configuration: ``path`` (it must exist), or the default file if it exists.

    ``load_config(None)`` on a machine without /etc/appliance/appliance.toml gives the
    defaults: ``ApplianceConfig()``.
    """
    explicit = path is not None
    target = path if path is not None else DEFAULT_CONFIG_PATH
    try:
        text = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        if explicit:
            raise UsageError(f"config file not found: {target}") from None
        return ApplianceConfig()
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read config file {target}: {error}") from None
    return dataclasses.replace(parse_config(text, str(target)), source=target)


def validate(config: ApplianceConfig, origin: str = "<config>") -> None:
    """Refuse values that cannot work: pins off the header or used twice, impossible ranges."""
    listen, gpio, volume = config.listen, config.gpio, config.volume
    _check_finite_and_filled(config, origin)
    if not listen.bind.strip():
        raise UsageError(f"{origin}: [listen] bind must be an address (0.0.0.0 = all), not empty")
    if not 0 <= listen.port <= MAX_PORT:
        raise UsageError(f"{origin}: [listen] port must be 0 to {MAX_PORT}, not {listen.port}")
    if listen.buffer_ms < MIN_BUFFER_MS:
        raise UsageError(
            f"{origin}: [listen] buffer_ms must be at least {MIN_BUFFER_MS} (one packet)"
        )
    if listen.timeout_s <= 0:
        raise UsageError(f"{origin}: [listen] timeout_s must be more than 0")
    if listen.max_buffer_s * 1000 < listen.buffer_ms:
        raise UsageError(f"{origin}: [listen] max_buffer_s must hold at least buffer_ms of audio")
    if listen.max_buffer_s > MAX_BUFFER_LIMIT_S:
        raise UsageError(
            f"{origin}: [listen] max_buffer_s must be at most {MAX_BUFFER_LIMIT_S:g}, "
            f"not {listen.max_buffer_s:g}"
        )
    if not MIN_PERIOD_MS <= listen.period_ms <= MAX_PERIOD_MS:
        raise UsageError(
            f"{origin}: [listen] period_ms must be from {MIN_PERIOD_MS} to {MAX_PERIOD_MS}, "
            f"not {listen.period_ms}"
        )
    if listen.max_latency_ms < MIN_BUFFER_MS:
        raise UsageError(
            f"{origin}: [listen] max_latency_ms must be at least {MIN_BUFFER_MS}, "
            f"not {listen.max_latency_ms}"
        )
    try:
        PayloadMap.from_texts(listen.payload_map, RTP_DEFAULT_FORMAT)
    except UsageError as error:
        raise UsageError(f"{origin}: [listen] {error}") from None
    if not 0 < listen.takeover_s <= listen.timeout_s:
        raise UsageError(
            f"{origin}: [listen] takeover_s must be more than 0 and at most timeout_s "
            f"({listen.timeout_s:g}), not {listen.takeover_s}"
        )
    try:
        AllowList.parse(listen.allow)
    except ValueError as error:
        raise UsageError(f"{origin}: [listen] allow: {error}") from None
    if gpio.hold_time_s <= 0:
        raise UsageError(f"{origin}: [gpio] hold_time_s must be more than 0")
    used: dict[int, str] = {}
    for key, pin in gpio.pins().items():
        if not HEADER_GPIO_MIN <= pin <= HEADER_GPIO_MAX:
            raise UsageError(
                f"{origin}: [gpio] {key} = {pin} is not a usable GPIO: use a BCM number "
                f"from {HEADER_GPIO_MIN} to {HEADER_GPIO_MAX}"
            )
        if pin in used:
            raise UsageError(f"{origin}: [gpio] BCM {pin} is used twice: {used[pin]} and {key}")
        used[pin] = key
    if volume.step_db <= 0:
        raise UsageError(f"{origin}: [volume] step_db must be more than 0")
    if not volume.min_db <= volume.initial_db <= volume.max_db:
        raise UsageError(
            f"{origin}: [volume] needs min_db <= initial_db <= max_db, got "
            f"{volume.min_db} / {volume.initial_db} / {volume.max_db}"
        )


def _check_finite_and_filled(config: ApplianceConfig, origin: str) -> None:
    """Every float of the schema finite, every list entry non-empty: TOML has ``nan`` and
    ``inf``, and a comparison with NaN is always false, so the range checks alone let it
    through (``timeout_s = nan`` would disable timeouts)."""
    for name, schema in _SCHEMA.items():
        section = getattr(config, name)
        for key, kind in schema.items():
            value = getattr(section, key)
            if kind == "float" and not math.isfinite(value):
                raise UsageError(f"{origin}: [{name}] {key} must be a finite number, not {value}")
            if kind == "str_list" and any(not item.strip() for item in value):
                raise UsageError(f"{origin}: [{name}] {key} has an empty entry")


# --- command line --------------------------------------------------------------------------

CLI_OVERRIDES: dict[str, tuple[str, str]] = {
    # argparse dest -> (section, key). A dest that is missing or None leaves the file's value.
    "port": ("listen", "port"),
    "bind": ("listen", "bind"),
    "buffer_ms": ("listen", "buffer_ms"),
    "timeout": ("listen", "timeout_s"),  # `listen --timeout S`
    "device": ("listen", "device"),
    "max_buffer_s": ("listen", "max_buffer_s"),
    "name": ("listen", "name"),
    "interface": ("listen", "interfaces"),  # `--interface ADDR`, repeatable
    "payload_map": ("listen", "payload_map"),  # `--payload-map PT=ENC/RATE[/CH]`, repeatable
    "period_ms": ("listen", "period_ms"),
    "fixed_latency": ("listen", "fixed_latency"),
    "max_latency_ms": ("listen", "max_latency_ms"),
    "allow": ("listen", "allow"),  # `--allow NET`, repeatable
    "takeover_s": ("listen", "takeover_s"),
    "key_file": ("listen", "key_file"),  # `listen --key-file FILE`
    "autostart": ("listen", "autostart"),
    "gpio": ("gpio", "enabled"),
    "listen_pin": ("gpio", "listen_button"),
    "shutdown_on_hold": ("gpio", "shutdown_on_hold"),
    "volume_state_file": ("volume", "state_file"),
}


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that choose the file and override its commonly changed keys.

    Every default is None ("not given"), so the file's value stands unless a flag is used.
    """
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="FILE",
        help=f"configuration file (default: {DEFAULT_CONFIG_PATH}, if it exists)",
    )
    parser.add_argument(
        "--no-gpio",
        dest="gpio",
        action="store_const",
        const=False,
        default=None,
        help="no buttons or LEDs, even where GPIO is available",
    )
    parser.add_argument(
        "--listen-pin",
        type=int,
        default=None,
        metavar="BCM",
        help="BCM number of the listen button (default: 17)",
    )
    parser.add_argument(
        "--shutdown-on-hold",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="holding the listen button powers the Pi off (default: only under systemd)",
    )
    parser.add_argument(
        "--autostart",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="listen at once rather than wait for a button press (default: yes)",
    )
    parser.add_argument(
        "--volume-state-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="where the volume level is remembered (default: $STATE_DIRECTORY/volume or "
        f"{DEFAULT_STATE_FILE})",
    )


def apply_overrides(config: ApplianceConfig, args: argparse.Namespace) -> ApplianceConfig:
    """``config`` with every flag in :data:`CLI_OVERRIDES` that was given (not None) applied,
    then checked again (``--listen-pin 5`` clashes with the status LED, for example)."""
    changes: dict[str, dict[str, object]] = {}
    for dest, (section, key) in CLI_OVERRIDES.items():
        value = getattr(args, dest, None)
        if value is None:
            continue
        if dest in ("interface", "payload_map", "allow"):
            value = tuple(value)
        changes.setdefault(section, {})[key] = value
    if not changes:
        return config
    replaced = {
        section: dataclasses.replace(getattr(config, section), **values)
        for section, values in changes.items()
    }
    result = dataclasses.replace(config, **replaced)
    validate(result, "command line")
    return result
