"""The UDP impairment relay (tests/impair.py): its plans, offline, and the relay, through real
sockets on 127.0.0.1."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import impair
import pytest
from impair import (
    Fate,
    FatePlan,
    GilbertElliott,
    Impairment,
    ImpairmentRelay,
    RelayStats,
    main,
    plan,
)

IMPAIR_SCRIPT = Path(__file__).with_name("impair.py")


class Sink:
    """The relay's target: a UDP socket on 127.0.0.1 that records what arrives."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with contextlib.suppress(OSError):  # room for a test's whole trace (capped by rmem_max)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind(("127.0.0.1", 0))

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.sock.getsockname()
        return host, port

    def pending(self) -> list[bytes]:
        """Everything already here (after drain() all the relay sent is)."""
        self.sock.setblocking(False)
        got: list[bytes] = []
        while True:
            try:
                got.append(self.sock.recv(70_000))
            except BlockingIOError:
                return got

    def receive(self, count: int, timeout: float = 2.0) -> list[tuple[bytes, float]]:
        """Up to ``count`` datagrams, each with its arrival time (time.monotonic())."""
        got: list[tuple[bytes, float]] = []
        deadline = time.monotonic() + timeout
        while len(got) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.sock.settimeout(left)
            try:
                payload = self.sock.recv(70_000)
            except TimeoutError:
                break
            got.append((payload, time.monotonic()))
        return got


@pytest.fixture
def sink() -> Iterator[Sink]:
    target = Sink()
    yield target
    target.sock.close()


@pytest.fixture
def sender() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    yield sock
    sock.close()


def tag(i: int) -> bytes:
    return i.to_bytes(4, "big")


def untag(payload: bytes) -> int:
    return int.from_bytes(payload[:4], "big")


def loss_runs(fates: list[Fate]) -> list[int]:
    """The lengths of the runs of consecutive dropped datagrams."""
    runs: list[int] = []
    current = 0
    for fate in fates:
        if fate.dropped:
            current += 1
        elif current:
            runs.append(current)
            current = 0
    if current:
        runs.append(current)
    return runs


def dropped_share(fates: list[Fate]) -> float:
    return sum(fate.dropped for fate in fates) / len(fates)


# -- plans (no sockets) --


def test_same_seed_same_plan_different_seed_different_plan() -> None:
    impairment = Impairment(
        delay_ms=10,
        jitter_ms=8,
        loss=0.1,
        burst=GilbertElliott.from_rate(0.05, 3),
        duplicate=0.1,
        seed=42,
    )
    first = plan(impairment, 500)
    assert first == plan(impairment, 500)
    assert [fate.index for fate in first] == list(range(500))
    step_by_step = FatePlan(impairment)
    assert [step_by_step.next() for _ in range(500)] == first
    other = plan(dataclasses.replace(impairment, seed=43), 500)
    assert other != first
    assert [f.dropped for f in other] != [f.dropped for f in first]


def test_fates_do_not_depend_on_other_settings_draw_order() -> None:
    # A fixed number of draws per datagram: more loss drops more, delays of the rest stay.
    light = plan(Impairment(delay_ms=20, jitter_ms=15, loss=0.05, seed=9), 2000)
    heavy = plan(Impairment(delay_ms=20, jitter_ms=15, loss=0.3, seed=9), 2000)
    for a, b in zip(light, heavy, strict=True):
        if not b.dropped:
            assert a.delays_ms == b.delays_ms
        if a.dropped:
            assert b.dropped


def test_no_impairment_forwards_everything_at_once() -> None:
    assert plan(Impairment(), 100) == [Fate(i, (0.0,)) for i in range(100)]
    assert Fate(3, ()).dropped
    assert not Fate(3, (1.0,)).dropped


@pytest.mark.parametrize("loss", [0.01, 0.1, 0.5])
def test_independent_loss_rate(loss: float) -> None:
    fates = plan(Impairment(loss=loss, seed=1), 20_000)
    tolerance = 4 * math.sqrt(loss * (1 - loss) / 20_000) + 0.002
    assert abs(dropped_share(fates) - loss) < tolerance


def test_loss_extremes() -> None:
    assert all(fate.dropped for fate in plan(Impairment(loss=1.0), 1000))
    assert not any(fate.dropped for fate in plan(Impairment(loss=0.0), 1000))


