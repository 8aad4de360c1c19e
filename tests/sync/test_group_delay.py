"""The group delay agreed between ``appliance send`` and its listeners (issue 12), on real
parts: the real command line streams RTP over UDP on 127.0.0.1 to loopback sockets that act
as appliance listeners the way the sender sees them. Each replies (APLR), and asks the time
with the listener's real :class:`~appliance.listener.timesync.TimeClient`, saying in each
request the smallest delay it can meet (unknown in its first request, as a listener whose
output has not said its latency yet).

Two targets and no ``--delay-ms``: both hear ``APGD 0`` (the group is forming) until both have
said, then the largest need plus 5 ms (or the time agreeing took plus the listeners'
reaction), rounded up to a ms, never anything else; the output
says so; a later, larger need is warned about once. One target and no ``--delay-ms``: sender
reports but no APGD at all, as before. ``--delay-ms``: that value from the first report on.
"""

from __future__ import annotations

import random
import re
import socket
import threading
import time
from pathlib import Path

from audio_rig import test_signal
from cli_runner import run_appliance

from appliance.listener.timesync import TimeClient
from appliance.sender.timeserver import AGREE_REACTION_US
from appliance.sync.clock import MS_NS
from appliance.wire.reply import ListenerReply, ReplyState
from appliance.wire.rtcp import Bye, SenderReport, is_rtcp, parse_compound
from appliance.wire.timesync import GroupDelay, time_messages

RTP_HEADER = 12
BYTES_PER_MS = 16
"""L16 8000 Hz mono: what ``send --rtp`` makes of raw 8 kHz PCM."""
RUN_TIMEOUT_S = 60


class ActingListener:
    """A loopback UDP socket that the sender takes for an appliance listener (see the module
    docstring). It records every group delay announced to it, in order, from its own thread;
    at the stream's BYE it says it stopped, with what it received, and keeps its port open
    until :meth:`join` (as a listener does for a while: a closed port would refuse the BYE's
    further copies and fail the target)."""

    def __init__(self, need_ms: int, later_need_ms: int | None = None) -> None:
        self.need_ms = need_ms
        self.later_need_ms = later_need_ms
        """What it says once it has heard the agreed delay (a slower output, say)."""
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.01)
        self.port: int = self.sock.getsockname()[1]
        self.delays_us: list[int] = []
        self.sender_reports = 0
        self.audio_bytes = 0
        self.ended = False
        self._done = threading.Event()
        self.client: TimeClient | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def min_delay_ns(self) -> int | None:
        assert self.client is not None
        if self.client.sent == 0:
            return None  # its first request: the output has not said its latency yet
        if self.later_need_ms is not None and any(self.delays_us):
            return self.later_need_ms * MS_NS
        return self.need_ms * MS_NS

    def _send(self, datagram: bytes, address: tuple[str, int]) -> bool:
        self.sock.sendto(datagram, address)
        return True

    def _run(self) -> None:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while not self._done.is_set() and time.monotonic() < deadline:
            try:
                data, source = self.sock.recvfrom(2048)
            except TimeoutError:
                if self.client is not None and not self.ended:
                    self.client.poll()
                continue
            if self.client is None:
                self.client = TimeClient(
                    self._send, source, random.getrandbits(32), rate=8000,
                    min_delay=self.min_delay_ns,
                )
                self._send(bytes(ListenerReply(ReplyState.PLAYING)), source)
            if is_rtcp(data):
                self._take_rtcp(data, source)
            else:
                self.audio_bytes += len(data) - RTP_HEADER
            if not self.ended:
                self.client.poll()
        self.sock.close()

    def _take_rtcp(self, data: bytes, source: tuple[str, int]) -> None:
        assert self.client is not None
        packets = parse_compound(data)
        self.delays_us += [m.delay_us for m in time_messages(packets) if isinstance(m, GroupDelay)]
        self.sender_reports += sum(isinstance(p, SenderReport) for p in packets)
        self.client.receive(packets)
        if any(isinstance(p, Bye) for p in packets) and not self.ended:
            played_ms = self.audio_bytes // BYTES_PER_MS
            self._send(bytes(ListenerReply(ReplyState.STOPPED, played_ms=played_ms)), source)
            self.ended = True

    def join(self) -> None:
        self._done.set()
        self.thread.join(RUN_TIMEOUT_S)
        assert self.ended, f"{self.target} never heard the stream end"


