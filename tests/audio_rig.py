"""A real-time audio output for tests, without a sound card.

Each :class:`AudioSink` starts a private PulseAudio daemon with one null sink (8000 Hz, s16le,
mono) and writes an ALSA configuration that makes ALSA's ``default`` PCM -- and so PyAudio's
default output -- play into it, in real time. What reaches the sink can be recorded from its
monitor with ``parec``; an ALSA ``type file`` PCM in front of the pulse PCM also keeps a "tee"
of the exact bytes PortAudio wrote.

Tests normally use the fixtures in ``tests/conftest.py`` rather than this class::

    import pyaudio
    import pytest
    from audio_rig import AudioSink, assert_played, test_signal

    @pytest.mark.audio
    def test_plays(audio_sink: AudioSink) -> None:
        sent = test_signal(seconds=1.0, seed=1)
        audio_sink.start_recording()
        ...  # play `sent` through pyaudio.PyAudio() (the default output)
        assert_played(audio_sink.stop_recording(), sent)

Comparisons are made "silence aside" (:func:`audible`): PortAudio writes silence before the
first data, the monitor records silence whenever nothing plays, and under CPU load the monitor
can contain short runs of zeros. Signals from :func:`test_signal` contain no zero samples, so
removing zeros never removes signal.
"""

from __future__ import annotations

import contextlib
import glob
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
from array import array
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

SAMPLE_RATE = 8000
"""The rig's sink runs at the appliance's wire format: 8000 Hz, s16le, mono."""

SAMPLE_BYTES = 2
INT16_MAX = 32767
SINK_NAME = "testsink"
MONITOR_NAME = f"{SINK_NAME}.monitor"

READY_TIMEOUT_S = 10.0
"""How long to wait for the daemon (and for parec's stream) before failing; normally ~50 ms."""

POLL_INTERVAL_S = 0.01
STOP_TIMEOUT_S = 5.0

RECORD_LATENCY_MS = 20
"""parec's requested latency: without it the server may batch the monitor data in ~2 s chunks."""

DEFAULT_SETTLE_S = 0.3
"""How long stop_recording() lets the monitor catch up with what was played last."""

PULSE_PCM_PLUGIN_GLOB = "/usr/lib/*/alsa-lib/libasound_module_pcm_pulse.so"
"""ALSA's pulse plugin (Debian package libasound2-plugins)."""

MISSING_CARD = 99
"""An ALSA card number that does not exist: the rig's "no audio device"."""

NO_DEVICE_ASOUND_CONF = (
    "# No audio device: the default PCM names a sound card that does not exist.\n"
    "# (A missing or pcm-less config file would abort the process inside PyAudio().)\n"
    f"pcm.!default {{ type hw card {MISSING_CARD} }}\n"
    f"ctl.!default {{ type hw card {MISSING_CARD} }}\n"
)

REQUIRED_PROGRAMS = ("pulseaudio", "pactl", "parec")

MISSING_TOOLS_HINT = (
    "apt-get install pulseaudio pulseaudio-utils libasound2-plugins (or run deploy/setup-dev.sh)"
)


class AudioRigError(RuntimeError):
    """The rig itself failed (daemon did not start, parec died...): not the code under test."""


def missing_programs() -> list[str]:
    """The rig's programs that are not installed (empty when the rig can run)."""
    return [name for name in REQUIRED_PROGRAMS if shutil.which(name) is None]


def pulse_alsa_plugin_installed() -> bool:
    return bool(glob.glob(PULSE_PCM_PLUGIN_GLOB))


def test_signal(seconds: float, seed: int) -> bytes:
    """Deterministic pseudo-random s16le mono audio at 8000 Hz with no zero sample.

    Having no zeros makes ``audible(played) == audible(sent)`` a strong check: every sample of
    the signal must arrive, in order, with its exact value.
    """
    rng = random.Random(seed)
    n_samples = int(seconds * SAMPLE_RATE)
    samples = array("h")
    for _ in range(n_samples):
        value = rng.randint(-INT16_MAX, INT16_MAX - 1)
        # Shift the non-negative half up by one: uniform over +-INT16_MAX without 0.
        samples.append(value + 1 if value >= 0 else value)
    return samples.tobytes()


# pytest would otherwise collect test_signal as a test wherever it is imported.
test_signal.__dict__["__test__"] = False


def silence(seconds: float) -> bytes:
    """Zero samples for ``seconds`` at 8000 Hz mono s16le."""
    return bytes(int(seconds * SAMPLE_RATE) * SAMPLE_BYTES)


def audible(pcm: bytes) -> bytes:
    """``pcm`` (s16le) with every zero sample removed: what is left when silence is set aside.

    Only whole, 2-byte-aligned samples equal to 0 are removed; the byte order does not matter
    because zero is zero in both.
    """
    if len(pcm) % SAMPLE_BYTES:
        raise ValueError(f"PCM length {len(pcm)} is not a whole number of 16-bit samples")
    samples = array("h", pcm)
    return array("h", (s for s in samples if s != 0)).tobytes()