def test_gilbert_elliott_from_rate_math() -> None:
    model = GilbertElliott.from_rate(0.1, 4)
    assert model.r == pytest.approx(0.25)
    assert model.p == pytest.approx(0.1 * 0.25 / 0.9)
    assert (model.loss_bad, model.loss_good) == (1.0, 0.0)
    assert model.loss_rate == pytest.approx(0.1)
    assert GilbertElliott.from_rate(0.0, 5).p == 0.0
    assert GilbertElliott.from_rate(0.5, 1).p == pytest.approx(1.0)
    general = GilbertElliott(p=0.02, r=0.2, loss_bad=0.6, loss_good=0.01)
    bad = 0.02 / 0.22
    assert general.loss_rate == pytest.approx(bad * 0.6 + (1 - bad) * 0.01)
    assert GilbertElliott(p=0.0, r=0.0, loss_good=0.03).loss_rate == pytest.approx(0.03)


@pytest.mark.parametrize(("loss_rate", "mean_burst", "seed"), [(0.1, 4, 1), (0.03, 2, 2)])
def test_gilbert_elliott_loss_and_burst_length(
    loss_rate: float, mean_burst: float, seed: int
) -> None:
    fates = plan(
        Impairment(burst=GilbertElliott.from_rate(loss_rate, mean_burst), seed=seed), 20_000
    )
    assert abs(dropped_share(fates) - loss_rate) < 0.25 * loss_rate
    runs = loss_runs(fates)
    assert len(runs) > 100
    assert abs(sum(runs) / len(runs) - mean_burst) < 0.15 * mean_burst
    # Bursty, unlike independent loss at this rate (mean runs of 1/(1 - rate), about 1).
    assert max(runs) > 3 * mean_burst


def test_gilbert_elliott_general_model_loss_rate() -> None:
    model = GilbertElliott(p=0.05, r=0.3, loss_bad=0.7, loss_good=0.02)
    fates = plan(Impairment(burst=model, seed=5), 20_000)
    assert abs(dropped_share(fates) - model.loss_rate) < 0.2 * model.loss_rate


def test_burst_and_independent_loss_both_apply() -> None:
    burst = GilbertElliott.from_rate(0.1, 3)
    fates = plan(Impairment(loss=0.1, burst=burst, seed=3), 20_000)
    expected = 1 - (1 - 0.1) * (1 - 0.1)
    assert abs(dropped_share(fates) - expected) < 0.03


def test_jitter_bounds_and_reordering() -> None:
    delay, jitter, spacing = 20.0, 15.0, 5.0
    fates = plan(Impairment(delay_ms=delay, jitter_ms=jitter, seed=11), 2000)
    delays = [fate.delays_ms[0] for fate in fates]
    assert all(max(0.0, delay - jitter) <= d <= delay + jitter for d in delays)
    assert max(delays) - min(delays) > 1.5 * jitter  # they do spread
    due = [i * spacing + d for i, d in enumerate(delays)]
    assert due != sorted(due)  # jitter > spacing: some datagram overtakes another

    floored = plan(Impairment(delay_ms=5, jitter_ms=20, seed=11), 2000)
    floored_delays = [fate.delays_ms[0] for fate in floored]
    assert min(floored_delays) == 0.0
    assert all(0.0 <= d <= 25.0 for d in floored_delays)
    assert sum(d == 0.0 for d in floored_delays) > 2000 * 0.3

    steady = plan(Impairment(delay_ms=7, seed=11), 100)
    assert {fate.delays_ms for fate in steady} == {(7.0,)}


def test_duplicates() -> None:
    fates = plan(Impairment(delay_ms=10, jitter_ms=5, loss=0.2, duplicate=0.25, seed=4), 20_000)
    forwarded = [fate for fate in fates if not fate.dropped]
    twice = [fate for fate in forwarded if len(fate.delays_ms) == 2]
    assert abs(len(twice) / len(forwarded) - 0.25) < 0.02
    assert all(len(fate.delays_ms) in (1, 2) for fate in forwarded)
    assert any(fate.delays_ms[0] != fate.delays_ms[1] for fate in twice)  # own delay draw
    assert all(5 <= d <= 15 for fate in twice for d in fate.delays_ms)
    every = plan(Impairment(duplicate=1.0), 50)
    assert all(fate.delays_ms == (0.0, 0.0) for fate in every)


# -- validation and the network rule --


