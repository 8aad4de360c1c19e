"""Which wire and which RTP payload type a file goes out on: :func:`plan_stream`.

The wire:

* ``--to NAME``, a listener found over mDNS whose TXT advertises RTP: RTP;
* ``--to NAME`` whose TXT does not (an appliance before RTP, the seed): the raw wire;
* ``--to`` an IP address or host name: the raw wire, as nothing says what listens there;
* ``--rtp`` / ``--raw`` force either.

What the source is sent as is decided by :mod:`appliance.sender.conversion`: its own rate and
channels if the listener plays them on that wire, else the best the listener plays. The raw
wire carries only 8000 Hz mono (:data:`~appliance.wire.raw.RAW_FORMAT`), so anything else
sent on it is converted to that.

The RTP payload type for audio sent at rate R and channels C as L16 (16-bit big-endian), is
the first of these that the listener plays as L16 R/C (:func:`choose_payload_type`):

1. RFC 3551's static types for CD audio: 11 (44100 Hz mono) and 10 (44100 Hz stereo), which
   any RTP receiver knows;
2. the types of the listener's own map entries (TXT ``map``), lowest first;
3. its built-in L16 table (TXT ``l16``: 112 + 2 * rate index + C - 1, 112 to 127);
4. any other dynamic type (96-127) it plays as L16 R/C: 8000 Hz mono, the format every
   dynamic type without an entry stands for.

``--rtp`` to an address has no TXT to read: it assumes an appliance listener's defaults
(static types, the built-in table). A listener that plays no L16 at all (G.711 only) is an
error that names what it plays.

Example::

    plan = plan_stream(source.format, resolved.listener, source_name=source.name,
                       target=resolved.describe(), force=None)
    source.convert_to(plan.source_format)      # what is sent: the source's or the listener's
    sender.send(plan.stream(source.chunks()))
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from appliance.audio.format import AudioFormat, Encoding, channel_word
from appliance.discovery.records import (
    FIRST_DYNAMIC_TYPE,
    LAST_PAYLOAD_TYPE,
    ListenerProperties,
    ListenerRecord,
)
from appliance.errors import UsageError
from appliance.sender.conversion import choose_format
from appliance.sender.packetizer import PacketStream, RawStream, RtpStream
from appliance.wire import Wire
from appliance.wire.payload import BUILTIN_L16_BASE, STATIC_FORMATS, encoding_name, l16_table
from appliance.wire.raw import RAW_FORMAT, frame_pcm

log = logging.getLogger(__name__)

CD_PAYLOAD_TYPES = {1: 11, 2: 10}
"""RFC 3551's static L16 types at 44100 Hz, by channel count."""
CD_RATE = 44100

ASSUMED_LISTENER = ListenerProperties(
    rtp=frozenset(STATIC_FORMATS) | frozenset(range(FIRST_DYNAMIC_TYPE, LAST_PAYLOAD_TYPE + 1)),
    l16_base=BUILTIN_L16_BASE,
)
"""What ``--rtp`` to an address assumes is there: an appliance listener with no user map."""

ENCODING_ORDER = (Encoding.S16BE, Encoding.PCMU, Encoding.PCMA)
"""The order formats are listed in an error: L16 first."""


def describe_wire_format(fmt: AudioFormat) -> str:
    """``"L16 48000 Hz stereo"``."""
    return f"{encoding_name(fmt.encoding)} {fmt.rate} Hz {channel_word(fmt.channels)}"


def describe_pcm(fmt: AudioFormat) -> str:
    """``"48000 Hz stereo"``."""
    return f"{fmt.rate} Hz {channel_word(fmt.channels)}"


@dataclass(frozen=True, slots=True)
class StreamPlan:
    """How one source goes out: the wire and, on RTP, the payload type."""

    wire: Wire
    source_format: AudioFormat
    payload_type: int | None = None

    def stream(self, chunks: Iterable[bytes]) -> PacketStream:
        """The packets of ``chunks`` (s16le PCM in :attr:`source_format`) on this plan's wire."""
        if self.wire is Wire.RTP:
            assert self.payload_type is not None
            return RtpStream(chunks, self.source_format, self.payload_type)
        return RawStream(frame_pcm(chunks, self.source_format), self.source_format)

    def describe_sent(self) -> str:
        """What the audio goes as: ``"L16 48000 Hz stereo"`` or ``"raw 8000 Hz mono"``."""
        if self.wire is Wire.RTP:
            return f"L16 {describe_pcm(self.source_format)}"
        return f"raw {describe_pcm(self.source_format)}"

    def describe(self) -> str:
        """``"RTP type 127 (L16 48000 Hz stereo)"`` or ``"raw (8000 Hz mono s16le)"``."""
        if self.wire is Wire.RTP:
            l16 = AudioFormat(self.source_format.rate, self.source_format.channels, Encoding.S16BE)
            return f"RTP type {self.payload_type} ({describe_wire_format(l16)})"
        return f"raw ({describe_pcm(self.source_format)} s16le)"