def send(tmp_path: Path, *targets: ActingListener, extra: tuple[str, ...] = ()) -> str:
    """``appliance send`` of 3 s of signal to the targets; its output (stderr)."""
    path = tmp_path / "signal.raw"
    path.write_bytes(test_signal(seconds=3.0, seed=12))
    to = [arg for t in targets for arg in ("--to", t.target)]
    result = run_appliance("send", str(path), *to, "--rtp", *extra, timeout=RUN_TIMEOUT_S)
    for target in targets:
        target.join()
    assert result.returncode == 0, result.stderr
    return result.stderr


def forming_then(delays_us: list[int], agreed_us: int) -> bool:
    """0 (forming) at least once, then the agreed value at least once, and nothing else."""
    first = delays_us.index(agreed_us) if agreed_us in delays_us else 0
    return first > 0 and set(delays_us[:first]) == {0} and set(delays_us[first:]) == {agreed_us}


def test_two_listeners_wait_then_hear_the_largest_need_plus_5_ms(tmp_path: Path) -> None:
    kitchen = ActingListener(need_ms=105, later_need_ms=400)
    hall = ActingListener(need_ms=213)
    output = send(tmp_path, kitchen, hall)
    lines = output.splitlines()
    [agreed] = [line for line in lines if line.startswith("group delay ")]
    found = re.fullmatch(
        rf"group delay (\d+) ms \(agreed after (\d+) ms: {re.escape(kitchen.target)} 105 ms, "
        rf"{re.escape(hall.target)} 213 ms\)",
        agreed,
    )
    assert found, output
    delay_ms, after_ms = int(found[1]), int(found[2])
    # The largest need plus 5 ms, unless agreeing took so long that the start would be due
    # before the listeners (holding it meanwhile) could play it.
    floor_ms = after_ms + AGREE_REACTION_US // 1000
    assert max(218, floor_ms) <= delay_ms <= max(218, floor_ms) + 1, output
    assert forming_then(kitchen.delays_us, delay_ms * 1000), kitchen.delays_us
    assert forming_then(hall.delays_us, delay_ms * 1000), hall.delays_us
    # The kitchen's later, larger need does not move the group: said once, as a warning.
    warning = (
        f"WARNING {kitchen.target} needs 400 ms, more than the group's {delay_ms} ms: it may "
        "drop out (set --delay-ms)"
    )
    needs = [line for line in lines if " needs " in line]
    assert len(needs) == 1 and needs[0].endswith(warning), output
    assert kitchen.client is not None and kitchen.client.sent > 4  # it went on asking


def test_one_listener_without_a_delay_hears_no_group_delay(tmp_path: Path) -> None:
    alone = ActingListener(need_ms=105)
    output = send(tmp_path, alone)
    assert alone.sender_reports > 0 and alone.delays_us == []
    assert "group delay" not in output, output


def test_a_given_delay_is_announced_from_the_first_report(tmp_path: Path) -> None:
    kitchen, hall = ActingListener(need_ms=105), ActingListener(need_ms=213)
    output = send(tmp_path, kitchen, hall, extra=("--delay-ms", "120"))
    for target in (kitchen, hall):
        assert target.delays_us and set(target.delays_us) == {120_000}, target.delays_us
    assert "group delay 120 ms (--delay-ms)" in output.splitlines(), output
    assert "needs" not in output  # a given delay is the user's: not agreed, not warned about
