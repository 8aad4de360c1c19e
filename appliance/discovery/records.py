"""What a listener advertises: the DNS-SD service type, its TXT keys, and :class:`ListenerRecord`.

A listener is the DNS-SD instance ``NAME._pcmaudio._udp.local.`` pointing at its UDP port.
Its TXT record says what it can play and what it is doing::

    rate=8000 format=s16le channels=1 ptime=20 rtp=0,8,10,11,96-127 l16=112
    map=96=L16/48000/2,100=PCMA/8000 maxrate=48000 maxch=2 version=0.1.0 state=playing
    lat=65 net=lost=3,late=1,reordered=5,dup=0,jitter=4.2,concealed=120/3,drift=-998

The keys:

``rate``, ``format``, ``channels``, ``ptime``
    The raw wire (the seed's: ``8000``, ``s16le``, ``1``, ``20``), unchanged since before
    RTP, so that older senders still accept the listener. Absent keys mean these values.
``rtp``
    The RTP payload types (RFC 3551) it plays, ascending, runs of three or more written as
    ``FIRST-LAST``. Absent: the listener plays no RTP (an older appliance, the seed).
``l16``
    Base ``B`` of the built-in L16 table: payload type ``B + 2*i + (channels - 1)`` is L16
    (16-bit big-endian) at the ``i``-th of :data:`~appliance.audio.format.SUPPORTED_RATES`
    (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000 Hz), mono or stereo: ``l16=112``
    makes 112/113 8 kHz mono/stereo ... 126/127 48 kHz. One key instead of 16 entries.
``map``
    The entries of the listener's payload map that differ from what ``rtp`` and ``l16`` imply
    (RFC 3551's static types, the built-in table, and L16 8000 Hz mono for any other dynamic
    type), comma-separated, in the listener's configuration syntax ``PT=ENC/RATE[/CH]``.
    Absent when there are none. A value that would not fit one TXT string (255 bytes)
    continues in ``map2``, ``map3``...
``maxrate``, ``maxch``
    The highest rate and channel count it plays over RTP (for people and quick checks; the
    keys above are what a sender decides by).
``version``, ``state``
    The appliance version, and the listener's state (``waiting``, ``playing``...).
``lat``
    The listener's current playout latency target, whole milliseconds (published when
    listening starts and after each session). Absent: an older listener.
``auth``
    ``srtp``: the listener plays only SRTP streams that authenticate with its pre-shared key
    (:mod:`appliance.wire.srtp`); a sender without the key cannot play on it. Never the key.
    Absent: an open listener, anyone may stream.
``net``
    What the network did to the last session that ended (:class:`NetworkFigures`), as
    comma-separated ``key=value`` pairs, in this order::

        lost=3,late=1,reordered=5,dup=0,jitter=4.2,concealed=120/3,drift=-998

    ``lost`` RTP packets never received (``-`` for a raw stream: it has no sequence numbers),
    ``late`` packets that came after their time was played, ``reordered``, ``dup``
    (duplicates), ``jitter`` RFC 3550 interarrival jitter in ms with one decimal,
    ``concealed`` ms of synthetic audio ``/`` gaps concealed, ``drift`` the clock drift
    corrected in whole ppm, sender against sound card (``-``: not measured). Counts are
    decimal digits only; readers ignore keys they do not know and treat a value they cannot
    read, or a missing key, as no figures at all. Absent: no session has ended yet (or an
    older listener, when ``lat`` is absent too).
``syn``
    How the listener plays in step with a group of speakers (:mod:`.syncrecord`): its offset
    to the sender's clock, its uncertainty, the drift, how far off the group's schedule it
    plays and the group delay, ``o=+37000.123,e=0.020,d=+300,s=+0.12,g=215``; unknown keys
    are ignored, as in ``net``. Absent: it has not played in a group (one target, an older
    listener).

Keys this version does not know are kept (:attr:`ListenerProperties.extra`). Every TXT string
is at most 255 bytes (DNS). The record is 123 bytes without map entries, 156 with the two
above, 245 with eight; ``lat``, ``net`` and ``syn`` add at most
:data:`PLAYOUT_TXT_RESERVE_BYTES` (181) at their largest realistic values
(:data:`LARGEST_REALISTIC_NETWORK`, :data:`~.syncrecord.LARGEST_REALISTIC_SYNC`), and the ``net``
string is 132 bytes even at the largest values :class:`NetworkFigures` takes: all below the
450 bytes of :data:`TXT_RECORD_BUDGET_BYTES` (the advertiser warns beyond).

:class:`ListenerProperties` converts between those strings and typed fields
(``ListenerProperties.parse(p.to_properties()) == p``) and rebuilds the listener's payload map
(:meth:`ListenerProperties.payload_map`); :class:`ListenerRecord` is one resolved listener
(name, host, addresses, port, properties), built from a python-zeroconf ``ServiceInfo`` by
:meth:`ListenerRecord.from_service_info`.

Example::

    props = ListenerProperties.for_payload_map(listener.payload_map, state="waiting")
    props = replace(props, latency_ms=65, network=NetworkFigures.from_session(session))
    ServiceInfo(SERVICE_TYPE, service_name("kitchen"), port=5005,
                properties=props.to_properties())
    ...
    record = ListenerRecord.from_service_info(info)      # on the sender
    record.properties.payload_map().format_for(127)       # 48000 Hz stereo s16be
    record.properties.network.describe()                  # "lost 3, late 1, ..."
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from zeroconf import IPVersion, ServiceInfo

from appliance import __version__
from appliance.audio.format import AudioFormat, Encoding
from appliance.discovery.syncrecord import LARGEST_REALISTIC_SYNC, SyncRecord
from appliance.errors import UsageError
from appliance.wire import Wire
from appliance.wire.payload import (
    DYNAMIC_TYPES,
    L16_TABLE_SIZE,
    RTP_DEFAULT_FORMAT,
    STATIC_FORMATS,
    PayloadMap,
    l16_table,
    mapping_text,
    parse_mapping,
)
from appliance.wire.raw import RAW_FORMAT

log = logging.getLogger(__name__)

SERVICE_TYPE = "_pcmaudio._udp.local."
"""The DNS-SD service type every listener registers (``avahi-browse _pcmaudio._udp``)."""

MAX_INSTANCE_NAME_BYTES = 63
"""DNS label limit (RFC 6763 section 4.1.1): an instance name longer than this cannot register."""

MAX_TXT_STRING_BYTES = 255
"""One TXT string (``key=value``) is at most 255 bytes: its length is a single byte."""
TXT_RECORD_BUDGET_BYTES = 450
"""The whole record should stay below this. RFC 6763 section 6.2 keeps to 400 bytes for one
512-byte unicast DNS message; multicast DNS on a LAN is not bound to 512 bytes, and avahi and
Bonjour take this without complaint (the largest record with ``syn``, eight map entries and
every figure at its largest is 426)."""

TXT_RATE = "rate"
TXT_FORMAT = "format"
TXT_CHANNELS = "channels"
TXT_PTIME = "ptime"
TXT_RTP = "rtp"
TXT_L16 = "l16"
TXT_MAP = "map"
TXT_MAX_RATE = "maxrate"
TXT_MAX_CHANNELS = "maxch"
TXT_VERSION = "version"
TXT_STATE = "state"
TXT_LATENCY = "lat"
TXT_NETWORK = "net"
TXT_AUTH = "auth"
TXT_SYNC = "syn"
AUTH_SRTP = "srtp"
"""``auth=srtp``: a key is required (see :mod:`appliance.wire.srtp`)."""
KNOWN_KEYS = frozenset(
    {
        TXT_RATE,
        TXT_FORMAT,
        TXT_CHANNELS,
        TXT_PTIME,
        TXT_RTP,
        TXT_L16,
        TXT_MAX_RATE,
        TXT_MAX_CHANNELS,
        TXT_VERSION,
        TXT_STATE,
        TXT_LATENCY,
        TXT_NETWORK,
        TXT_AUTH,
        TXT_SYNC,
    }
)

FIRST_DYNAMIC_TYPE = DYNAMIC_TYPES.start
LAST_PAYLOAD_TYPE = DYNAMIC_TYPES.stop - 1

SEED_RAW_FORMAT_NAME = "s16le"


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


def _non_negative_or_none(text: str | None) -> int | None:
    """Decimal digits only (no sign, no spaces) -> int; anything else None."""
    if text is None or not text.isascii() or not text.isdigit():
        return None
    try:
        return int(text)
    except ValueError:  # more digits than int() converts
        return None


# -- payload type lists ------------------------------------------------------------------


def format_payload_types(types: Iterable[int]) -> str:
    """``{0, 8, 10, 11, 96, ..., 127}`` -> ``"0,8,10,11,96-127"`` (runs of 3+ as ranges)."""
    ordered = sorted(set(types))
    parts: list[str] = []
    start = 0
    while start < len(ordered):
        end = start
        while end + 1 < len(ordered) and ordered[end + 1] == ordered[end] + 1:
            end += 1
        if end - start >= 2:
            parts.append(f"{ordered[start]}-{ordered[end]}")
            start = end + 1
        else:
            parts.append(str(ordered[start]))
            start += 1
    return ",".join(parts)


def parse_payload_types(text: str | None) -> frozenset[int] | None:
    """The inverse of :func:`format_payload_types`; None if absent or unreadable."""
    if text is None:
        return None
    types: set[int] = set()
    try:
        for part in filter(None, text.split(",")):
            first, dash, last = part.partition("-")
            low, high = int(first), int(last if dash else first)
            if not 0 <= low <= high <= LAST_PAYLOAD_TYPE:
                return None
            types.update(range(low, high + 1))
    except ValueError:
        return None
    return frozenset(types)


def _valid_l16_base(base: int | None) -> bool:
    return base is not None and FIRST_DYNAMIC_TYPE <= base <= LAST_PAYLOAD_TYPE + 1 - L16_TABLE_SIZE


def _same_wire(a: AudioFormat | None, b: AudioFormat | None) -> bool:
    """Same samples on the wire (rate, channels, encoding); the packet time does not matter."""
    if a is None or b is None:
        return a is b
    return a.encoding == b.encoding and a.same_pcm(b)


def _implied_format(payload_type: int, l16_base: int | None) -> AudioFormat | None:
    """What ``rtp`` + ``l16`` say a type is, before any ``map`` entry."""
    if payload_type < FIRST_DYNAMIC_TYPE:
        return STATIC_FORMATS.get(payload_type)
    if _valid_l16_base(l16_base):
        assert l16_base is not None
        table = l16_table(l16_base)
        if payload_type in table:
            return table[payload_type]
    return RTP_DEFAULT_FORMAT


def _best_l16_base(played: Mapping[int, AudioFormat]) -> int | None:
    """The ``l16`` base whose table the most played types agree with (None if no table
    saves anything): a type the user map overrides becomes one ``map`` entry, not sixteen."""
    best, best_matches = None, 1
    for base in range(FIRST_DYNAMIC_TYPE, LAST_PAYLOAD_TYPE + 2 - L16_TABLE_SIZE):
        matches = sum(_same_wire(played.get(t), f) for t, f in l16_table(base).items())
        if matches > best_matches:
            best, best_matches = base, matches
    return best


def played_format(payload_map: PayloadMap, payload_type: int) -> AudioFormat | None:
    """What ``payload_map`` plays ``payload_type`` as, or None if it does not play it."""
    try:
        return payload_map.format_for(payload_type)
    except (KeyError, ValueError):
        return None


def _map_key(index: int) -> str:
    return TXT_MAP if index == 0 else f"{TXT_MAP}{index + 1}"


def _split_map(entries: tuple[str, ...]) -> dict[str, str]:
    """``map``, ``map2``... values, each ``key=value`` string within 255 bytes."""
    values: list[str] = []
    for entry in entries:
        if values:
            joined = f"{values[-1]},{entry}"
            if len(f"{_map_key(len(values) - 1)}={joined}".encode()) <= MAX_TXT_STRING_BYTES:
                values[-1] = joined
                continue
        if len(f"{_map_key(len(values))}={entry}".encode()) > MAX_TXT_STRING_BYTES:
            raise ValueError(f"payload map entry {entry!r} is too long for a TXT string")
        values.append(entry)
    return {_map_key(index): value for index, value in enumerate(values)}


def _map_keys(properties: Mapping[str, str | None]) -> list[str]:
    """``map``, ``map2``, ... as present, in order (a gap ends them)."""
    keys: list[str] = []
    while _map_key(len(keys)) in properties:
        keys.append(_map_key(len(keys)))
    return keys


def txt_strings(properties: Mapping[str, str | None]) -> list[bytes]:
    """The TXT record's strings as they go on the wire (``key=value``, or ``key`` alone)."""
    return [
        key.encode() if value is None else f"{key}={value}".encode()
        for key, value in properties.items()
    ]


