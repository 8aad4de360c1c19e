"""Codecs: wire samples to and from the listener's internal PCM (s16le interleaved).

One :class:`Codec` per :class:`~appliance.audio.format.Encoding`, looked up with
:func:`codec_for`. They are stateless and sample-by-sample, so a packet decodes alone, in any
order, and a lost packet costs nothing but its own audio. Every codec drops a partial sample
frame at the end of its input: half a frame cannot be played, and keeping it would swap the
channels of everything after it.

Example::

    codec = codec_for(fmt.encoding)             # fmt from PayloadMap.format_for(pt)
    pcm = codec.decode(packet.payload, fmt.channels)   # s16le, whatever the wire had
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Protocol

from appliance.audio.format import Encoding
from appliance.wire.codecs.g711 import ALAW, MULAW
from appliance.wire.codecs.l16 import L16, S16LE


class Codec(Protocol):
    @property
    def encoding(self) -> Encoding: ...

    def decode(self, payload: bytes, channels: int) -> bytes:
        """Wire bytes to s16le interleaved PCM, whole frames of ``channels`` samples."""
        ...

    def encode(self, pcm: bytes, channels: int) -> bytes:
        """s16le interleaved PCM to wire bytes, whole frames of ``channels`` samples."""
        ...


CODECS: Mapping[Encoding, Codec] = MappingProxyType(
    {codec.encoding: codec for codec in (S16LE, L16, MULAW, ALAW)}
)


def codec_for(encoding: Encoding) -> Codec:
    try:
        return CODECS[encoding]
    except KeyError:
        known = ", ".join(str(e) for e in CODECS)
        raise ValueError(f"no codec for encoding {encoding!r} (known: {known})") from None
