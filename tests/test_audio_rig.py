"""The audio rig itself: what PyAudio plays reaches the recording, byte for byte."""

from __future__ import annotations

import os
import time
from array import array
from pathlib import Path

import pyaudio
import pytest
from audio_rig import (
    SAMPLE_BYTES,
    SAMPLE_RATE,
    AudioSink,
    NoAudioDevice,
    assert_played,
    audible,
    played_mismatch,
    silence,
    test_signal,
)

SIGNAL_SECONDS = 1.0
TAIL_SILENCE_SECONDS = 0.2
"""PortAudio's ALSA stop drops the last ~2 periods: play some silence after the signal."""

NO_DEVICE_ERRNO = -9996
"""PortAudio's paInvalidDevice (not a POSIX errno)."""

POLL_S = 0.05
HANG_TIMEOUT_S = 30.0
"""Only to turn a hung stream into a failure instead of a stuck CI run."""


def _play_blocking(pcm: bytes) -> None:
    audio = pyaudio.PyAudio()
    try:
        stream = audio.open(format=pyaudio.paInt16, channels=1, rate=SAMPLE_RATE, output=True)
        try:
            stream.write(pcm)
            stream.stop_stream()
        finally:
            stream.close()
    finally:
        audio.terminate()


@pytest.mark.audio
def test_recording_equals_what_pyaudio_played(audio_sink: AudioSink) -> None:
    sent = test_signal(SIGNAL_SECONDS, seed=1)
    audio_sink.start_recording()
    _play_blocking(sent + silence(TAIL_SILENCE_SECONDS))
    recorded = audio_sink.stop_recording()

    assert_played(recorded, sent)
    # The monitor recorded silence around the signal; the signal itself arrived whole.
    assert len(recorded) > len(sent)
    assert audible(recorded) == sent


@pytest.mark.audio
def test_tee_holds_exactly_the_bytes_written(audio_sink: AudioSink) -> None:
    played = test_signal(SIGNAL_SECONDS, seed=2) + silence(TAIL_SILENCE_SECONDS)
    _play_blocking(played)

    assert audio_sink.tee_bytes() == played


@pytest.mark.audio
def test_callback_stream_is_played_in_order(audio_sink: AudioSink) -> None:
    sent = test_signal(SIGNAL_SECONDS, seed=3)
    frames_per_buffer = 160
    chunk = frames_per_buffer * SAMPLE_BYTES
    tail = silence(TAIL_SILENCE_SECONDS)
    pending = [sent[i : i + chunk] for i in range(0, len(sent), chunk)]
    pending += [tail[i : i + chunk] for i in range(0, len(tail), chunk)]

    def callback(
        in_data: bytes | None, frame_count: int, time_info: object, status: int
    ) -> tuple[bytes, int]:
        if not pending:
            return bytes(frame_count * SAMPLE_BYTES), pyaudio.paComplete
        return pending.pop(0), pyaudio.paContinue

    audio_sink.start_recording()
    audio = pyaudio.PyAudio()
    try:
        stream = audio.open(
            format=pyaudio.paInt16,
            channels=1,
            rate=SAMPLE_RATE,
            output=True,
            frames_per_buffer=frames_per_buffer,
            stream_callback=callback,
        )
        try:
            deadline = time.monotonic() + HANG_TIMEOUT_S
            while stream.is_active():
                assert time.monotonic() < deadline, "callback stream never completed"
                time.sleep(POLL_S)
        finally:
            stream.close()
    finally:
        audio.terminate()
    recorded = audio_sink.stop_recording()

    assert_played(recorded, sent)
    tee = audio_sink.tee_bytes()
    # The tee holds what the callbacks returned, contiguous (underruns are filled in later, by
    # PulseAudio), followed by whatever part of the silence tail was written before the stop.
    assert sent in tee
    assert audible(tee) == sent


@pytest.mark.audio
def test_sink_teardown_removes_everything(audio_sink: AudioSink) -> None:
    assert audio_sink.socket_path.exists()
    assert os.environ["ALSA_CONFIG_PATH"] == str(audio_sink.asound_conf)
    directory = audio_sink.asound_conf.parent
    assert audio_sink.is_running
    audio_sink.close()
    assert not audio_sink.is_running
    assert not directory.exists()