def txt_record_bytes(properties: Mapping[str, str | None]) -> int:
    """The TXT record's RDATA size: each string plus its length byte."""
    return sum(1 + len(string) for string in txt_strings(properties))


# -- a session's network figures --------------------------------------------------------

MAX_FIGURE_COUNT = 2**32 - 1
"""Counts (and concealed ms) above this are published as this: ``net`` stays short."""
MAX_JITTER_MS = 99_999.9
MAX_DRIFT_PPM = 999_999
"""Drift beyond +-this many ppm is published as +-this."""

_NET_LOST = "lost"
_NET_LATE = "late"
_NET_REORDERED = "reordered"
_NET_DUPLICATES = "dup"
_NET_JITTER = "jitter"
_NET_CONCEALED = "concealed"
_NET_DRIFT = "drift"
_NET_KEYS = frozenset(
    {_NET_LOST, _NET_LATE, _NET_REORDERED, _NET_DUPLICATES, _NET_JITTER, _NET_CONCEALED, _NET_DRIFT}
)
_NOT_MEASURED = "-"
_COUNT = re.compile(r"[0-9]+")
_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_SIGNED = re.compile(r"[+-]?[0-9]+")
_CONCEALED = re.compile(r"([0-9]+)/([0-9]+)")


class SessionFigures(Protocol):
    """What :meth:`NetworkFigures.from_session` reads: a listener ``Session`` has all of it."""

    @property
    def wire(self) -> Wire: ...
    @property
    def lost(self) -> int: ...
    @property
    def late(self) -> int: ...
    @property
    def reordered(self) -> int: ...
    @property
    def duplicates(self) -> int: ...
    @property
    def jitter_ms(self) -> float: ...
    @property
    def concealed_ms(self) -> int: ...
    @property
    def concealments(self) -> int: ...
    @property
    def drift_ppm(self) -> float | None: ...


