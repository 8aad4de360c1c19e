"""``appliance send`` hears the listener: busy, nothing listening, what was played, several
listeners at once. Real subprocesses and UDP on 127.0.0.1 only."""

from __future__ import annotations

import io
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from audio_rig import assert_played, test_signal
from cli_runner import listening_once, run_appliance
from conftest import AudioSinkFactory
from listener_fixtures import ListenerFactory

from appliance.listener.listener import Listener
from appliance.sender.progress import ProgressLine
from appliance.sender.replies import TargetState
from appliance.sender.sender import SendReport
from appliance.wire.reply import ListenerReply, ReplyState

FAIL_WITHIN_S = 3.0
"""The sender fails within about 1 s; the Python start-up of the subprocess comes on top."""


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def raw_file(tmp_path: Path, seconds: float, seed: int) -> tuple[Path, bytes]:
    pcm = test_signal(seconds, seed)
    path = tmp_path / f"signal-{seed}.raw"
    path.write_bytes(pcm)
    return path, pcm


def listening(make_listener: ListenerFactory, tmp_path: Path, name: str) -> Listener:
    listener = make_listener(output_file=tmp_path / f"{name}.wav")
    listener.start()
    return listener


class OtherStream:
    """A first stream playing on a listener from another socket, 20 ms datagrams, until
    stopped (then ended with the end marker)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(5)
        self._target = ("127.0.0.1", port)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.sock.sendto(bytes(320), self._target)

    def __enter__(self) -> OtherStream:
        for _ in range(3):  # three equal datagrams make a stream (admission)
            self.sock.sendto(bytes(320), self._target)
        reply = ListenerReply.parse(self.sock.recv(65536))
        assert reply.state is ReplyState.PLAYING  # the session is this stream's
        self._thread.start()
        return self

    def end(self) -> None:
        """Stop sending and end the stream (once)."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join()
        self.sock.sendto(b"", self._target)

    def __exit__(self, *exc: object) -> None:
        self.end()
        self.sock.close()


@pytest.fixture
def busy_listener(
    make_listener: ListenerFactory, tmp_path: Path
) -> Iterator[tuple[Listener, OtherStream]]:
    listener = listening(make_listener, tmp_path, "busy")
    with OtherStream(listener.port) as other:
        yield listener, other


def timed_send(*args: str) -> tuple[float, int, str]:
    started = time.monotonic()
    result = run_appliance("send", *args)
    return time.monotonic() - started, result.returncode, result.stderr


def test_a_busy_listener_fails_the_send_at_once(
    tmp_path: Path, busy_listener: tuple[Listener, OtherStream]
) -> None:
    listener, other = busy_listener
    path, _ = raw_file(tmp_path, 5.0, seed=41)
    elapsed, code, stderr = timed_send(str(path), "--to", f"127.0.0.1:{listener.port}")
    assert (code, stderr) == (3, f"127.0.0.1:{listener.port} is busy playing another stream\n")
    assert elapsed < FAIL_WITHIN_S
    other.end()
    assert listener.wait_session_played(1, timeout=10)
    assert listener.sessions[0].ignored <= 5  # of 250: nothing more was sent


def test_nothing_listening_fails_fast(tmp_path: Path) -> None:
    port = free_udp_port()  # bound, then closed: ICMP port unreachable
    path, _ = raw_file(tmp_path, 5.0, seed=42)
    elapsed, code, stderr = timed_send(str(path), "--to", f"127.0.0.1:{port}")
    assert (code, stderr) == (3, f"nothing listens at 127.0.0.1:{port} (port unreachable)\n")
    assert elapsed < FAIL_WITHIN_S


def test_an_address_that_never_reports_gets_one_line_and_the_stream(tmp_path: Path) -> None:
    path, pcm = raw_file(tmp_path, 1.5, seed=43)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        port = silent.getsockname()[1]
        _, code, stderr = timed_send(str(path), "--to", f"127.0.0.1:{port}")
        silent.settimeout(5)
        received = b""
        while datagram := silent.recv(65536):
            received += datagram
    assert code == 0, stderr
    first, second = stderr.splitlines()
    assert first == f"no report from 127.0.0.1:{port}: playback cannot be confirmed"
    assert second.startswith(f"sent 1.50 s of audio to 127.0.0.1:{port} in 75 packets")
    assert received == pcm


@pytest.mark.parametrize("wire", ["raw", "rtp"])
def test_the_send_ends_with_what_the_listener_played(
    make_listener: ListenerFactory, tmp_path: Path, wire: str
) -> None:
    listener = listening(make_listener, tmp_path, wire)
    path, _ = raw_file(tmp_path, 1.0, seed=44)
    _, code, stderr = timed_send(str(path), "--to", f"127.0.0.1:{listener.port}", f"--{wire}")
    assert code == 0, stderr
    assert listener.wait_session_played(1, timeout=10)
    session = listener.sessions[0]
    assert round(session.audio_s, 2) == 1.00
    summary, played = stderr.splitlines()
    assert summary.startswith("sent 1.00 s of ")
    lost = "; 0 lost" if wire == "rtp" else ""
    assert played == f"listener played {session.audio_s:.2f} s of 1.00 s sent{lost}"


