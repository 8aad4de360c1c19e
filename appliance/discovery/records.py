"""What a listener advertises: the DNS-SD service type, its TXT keys, and :class:`ListenerRecord`.

A listener is the DNS-SD instance ``NAME._pcmaudio._udp.local.`` pointing at its UDP port.
Its TXT record says what it can play and what it is doing::

    rate=8000 format=s16le channels=1 ptime=20 version=0.1.0 state=playing

:class:`ListenerProperties` converts between those strings and typed fields
(``ListenerProperties.parse(p.to_properties()) == p``); :class:`ListenerRecord` is one resolved
listener (name, host, addresses, port, properties), built from a python-zeroconf
``ServiceInfo`` by :meth:`ListenerRecord.from_service_info`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from zeroconf import IPVersion, ServiceInfo

from appliance import __version__, audio_format

SERVICE_TYPE = "_pcmaudio._udp.local."
"""The DNS-SD service type every listener registers (``avahi-browse _pcmaudio._udp``)."""

MAX_INSTANCE_NAME_BYTES = 63
"""DNS label limit (RFC 6763 section 4.1.1): an instance name longer than this cannot register."""

TXT_RATE = "rate"
TXT_FORMAT = "format"
TXT_CHANNELS = "channels"
TXT_PTIME = "ptime"
TXT_VERSION = "version"
TXT_STATE = "state"


def instance_name(fully_qualified: str) -> str:
    """``"kitchen._pcmaudio._udp.local."`` -> ``"kitchen"`` (unchanged if it has no type suffix)."""
    suffix = "." + SERVICE_TYPE
    if fully_qualified.lower().endswith(suffix.lower()):
        return fully_qualified[: -len(suffix)]
    return fully_qualified


def service_name(instance: str) -> str:
    """``"kitchen"`` -> ``"kitchen._pcmaudio._udp.local."``."""
    return f"{instance}.{SERVICE_TYPE}"


def _int_or_none(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class ListenerProperties:
    """The TXT properties of a listener. ``None`` means the key was absent or unreadable.

    A missing ``rate``/``format``/``channels`` is taken to mean the seed format (the appliance's
    one format): only a TXT that *says* something else makes a listener incompatible.
    """

    rate: int | None = audio_format.SAMPLE_RATE
    format: str | None = audio_format.FORMAT_NAME
    channels: int | None = audio_format.CHANNELS
    ptime: int | None = audio_format.FRAME_MS
    version: str | None = __version__
    state: str | None = None
    extra: Mapping[str, str | None] = field(default_factory=dict)
    """Keys this version does not know, kept so a round trip loses nothing."""

    @classmethod
    def parse(cls, properties: Mapping[str, str | None]) -> ListenerProperties:
        """From decoded TXT properties (``ServiceInfo.decoded_properties``)."""
        known = {TXT_RATE, TXT_FORMAT, TXT_CHANNELS, TXT_PTIME, TXT_VERSION, TXT_STATE}
        return cls(
            rate=_int_or_none(properties.get(TXT_RATE)),
            format=properties.get(TXT_FORMAT),
            channels=_int_or_none(properties.get(TXT_CHANNELS)),
            ptime=_int_or_none(properties.get(TXT_PTIME)),
            version=properties.get(TXT_VERSION),
            state=properties.get(TXT_STATE),
            extra={k: v for k, v in properties.items() if k not in known},
        )

    def to_properties(self) -> dict[str, str | None]:
        """To a ``ServiceInfo(properties=...)`` mapping; absent (``None``) fields are left out."""
        fields: dict[str, object] = {
            TXT_RATE: self.rate,
            TXT_FORMAT: self.format,
            TXT_CHANNELS: self.channels,
            TXT_PTIME: self.ptime,
            TXT_VERSION: self.version,
            TXT_STATE: self.state,
        }
        out: dict[str, str | None] = {k: str(v) for k, v in fields.items() if v is not None}
        out.update(self.extra)
        return out

    def format_mismatch(self) -> str | None:
        """Why a sender of the appliance's format cannot use this listener, or None if it can."""
        ours = ListenerProperties()
        wrong = [
            f"{key}={theirs}"
            for key, theirs, wanted in (
                (TXT_RATE, self.rate, ours.rate),
                (TXT_FORMAT, self.format, ours.format),
                (TXT_CHANNELS, self.channels, ours.channels),
            )
            if theirs is not None and theirs != wanted
        ]
        if not wrong:
            return None
        return (
            f"it advertises {', '.join(wrong)}; we send {TXT_RATE}={ours.rate}, "
            f"{TXT_FORMAT}={ours.format}, {TXT_CHANNELS}={ours.channels}"
        )

    def describe_format(self) -> str:
        """Short human form for tables: ``"s16le 8000Hz 1ch 20ms"`` (``?`` for unknown)."""

        def text(value: object) -> str:
            return "?" if value is None else str(value)

        return (
            f"{text(self.format)} {text(self.rate)}Hz {text(self.channels)}ch {text(self.ptime)}ms"
        )


@dataclass(frozen=True, slots=True)
class ListenerRecord:
    """One resolved listener, as a sender or ``appliance discover`` sees it."""

    name: str
    """Instance name, e.g. ``"kitchen"`` (the part before ``._pcmaudio._udp.local.``)."""
    server: str
    """The host's mDNS name, e.g. ``"raspberrypi.local."``."""
    addresses: tuple[str, ...]
    """The IPv4 addresses in advertised order (IPv6 ones only if there is no IPv4 one)."""
    port: int
    properties: ListenerProperties

    @classmethod
    def from_service_info(cls, info: ServiceInfo) -> ListenerRecord:
        """From a resolved ``ServiceInfo`` (``info.request()`` returned True)."""
        # IPv4 only (the appliance's transport), unless the listener has nothing else. avahi,
        # for one, also publishes link-local IPv6 addresses that a sender could not use.
        addresses = info.parsed_addresses(IPVersion.V4Only) or info.parsed_addresses(
            IPVersion.V6Only
        )
        return cls(
            name=instance_name(info.name),
            server=info.server or "",
            addresses=tuple(addresses),
            port=info.port or 0,
            properties=ListenerProperties.parse(info.decoded_properties),
        )

    @property
    def state(self) -> str | None:
        return self.properties.state

    def can_play_our_format(self) -> bool:
        """True unless the TXT says another rate, sample format or channel count."""
        return self.properties.format_mismatch() is None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``appliance discover --json``)."""
        p = self.properties
        return {
            "name": self.name,
            "host": self.server,
            "addresses": list(self.addresses),
            "port": self.port,
            "state": p.state,
            "rate": p.rate,
            "format": p.format,
            "channels": p.channels,
            "ptime": p.ptime,
            "version": p.version,
        }
