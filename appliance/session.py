"""One stream from one source, start to end, and the figures logged about it."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from appliance.audio_format import BYTES_PER_SECOND, bytes_to_seconds

Address = tuple[str, int]


class EndReason(StrEnum):
    MARKER = "end-of-stream marker"
    TIMEOUT = "timeout"
    STOPPED = "listening stopped"


@dataclass(slots=True)
class Session:
    number: int
    source: Address
    started_at: float
    """``time.monotonic()`` of the first datagram."""
    last_packet_at: float
    packets: int = 0
    audio_bytes: int = 0
    invalid: int = 0
    """Datagrams from the source that were not audio (odd length, oversized)."""
    ignored: int = 0
    """Datagrams from other sources while this session ran."""
    underruns: int = 0
    dropped_bytes: int = 0
    peak_depth_bytes: int = 0
    ended_at: float | None = None
    end_reason: EndReason | None = None
    ignored_sources: set[Address] = field(default_factory=set)

    @property
    def source_text(self) -> str:
        return f"{self.source[0]}:{self.source[1]}"

    @property
    def duration_s(self) -> float:
        """From the first datagram to the last (the timeout that may follow is not counted)."""
        return self.last_packet_at - self.started_at

    def start_line(self) -> str:
        return f"session {self.number} from {self.source_text} started"

    def end_line(self) -> str:
        return (
            f"session {self.number} from {self.source_text} ended ({self.end_reason}): "
            f"{self.packets} packets, {self.audio_bytes} bytes "
            f"({bytes_to_seconds(self.audio_bytes):.2f} s of audio) in {self.duration_s:.2f} s; "
            f"underruns {self.underruns}, dropped {self.dropped_bytes} bytes, "
            f"ignored {self.ignored}, invalid {self.invalid}, "
            f"max buffer {self.peak_depth_bytes * 1000 // BYTES_PER_SECOND} ms"
        )
