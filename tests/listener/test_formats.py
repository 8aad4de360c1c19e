"""Formats up to 48 kHz stereo through the whole listener, on real parts, into a PulseAudio
null sink running at the stream's own rate and channels: nothing converted, bit-exact."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import peers
import pytest
import soxr  # type: ignore[import-untyped]
from audio_rig import RESTRICTED_PCM, RestrictedOutput, assert_played, test_signal
from conftest import AudioSinkFactory
from listener_fixtures import ListenerFactory
from streams import send_rtp

from appliance.audio.format import AudioFormat, Encoding
from appliance.listener.session import EndReason
from appliance.wire import Wire

PLAY_TIMEOUT_S = 60


@pytest.mark.audio
@pytest.mark.parametrize(
    ("rate", "channels", "payload_type"),
    [(16000, 1, 116), (32000, 2, 123), (44100, 1, 124), (48000, 2, 127)],
)
def test_the_builtin_l16_types_play_bit_exact_at_their_rate(
    audio_sink_at: AudioSinkFactory,
    make_listener: ListenerFactory,
    rate: int,
    channels: int,
    payload_type: int,
) -> None:
    sink = audio_sink_at(rate=rate, channels=channels)
    sent = test_signal(seconds=1.0, seed=rate + channels, rate=rate, channels=channels)
    listener = make_listener()
    sink.start_recording()
    listener.start()
    send_rtp(
        sent, listener.port, payload_type=payload_type,
        audio_format=AudioFormat(rate, channels, Encoding.S16BE),
    )
    assert listener.wait_session_played(timeout=PLAY_TIMEOUT_S)
    assert_played(sink.stop_recording(), sent)
    [session] = listener.sessions
    assert (session.wire, session.format, session.end_reason) == (
        Wire.RTP, AudioFormat(rate, channels, Encoding.S16BE), EndReason.BYE,
    )
    assert session.audio_bytes == len(sent)


@pytest.mark.audio
def test_ffmpeg_48k_stereo_on_a_mapped_dynamic_type_is_bit_exact(
    audio_sink_at: AudioSinkFactory, make_listener: ListenerFactory, tmp_path: Path
) -> None:
    sink = audio_sink_at(rate=48000, channels=2)
    sent = test_signal(seconds=1.5, seed=48, rate=48000, channels=2)
    listener = make_listener(payload_map=("100=L16/48000/2",))
    sink.start_recording()
    listener.start()
    peers.ffmpeg_l16(sent, listener.port, tmp_path, rate=48000, channels=2, payload_type=100)
    assert listener.wait_session_played(timeout=PLAY_TIMEOUT_S)
    assert_played(sink.stop_recording(), sent)
    [session] = listener.sessions
    assert (session.payload_type, session.format.rate, session.format.channels) == (100, 48000, 2)


@pytest.mark.audio
def test_ffmpeg_cd_audio_on_static_type_10_is_bit_exact(
    audio_sink_at: AudioSinkFactory, make_listener: ListenerFactory, tmp_path: Path
) -> None:
    sink = audio_sink_at(rate=44100, channels=2)
    sent = test_signal(seconds=1.5, seed=44, rate=44100, channels=2)
    listener = make_listener()
    sink.start_recording()
    listener.start()
    peers.ffmpeg_l16(sent, listener.port, tmp_path, rate=44100, channels=2)
    assert listener.wait_session_played(timeout=PLAY_TIMEOUT_S)
    assert_played(sink.stop_recording(), sent)
    [session] = listener.sessions
    assert (session.payload_type, session.format) == (10, AudioFormat(44100, 2, Encoding.S16BE))


def tones(seconds: float, rate: int, channels: int) -> np.ndarray:
    """440 Hz on the left, 1 kHz on the right (or their mean in mono), at 0.4 full scale:
    all well below 4 kHz, so that 8 kHz mono keeps them whole."""
    t = np.arange(int(seconds * rate)) / rate
    left, right = np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 1000 * t)
    if channels == 1:
        return 0.4 * (left + right) / 2
    return 0.4 * np.stack([left, right], axis=1)


def trimmed(pcm: bytes) -> np.ndarray:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768
    audible = np.flatnonzero(samples)
    return samples[audible[0] : audible[-1] + 1] if audible.size else samples


@pytest.mark.audio
def test_a_device_that_takes_only_8k_mono_gets_48k_stereo_converted(
    restricted_output: RestrictedOutput,
    make_listener: ListenerFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    seconds = 2.0
    sent = (tones(seconds, 48000, 2) * 32767).round().astype("<i2").tobytes()
    listener = make_listener(device=RESTRICTED_PCM)
    restricted_output.start_recording()
    with caplog.at_level(logging.INFO, logger="appliance"):
        listener.start()
        cd = AudioFormat(48000, 2, Encoding.S16BE)
        send_rtp(sent, listener.port, payload_type=127, audio_format=cd)
        assert listener.wait_session_played(timeout=PLAY_TIMEOUT_S)
    played = trimmed(restricted_output.stop_recording())
    assert "the output does not take 48000 Hz stereo; playing at 8000 Hz mono, converted" in (
        caplog.text
    )
    # The same duration (within a packet), and the same sound: the source's two channels
    # mixed and resampled by another path (soxr in one go) correlates with what was played.
    assert abs(len(played) - seconds * 8000) <= 160
    reference = soxr.resample(tones(seconds, 48000, 2).mean(axis=1), 48000, 8000)
    m = min(len(played), len(reference)) - 400  # away from the ends, up to 10 ms of lag
    best = max(
        np.corrcoef(played[200 + lag : 200 + lag + m], reference[200 : 200 + m])[0, 1]
        for lag in range(-80, 81)
    )
    assert best > 0.99
    [session] = listener.sessions
    assert (session.format.rate, session.format.channels, session.invalid) == (48000, 2, 0)


@pytest.mark.audio
@pytest.mark.parametrize("ptime_ms", [2.5, 120.0])
def test_packets_of_2_5_to_120_ms_play_bit_exact(
    audio_sink_at: AudioSinkFactory, make_listener: ListenerFactory, ptime_ms: float
) -> None:
    sink = audio_sink_at(rate=48000, channels=2)
    sent = test_signal(seconds=1.2, seed=int(ptime_ms * 10), rate=48000, channels=2)
    listener = make_listener()
    sink.start_recording()
    listener.start()
    packets = send_rtp(
        sent, listener.port, payload_type=127,
        audio_format=AudioFormat(48000, 2, Encoding.S16BE, ptime_ms=ptime_ms),
    )
    assert listener.wait_session_played(timeout=PLAY_TIMEOUT_S)
    assert_played(sink.stop_recording(), sent)
    [session] = listener.sessions
    assert session.packets == packets == round(1200 / ptime_ms)