def _count(value: int) -> int:
    return min(max(0, value), MAX_FIGURE_COUNT)


@dataclass(frozen=True, slots=True)
class NetworkFigures:
    """What the network did to one session, as TXT ``net`` carries it (module docstring).

    ``jitter_ms`` is kept to one decimal and ``drift_ppm`` whole, as published, so that
    ``NetworkFigures.parse(f.to_text()) == f``. Values outside the bounds (negative counts,
    counts above :data:`MAX_FIGURE_COUNT`, jitter that is not a finite number from 0 to
    :data:`MAX_JITTER_MS`, drift beyond :data:`MAX_DRIFT_PPM`) raise ValueError;
    :meth:`from_session` clamps instead.
    """

    lost: int | None
    """RTP packets never received; None for a raw stream (no sequence numbers)."""
    late: int
    reordered: int
    duplicates: int
    jitter_ms: float
    concealed_ms: int
    concealments: int
    """Gaps concealed (a burst of losses is one)."""
    drift_ppm: int | None
    """Clock drift corrected, sender against sound card; None: not measured."""

    def __post_init__(self) -> None:
        counts = [self.late, self.reordered, self.duplicates, self.concealed_ms, self.concealments]
        if self.lost is not None:
            counts.append(self.lost)
        if any(not 0 <= count <= MAX_FIGURE_COUNT for count in counts):
            raise ValueError(f"network figures must be counts from 0 to {MAX_FIGURE_COUNT}")
        if not (math.isfinite(self.jitter_ms) and 0 <= self.jitter_ms <= MAX_JITTER_MS):
            raise ValueError(f"jitter must be from 0 to {MAX_JITTER_MS} ms")
        if self.drift_ppm is not None and abs(self.drift_ppm) > MAX_DRIFT_PPM:
            raise ValueError(f"drift must be within +-{MAX_DRIFT_PPM} ppm")
        object.__setattr__(self, "jitter_ms", round(float(self.jitter_ms), 1))
        if self.drift_ppm is not None:
            object.__setattr__(self, "drift_ppm", int(self.drift_ppm))

    @classmethod
    def from_session(cls, session: SessionFigures) -> NetworkFigures:
        """A listener's ended session's figures (rounded and clamped to what ``net`` takes)."""
        jitter = session.jitter_ms if math.isfinite(session.jitter_ms) else MAX_JITTER_MS
        drift = session.drift_ppm
        return cls(
            lost=_count(session.lost) if session.wire is Wire.RTP else None,
            late=_count(session.late),
            reordered=_count(session.reordered),
            duplicates=_count(session.duplicates),
            jitter_ms=min(max(0.0, round(jitter, 1)), MAX_JITTER_MS),
            concealed_ms=_count(session.concealed_ms),
            concealments=_count(session.concealments),
            drift_ppm=(
                None
                if drift is None or not math.isfinite(drift)
                else min(max(-MAX_DRIFT_PPM, round(drift)), MAX_DRIFT_PPM)
            ),
        )

    def to_text(self) -> str:
        """``"lost=3,late=1,reordered=5,dup=0,jitter=4.2,concealed=120/3,drift=-998"``."""
        lost = _NOT_MEASURED if self.lost is None else str(self.lost)
        drift = _NOT_MEASURED if self.drift_ppm is None else str(self.drift_ppm)
        return (
            f"{_NET_LOST}={lost},{_NET_LATE}={self.late},{_NET_REORDERED}={self.reordered},"
            f"{_NET_DUPLICATES}={self.duplicates},{_NET_JITTER}={self.jitter_ms:.1f},"
            f"{_NET_CONCEALED}={self.concealed_ms}/{self.concealments},{_NET_DRIFT}={drift}"
        )

    @classmethod
    def parse(cls, text: str | None) -> NetworkFigures | None:
        """The inverse of :meth:`to_text`; None (never an exception) for anything unreadable.

        The keys may come in any order and unknown ones are ignored (a newer listener may add
        figures); a missing or repeated key, or a value that is not what the key takes, makes
        the whole text unreadable.
        """
        if not isinstance(text, str):
            return None
        values: dict[str, str] = {}
        for part in text.split(","):
            key, equals, value = part.partition("=")
            if not equals or key in values:
                return None
            values[key] = value
        if not _NET_KEYS.issubset(values):
            return None
        lost, drift = values[_NET_LOST], values[_NET_DRIFT]
        concealed = _CONCEALED.fullmatch(values[_NET_CONCEALED])
        counts = (values[_NET_LATE], values[_NET_REORDERED], values[_NET_DUPLICATES])
        if (
            concealed is None
            or not all(_COUNT.fullmatch(count) for count in counts)
            or not (lost == _NOT_MEASURED or _COUNT.fullmatch(lost))
            or not (drift == _NOT_MEASURED or _SIGNED.fullmatch(drift))
            or not _DECIMAL.fullmatch(values[_NET_JITTER])
        ):
            return None
        try:
            return cls(
                lost=None if lost == _NOT_MEASURED else int(lost),
                late=int(counts[0]),
                reordered=int(counts[1]),
                duplicates=int(counts[2]),
                jitter_ms=round(float(values[_NET_JITTER]), 1),
                concealed_ms=int(concealed[1]),
                concealments=int(concealed[2]),
                drift_ppm=None if drift == _NOT_MEASURED else int(drift),
            )
        except ValueError:  # out of bounds, or digits beyond int()'s limit
            return None

    def describe(self) -> str:
        """For people: ``"lost 3, late 1, reordered 5, duplicates 0, jitter 4.2 ms, concealed
        120 ms in 3 gaps, drift -998 ppm"`` (no ``lost`` for a raw stream; ``drift not
        measured``), as the session's log line words them."""
        lost = "" if self.lost is None else f"lost {self.lost}, "
        gaps = "gap" if self.concealments == 1 else "gaps"
        drift = "not measured" if self.drift_ppm is None else f"{self.drift_ppm:+d} ppm"
        return (
            f"{lost}late {self.late}, reordered {self.reordered}, "
            f"duplicates {self.duplicates}, jitter {self.jitter_ms:.1f} ms, "
            f"concealed {self.concealed_ms} ms in {self.concealments} {gaps}, drift {drift}"
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; ``lost`` and ``drift_ppm`` are null when not measured."""
        return {
            "lost": self.lost,
            "late": self.late,
            "reordered": self.reordered,
            "duplicates": self.duplicates,
            "jitter_ms": self.jitter_ms,
            "concealed_ms": self.concealed_ms,
            "concealments": self.concealments,
            "drift_ppm": self.drift_ppm,
        }


LARGEST_REALISTIC_LATENCY_MS = 10_000
LARGEST_REALISTIC_NETWORK = NetworkFigures(
    lost=9_999_999,
    late=9_999_999,
    reordered=9_999_999,
    duplicates=9_999_999,
    jitter_ms=9_999.9,
    concealed_ms=99_999_999,
    concealments=9_999_999,
    drift_ppm=-99_999,
)
"""A day-long stream at 100 packets a second gone as wrong as it can (every count in the
millions, over a day concealed, 10 s of jitter, 10% drift): the largest ``net`` to plan for."""
PLAYOUT_TXT_RESERVE_BYTES = txt_record_bytes(
    {
        TXT_LATENCY: str(LARGEST_REALISTIC_LATENCY_MS),
        TXT_NETWORK: LARGEST_REALISTIC_NETWORK.to_text(),
        TXT_SYNC: LARGEST_REALISTIC_SYNC.to_text(),
    }
)
"""What ``lat``, ``net`` and ``syn`` add to the TXT record at most, at realistic values."""


# -- the properties ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ListenerProperties:
    """The TXT properties of a listener. ``None`` means the key was absent or unreadable.

    A missing ``rate``/``format``/``channels`` is taken to mean the seed format (the raw
    wire's): only a TXT that *says* something else makes the raw wire unusable. A missing
    ``rtp`` means no RTP at all.
    """

    rate: int | None = RAW_FORMAT.rate
    format: str | None = SEED_RAW_FORMAT_NAME
    channels: int | None = RAW_FORMAT.channels
    ptime: int | None = round(RAW_FORMAT.ptime_ms)
    rtp: frozenset[int] | None = None
    """RTP payload types played (TXT ``rtp``); None: no RTP."""
    l16_base: int | None = None
    """Base of the built-in L16 table (TXT ``l16``)."""
    rtp_map: tuple[str, ...] = ()
    """``PT=ENC/RATE[/CH]`` entries beyond what ``rtp`` and ``l16`` imply (TXT ``map``)."""
    max_rate: int | None = None
    max_channels: int | None = None
    version: str | None = __version__
    state: str | None = None
    latency_ms: int | None = None
    """The current playout latency target (TXT ``lat``); None: not advertised."""
    network: NetworkFigures | None = None
    """The last ended session's figures (TXT ``net``); None: no session yet, or unreadable."""
    auth: str | None = None
    """How streams must authenticate (TXT ``auth``, :data:`AUTH_SRTP`); None: open."""
    sync: SyncRecord | None = None
    """Playing in step with a group (TXT ``syn``, :mod:`.syncrecord`); None: not, or
    unreadable."""
    extra: Mapping[str, str | None] = field(default_factory=dict)
    """Keys this version does not know, kept so a round trip loses nothing."""

    @classmethod
    def for_payload_map(
        cls, payload_map: PayloadMap | None, *, state: str | None = None
    ) -> ListenerProperties:
        """What a listener playing RTP per ``payload_map`` (None: raw only) advertises."""
        if payload_map is None:
            return cls(state=state)
        played = {
            pt: fmt
            for pt in range(LAST_PAYLOAD_TYPE + 1)
            if (fmt := played_format(payload_map, pt)) is not None
        }
        base = _best_l16_base(played)
        entries = tuple(
            mapping_text(pt, fmt)
            for pt, fmt in played.items()
            if not _same_wire(fmt, _implied_format(pt, base))
        )
        return cls(
            rtp=frozenset(played),
            l16_base=base,
            rtp_map=entries,
            max_rate=max((f.rate for f in played.values()), default=None),
            max_channels=max((f.channels for f in played.values()), default=None),
            state=state,
        )

    @classmethod
    def parse(cls, properties: Mapping[str, str | None]) -> ListenerProperties:
        """From decoded TXT properties (``ServiceInfo.decoded_properties``)."""
        map_keys = _map_keys(properties)
        entries = tuple(
            entry for key in map_keys for entry in (properties[key] or "").split(",") if entry
        )
        known = KNOWN_KEYS | set(map_keys)
        return cls(
            rate=_int_or_none(properties.get(TXT_RATE)),
            format=properties.get(TXT_FORMAT),
            channels=_int_or_none(properties.get(TXT_CHANNELS)),
            ptime=_int_or_none(properties.get(TXT_PTIME)),
            rtp=parse_payload_types(properties.get(TXT_RTP)),
            l16_base=_int_or_none(properties.get(TXT_L16)),
            rtp_map=entries,
            max_rate=_int_or_none(properties.get(TXT_MAX_RATE)),
            max_channels=_int_or_none(properties.get(TXT_MAX_CHANNELS)),
            version=properties.get(TXT_VERSION),
            state=properties.get(TXT_STATE),
            latency_ms=_non_negative_or_none(properties.get(TXT_LATENCY)),
            network=NetworkFigures.parse(properties.get(TXT_NETWORK)),
            auth=properties.get(TXT_AUTH),
            sync=SyncRecord.parse(properties.get(TXT_SYNC)),
            extra={k: v for k, v in properties.items() if k not in known},
        )

    def to_properties(self) -> dict[str, str | None]:
        """To a ``ServiceInfo(properties=...)`` mapping; absent (``None``) fields are left out."""
        fields: dict[str, object] = {
            TXT_RATE: self.rate,
            TXT_FORMAT: self.format,
            TXT_CHANNELS: self.channels,
            TXT_PTIME: self.ptime,
            TXT_RTP: None if self.rtp is None else format_payload_types(self.rtp),
            TXT_L16: self.l16_base,
        }
        out: dict[str, str | None] = {k: str(v) for k, v in fields.items() if v is not None}
        out.update(_split_map(self.rtp_map))
        tail: dict[str, object] = {
            TXT_MAX_RATE: self.max_rate,
            TXT_MAX_CHANNELS: self.max_channels,
            TXT_VERSION: self.version,
            TXT_STATE: self.state,
            TXT_LATENCY: self.latency_ms,
            TXT_NETWORK: None if self.network is None else self.network.to_text(),
            TXT_AUTH: self.auth,
            TXT_SYNC: None if self.sync is None else self.sync.to_text(),
        }
        out.update({k: str(v) for k, v in tail.items() if v is not None})
        out.update(self.extra)
        return out

    # -- the raw wire ----------------------------------------------------------------------

    def format_mismatch(self) -> str | None:
        """Why a sender of the raw wire's format cannot use this listener's raw wire, or None."""
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
        """The raw wire, short, for tables: ``"s16le 8000Hz 1ch 20ms"`` (``?`` for unknown)."""

        def text(value: object) -> str:
            return "?" if value is None else str(value)

        return (
            f"{text(self.format)} {text(self.rate)}Hz {text(self.channels)}ch {text(self.ptime)}ms"
        )

    # -- RTP -------------------------------------------------------------------------------

    @property
    def plays_rtp(self) -> bool:
        return bool(self.rtp)

    def _map_entries(self) -> tuple[dict[int, AudioFormat], set[int]]:
        """The readable ``map`` entries, and the types of unreadable ones."""
        readable: dict[int, AudioFormat] = {}
        unreadable: set[int] = set()
        for entry in self.rtp_map:
            try:
                payload_type, fmt = parse_mapping(entry)
            except (UsageError, ValueError):
                # A newer listener's encoding, say: whatever it is, it is not what the
                # defaults imply, so that type must not be used.
                pt_text = entry.partition("=")[0].strip()
                if pt_text.isdigit():
                    unreadable.add(int(pt_text))
                log.debug("unreadable payload map entry %r in TXT", entry)
                continue
            readable[payload_type] = fmt
        return readable, unreadable

    def payload_map(self) -> PayloadMap | None:
        """The listener's payload map as its TXT describes it; None if it plays no RTP.

        Only for the types in :meth:`rtp_payload_types`: ``format_for`` answers for others too.
        """
        if not self.plays_rtp:
            return None
        readable, _ = self._map_entries()
        builtin: dict[int, AudioFormat] = {}
        if _valid_l16_base(self.l16_base):
            assert self.l16_base is not None
            builtin = l16_table(self.l16_base)
        return PayloadMap(readable, RTP_DEFAULT_FORMAT, builtin)

    def rtp_payload_types(self) -> frozenset[int]:
        """The payload types the listener plays and this version understands."""
        if not self.rtp:
            return frozenset()
        _, unreadable = self._map_entries()
        return self.rtp - unreadable

    def rtp_formats(self) -> dict[int, AudioFormat]:
        """Payload type -> what the listener plays it as, for every usable type.

        Worked out from the keys themselves (static types, ``l16``, ``map``, the default), so
        that it means what the TXT says whatever :class:`PayloadMap` adds of its own."""
        readable, _ = self._map_entries()
        formats = {}
        for pt in sorted(self.rtp_payload_types()):
            fmt = readable.get(pt) or _implied_format(pt, self.l16_base)
            if fmt is not None:
                formats[pt] = fmt
        return formats

    def describe_rtp(self) -> str:
        """RTP, short, for tables: ``"L16,PCMU,PCMA 8000-48000Hz 1-2ch"``; ``"-"`` if none."""
        formats = list(self.rtp_formats().values())
        if not formats:
            return "-"
        names = {Encoding.S16BE: "L16", Encoding.PCMU: "PCMU", Encoding.PCMA: "PCMA"}
        order = [Encoding.S16BE, Encoding.PCMU, Encoding.PCMA, Encoding.S16LE]
        encodings = ",".join(
            names.get(e, str(e)) for e in order if any(f.encoding is e for f in formats)
        )
        rates = sorted({f.rate for f in formats})
        channels = sorted({f.channels for f in formats})

        def span(values: list[int]) -> str:
            return str(values[0]) if len(values) == 1 else f"{values[0]}-{values[-1]}"

        return f"{encodings} {span(rates)}Hz {span(channels)}ch"


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
        """True unless the TXT says another raw rate, sample format or channel count."""
        return self.properties.format_mismatch() is None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``appliance discover --json``); ``rtp`` is null without RTP,
        ``latency_ms`` and ``network`` when the listener does not advertise them."""
        p = self.properties
        rtp: dict[str, Any] | None = None
        if p.rtp is not None:
            rtp = {
                "payload_types": sorted(p.rtp),
                "l16_base": p.l16_base,
                "map": list(p.rtp_map),
                "max_rate": p.max_rate,
                "max_channels": p.max_channels,
            }
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
            "rtp": rtp,
            "latency_ms": p.latency_ms,
            "network": None if p.network is None else p.network.to_json(),
            "sync": None if p.sync is None else p.sync.to_json(),
        }