def test_the_progress_line_shows_the_listeners_figures() -> None:
    out = io.StringIO()
    state = TargetState(("10.0.0.5", 5005), "kitchen (10.0.0.5:5005)")
    state.receive(bytes(ListenerReply(ReplyState.PLAYING, buffer_ms=85, lost=2)))
    report = SendReport(("10.0.0.5", 5005), audio_bytes=16000, targets=[state])
    ProgressLine(out, total_s=None, target="kitchen (10.0.0.5:5005)").update(report, True)
    assert out.getvalue() == (
        "\r00:01.0 -> kitchen (10.0.0.5:5005) | buffer 85 ms, lost 2\x1b[K"
    )


def test_a_busy_target_is_dropped_and_the_other_plays(
    make_listener: ListenerFactory,
    tmp_path: Path,
    busy_listener: tuple[Listener, OtherStream],
) -> None:
    busy, _ = busy_listener
    free = listening(make_listener, tmp_path, "free")
    path, _ = raw_file(tmp_path, 1.0, seed=45)
    _, code, stderr = timed_send(
        str(path), "--to", f"127.0.0.1:{busy.port}", "--to", f"127.0.0.1:{free.port}"
    )
    assert code == 3
    summary, busy_line, free_line = stderr.splitlines()
    assert summary.startswith(
        f"sent 1.00 s of audio to 127.0.0.1:{busy.port}, 127.0.0.1:{free.port} in 50 packets"
    )
    assert busy_line == f"127.0.0.1:{busy.port} is busy playing another stream"
    assert free_line == f"127.0.0.1:{free.port}: listener played 1.00 s of 1.00 s sent"
    assert free.wait_session_played(1, timeout=10)
    assert round(free.sessions[0].audio_s, 2) == 1.00


@pytest.mark.audio
def test_two_listeners_in_two_rigs_both_play_it_bit_exact(
    tmp_path: Path, audio_sink_at: AudioSinkFactory
) -> None:
    path, pcm = raw_file(tmp_path, 1.0, seed=46)
    ports = free_udp_port(), free_udp_port()
    first_sink = audio_sink_at(rate=8000, channels=1)
    first_sink.start_recording()
    with listening_once("--port", str(ports[0]), "--no-mdns") as first:
        second_sink = audio_sink_at(rate=8000, channels=1)  # the second listener's output
        second_sink.start_recording()
        with listening_once("--port", str(ports[1]), "--no-mdns") as second:
            result = run_appliance(
                "send", str(path), "--to", f"127.0.0.1:{ports[0]}", "--to", f"127.0.0.1:{ports[1]}"
            )
    assert result.returncode == 0, result.stderr
    assert (first.returncode, second.returncode) == (0, 0), first.log + second.log
    lines = result.stderr.splitlines()
    assert lines[1:] == [
        f"127.0.0.1:{port}: listener played 1.00 s of 1.00 s sent" for port in ports
    ]
    assert_played(first_sink.stop_recording(), pcm)
    assert_played(second_sink.stop_recording(), pcm)


@pytest.mark.audio
def test_to_all_reaches_every_listener_found_on_loopback(
    tmp_path: Path, audio_sink_at: AudioSinkFactory
) -> None:
    """``--to all``: every listener the browse finds (two, advertised on 127.0.0.1) gets the
    stream, each into its own rig, bit-exact, with a line per listener."""
    path, pcm = raw_file(tmp_path, 1.0, seed=47)
    names = [f"all-{os.getpid()}-{i}" for i in range(2)]
    sinks = []
    first_sink = audio_sink_at(rate=8000, channels=1)
    first_sink.start_recording()
    with listening_once("--port", "0", "--name", names[0], ready_line="advertising") as first:
        second_sink = audio_sink_at(rate=8000, channels=1)
        second_sink.start_recording()
        with listening_once(
            "--port", "0", "--name", names[1], ready_line="advertising"
        ) as second:
            result = run_appliance("send", str(path), "--to", "all", "--interface", "127.0.0.1")
        sinks = [first_sink, second_sink]
    assert (first.returncode, second.returncode) == (0, 0), first.log + second.log
    # Only ours are asserted: another appliance listener on this machine's loopback (a test run
    # alongside) is found by "all" too.
    ours = [line for line in result.stderr.splitlines() if line.startswith(tuple(names))]
    assert sorted(line.split(" (")[0] for line in ours) == sorted(names), result.stderr
    ending = "listener played 1.00 s of 1.00 s sent; 0 lost"
    assert all(line.endswith(ending) for line in ours), result.stderr
    foreign = [
        line
        for line in result.stderr.splitlines()
        if "(127.0.0.1:" in line and not line.startswith(tuple(names))
    ]
    if not foreign:
        assert result.returncode == 0, result.stderr
    for sink in sinks:
        assert_played(sink.stop_recording(), pcm)
