"""RTP payload types: what audio format a packet's 7-bit type number stands for.

Four static types of RFC 3551 (table 4) are audio the appliance plays. Types 96-127 are
dynamic: their meaning is agreed out of band (SDP's ``a=rtpmap``), here by ``--payload-map``
texts such as ``96=L16/48000/2``, and types 112-127 by a built-in table of L16 formats
(:data:`BUILTIN_DYNAMIC`) that our sender uses. A dynamic type nobody mapped is taken for L16 in the
listener's default rate and channels, as that is what simple senders (ffmpeg, GStreamer's
``rtpL16pay``) most often mean by it. Every other type is unassigned or reserved: not audio.

Example::

    payloads = PayloadMap.from_texts(["96=L16/48000/2"], default=RAW_FORMAT)
    payloads.format_for(96)     # 48000 Hz stereo s16be
    payloads.format_for(0)      # 8000 Hz mono pcmu (static)
    payloads.format_for(97)     # 8000 Hz mono s16be (the default's rate, as L16)
    payloads.format_for(127)    # 48000 Hz stereo s16be (the built-in table)
    payloads.format_for(20)     # None: unassigned
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from appliance.audio.format import (
    MAX_CHANNELS,
    SUPPORTED_RATES,
    AudioFormat,
    Encoding,
    check_rate,
)
from appliance.errors import UsageError

PTIME_MS = 20.0
"""RFC 3551's default packet time for these encodings (section 4.5)."""

STATIC_FORMATS: Mapping[int, AudioFormat] = MappingProxyType(
    {
        0: AudioFormat(8000, 1, Encoding.PCMU, PTIME_MS),
        8: AudioFormat(8000, 1, Encoding.PCMA, PTIME_MS),
        10: AudioFormat(44100, 2, Encoding.S16BE, PTIME_MS),
        11: AudioFormat(44100, 1, Encoding.S16BE, PTIME_MS),
    }
)
"""The static audio types of RFC 3551 table 4 that the appliance decodes."""

DYNAMIC_TYPES = range(96, 128)

BUILTIN_L16_BASE = 112
"""First of the dynamic types that every appliance listener knows without a map."""
L16_TABLE_SIZE = 2 * len(SUPPORTED_RATES)


def l16_table(base: int) -> dict[int, AudioFormat]:
    """L16 in every supported rate, mono then stereo, on ``base`` .. ``base + 15``."""
    return {
        base + 2 * index + channels - 1: AudioFormat(rate, channels, Encoding.S16BE, PTIME_MS)
        for index, rate in enumerate(SUPPORTED_RATES)
        for channels in (1, 2)
    }


BUILTIN_DYNAMIC: Mapping[int, AudioFormat] = MappingProxyType(l16_table(BUILTIN_L16_BASE))
"""L16 in every supported rate, mono and stereo, on types 112-127 (8000 Hz mono is 112,
8000 Hz stereo 113, 11025 Hz mono 114 ... 48000 Hz stereo 127): how our sender sends any
format to our listener with no configuration. A user's map overrides them type by type;
senders that use 96 or 97 (ffmpeg, GStreamer) are not affected."""

ENCODING_NAMES: Mapping[str, Encoding] = MappingProxyType(
    {"L16": Encoding.S16BE, "PCMA": Encoding.PCMA, "PCMU": Encoding.PCMU}
)
"""SDP encoding names (RFC 3551 section 4.5, matched case-insensitively) to encodings."""

_NAMES_BY_ENCODING = {encoding: name for name, encoding in ENCODING_NAMES.items()}

RTP_DEFAULT_FORMAT = AudioFormat(8000, 1, Encoding.S16BE, PTIME_MS)
"""What an appliance listener plays a dynamic type in neither its map nor its L16 table as:
L16 at the raw wire's rate and channels, what ffmpeg's type 97 and GStreamer's rtpL16pay
type 96 send by default."""


def encoding_name(encoding: Encoding) -> str:
    """The SDP name of ``encoding`` (``"L16"``, ``"PCMU"``...), or its own name if it has none."""
    return _NAMES_BY_ENCODING.get(encoding, str(encoding))
