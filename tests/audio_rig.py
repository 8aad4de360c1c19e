"""A real-time audio output for tests, without a sound card.

Each :class:`AudioSink` starts a private PulseAudio daemon with one null sink (8000 Hz, s16le,
mono, unless ``AudioSink(rate=..., channels=...)`` asks for another format) and writes an ALSA
configuration that makes ALSA's ``default`` PCM -- and so PyAudio's default output -- play into
it, in real time. What reaches the sink can be recorded from its monitor with ``parec``; an
ALSA ``type file`` PCM in front of the pulse PCM also keeps a "tee" of the exact bytes PortAudio
wrote.

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

A :class:`RestrictedOutput` adds, to a started sink, an ALSA output that takes only one rate and
channel count (8000 Hz mono) and refuses the others, as some real devices do; what it plays is
recorded bit-exact. It needs a JACK server (see the comment above the class for why).
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
MONITOR_PCM = "rig_monitor"
"""The ALSA name of the sink's monitor as an input (:meth:`AudioSink.add_monitor_input`)."""

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

REQUIRED_PROGRAMS = ("pulseaudio", "pactl", "parec", "pacat")

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


def test_signal(seconds: float, seed: int, *, rate: int = SAMPLE_RATE, channels: int = 1) -> bytes:
    """Deterministic pseudo-random s16le audio (8000 Hz mono by default) with no zero sample.

    Having no zeros makes ``audible(played) == audible(sent)`` a strong check: every sample of
    the signal must arrive, in order, with its exact value. Other rates and channel counts
    (interleaved) continue the same pseudo-random sequence: the 8 kHz mono signal is unchanged.
    """
    rng = random.Random(seed)
    n_samples = int(seconds * rate) * channels
    samples = array("h")
    for _ in range(n_samples):
        value = rng.randint(-INT16_MAX, INT16_MAX - 1)
        # Shift the non-negative half up by one: uniform over +-INT16_MAX without 0.
        samples.append(value + 1 if value >= 0 else value)
    return samples.tobytes()


# pytest would otherwise collect test_signal as a test wherever it is imported.
test_signal.__dict__["__test__"] = False


def silence(seconds: float, *, rate: int = SAMPLE_RATE, channels: int = 1) -> bytes:
    """Zero samples for ``seconds`` of s16le (8000 Hz mono by default)."""
    return bytes(int(seconds * rate) * SAMPLE_BYTES * channels)


def audible(pcm: bytes, quiet_peak: int = 0) -> bytes:
    """``pcm`` (s16le) with every zero sample removed: what is left when silence is set aside.

    Only whole, 2-byte-aligned samples equal to 0 are removed; the byte order does not matter
    because zero is zero in both. With ``quiet_peak``, every sample within +-``quiet_peak`` is
    removed too: what the drift control may shorten or stretch in a pause of real speech.
    """
    if len(pcm) % SAMPLE_BYTES:
        raise ValueError(f"PCM length {len(pcm)} is not a whole number of 16-bit samples")
    samples = array("h", pcm)
    return array("h", (s for s in samples if abs(s) > quiet_peak)).tobytes()


def _sample_at(pcm: bytes, index: int) -> int | None:
    chunk = pcm[index * SAMPLE_BYTES : (index + 1) * SAMPLE_BYTES]
    return int.from_bytes(chunk, "little", signed=True) if len(chunk) == SAMPLE_BYTES else None


def played_mismatch(recorded: bytes, sent: bytes, *, quiet_peak: int = 0) -> str | None:
    """Why ``recorded`` is not ``sent`` silence aside (and samples within +-``quiet_peak``), or
    None when it is."""
    heard = audible(recorded, quiet_peak)
    wanted = audible(sent, quiet_peak)
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
    kept = "non-zero" if not quiet_peak else f"beyond +-{quiet_peak}"
    return (
        f"played audio differs from sent audio (silence aside): "
        f"recorded {len(recorded) // SAMPLE_BYTES} samples, {n_heard} {kept}; "
        f"sent {len(sent) // SAMPLE_BYTES} samples, {n_wanted} {kept}; "
        f"first difference at {kept} sample {first} "
        f"(recorded {_sample_at(heard, first)}, sent {_sample_at(wanted, first)})"
    )


def assert_played(recorded: bytes, sent: bytes, *, quiet_peak: int = 0) -> None:
    """Assert that ``recorded`` holds exactly the samples of ``sent``, silence aside (and, with
    ``quiet_peak``, samples within +-``quiet_peak``: see :func:`audible`)."""
    mismatch = played_mismatch(recorded, sent, quiet_peak=quiet_peak)
    if mismatch is not None:
        raise AssertionError(mismatch)


