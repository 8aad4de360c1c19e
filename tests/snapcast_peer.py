"""Snapcast, the multi-room peer, in the sync rig: one snapserver and two snapclients on
127.0.0.1 playing into the rig's null sink, for side-by-side skew figures (``bench_sync.py``).

The snapserver reads raw 8000 Hz mono s16le from a FIFO (its ``pipe`` source, ``pcm`` codec:
the click track, unchanged) and serves it on a free port of 127.0.0.1 only (its HTTP and TCP
control servers off); each snapclient plays through ALSA's ``default``, which the rig points
at the null sink (as for the listeners), with its own ALSA buffer (``alsa:buffer_time=MS``).
Neither can publish over mDNS: no D-Bus system bus is reachable from them.

Snapcast 0.26 is in Debian 12. Installing the packages also installs and starts their
system services (which would advertise and listen on the network), so the bench takes the
binaries unpacked instead::

    cd /tmp && apt-get download snapserver snapclient && \\
        for deb in snap*.deb; do dpkg -x "$deb" /tmp/snapcast; done

and finds them in ``/tmp/snapcast/usr/bin`` (``--snapcast-bin DIR`` for another place), or on
the PATH.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from audio_rig import AudioSink
from sync_rig import direct_asound_conf, process_cpu_s

DEFAULT_BIN = Path("/tmp/snapcast/usr/bin")
SERVER_BUFFER_MS = 1000
"""snapserver's end-to-end latency (its ``stream.buffer``), left at its default."""
CONNECT_S = 2.0
"""After the clients start, before the stream: they connect and say hello."""
PIPE_SECONDS = 65536 / 16000
"""A FIFO holds 64 KiB: this much of the track is still in it when the last write returns."""
STOP_TIMEOUT_S = 5.0


def snapcast_bin(directory: Path | None = None) -> Path | None:
    """The directory with ``snapserver`` and ``snapclient``, or None."""
    candidates = [directory] if directory is not None else [DEFAULT_BIN]
    found = shutil.which("snapserver")
    if directory is None and found is not None:
        candidates.append(Path(found).parent)
    for candidate in candidates:
        if candidate is not None and all(
            os.access(candidate / name, os.X_OK) for name in ("snapserver", "snapclient")
        ):
            return candidate
    return None


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_conf(directory: Path, fifo: Path, port: int) -> str:
    return (
        "[server]\n"
        f"datadir = {directory}\n"
        "[http]\nenabled = false\n"
        "[tcp]\nenabled = false\n"
        "[stream]\n"
        "bind_to_address = 127.0.0.1\n"
        f"port = {port}\n"
        f"source = pipe://{fifo}?name=clicks&sampleformat=8000:16:1&codec=pcm\n"
        f"buffer = {SERVER_BUFFER_MS}\n"
        "[logging]\nsink = stderr\n"
    )


class SnapcastGroup:
    """A snapserver and one snapclient per ``buffers_ms`` (its ALSA buffer) into ``sink``."""

    def __init__(self, sink: AudioSink, buffers_ms: Sequence[int], bin_dir: Path) -> None:
        self._sink = sink
        self._buffers_ms = tuple(buffers_ms)
        self._bin = bin_dir
        self._dir = sink.socket_path.parent / "snapcast"
        self._fifo = self._dir / "clicks.fifo"
        self._env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS="unix:path=/nonexistent")
        self.server: subprocess.Popen[bytes] | None = None
        self.clients: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> SnapcastGroup:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def _start(self) -> None:
        self._dir.mkdir()
        os.mkfifo(self._fifo)
        port = free_tcp_port()
        conf = self._dir / "snapserver.conf"
        conf.write_text(server_conf(self._dir, self._fifo, port))
        self.server = self._spawn([str(self._bin / "snapserver"), "-c", str(conf)], "server")
        for index, buffer_ms in enumerate(self._buffers_ms):
            alsa = direct_asound_conf(self._sink, self._dir, f"snapclient-{index}")
            command = [
                str(self._bin / "snapclient"), "-h", "127.0.0.1", "-p", str(port),
                "--hostID", f"bench-{index}", "-i", str(index + 1),
                "--player", f"alsa:buffer_time={buffer_ms}", "--logsink", "stderr",
            ]  # fmt: skip
            self.clients.append(self._spawn(command, f"client-{index}", ALSA_CONFIG_PATH=alsa))
        time.sleep(CONNECT_S)
        for process in [self.server, *self.clients]:
            if process.poll() is not None:
                raise RuntimeError(f"snapcast exited at start-up:\n{self.logs()}")

    def _spawn(self, command: list[str], name: str, **env: Path) -> subprocess.Popen[bytes]:
        with (self._dir / f"{name}.log").open("wb") as log:
            return subprocess.Popen(
                command,
                env=self._env | {key: str(value) for key, value in env.items()},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def play(self, track: bytes) -> None:
        """Feed ``track`` in real time (the server reads the FIFO at the stream's rate), then
        wait until the last of it has left the FIFO, the server's buffer and the outputs."""
        with self._fifo.open("wb") as fifo:
            fifo.write(track)
        time.sleep(PIPE_SECONDS + SERVER_BUFFER_MS / 1000 + max(self._buffers_ms) / 1000 + 0.5)

    def cpu_s(self) -> list[float]:
        """CPU seconds used so far by each client."""
        return [process_cpu_s(client.pid) for client in self.clients]

    def server_cpu_s(self) -> float:
        return 0.0 if self.server is None else process_cpu_s(self.server.pid)

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.stem}\n{path.read_text(errors='replace')}"
            for path in sorted(self._dir.glob("*.log"))
        )

    def close(self) -> None:
        for process in [*self.clients, *([self.server] if self.server else [])]:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