_FORM = "expected PT=ENCODING/RATE[/CHANNELS], e.g. 96=L16/48000/2"


def parse_mapping(text: str) -> tuple[int, AudioFormat]:
    """``"96=L16/48000/2"`` as ``(96, 48000 Hz stereo s16be)``; channels default to 1."""
    what = f"payload map '{text}'"
    pt_text, equals, spec = text.partition("=")
    parts = [part.strip() for part in spec.split("/")]
    if not equals or not 2 <= len(parts) <= 3:
        raise UsageError(f"{what}: {_FORM}")
    pt = _integer(pt_text.strip(), what, "payload type")
    if pt not in DYNAMIC_TYPES:
        raise UsageError(
            f"{what}: payload type {pt} is not dynamic "
            f"({DYNAMIC_TYPES.start}-{DYNAMIC_TYPES.stop - 1})"
        )
    encoding = ENCODING_NAMES.get(parts[0].upper())
    if encoding is None:
        known = ", ".join(sorted(ENCODING_NAMES))
        raise UsageError(f"{what}: unknown encoding '{parts[0]}' (known: {known})")
    rate = check_rate(_integer(parts[1], what, "rate"), what)
    channels = _integer(parts[2], what, "channel count") if len(parts) == 3 else 1
    if not 1 <= channels <= MAX_CHANNELS:
        raise UsageError(f"{what}: {channels} channels: only mono and stereo are played")
    return pt, AudioFormat(rate, channels, encoding, PTIME_MS)


def mapping_text(pt: int, fmt: AudioFormat) -> str:
    """The text :func:`parse_mapping` reads back; channels written only when not mono (SDP)."""
    name = _NAMES_BY_ENCODING.get(fmt.encoding)
    if name is None:
        raise ValueError(f"{fmt.encoding} has no RTP encoding name")
    channels = f"/{fmt.channels}" if fmt.channels != 1 else ""
    return f"{pt}={name}/{fmt.rate}{channels}"


@dataclass(frozen=True)
class PayloadMap:
    """Payload type -> format: the static table, the user's map, the built-in dynamic table,
    then L16 in the default's rate and channels for the rest of the dynamic types."""

    dynamic: Mapping[int, AudioFormat]
    default: AudioFormat
    """Rate and channels assumed for an unmapped dynamic type (its encoding is ignored)."""
    builtin: Mapping[int, AudioFormat] = field(default_factory=lambda: BUILTIN_DYNAMIC)
    """Dynamic types known without a map (empty for a listener that has none)."""

    def __post_init__(self) -> None:
        for pt in self.dynamic:
            if pt not in DYNAMIC_TYPES:
                raise ValueError(f"payload type {pt} is not dynamic, it cannot be mapped")

    def format_for(self, pt: int) -> AudioFormat | None:
        """The format of payload type ``pt``, or None if it is not audio we know."""
        static = STATIC_FORMATS.get(pt)
        if static is not None:
            return static
        mapped = self.dynamic.get(pt) or self.builtin.get(pt)
        if mapped is not None:
            return mapped
        if pt in DYNAMIC_TYPES:
            return replace(self.default, encoding=Encoding.S16BE)
        return None

    @classmethod
    def from_texts(cls, texts: Iterable[str], default: AudioFormat) -> PayloadMap:
        """The map of ``--payload-map`` texts; a type given twice is a :class:`UsageError`."""
        dynamic: dict[int, AudioFormat] = {}
        for text in texts:
            pt, fmt = parse_mapping(text)
            if pt in dynamic:
                raise UsageError(
                    f"payload map '{text}': payload type {pt} is already mapped "
                    f"({mapping_text(pt, dynamic[pt])})"
                )
            dynamic[pt] = fmt
        return cls(MappingProxyType(dynamic), default)


def _integer(text: str, what: str, name: str) -> int:
    # int() alone would accept "+96", " 96" or "9_6"; a payload map is digits only.
    if not text.isdigit() or not text.isascii():
        raise UsageError(f"{what}: {name} '{text}' is not a whole number")
    return int(text)