def without_concealed_tail(recorded: bytes, sent: bytes, *, rate: int = SAMPLE_RATE) -> bytes:
    """``recorded`` with what follows the last of ``sent``'s audio removed, if that is at most
    the listener's fading concealment (60 ms): a stream that ends without an end marker or
    an RTCP BYE looks, at first, like one whose next packet is late (see EXPAND_MS in
    appliance/listener/playout/buffer.py). Anything else is left for assert_played to show."""
    heard, wanted = audible(recorded), audible(sent)
    extra = (len(heard) - len(wanted)) // SAMPLE_BYTES
    if 0 < extra <= rate * 60 // 1000 and heard.startswith(wanted):
        return wanted
    return recorded


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


def _daemon_script(socket_path: Path, rate: int = SAMPLE_RATE, channels: int = 1) -> str:
    return (
        f"load-module module-native-protocol-unix auth-anonymous=1 socket={socket_path}\n"
        # norewinds=1: without it the start of each monitor recording is lost.
        f"load-module module-null-sink sink_name={SINK_NAME} format=s16le "
        f"rate={rate} channels={channels} norewinds=1\n"
    )


def _parec_command(server: str, source: str, rate: int, channels: int) -> list[str]:
    return [
        "parec",
        "-s",
        server,
        "-d",
        source,
        "--raw",
        "--format=s16le",
        f"--rate={rate}",
        f"--channels={channels}",
        f"--latency-msec={RECORD_LATENCY_MS}",
    ]


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

    def __init__(self, rate: int = SAMPLE_RATE, channels: int = 1) -> None:
        self.rate = rate
        """The null sink's rate, and the recording's (Hz); 8000 unless asked otherwise."""
        self.channels = channels
        """The null sink's channels, and the recording's; 1 unless asked otherwise."""
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
        script.write_text(_daemon_script(self.socket_path, self.rate, self.channels))
        self.asound_conf.write_text(_asound_conf(self.socket_path, self.tee_path))
        started = time.monotonic()
        self._launch_daemon(script)
        self._wait_until(self._sink_ready, "the PulseAudio null sink")
        self.startup_s = time.monotonic() - started

    def _launch_daemon(self, script: Path) -> None:
        # Appended to: after kill() and restart() the log holds both runs.
        with self.log_path.open("ab") as log:
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

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Make the audio server die under its clients, as a crashed or stopped server does
        (SIGKILL: no goodbye to anyone; SIGTERM: it disconnects them first). A recording in
        progress ends with it. :meth:`restart` brings it back on the same socket."""
        if self._recorder is not None:
            recorder, self._recorder = self._recorder, None
            _stop_process(recorder, signal.SIGKILL)
        if self._daemon is not None:
            daemon, self._daemon = self._daemon, None
            _stop_process(daemon, sig)

    def freeze(self) -> None:
        """Stop the audio server without killing it (SIGSTOP), as a server that hangs: its
        clients' connections stay up, unanswered. :meth:`thaw` lets it run on."""
        if self._daemon is not None:
            self._daemon.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        if self._daemon is not None:
            self._daemon.send_signal(signal.SIGCONT)

    def restart(self) -> None:
        """Start the server again after :meth:`kill`, with the same socket, sink and ALSA
        configuration; returns when the sink is ready (a client may then reconnect)."""
        if self.is_running:
            raise AudioRigError("the audio server is still running: kill() it first")
        started = time.monotonic()
        self._launch_daemon(self._dir / "daemon.pa")
        self._wait_until(self._sink_ready, "the restarted PulseAudio null sink")
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
                _parec_command(self.server, MONITOR_NAME, self.rate, self.channels),
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
        # parec writes whole frames, but a kill may cut one: keep whole frames only.
        frame_bytes = SAMPLE_BYTES * self.channels
        return data[: len(data) - len(data) % frame_bytes]

    def add_monitor_input(self, pcm_name: str = MONITOR_PCM) -> str:
        """Add, to this sink's ALSA configuration, an input that captures what the sink plays
        (its monitor, through ALSA's pulse plugin): PortAudio lists it under ``pcm_name`` as
        an input, as a laptop's PulseAudio or PipeWire offers its output's monitor. Call it
        before the PyAudio that should see it is created; returns ``pcm_name``."""
        with self.asound_conf.open("a") as conf:
            conf.write(
                "# The sink's monitor as an ALSA input (tests of `appliance send --input`).\n"
                f'pcm.{pcm_name} {{ type pulse server "{self.server}" device "{MONITOR_NAME}" }}\n'
            )
        return pcm_name

    def play(self, pcm: bytes, latency_ms: int = 20) -> None:
        """Play ``pcm`` (s16le in the sink's format) into the sink with ``pacat``; returns when
        it has been played. The monitor carries it bit-exact (one stream at full volume)."""
        self._check_alive()
        subprocess.run(
            [
                "pacat", "-s", self.server, "-d", SINK_NAME, "--raw", "--format=s16le",
                f"--rate={self.rate}", f"--channels={self.channels}",
                f"--latency-msec={latency_ms}",
            ],
            input=pcm,
            env=self._env(),
            check=True,
            capture_output=True,
            timeout=READY_TIMEOUT_S + len(pcm) / (self.rate * self.channels * SAMPLE_BYTES),
        )  # fmt: skip

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
                if daemon.poll() is None:
                    daemon.send_signal(signal.SIGCONT)  # a frozen daemon would not see SIGTERM
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