def _sample_at(pcm: bytes, index: int) -> int | None:
    chunk = pcm[index * SAMPLE_BYTES : (index + 1) * SAMPLE_BYTES]
    return int.from_bytes(chunk, "little", signed=True) if len(chunk) == SAMPLE_BYTES else None


def played_mismatch(recorded: bytes, sent: bytes) -> str | None:
    """Why ``recorded`` is not ``sent`` silence aside, or None when it is."""
    heard = audible(recorded)
    wanted = audible(sent)
    if heard == wanted:
        return None
    n_heard = len(heard) // SAMPLE_BYTES
    n_wanted = len(wanted) // SAMPLE_BYTES
    first = next(
        (
            i
            for i in range(min(n_heard, n_wanted))
            if heard[i * SAMPLE_BYTES : (i + 1) * SAMPLE_BYTES]
            != wanted[i * SAMPLE_BYTES : (i + 1) * SAMPLE_BYTES]
        ),
        min(n_heard, n_wanted),
    )
    return (
        f"played audio differs from sent audio (silence aside): "
        f"recorded {len(recorded) // SAMPLE_BYTES} samples, {n_heard} non-zero; "
        f"sent {len(sent) // SAMPLE_BYTES} samples, {n_wanted} non-zero; "
        f"first difference at non-zero sample {first} "
        f"(recorded {_sample_at(heard, first)}, sent {_sample_at(wanted, first)})"
    )


def assert_played(recorded: bytes, sent: bytes) -> None:
    """Assert that ``recorded`` holds exactly the samples of ``sent``, silence aside."""
    mismatch = played_mismatch(recorded, sent)
    if mismatch is not None:
        raise AssertionError(mismatch)


def _asound_conf(socket_path: Path, tee_path: Path) -> str:
    server = f"unix:{socket_path}"
    return (
        "# Written by tests/audio_rig.py: ALSA's default output plays into a private\n"
        "# PulseAudio null sink, through a file tee of the exact bytes written.\n"
        f'pcm.rig_pulse {{ type pulse server "{server}" device "{SINK_NAME}" }}\n'
        "pcm.!default {\n"
        "    type file\n"
        "    slave.pcm rig_pulse\n"
        f'    file "{tee_path}"\n'
        "    format raw\n"
        "}\n"
        f'ctl.!default {{ type pulse server "{server}" }}\n'
    )


def _daemon_script(socket_path: Path) -> str:
    return (
        f"load-module module-native-protocol-unix auth-anonymous=1 socket={socket_path}\n"
        # norewinds=1: without it the start of each monitor recording is lost.
        f"load-module module-null-sink sink_name={SINK_NAME} format=s16le "
        f"rate={SAMPLE_RATE} channels=1 norewinds=1\n"
    )


