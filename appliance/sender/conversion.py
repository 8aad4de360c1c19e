"""What a source is sent as: the one place that decides the rate and channels on the wire.

The rule (:func:`choose_format`), for a source of rate R and C channels and a listener that
plays a set of (rate, channels) formats:

1. **What the source can be at best** (:func:`sendable_format`): C above 2 is downmixed to
   stereo; R not in :data:`~appliance.audio.format.SUPPORTED_RATES` becomes the nearest
   supported rate, upward when R is below 48000 (12000 -> 16000, nothing of the audio band
   lost), else 48000 (96000 -> 48000).
2. **Kept if the listener plays it**: a 44.1 kHz stereo FLAC goes to an appliance listener as
   L16 44100 Hz stereo, untouched but for decoding.
3. **Otherwise the listener's best format not above it**: the highest rate not above the
   source's, then the most channels not above its (a 48 kHz stereo file to the raw wire, which
   carries only 8000 Hz mono, is sent as 8000 Hz mono).
4. **Otherwise the listener's smallest format above it** (an 8 kHz file to a listener playing
   only 48 kHz stereo).

On the raw wire the listener plays only :data:`~appliance.wire.raw.RAW_FORMAT`; over RTP, every
L16 format it advertises (see :mod:`appliance.sender.plan`). Resampling is libsoxr's, channel
mixing numpy's or libswresample's (:mod:`appliance.sender.decode`, :mod:`appliance.audio.convert`).

Example::

    choose_format(sendable_format(96000, 6), {(8000, 1), (48000, 2)})   # 48000 Hz stereo
    choose_format(AudioFormat(44100, 2), {(8000, 1)})                   # 8000 Hz mono
"""

from __future__ import annotations

from collections.abc import Collection

from appliance.audio.format import MAX_CHANNELS, MAX_RATE, SUPPORTED_RATES, AudioFormat

PlayableFormats = Collection[tuple[int, int]]
"""What a listener plays, as (rate, channels) pairs."""


def sendable_rate(rate: int) -> int:
    """``rate`` if supported, else the next supported rate up, else the highest (48000)."""
    if rate in SUPPORTED_RATES:
        return rate
    return next((r for r in SUPPORTED_RATES if r > rate), MAX_RATE)


def sendable_format(rate: int, channels: int) -> AudioFormat:
    """The best a source of ``rate`` Hz and ``channels`` can be sent as (step 1 of the rule)."""
    return AudioFormat(sendable_rate(rate), min(channels, MAX_CHANNELS))


def choose_format(source: AudioFormat, playable: PlayableFormats) -> AudioFormat | None:
    """The format to send ``source`` (already :func:`sendable_format`) as, to a listener that
    plays ``playable``; None when it plays nothing at all. The rule is the module docstring's."""
    wanted = (source.rate, source.channels)
    formats = set(playable)
    if not formats:
        return None
    if wanted in formats:
        chosen = wanted
    else:
        below = [f for f in formats if f[0] <= source.rate and f[1] <= source.channels]
        above = [f for f in formats if f not in below]
        chosen = max(below) if below else min(above)
    return AudioFormat(chosen[0], chosen[1], source.encoding, source.ptime_ms)