# --- An output that refuses every format but one -------------------------------------------------
#
# ALSA alone cannot build one without a sound card (alsa-lib 1.2.8, alsa-plugins 1.2.7.1): the
# pulse, null, file, plug, rate, route, linear and multi PCMs take every rate; only hw, the
# dmix/dshare/dsnoop family (hw slaves only), share, jack, a52, oss and usb_stream PCMs restrict
# the rate. Of those, share restricts it from its configuration alone, but its close frees the
# slave and then writes into it (use-after-free): PyAudio() aborts with a corrupted heap. The
# jack PCM restricts the rate to its JACK server's and the channels to its port count, so the
# rig runs a private JACK server on a timer (dummy backend) at the restricted rate and lets the
# rig's PulseAudio take the JACK ports in as a source (module-jack-source) that parec records.
# Floats all the way (PortAudio s16 -> /32768 -> JACK -> PulseAudio *32768 -> s16): bit-exact.
# The JACK audio is recorded from that source, not from the null sink: module-loopback into the
# sink resamples even at equal rates and is not bit-exact.

RESTRICTED_PCM = "only8k"
"""The ALSA PCM name (and PortAudio device name) of the :class:`RestrictedOutput`."""

RESTRICTED_SOURCE = "rig_jack"
"""The PulseAudio source that carries what was played to the restricted output."""

JACK_SERVER_ENV = "JACK_DEFAULT_SERVER"
"""libjack's server name variable: the test process needs it to reach the rig's JACK server."""

JACK_NO_START_ENV = "JACK_NO_START_SERVER"
"""Set, libjack never starts a server on its own (it would run jackd on ALSA's default)."""

JACK_PROGRAMS = ("jackd", "jack_lsp")
JACK_PCM_PLUGIN_GLOB = "/usr/lib/*/alsa-lib/libasound_module_pcm_jack.so"
JACK_SOURCE_MODULE_GLOB = "/usr/lib/pulse-*/modules/module-jack-source.so"
JACK_TOOLS_HINT = "apt-get install jackd2 pulseaudio-module-jack libasound2-plugins"

JACK_PERIOD_S = 0.020
"""The JACK server's period: it wakes every 20 ms, like the appliance's packets."""

JACK_SERVER_SLOTS = 8
"""Names tried for the rig's JACK server: ``audio-rig-0`` ... ``audio-rig-7``.

JACK registers servers in a machine-wide table in /dev/shm with 8 slots, and frees a dead
server's slot only when a server of the *same name* starts. Names unique per run would leak a
slot at every killed jackd until none is left ("Too many servers already active"); reusing a
few names reclaims them. A name whose server answers belongs to another rig running now.
"""

_JACK_CLIENT = "rig_in"
_JACK_CHANNEL_MAPS = {1: ("mono",), 2: ("front-left", "front-right")}
"""PulseAudio channel names: module-jack-source names its JACK ports after them."""

_SHM_DIR = Path("/dev/shm")


def restricted_output_missing() -> list[str]:
    """What the :class:`RestrictedOutput` needs and is not installed (empty when it can run)."""
    missing = [name for name in JACK_PROGRAMS if shutil.which(name) is None]
    if not glob.glob(JACK_PCM_PLUGIN_GLOB):
        missing.append("ALSA's jack plugin")
    if not glob.glob(JACK_SOURCE_MODULE_GLOB):
        missing.append("PulseAudio's module-jack-source")
    return missing