def _stop_process(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    if process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class AudioSink:
    """A private PulseAudio null sink that ALSA's (and PyAudio's) default output plays into.

    Use as a context manager, or call :meth:`start` and :meth:`close`. :attr:`asound_conf` is
    the ALSA configuration file to put in ``ALSA_CONFIG_PATH`` before ``pyaudio.PyAudio()`` is
    created (the ``audio_sink`` fixture does that).
    """

    def __init__(self) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="audio-rig-"))
        self.socket_path = self._dir / "native"
        """The daemon's socket (``pactl -s unix:PATH ...`` to inspect it)."""
        self.asound_conf = self._dir / "asound.conf"
        self.tee_path = self._dir / "tee.raw"
        self.log_path = self._dir / "pulseaudio.log"
        self._recording_path = self._dir / "recording.raw"
        self._daemon: subprocess.Popen[bytes] | None = None
        self._recorder: subprocess.Popen[bytes] | None = None
        self.startup_s: float | None = None
        """Seconds from launching the daemon to the sink being ready."""

    @property
    def is_running(self) -> bool:
        """Whether the daemon is up (False before start() and after close())."""
        return self._daemon is not None and self._daemon.poll() is None

    @property
    def server(self) -> str:
        return f"unix:{self.socket_path}"

    def _env(self) -> dict[str, str]:
        # Everything the daemon and its clients keep (cookie, runtime dir, state) stays here.
        env = dict(os.environ)
        env.update(
            HOME=str(self._dir / "home"),
            XDG_RUNTIME_DIR=str(self._dir / "runtime"),
            XDG_CONFIG_HOME=str(self._dir / "home" / ".config"),
            PULSE_RUNTIME_PATH=str(self._dir / "runtime" / "pulse"),
        )
        env.pop("PULSE_SERVER", None)
        return env

    def start(self) -> None:
        """Start the daemon and write the ALSA configuration; returns when the sink is ready."""
        for sub in ("home", "runtime"):
            (self._dir / sub).mkdir(mode=0o700)
        script = self._dir / "daemon.pa"
        script.write_text(_daemon_script(self.socket_path))
        self.asound_conf.write_text(_asound_conf(self.socket_path, self.tee_path))
        started = time.monotonic()
        with self.log_path.open("wb") as log:
            self._daemon = subprocess.Popen(
                [
                    "pulseaudio",
                    "-n",
                    "-F",
                    str(script),
                    "--daemonize=no",
                    "--exit-idle-time=-1",
                    "--use-pid-file=no",
                    "--realtime=no",
                    "--log-target=stderr",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=self._env(),
            )
        self._wait_until(self._sink_ready, "the PulseAudio null sink")
        self.startup_s = time.monotonic() - started

    def _pactl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["pactl", "-s", self.server, *args],
            capture_output=True,
            text=True,
            env=self._env(),
            check=False,
            stdin=subprocess.DEVNULL,
        )

    def _sink_ready(self) -> bool:
        # The null sink is loaded after the socket opens: wait for the sink, not the socket.
        if not self.socket_path.exists():
            return False
        result = self._pactl("list", "short", "sinks")
        return result.returncode == 0 and SINK_NAME in result.stdout.split()

    def _recorder_connected(self) -> bool:
        result = self._pactl("list", "short", "source-outputs")
        return result.returncode == 0 and bool(result.stdout.strip())

    def _wait_until(self, ready: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not ready():
            self._check_alive()
            if time.monotonic() > deadline:
                raise AudioRigError(f"{what} not ready after {READY_TIMEOUT_S} s; {self._log()}")
            time.sleep(POLL_INTERVAL_S)

    def _check_alive(self) -> None:
        if self._daemon is None or self._daemon.poll() is not None:
            raise AudioRigError(f"pulseaudio is not running; {self._log()}")
        if self._recorder is not None and self._recorder.poll() is not None:
            raise AudioRigError(f"parec exited with {self._recorder.returncode}; {self._log()}")

    def _log(self) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip()
        except OSError:
            text = ""
        return f"pulseaudio log:\n{text}" if text else "pulseaudio log is empty"

    def start_recording(self) -> None:
        """Record the sink's monitor from now on; returns once parec's stream is connected."""
        if self._recorder is not None:
            raise AudioRigError("already recording")
        self._check_alive()
        with self._recording_path.open("wb") as out:
            self._recorder = subprocess.Popen(
                [
                    "parec",
                    "-s",
                    self.server,
                    "-d",
                    MONITOR_NAME,
                    "--raw",
                    "--format=s16le",
                    f"--rate={SAMPLE_RATE}",
                    "--channels=1",
                    f"--latency-msec={RECORD_LATENCY_MS}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.DEVNULL,
                env=self._env(),
            )
        self._wait_until(self._recorder_connected, "parec's recording stream")

    def stop_recording(self, settle_s: float = DEFAULT_SETTLE_S) -> bytes:
        """Stop recording and return what the sink played (s16le, with silence around it).

        ``settle_s`` lets the monitor deliver the last audio played before parec is stopped.
        """
        if self._recorder is None:
            raise AudioRigError("not recording: call start_recording() first")
        self._check_alive()
        time.sleep(settle_s)
        recorder, self._recorder = self._recorder, None
        _stop_process(recorder, signal.SIGINT)
        data = self._recording_path.read_bytes()
        # parec writes whole frames, but a kill may cut one: keep whole samples only.
        return data[: len(data) - len(data) % SAMPLE_BYTES]

    def tee_bytes(self) -> bytes:
        """The exact bytes PortAudio wrote to the default output, silence included.

        Read it after the stream is closed (ALSA's file plugin writes in chunks). Each opening
        of the default PCM truncates the file: it holds the last stream only.
        """
        try:
            return self.tee_path.read_bytes()
        except FileNotFoundError:
            return b""

    def close(self) -> None:
        """Stop parec and the daemon and remove the temporary directory. Idempotent."""
        try:
            if self._recorder is not None:
                recorder, self._recorder = self._recorder, None
                _stop_process(recorder, signal.SIGKILL)
            if self._daemon is not None:
                daemon, self._daemon = self._daemon, None
                _stop_process(daemon, signal.SIGTERM)
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> AudioSink:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class NoAudioDevice:
    """An ALSA configuration with no usable output: ``PyAudio().open(output=True)`` fails."""

    def __init__(self) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="audio-rig-none-"))
        self.asound_conf = self._dir / "asound.conf"
        self.asound_conf.write_text(NO_DEVICE_ASOUND_CONF)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            shutil.rmtree(self._dir)
