"""Datagrams in, positioned frames out: the listener's depacketizing stage.

A frame's ``position`` is the index of its first sample on the listener's own timeline, which
runs on across sessions. For raw PCM the position is simply where the previous frame ended;
an RTP depacketizer will derive it from the RTP timestamp instead, and the playout buffer
then sees gaps and reordering through the same positions, without a rewrite.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.audio_format import SAMPLE_WIDTH
from appliance.framing import RawDatagram


@dataclass(frozen=True, slots=True)
class Frame:
    position: int
    """Index of the first sample on the listener's timeline."""
    payload: bytes
    """Signed 16-bit little-endian samples."""

    @property
    def samples(self) -> int:
        return len(self.payload) // SAMPLE_WIDTH

    @property
    def end(self) -> int:
        """Position just after the last sample."""
        return self.position + self.samples


class RawDepacketizer:
    """Positions raw-PCM datagrams back to back, in arrival order."""

    def __init__(self, start_position: int = 0) -> None:
        self._next_position = start_position

    def depacketize(self, datagram: RawDatagram) -> Frame:
        frame = Frame(self._next_position, datagram.payload)
        self._next_position = frame.end
        return frame