def choose_payload_type(
    source_format: AudioFormat,
    formats: Mapping[int, AudioFormat],
    map_types: Iterable[int] = (),
    l16_base: int | None = None,
) -> int | None:
    """The payload type to send ``source_format`` as L16, given what the listener plays
    (``formats``: type -> format) and where its map entries and L16 table are; None if no
    type fits. The order is in the module docstring."""
    wanted = AudioFormat(source_format.rate, source_format.channels, Encoding.S16BE)
    candidates: list[int] = []
    if source_format.rate == CD_RATE:
        candidates.append(CD_PAYLOAD_TYPES[source_format.channels])
    candidates += sorted(map_types)
    if l16_base is not None:
        candidates += sorted(l16_table(l16_base))
    candidates += range(FIRST_DYNAMIC_TYPE, LAST_PAYLOAD_TYPE + 1)
    for payload_type in candidates:
        fmt = formats.get(payload_type)
        if fmt is not None and fmt.encoding == wanted.encoding and fmt.same_pcm(wanted):
            return payload_type
    return None


def listener_payload_type(source_format: AudioFormat, properties: ListenerProperties) -> int | None:
    """:func:`choose_payload_type` for a listener as its TXT describes it."""
    map_types = [
        int(entry.partition("=")[0])
        for entry in properties.rtp_map
        if entry.partition("=")[0].strip().isdigit()
    ]
    return choose_payload_type(
        source_format, properties.rtp_formats(), map_types, properties.l16_base
    )


def describe_rtp_formats(properties: ListenerProperties) -> str:
    """``"L16 8000 Hz mono, L16 44100 Hz stereo, PCMU 8000 Hz mono"``: what it plays."""
    seen: list[str] = []
    ordered = sorted(
        properties.rtp_formats().values(),
        key=lambda f: (
            ENCODING_ORDER.index(f.encoding)
            if f.encoding in ENCODING_ORDER
            else len(ENCODING_ORDER),
            f.rate,
            f.channels,
        ),
    )
    for fmt in ordered:
        text = describe_wire_format(fmt)
        if text not in seen:
            seen.append(text)
    return ", ".join(seen) or "nothing"


def playable_formats(wire: Wire, properties: ListenerProperties) -> set[tuple[int, int]]:
    """The (rate, channels) pairs a listener plays on ``wire``: the raw wire's one format, or
    every L16 format of its RTP payload types."""
    if wire is Wire.RAW:
        return {(RAW_FORMAT.rate, RAW_FORMAT.channels)}
    return {
        (fmt.rate, fmt.channels)
        for fmt in properties.rtp_formats().values()
        if fmt.encoding is Encoding.S16BE
    }


def plan_stream(
    source_format: AudioFormat,
    listener: ListenerRecord | None,
    *,
    source_name: str,
    target: str,
    force: Wire | None = None,
) -> StreamPlan:
    """The wire, the format sent and the payload type for a source of ``source_format`` (the
    best it can be sent as, see :func:`~appliance.sender.conversion.sendable_format`) sent to
    ``target``.

    ``listener`` is the record when ``--to`` named a listener found over mDNS (None for an
    address or host name); ``force`` is ``--rtp``/``--raw``. The format sent
    (:attr:`StreamPlan.source_format`) is chosen by :func:`~appliance.sender.conversion.
    choose_format`: the source's own if the listener plays it, else the best it plays. Raises
    :class:`UsageError` when the listener plays no L16 at all, saying what it plays.
    """
    properties = listener.properties if listener is not None else None
    if force is not None:
        wire = force
    elif properties is not None and properties.plays_rtp:
        wire = Wire.RTP
    else:
        wire = Wire.RAW

    if wire is Wire.RAW:
        return StreamPlan(Wire.RAW, RAW_FORMAT.with_ptime(source_format.ptime_ms))

    if properties is None or not properties.plays_rtp:
        if listener is not None:
            log.warning(
                "listener %r advertises no RTP; sending RTP anyway (--rtp), assuming an "
                "appliance listener's payload types",
                listener.name,
            )
        properties = ASSUMED_LISTENER
    sent = choose_format(source_format, playable_formats(Wire.RTP, properties))
    payload_type = None if sent is None else listener_payload_type(sent, properties)
    if sent is None or payload_type is None:
        who = f"listener {listener.name!r}" if listener is not None else target
        raise UsageError(
            f"{who} plays no RTP payload type for {source_name} "
            f"({describe_pcm(source_format)} L16); over RTP it plays "
            f"{describe_rtp_formats(properties)}"
        )
    return StreamPlan(Wire.RTP, sent, payload_type)