def restricted_asound_conf(pcm_name: str, channels: int) -> str:
    """The ALSA PCM that plays into the rig's JACK server: its rate, ``channels`` channels."""
    ports = " ".join(
        f'{index} "{_JACK_CLIENT}:{port}"'
        for index, port in enumerate(_JACK_CHANNEL_MAPS[channels])
    )
    return (
        "# Written by tests/audio_rig.py: an output that takes only the JACK server's rate and\n"
        f"# {channels} channel(s). align_psize false: PortAudio probes every device with a\n"
        "# 512-frame buffer, which is no multiple of JACK's period; without it the device\n"
        "# is left out of PortAudio's list.\n"
        f"pcm.{pcm_name} {{\n"
        "    type jack\n"
        "    align_psize false\n"
        f"    playback_ports {{ {ports} }}\n"
        "}\n"
    )


class RestrictedOutput:
    """An ALSA output, reachable through PyAudio, that refuses every format but one.

    It takes ``rate`` Hz (8000 by default) with ``channels`` channels (1 by default) and
    nothing else: ``pa.is_format_supported(48000, output_device=i, output_channels=1, ...)``
    raises ``ValueError('Invalid sample rate', -9997)`` and 2 channels on a mono output raise
    ``ValueError('Invalid number of channels', -9998)``. (Fewer channels are not refused: a
    stereo one takes mono too, PortAudio opens it in stereo and pads with silence.) What is
    played is recorded, bit-exact, with :meth:`start_recording` / :meth:`stop_recording`
    (silence aside, as for the sink).

    It lives in ``sink``'s PulseAudio and ALSA configuration (``sink`` must be started); the
    ALSA name is :attr:`pcm_name`, next to the sink's ``default``. The test process needs
    :attr:`env` (``JACK_DEFAULT_SERVER``) before ``pyaudio.PyAudio()``: the
    ``restricted_output`` fixture sets it, with ``ALSA_CONFIG_PATH``.
    """

    def __init__(
        self,
        sink: AudioSink,
        *,
        rate: int = SAMPLE_RATE,
        channels: int = 1,
        pcm_name: str = RESTRICTED_PCM,
    ) -> None:
        if channels not in _JACK_CHANNEL_MAPS:
            raise ValueError(f"{channels} channels: the restricted output is mono or stereo")
        self.sink = sink
        self.rate = rate
        self.channels = channels
        self.pcm_name = pcm_name
        self.server_name = ""
        """The JACK server's name, chosen by :meth:`start` (see :data:`JACK_SERVER_SLOTS`)."""
        self.log_path = sink.socket_path.parent / "jackd.log"
        self._recording_path = sink.socket_path.parent / "restricted.raw"
        self._jackd: subprocess.Popen[bytes] | None = None
        self._recorder: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        """Environment a process needs to play to this output (with ``ALSA_CONFIG_PATH``)."""
        return {JACK_SERVER_ENV: self.server_name, JACK_NO_START_ENV: "1"}

    def _jack_env(self) -> dict[str, str]:
        env = self.sink._env()
        env.update(self.env)
        # jackd would otherwise ask D-Bus for the (non-existent) sound card's reservation.
        env["JACK_NO_AUDIO_RESERVATION"] = "1"
        return env

    def start(self) -> None:
        """Start the JACK server, take its ports into PulseAudio, add the ALSA PCM."""
        if not self.sink.is_running:
            raise AudioRigError("start the AudioSink before its RestrictedOutput")
        failures: list[str] = []
        for slot in range(JACK_SERVER_SLOTS):
            self.server_name = f"audio-rig-{slot}"
            if self._jack_answers():
                continue  # another rig's server, running now
            self._start_jackd()
            try:
                self.sink._wait_until(self._jack_ready, "the JACK server")
                break
            except AudioRigError as error:
                # Another rig may have taken the name between the check and the start.
                failures.append(f"{self.server_name}: {error}")
                self._stop_jackd(owned=False)
        else:
            raise AudioRigError("no JACK server would start; " + "\n".join(failures))
        ports = _JACK_CHANNEL_MAPS[self.channels]
        loaded = self.sink._pactl(
            "load-module",
            "module-jack-source",
            f"source_name={RESTRICTED_SOURCE}",
            f"server_name={self.server_name}",
            f"client_name={_JACK_CLIENT}",
            f"channels={self.channels}",
            f"channel_map={','.join(ports)}",
            "connect=false",
        )
        if loaded.returncode != 0:
            raise AudioRigError(
                f"module-jack-source did not load: {loaded.stderr.strip()}; {self._jack_log()}"
            )
        with self.sink.asound_conf.open("a") as conf:
            conf.write(restricted_asound_conf(self.pcm_name, self.channels))

    def _start_jackd(self) -> None:
        period = round(self.rate * JACK_PERIOD_S)
        # The dummy backend sleeps --wait microseconds per period whatever the period is
        # (21333 by default): it must be the period's exact duration, or the clock runs wrong.
        wait_us = round(period / self.rate * 1_000_000)
        with self.log_path.open("wb") as log:
            self._jackd = subprocess.Popen(
                [
                    "jackd",
                    "--name",
                    self.server_name,
                    # Ordinary scheduling: CI runners may not grant real-time priority.
                    "--no-realtime",
                    "-d",
                    "dummy",  # a timer, no sound card
                    f"--rate={self.rate}",
                    f"--period={period}",
                    f"--wait={wait_us}",
                    "--playback=0",
                    "--capture=0",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=self._jack_env(),
            )

    def _stop_jackd(self, *, owned: bool) -> None:
        if self._jackd is not None:
            jackd, self._jackd = self._jackd, None
            _stop_process(jackd, signal.SIGTERM)
        if not owned:
            return  # the name may be another rig's: its files are not ours to remove
        # A jackd that was killed leaves its socket and semaphores behind.
        for leftover in (
            *_SHM_DIR.glob(f"jack_{self.server_name}_*"),
            *_SHM_DIR.glob(f"jack_sem.*_{self.server_name}_*"),
        ):
            with contextlib.suppress(OSError):
                leftover.unlink()

    def _jack_answers(self) -> bool:
        """Whether a JACK server of this name is running (never starts one)."""
        result = subprocess.run(
            ["jack_lsp", "--server", self.server_name],
            capture_output=True,
            env=self._jack_env(),
            check=False,
            stdin=subprocess.DEVNULL,
        )
        return result.returncode == 0

    def _jack_ready(self) -> bool:
        if self._jackd is None or self._jackd.poll() is not None:
            raise AudioRigError(f"jackd is not running; {self._jack_log()}")
        return self._jack_answers()

    def _jack_log(self) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip()
        except OSError:
            text = ""
        return f"jackd log:\n{text}" if text else "jackd log is empty"

    def start_recording(self) -> None:
        """Record what reaches the output from now on; returns once parec's stream is connected."""
        if self._recorder is not None:
            raise AudioRigError("already recording")
        with self._recording_path.open("wb") as out:
            self._recorder = subprocess.Popen(
                _parec_command(self.sink.server, RESTRICTED_SOURCE, self.rate, self.channels),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.DEVNULL,
                env=self.sink._env(),
            )
        self.sink._wait_until(self._recorder_connected, "parec's recording stream")

    def _recorder_connected(self) -> bool:
        if self._recorder is not None and self._recorder.poll() is not None:
            raise AudioRigError(f"parec exited with {self._recorder.returncode}")
        # The sink may be recording too: look for a stream on this source, by index.
        sources = self.sink._pactl("list", "short", "sources").stdout.splitlines()
        index = next((f[0] for f in map(str.split, sources) if f[1:2] == [RESTRICTED_SOURCE]), None)
        outputs = self.sink._pactl("list", "short", "source-outputs").stdout.splitlines()
        return index is not None and any(f[1:2] == [index] for f in map(str.split, outputs))

    def stop_recording(self, settle_s: float = DEFAULT_SETTLE_S) -> bytes:
        """Stop recording and return what the output played (s16le, with silence around it)."""
        if self._recorder is None:
            raise AudioRigError("not recording: call start_recording() first")
        time.sleep(settle_s)
        recorder, self._recorder = self._recorder, None
        _stop_process(recorder, signal.SIGINT)
        data = self._recording_path.read_bytes()
        frame_bytes = SAMPLE_BYTES * self.channels
        return data[: len(data) - len(data) % frame_bytes]

    def close(self) -> None:
        """Stop parec and jackd and remove what jackd left in /dev/shm. Idempotent.

        PulseAudio's JACK source unloads itself when the server goes; the sink is closed by
        its owner.
        """
        if self._recorder is not None:
            recorder, self._recorder = self._recorder, None
            _stop_process(recorder, signal.SIGKILL)
        if self._jackd is not None:
            self._stop_jackd(owned=True)

    def __enter__(self) -> RestrictedOutput:
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
