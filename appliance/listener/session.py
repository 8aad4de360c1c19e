"""One stream from one source, start to end, and the figures logged about it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from appliance.audio.format import AudioFormat
from appliance.listener.timesync import SyncFigures
from appliance.wire import Wire
from appliance.wire.raw import RAW_FORMAT

Address = tuple[str, int]


class EndReason(StrEnum):
    MARKER = "end-of-stream marker"
    BYE = "RTCP BYE"
    TIMEOUT = "timeout"
    STOPPED = "listening stopped"
    TAKEN_OVER = "taken over: silent, and another source streams"


@dataclass(slots=True)
class Session:
    number: int
    source: Address
    started_at: float
    """``time.monotonic()`` of the first datagram."""
    last_packet_at: float
    wire: Wire = Wire.RAW
    format: AudioFormat = RAW_FORMAT
    """The stream's format on the wire (its encoding) and as played (its rate and channels)."""
    payload_type: int | None = None
    """RTP payload type (None for raw)."""
    packets: int = 0
    audio_bytes: int = 0
    """Bytes of audio received, as decoded 16-bit PCM (for raw streams: the datagrams' bytes)."""
    invalid: int = 0
    """Datagrams from the source that were not audio (odd length, oversized, bad RTP)."""
    rtcp: int = 0
    """RTCP packets from the source (counted, never played)."""
    ignored: int = 0
    """Datagrams from other sources while this session ran."""
    underruns: int = 0
    dropped_bytes: int = 0
    peak_depth_ms: int = 0
    lost: int = 0
    """RTP packets never received (expected minus received, RFC 3550 A.3)."""
    late: int = 0
    """Packets that came after their time had been played (concealed instead)."""
    reordered: int = 0
    duplicates: int = 0
    concealed_ms: int = 0
    """Synthetic audio played in place of lost or late packets."""
    concealments: int = 0
    """Gaps concealed (a burst of losses is one)."""
    jitter_ms: float = 0.0
    """RFC 3550 interarrival jitter at the end of the stream."""
    target_ms: float = 0.0
    """The latency target at the end of the stream."""
    mean_depth_ms: float | None = None
    """Mean playout-buffer depth while playing (None if it never played)."""
    drift_ppm: float | None = None
    """Clock drift corrected, sender against sound card (None until the level settled)."""
    drift_by: str = ""
    """How the drift was corrected: "pauses" or "resampling" (empty: not at all)."""
    sync: SyncFigures | None = None
    """The sender's clock as measured, and the group delay it announced (RTP, issue 12)."""
    ended_at: float | None = None
    end_reason: EndReason | None = None

    @property
    def source_text(self) -> str:
        return f"{self.source[0]}:{self.source[1]}"

    @property
    def duration_s(self) -> float:
        """From the first datagram to the last (the timeout that may follow is not counted)."""
        return self.last_packet_at - self.started_at

    @property
    def audio_s(self) -> float:
        return self.audio_bytes / self.format.decoded().bytes_per_second

    @property
    def stream_text(self) -> str:
        """``"raw 8000 Hz mono s16le"`` or ``"RTP type 97, 48000 Hz stereo s16be"``."""
        if self.wire is Wire.RTP:
            return f"RTP type {self.payload_type}, {self.format}"
        return f"raw {self.format}"

    def start_line(self) -> str:
        return f"session {self.number} from {self.source_text} started: {self.stream_text}"

    def end_line(self) -> str:
        rtcp = f", rtcp {self.rtcp}" if self.wire is Wire.RTP else ""
        return (
            f"session {self.number} from {self.source_text} ended ({self.end_reason}): "
            f"{self.stream_text}, {self.packets} packets, {self.audio_bytes} bytes "
            f"({self.audio_s:.2f} s of audio) in {self.duration_s:.2f} s; "
            f"underruns {self.underruns}, dropped {self.dropped_bytes} bytes, "
            f"ignored {self.ignored}, invalid {self.invalid}{rtcp}, "
            f"max buffer {self.peak_depth_ms} ms; {self.network_text()}{self.sync_text()}"
        )

    def sync_text(self) -> str:
        """``"; offset to sender +37000.123 ms (+-0.041 ms, drift +300 ppm), group delay 80
        ms"`` when measured or announced, else ''."""
        text = "" if self.sync is None else self.sync.describe()
        return f"; {text}" if text else ""

    def network_text(self) -> str:
        """``"lost 3, late 1, reordered 5, duplicates 0, jitter 4.1 ms, concealed 60 ms in 3
        gaps, latency target 65 ms (mean depth 58 ms), drift +998 ppm (resampling)"``."""
        lost = f"lost {self.lost}, " if self.wire is Wire.RTP else ""
        depth = "" if self.mean_depth_ms is None else f" (mean depth {self.mean_depth_ms:.0f} ms)"
        if self.drift_ppm is None:
            drift = "drift not measured"
        else:
            how = f" ({self.drift_by})" if self.drift_by else ""
            drift = f"drift {self.drift_ppm:+.0f} ppm{how}"
        return (
            f"{lost}late {self.late}, reordered {self.reordered}, "
            f"duplicates {self.duplicates}, jitter {self.jitter_ms:.1f} ms, "
            f"concealed {self.concealed_ms} ms in {self.concealments} gaps, "
            f"latency target {self.target_ms:.0f} ms{depth}, {drift}"
        )