@pytest.mark.parametrize(
    ("impairment", "message"),
    [
        (Impairment(loss=-0.1), "loss"),
        (Impairment(loss=1.5), "loss"),
        (Impairment(loss=math.nan), "loss"),
        (Impairment(duplicate=2.0), "duplicate"),
        (Impairment(delay_ms=-1.0), "delay_ms"),
        (Impairment(delay_ms=math.inf), "delay_ms"),
        (Impairment(jitter_ms=-0.5), "jitter_ms"),
        (Impairment(burst=GilbertElliott(p=1.5, r=0.1)), "burst p"),
        (Impairment(burst=GilbertElliott(p=0.1, r=-0.1)), "burst r"),
        (Impairment(burst=GilbertElliott(p=0.1, r=0.5, loss_bad=2.0)), "loss_bad"),
        (Impairment(burst=GilbertElliott(p=0.1, r=0.5, loss_good=-1.0)), "loss_good"),
    ],
)
def test_validation_errors(impairment: Impairment, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        impairment.validate()
    with pytest.raises(ValueError, match=message):
        FatePlan(impairment)
    with pytest.raises(ValueError, match=message):
        ImpairmentRelay(("127.0.0.1", 9), impairment)


def test_valid_impairment_passes() -> None:
    Impairment(1, 2, 0.0, GilbertElliott.from_rate(0.2, 2), 1.0, seed=-5).validate()


@pytest.mark.parametrize(
    ("loss_rate", "mean_burst", "message"),
    [
        (1.0, 4, "loss_rate"),
        (-0.1, 4, "loss_rate"),
        (0.1, 0.5, "mean_burst"),
        (0.1, math.inf, "mean_burst"),
        (0.9, 2, "at least 9"),
    ],
)
def test_from_rate_errors(loss_rate: float, mean_burst: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GilbertElliott.from_rate(loss_rate, mean_burst)


@pytest.mark.parametrize(
    "target",
    [("192.0.2.1", 5005), ("0.0.0.0", 5005), ("::1", 5005), ("example.com", 80), ("10.1.2.3", 9)],
)
def test_non_loopback_target_refused(target: tuple[str, int]) -> None:
    with pytest.raises(ValueError, match=r"loopback|127\.0\.0\.0/8"):
        ImpairmentRelay(target, Impairment())


@pytest.mark.parametrize("listen", [("0.0.0.0", 0), ("192.0.2.1", 6000), ("", 0)])
def test_non_loopback_listen_refused(listen: tuple[str, int]) -> None:
    with pytest.raises(ValueError, match=r"loopback|127\.0\.0\.0/8"):
        ImpairmentRelay(("127.0.0.1", 9), Impairment(), listen=listen)


def test_bad_ports_refused() -> None:
    with pytest.raises(ValueError, match="port"):
        ImpairmentRelay(("127.0.0.1", 0), Impairment())
    with pytest.raises(ValueError, match="port"):
        ImpairmentRelay(("127.0.0.1", 70000), Impairment())


# -- the relay, through real sockets --


def test_relays_payloads_unchanged_per_plan(sink: Sink, sender: socket.socket) -> None:
    impairment = Impairment(jitter_ms=2, loss=0.3, duplicate=0.3, seed=8)
    payloads = [tag(i) + bytes([i % 251]) * (i * 97 % 1400) for i in range(60)]
    with ImpairmentRelay(sink.address, impairment) as relay:
        for payload in payloads:
            sender.sendto(payload, relay.address)
        assert relay.drain()
        got = sink.pending()
        stats = relay.stats
    fates = plan(impairment, len(payloads))
    assert stats.fates == fates
    expected = Counter({payloads[f.index]: len(f.delays_ms) for f in fates if not f.dropped})
    assert Counter(got) == expected  # unchanged; dropped ones absent; duplicates twice
    assert any(f.dropped for f in fates) and any(len(f.delays_ms) == 2 for f in fates)
    assert stats.received == len(payloads)
    assert stats.dropped == sum(f.dropped for f in fates)
    assert stats.forwarded == len(payloads) - stats.dropped
    assert stats.duplicated == sum(len(f.delays_ms) == 2 for f in fates)
    assert len(got) == stats.forwarded + stats.duplicated


def test_largest_datagram_relayed_unchanged(sink: Sink, sender: socket.socket) -> None:
    payload = bytes(range(256)) * 255 + b"\xa5" * (65_507 - 256 * 255)  # UDP/IPv4's largest
    with ImpairmentRelay(sink.address, Impairment(delay_ms=1, duplicate=1.0)) as relay:
        sender.sendto(payload, relay.address)
        assert [p for p, _ in sink.receive(2)] == [payload, payload]


def test_no_delay_preserves_order_exactly(sink: Sink, sender: socket.socket) -> None:
    with ImpairmentRelay(sink.address, Impairment(seed=1)) as relay:
        for i in range(150):
            sender.sendto(tag(i), relay.address)
        assert relay.drain()
        got = sink.pending()
        stats = relay.stats
    assert [untag(p) for p in got] == list(range(150))
    assert (stats.received, stats.forwarded, stats.dropped) == (150, 150, 0)
    assert (stats.duplicated, stats.reordered) == (0, 0)


def test_fixed_delay_preserves_order_and_is_never_early(sink: Sink, sender: socket.socket) -> None:
    delay_s = 0.02
    sent: dict[int, float] = {}
    with ImpairmentRelay(sink.address, Impairment(delay_ms=delay_s * 1000)) as relay:
        for i in range(20):
            sent[i] = time.monotonic()
            sender.sendto(tag(i), relay.address)
            time.sleep(0.001)
        got = sink.receive(20)
    assert [untag(p) for p, _ in got] == list(range(20))
    for payload, arrived in got:
        assert arrived - sent[untag(payload)] >= delay_s
    assert relay.stats.reordered == 0


def test_jitter_reorders_as_planned(sink: Sink, sender: socket.socket) -> None:
    impairment = Impairment(delay_ms=30, jitter_ms=30, seed=7)
    count, spacing = 40, 0.005
    sent: list[float] = []
    with ImpairmentRelay(sink.address, impairment) as relay:
        start = time.monotonic()
        for i in range(count):
            pause = start + i * spacing - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            sent.append(time.monotonic())
            sender.sendto(tag(i), relay.address)
        assert relay.drain()
        order = [untag(p) for p in sink.pending()]
        stats = relay.stats
    assert sorted(order) == list(range(count))
    assert order != list(range(count))
    assert stats.reordered > 0
    fates = plan(impairment, count)
    assert stats.fates == fates
    due = [sent[i] + fates[i].delays_ms[0] / 1000 for i in range(count)]
    position = {index: n for n, index in enumerate(order)}
    for a in range(count):
        for b in range(count):
            if due[b] - due[a] >= 0.003:
                assert position[a] < position[b], (a, b, due[b] - due[a])


def test_empty_datagrams_are_relayed(sink: Sink, sender: socket.socket) -> None:
    datagrams = [b"", b"a", b"", b"", b"end"]
    with ImpairmentRelay(sink.address, Impairment()) as relay:
        for datagram in datagrams:
            sender.sendto(datagram, relay.address)
        assert relay.drain()
        assert sink.pending() == datagrams
        assert relay.stats.received == relay.stats.forwarded == len(datagrams)


def test_two_relays_same_seed_same_trace(sender: socket.socket) -> None:
    impairment = Impairment(delay_ms=1, jitter_ms=1, loss=0.2, duplicate=0.2, seed=99)
    sinks = [Sink(), Sink()]
    try:
        relays = [ImpairmentRelay(s.address, impairment) for s in sinks]
        for relay in relays:
            relay.start()
        for i in range(50):
            for relay in relays:
                sender.sendto(tag(i), relay.address)
        assert all(relay.drain() for relay in relays)
        traces = [Counter(s.pending()) for s in sinks]
        for relay in relays:
            relay.stop()
    finally:
        for s in sinks:
            s.sock.close()
    one, two = (relay.stats for relay in relays)
    assert (one.received, one.forwarded, one.dropped, one.duplicated) == (
        two.received,
        two.forwarded,
        two.dropped,
        two.duplicated,
    )  # (not .reordered: which copy overtakes which depends on timing)
    assert one.fates == two.fates
    assert relays[0].stats.fates == plan(impairment, 50)
    assert traces[0] == traces[1]


def test_replies_are_not_relayed(sink: Sink, sender: socket.socket) -> None:
    with ImpairmentRelay(sink.address, Impairment()) as relay:
        sender.sendto(b"hello", relay.address)
        sink.sock.settimeout(2)
        data, relay_source = sink.sock.recvfrom(100)
        assert data == b"hello"
        assert relay_source != relay.address  # sent from the relay's own socket
        sink.sock.sendto(b"reply", relay_source)  # answered to where it came from
        sender.settimeout(0.1)
        with pytest.raises(TimeoutError):
            sender.recv(100)
        assert relay.drain()
        assert relay.stats.received == 1


def test_stop_discards_scheduled_datagrams(sink: Sink, sender: socket.socket) -> None:
    relay = ImpairmentRelay(sink.address, Impairment(delay_ms=200))
    relay.start()
    for i in range(3):
        sender.sendto(tag(i), relay.address)
    deadline = time.monotonic() + 2
    while relay.stats.received < 3 and time.monotonic() < deadline:
        time.sleep(0.001)
    relay.stop()
    assert sink.pending() == []  # its sockets are closed: it can send nothing later
    assert relay.stats.received == 3
    assert relay.stats.forwarded == 0
    assert relay.drain(timeout=0.1)  # nothing scheduled any more
    relay.stop()  # idempotent


def test_stop_with_flush_sends_everything(sink: Sink, sender: socket.socket) -> None:
    relay = ImpairmentRelay(sink.address, Impairment(delay_ms=30, jitter_ms=10, seed=2))
    relay.start()
    for i in range(5):
        sender.sendto(tag(i), relay.address)
    relay.stop(flush=True)  # also takes in what is still waiting in the socket
    assert sorted(untag(p) for p in sink.pending()) == list(range(5))
    assert relay.stats.forwarded == relay.stats.received == 5


def test_lifecycle(sink: Sink) -> None:
    relay = ImpairmentRelay(sink.address, Impairment())
    host, port = relay.address
    assert host == "127.0.0.1" and port > 0
    assert relay.stats == RelayStats()
    relay.start()
    with pytest.raises(RuntimeError):
        relay.start()
    relay.stop()
    with pytest.raises(RuntimeError):
        relay.start()
    never_started = ImpairmentRelay(sink.address, Impairment())
    never_started.stop()


def test_fixed_listen_port_and_localhost(sink: Sink, sender: socket.socket) -> None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with ImpairmentRelay(("localhost", sink.address[1]), Impairment(), ("127.0.0.1", port)) as r:
        assert r.address == ("127.0.0.1", port)
        sender.sendto(b"x", ("127.0.0.1", port))
        assert [p for p, _ in sink.receive(1)] == [b"x"]


def test_fates_are_bounded(
    sink: Sink, sender: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert impair.MAX_FATES == 1_000_000
    monkeypatch.setattr(impair, "MAX_FATES", 4)
    with ImpairmentRelay(sink.address, Impairment()) as relay:
        for i in range(10):
            sender.sendto(tag(i), relay.address)
        assert relay.drain()
    assert relay.stats.received == 10
    assert relay.stats.fates == plan(Impairment(), 4)


# -- command line --


def test_cli_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    for option in (
        "--to",
        "--listen",
        "--delay-ms",
        "--jitter-ms",
        "--loss",
        "--burst-loss",
        "--burst-length",
        "--duplicate",
        "--seed",
    ):
        assert option in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--to", "10.0.0.1:5005"], "loopback"),
        (["--to", "127.0.0.1:5005", "--burst-loss", "5"], "go together"),
        (["--to", "127.0.0.1:5005", "--loss", "150"], "0..100"),
        (["--to", "127.0.0.1:nope"], "HOST:PORT"),
    ],
)
def test_cli_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_relays_until_interrupted(sink: Sink, sender: socket.socket) -> None:
    command = [sys.executable, str(IMPAIR_SCRIPT), "--to", f"127.0.0.1:{sink.address[1]}"]
    command += ["--delay-ms", "1", "--duplicate", "100", "--seed", "3"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            assert selector.select(timeout=10), "no address printed"
        banner = process.stdout.readline()
        assert banner.startswith("relaying 127.0.0.1:")
        port = int(banner.split()[1].split(":")[1])
        for i in range(3):
            sender.sendto(tag(i), ("127.0.0.1", port))
        got = sorted(untag(p) for p, _ in sink.receive(6))
        assert got == [0, 0, 1, 1, 2, 2]
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    assert "received 3 forwarded 3 dropped 0 duplicated 3" in out
