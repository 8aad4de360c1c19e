"""The listener's defaults and limits, in one light module (no audio imports), shared by the
listener and the configuration file's validation."""

from __future__ import annotations

from appliance.audio.format import AudioFormat, Encoding
from appliance.wire.raw import RAW_FORMAT

DEFAULT_BUFFER_MS = 60
"""Prebuffer target: three 20 ms packets absorb LAN jitter; raise it for busy Wi-Fi."""
MIN_BUFFER_MS = 20
"""One packet of the seed's wire."""
DEFAULT_TIMEOUT_S = 5.0
DEFAULT_MAX_BUFFER_S = 120.0
DRAIN_TAIL_MS = 100
"""Silence after a stream's last audio: PortAudio's ALSA stop drops its last ~2 periods."""
RTP_DEFAULT_FORMAT = AudioFormat(RAW_FORMAT.rate, RAW_FORMAT.channels, Encoding.S16BE)
"""A dynamic RTP payload type that the map does not name: L16 in the raw wire's rate and
channels, the format the listener advertises (ffmpeg's type 97, GStreamer's type 96)."""
