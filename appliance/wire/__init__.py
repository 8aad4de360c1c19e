"""What travels between sender and listener, as bytes: the seed's raw PCM datagrams
(:mod:`.raw`), RTP and RTCP packets (:mod:`.rtp`, :mod:`.rtcp`), the payload types
(:mod:`.payload`) and the payload codecs (:mod:`.codecs`). Parsing and building only: no
sockets, no threads. A new payload type goes in :mod:`.payload` and, if it needs a new
encoding, a module in :mod:`.codecs`."""

from __future__ import annotations

from enum import StrEnum


class Wire(StrEnum):
    """The two wires one port carries, told apart per stream."""

    RAW = "raw"
    """The seed's raw PCM datagrams (:mod:`.raw`)."""
    RTP = "rtp"
    """RTP packets (:mod:`.rtp`), with RTCP beside them."""
