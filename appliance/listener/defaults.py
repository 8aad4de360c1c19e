"""The listener's defaults and limits, in one light module (no audio imports), shared by the
listener and the configuration file's validation."""

from __future__ import annotations

DEFAULT_BUFFER_MS = 90
"""The starting latency target: playout starts this long after the stream's first packet would
have arrived over the fastest path seen (see the playout buffer). Enough for Wi-Fi's +-30 ms of
jitter from the first packet on (a 60 ms start had to grow during the first seconds, and every
move shifts the timeline); it then follows the network (between the floor and the ceiling)
unless fixed, coming down on a clean LAN."""
LATENCY_FLOOR_MARGIN_MS = 10
"""The adaptive target goes no lower than the output period plus this (and MIN_BUFFER_MS):
with the default 30 ms period, 40 ms; with --period-ms 10, 20 ms."""
DEFAULT_MAX_LATENCY_MS = 200
"""The adaptive target's ceiling: beyond it, late packets are concealed rather than waited for."""
MIN_BUFFER_MS = 20
"""One packet of the seed's wire."""
DEFAULT_TIMEOUT_S = 5.0
"""A session whose source sends nothing for this long ends (nobody else streaming)."""
DEFAULT_TAKEOVER_S = 0.5
"""Once a session's source has been silent this long, another source's stream may take over
at once: a sender killed or re-run without an end marker costs at most this. Wi-Fi stalls of
a few hundred ms (seen in tests/impair.py's traces and real homes) must not hand the speaker
to someone else, hence not shorter."""
DEFAULT_MAX_BUFFER_S = 120.0
MAX_BUFFER_LIMIT_S = 600.0
"""The largest --max-buffer-s: the playout queue's stated bound (10 min is 115 MB at 48 kHz
stereo, already a fifth of a Pi Zero's memory); more buys nothing a listener needs."""
DEFAULT_PERIOD_MS = 30
"""Audio per output callback. Each callback costs a thread wake-up, the GIL and PortAudio's
own work whatever its size: 30 ms instead of 20 ms cut the listener's CPU by a quarter
(tests/bench_rtp.py) for 20 ms more output latency (PortAudio keeps two periods queued: 60 ms).
"""
MIN_PERIOD_MS = 5
MAX_PERIOD_MS = 100
DRAIN_TAIL_MS = 100
"""Silence after a stream's last audio: PortAudio's ALSA stop drops its last ~2 periods."""