def test_no_audio_device_makes_open_fail(no_audio_device: NoAudioDevice) -> None:
    audio = pyaudio.PyAudio()
    try:
        assert audio.get_device_count() == 0
        with pytest.raises(OSError) as raised:
            audio.open(format=pyaudio.paInt16, channels=1, rate=SAMPLE_RATE, output=True)
    finally:
        audio.terminate()
    assert raised.value.args == (
        NO_DEVICE_ERRNO,
        "Invalid output device (no default output device)",
    )
    assert raised.value.errno == NO_DEVICE_ERRNO


def test_no_audio_device_config_is_a_real_file(no_audio_device: NoAudioDevice) -> None:
    # A missing ALSA_CONFIG_PATH file would abort the whole process inside PyAudio().
    conf = Path(os.environ["ALSA_CONFIG_PATH"])
    assert conf == no_audio_device.asound_conf
    assert conf.read_text().splitlines()[-2:] == [
        "pcm.!default { type hw card 99 }",
        "ctl.!default { type hw card 99 }",
    ]


def test_signal_has_no_zero_sample_and_is_deterministic() -> None:
    signal = test_signal(0.5, seed=7)
    assert len(signal) == 8000
    assert audible(signal) == signal
    assert test_signal(0.5, seed=7) == signal
    assert test_signal(0.5, seed=8) != signal


def test_audible_removes_only_whole_zero_samples() -> None:
    # 0x0100 (256) and 0x0001 (1) contain zero bytes but are not zero samples.
    pcm = bytes([0, 0, 0, 1, 0, 0, 1, 0, 0, 0])
    assert audible(pcm) == bytes([0, 1, 1, 0])
    with pytest.raises(ValueError, match=r"^PCM length 3 is not a whole number of 16-bit samples$"):
        audible(b"\x01\x02\x03")


def test_a_quiet_peak_sets_aside_what_a_pause_adjustment_may_cut_or_insert() -> None:
    def pcm(*values: int) -> bytes:
        return array("h", values).tobytes()

    sent = pcm(5000, 3, -100, 0, 101, -7000)
    recorded = pcm(0, 5000, 0, 0, 101, -7000)  # the pause shortened, silence before
    assert audible(sent, 100) == pcm(5000, 101, -7000)
    assert played_mismatch(recorded, sent, quiet_peak=100) is None
    assert played_mismatch(recorded, sent) is not None
    assert played_mismatch(pcm(5000, 102, -7000), sent, quiet_peak=100) == (
        "played audio differs from sent audio (silence aside): "
        "recorded 3 samples, 3 beyond +-100; sent 6 samples, 3 beyond +-100; "
        "first difference at beyond +-100 sample 1 (recorded 102, sent 101)"
    )


def test_played_mismatch_reports_lengths_and_first_difference() -> None:
    sent = (1).to_bytes(2, "little") + (2).to_bytes(2, "little") + (3).to_bytes(2, "little")
    recorded = bytes(4) + (1).to_bytes(2, "little") + (5).to_bytes(2, "little")
    assert played_mismatch(recorded, sent) == (
        "played audio differs from sent audio (silence aside): "
        "recorded 4 samples, 2 non-zero; sent 3 samples, 3 non-zero; "
        "first difference at non-zero sample 1 (recorded 5, sent 2)"
    )
    with pytest.raises(AssertionError, match="first difference at non-zero sample 1"):
        assert_played(recorded, sent)
    assert played_mismatch(bytes(6) + sent, sent + bytes(2)) is None


def test_played_mismatch_when_recording_is_cut_short() -> None:
    sent = test_signal(0.01, seed=4)
    last = int.from_bytes(sent[-2:], "little", signed=True)
    assert played_mismatch(sent[:-2], sent) == (
        "played audio differs from sent audio (silence aside): "
        "recorded 79 samples, 79 non-zero; sent 80 samples, 80 non-zero; "
        f"first difference at non-zero sample 79 (recorded None, sent {last})"
    )
