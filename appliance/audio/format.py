"""The audio format as a value: :class:`AudioFormat` travels with every frame.

Nothing in the appliance assumes a rate, a channel count or a packet size: each stage reads
them from the format of the frames it is given. Positions and lengths count *sample frames*
(one sample of every channel), never bytes, so stereo and mono, 8 kHz and 48 kHz, are handled
by the same code.

Inside the listener, after depacketizing, audio is always signed 16-bit little-endian
interleaved PCM (:attr:`Encoding.S16LE`); the other encodings exist on the wire only.

Example::

    cd = AudioFormat(rate=44100, channels=2, encoding=Encoding.S16BE)   # RTP L16, static type 10
    cd.frame_bytes          # 4: one sample frame of 16-bit stereo
    cd.packet_frames        # 882: 20 ms
    cd.decoded()            # the same rate and channels as s16le PCM
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum

from appliance.errors import UsageError

MAX_CHANNELS = 2
MIN_RATE = 8000
MAX_RATE = 48000
SUPPORTED_RATES = (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000)
"""Sample rates the appliance plays (RFC 3551's L16 rates and the common CD/DVD ones)."""


class Encoding(StrEnum):
    """How samples are written as bytes."""

    S16LE = "s16le"
    """Signed 16-bit little-endian: the seed's raw wire and the listener's internal PCM."""
    S16BE = "s16be"
    """Signed 16-bit big-endian (network order): RTP's L16 (RFC 3551 section 4.5.11)."""
    PCMU = "pcmu"
    """G.711 mu-law, 8 bits a sample."""
    PCMA = "pcma"
    """G.711 A-law, 8 bits a sample."""

    @property
    def sample_bytes(self) -> int:
        return 1 if self in (Encoding.PCMU, Encoding.PCMA) else 2


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """Rate (Hz), channels, sample encoding and nominal packet time (ms) of a stream."""

    rate: int = 8000
    channels: int = 1
    encoding: Encoding = Encoding.S16LE
    ptime_ms: float = 20.0
    """Nominal audio per packet; packets of other durations are still played."""
    frame_bytes: int = field(init=False, compare=False, repr=False)
    """Bytes of one sample frame (one sample of every channel). Stored, not computed: the
    receiving thread and the audio callback ask for it for every packet."""

    def __post_init__(self) -> None:
        if not MIN_RATE <= self.rate <= MAX_RATE:
            raise ValueError(f"rate {self.rate} Hz is outside {MIN_RATE}-{MAX_RATE} Hz")
        if not 1 <= self.channels <= MAX_CHANNELS:
            raise ValueError(f"{self.channels} channels: only mono and stereo are played")
        if not 0 < self.ptime_ms <= 1000:
            raise ValueError(f"packet time {self.ptime_ms} ms is not between 0 and 1000 ms")
        object.__setattr__(self, "frame_bytes", self.encoding.sample_bytes * self.channels)

    @property
    def sample_bytes(self) -> int:
        return self.encoding.sample_bytes

    @property
    def bytes_per_second(self) -> int:
        return self.rate * self.frame_bytes

    @property
    def packet_frames(self) -> int:
        """Sample frames in one packet of :attr:`ptime_ms`."""
        return round(self.rate * self.ptime_ms / 1000)

    @property
    def packet_bytes(self) -> int:
        return self.packet_frames * self.frame_bytes

    def frames_in(self, n_bytes: int) -> int:
        """Whole sample frames in ``n_bytes``."""
        return n_bytes // self.frame_bytes

    def frames_for(self, seconds: float) -> int:
        """Whole sample frames in ``seconds`` (rounded down)."""
        return int(seconds * self.rate)

    def seconds(self, n_frames: int) -> float:
        return n_frames / self.rate

    def decoded(self) -> AudioFormat:
        """This format as the listener's internal PCM (s16le), same rate and channels."""
        return replace(self, encoding=Encoding.S16LE)

    def with_ptime(self, ptime_ms: float) -> AudioFormat:
        return replace(self, ptime_ms=ptime_ms)

    def same_pcm(self, other: AudioFormat) -> bool:
        """Same rate and channels: audio of one plays unconverted as the other."""
        return (self.rate, self.channels) == (other.rate, other.channels)

    def describe(self) -> str:
        """In words: ``"44100 Hz stereo s16be"``."""
        return f"{self.rate} Hz {channel_word(self.channels)} {self.encoding}"

    def __str__(self) -> str:
        return self.describe()


def channel_word(channels: int) -> str:
    return {1: "mono", 2: "stereo"}.get(channels, f"{channels}-channel")


def check_rate(rate: int, what: str) -> int:
    """``rate`` if the appliance plays it, else a :class:`UsageError` naming ``what``."""
    if rate not in SUPPORTED_RATES:
        rates = ", ".join(str(r) for r in SUPPORTED_RATES)
        raise UsageError(f"{what}: {rate} Hz is not a supported rate ({rates})")
    return rate
