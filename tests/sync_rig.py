"""Two real listeners playing into ONE private null sink, for issue 12's skew measurements.

Each listener is its own ``appliance listen`` process (two processes are closer to two Pis
than two Listeners in one: each has its own PortAudio stream, interpreter lock and
scheduling, and its CPU time can be read from /proc on its own). Both play through ALSA's pulse
plugin into the same :class:`~audio_rig.AudioSink`, whose monitor is recorded: a click played
by both shows twice, or once at double height (see ``clicks.py``).

Each listener gets its own ALSA configuration naming the sink directly, without the sink's
``type file`` tee: two processes would write one tee file over each other.

    with AudioSink() as sink, TwoListeners(sink, buffers_ms=(40, 150)) as pair:
        sink.start_recording()
        send_to(pair.ports, track_path)          # one ``appliance send --to A --to B``
        recording = sink.stop_recording()

Part 2 of the issue adds the synchronised playout: ``send_to(..., extra_args=["--delay-ms",
"N"])`` and ``TwoListeners(..., extra_args=[...])`` are the seams for its flags.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from audio_rig import SINK_NAME, AudioSink
from cli_runner import LOOPBACK, appliance_env

READY_TIMEOUT_S = 30.0
"""Start-up of ``appliance listen`` (imports, PortAudio probing) on a loaded 2-core machine."""

RIG_RESOLUTION_MS = 0.01
"""What the rig resolves, measured (tests/sync/test_rig_resolution.py): one stream carrying
each click twice a known number of samples apart is read back within 0.001 ms; 0.01 ms is
asserted. Two independent streams start on the null sink's 20 ms block grid."""

STOP_TIMEOUT_S = 10.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 free now whose next one is free too (RTCP may take P+1)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port >= 65535:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as second:
            try:
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds used so far by process ``pid`` (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime 14 and stime 15 (1-based, proc(5)).
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def direct_asound_conf(sink: AudioSink, directory: Path, name: str) -> Path:
    """An ALSA configuration whose default output is ``sink`` itself (no tee file)."""
    path = directory / f"asound-{name}.conf"
    path.write_text(
        "# Written by tests/sync_rig.py: the default output plays into the rig's null sink.\n"
        f'pcm.!default {{ type pulse server "{sink.server}" device "{SINK_NAME}" }}\n'
        f'ctl.!default {{ type pulse server "{sink.server}" }}\n'
    )
    return path


class ListenerProcess:
    """``appliance listen`` on 127.0.0.1:``port`` playing into ``sink``; its log is kept."""

    def __init__(
        self,
        sink: AudioSink,
        port: int,
        buffer_ms: int,
        *,
        fixed_latency: bool = True,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.port = port
        self.buffer_ms = buffer_ms
        self.log = ""
        self._log_lock = threading.Lock()
        self._ready = threading.Event()
        conf = direct_asound_conf(sink, sink.socket_path.parent, f"listener-{port}")
        args = [
            sys.executable, "-m", "appliance", "listen", *LOOPBACK, "--no-mdns",
            "--port", str(port), "--buffer-ms", str(buffer_ms),
            *(["--fixed-latency"] if fixed_latency else []), *extra_args,
        ]  # fmt: skip
        self.process = subprocess.Popen(
            args,
            env=appliance_env(ALSA_CONFIG_PATH=str(conf)),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group: stopped as a whole
        )
        self._reader = threading.Thread(target=self._read_log, daemon=True)
        self._reader.start()

    def _read_log(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._log_lock:
                self.log += line
            if "listening on" in line:
                self._ready.set()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self._ready.wait(0.05):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"listener on port {self.port} did not start:\n{self.log}")

    def cpu_s(self) -> float:
        return process_cpu_s(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._reader.join(timeout=STOP_TIMEOUT_S)


class TwoListeners:
    """Listeners with ``buffers_ms`` (one per listener: one, two or more) on free ports."""

    def __init__(
        self,
        sink: AudioSink,
        buffers_ms: Sequence[int] = (40, 150),
        *,
        fixed_latency: bool = True,
        extra_args: Sequence[str] = (),
    ) -> None:
        self._sink = sink
        self._buffers_ms = tuple(buffers_ms)
        self._fixed = fixed_latency
        self._extra = tuple(extra_args)
        self.listeners: list[ListenerProcess] = []

    @property
    def ports(self) -> list[int]:
        return [listener.port for listener in self.listeners]

    def __enter__(self) -> TwoListeners:
        try:
            for buffer_ms in self._buffers_ms:
                self.listeners.append(
                    ListenerProcess(
                        self._sink, free_udp_port(), buffer_ms,
                        fixed_latency=self._fixed, extra_args=self._extra,
                    )
                )  # fmt: skip
            for listener in self.listeners:
                listener.wait_ready()
        except BaseException:
            self.close()
            raise
        return self

    def cpu_s(self) -> list[float]:
        return [listener.cpu_s() for listener in self.listeners]

    def close(self) -> None:
        for listener in self.listeners:
            listener.stop()

    def logs(self) -> str:
        return "\n".join(f"--- listener :{x.port}\n{x.log}" for x in self.listeners)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def send_command(ports: Sequence[int], track: Path, extra_args: Sequence[str] = ()) -> list[str]:
    """``appliance send --rtp --to 127.0.0.1:P ... TRACK`` (raw 8 kHz mono s16le); no
    progress line (stderr is not a terminal), the summary at the end."""
    targets = [arg for port in ports for arg in ("--to", f"127.0.0.1:{port}")]
    return [
        sys.executable, "-m", "appliance", "send", "--rtp", *targets, *extra_args, str(track),
    ]  # fmt: skip


def start_send(
    ports: Sequence[int], track: Path, *, extra_args: Sequence[str] = ()
) -> subprocess.Popen[str]:
    """:func:`send_to`, started in the background (for tests that act while it plays)."""
    return subprocess.Popen(
        send_command(ports, track, extra_args),
        env=appliance_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def send_to(
    ports: Sequence[int],
    track: Path,
    *,
    extra_args: Sequence[str] = (),
    timeout_s: float = 120.0,
) -> subprocess.CompletedProcess[str]:
    """One ``appliance send --rtp --to 127.0.0.1:P ...`` of ``track`` (raw 8 kHz mono s16le)
    to every port, until it ends; ``timeout_s`` must exceed the track's length."""
    return subprocess.run(
        send_command(ports, track, extra_args),
        env=appliance_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
