"""A user-space UDP impairment relay for loopback tests and benchmarks (no netem needed).

The kernel this project is tested on has no ``netem`` qdisc, so network trouble is made in
user space: an :class:`ImpairmentRelay` listens on a 127.0.0.1 port, and forwards each
datagram it receives, payload unchanged, to a target port after a delay (fixed plus random
jitter, so later datagrams may overtake earlier ones), or drops it (independent loss and/or
bursty loss from a Gilbert-Elliott two-state model), or sends it twice.

Every decision comes from one ``random.Random(seed)`` drawn in a fixed order per datagram,
never from timing: the i-th datagram's :class:`Fate` depends only on the impairment and ``i``.
:func:`plan` computes the same fates offline, so a test can predict exactly which datagrams
arrive and two relays with the same seed impair the same packet sequence identically::

    from impair import GilbertElliott, Impairment, ImpairmentRelay, plan

    impairment = Impairment(
        delay_ms=20, jitter_ms=10, loss=0.01,
        burst=GilbertElliott.from_rate(0.02, mean_burst=4), duplicate=0.005, seed=1,
    )
    with ImpairmentRelay(("127.0.0.1", listener_port), impairment) as relay:
        send_to(relay.address)           # the sender talks to the relay, not the listener
        relay.drain()                    # wait until everything scheduled has been sent
    print(relay.stats)                   # received / forwarded / dropped / duplicated / ...
    assert relay.stats.fates == plan(impairment, relay.stats.received)

Or from a shell (Ctrl-C stops it and prints the statistics)::

    python tests/impair.py --to 127.0.0.1:5005 --listen 127.0.0.1:6000 \\
        --delay-ms 20 --jitter-ms 10 --burst-loss 2 --burst-length 4 --seed 1

Only loopback addresses (127.0.0.0/8) are accepted, for targets and for listening.
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import ipaddress
import math
import os
import random
import select
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType

MAX_FATES = 1_000_000
"""``RelayStats.fates`` keeps the fates of the first this-many datagrams only."""
MAX_DATAGRAM = 65_536
DRAWS_PER_DATAGRAM = 6
"""Random numbers drawn for every datagram, whatever its fate: GE state, GE loss, independent
loss, duplicate, delay, copy's delay. The i-th datagram always uses draws 6i..6i+5, so (for
one seed) changing, say, the loss rate leaves the delays of the surviving datagrams as they
were."""
_RECEIVE_POLL_S = 0.25
"""Fallback wake-up of the receiving thread (stop() also wakes it through a pipe)."""
_DRAIN_POLL_S = 0.002
_LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


def _check_probability(name: str, value: float) -> None:
    if not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability between 0 and 1, got {value!r}")


def _check_milliseconds(name: str, value: float) -> None:
    if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number of milliseconds >= 0, got {value!r}")


@dataclass(frozen=True, slots=True)
class GilbertElliott:
    """Bursty loss: a good state (loss prob loss_good) and a bad one (loss prob loss_bad);
    p = P(good -> bad) per packet, r = P(bad -> good) per packet.

    The first datagram's state is drawn from the stationary distribution, so the loss rate
    is :attr:`loss_rate` from the first datagram on. With ``loss_bad=1`` and
    ``loss_good=0`` loss bursts are geometric with mean ``1/r`` datagrams.
    """

    p: float
    r: float
    loss_bad: float = 1.0
    loss_good: float = 0.0

    @classmethod
    def from_rate(cls, loss_rate: float, mean_burst: float) -> GilbertElliott:
        """The model with ``loss_bad=1``, ``loss_good=0``, bursts of ``mean_burst``
        datagrams on average (``r = 1/mean_burst``) and stationary loss ``loss_rate``
        (``p = loss_rate * r / (1 - loss_rate)``)."""
        if not isinstance(loss_rate, int | float) or not 0.0 <= loss_rate < 1.0:
            raise ValueError(f"loss_rate must be >= 0 and < 1, got {loss_rate!r}")
        if not isinstance(mean_burst, int | float) or not 1.0 <= mean_burst < math.inf:
            raise ValueError(
                f"mean_burst must be a finite number of datagrams >= 1, got {mean_burst!r}"
            )
        r = 1.0 / mean_burst
        p = loss_rate * r / (1.0 - loss_rate)
        if p > 1.0:
            shortest = loss_rate / (1.0 - loss_rate)
            raise ValueError(
                f"a loss rate of {loss_rate} needs bursts of at least {shortest:.3g} "
                f"datagrams on average, got mean_burst={mean_burst}"
            )
        model = cls(p=p, r=r)
        model.validate()
        return model

    @property
    def loss_rate(self) -> float:
        """The stationary loss probability (``loss_good`` if ``p = r = 0``: the chain then
        stays in the good state)."""
        total = self.p + self.r
        bad = self.p / total if total > 0 else 0.0
        return (1.0 - bad) * self.loss_good + bad * self.loss_bad

    @property
    def stationary_bad(self) -> float:
        """The stationary probability of the bad state."""
        total = self.p + self.r
        return self.p / total if total > 0 else 0.0

    def validate(self) -> None:
        """Raise ValueError unless every field is a probability."""
        _check_probability("burst p (P(good -> bad))", self.p)
        _check_probability("burst r (P(bad -> good))", self.r)
        _check_probability("burst loss_bad", self.loss_bad)
        _check_probability("burst loss_good", self.loss_good)


@dataclass(frozen=True, slots=True)
class Impairment:
    """What the relay does to each datagram. See the field comments."""

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    """Each datagram's delay is ``delay_ms + uniform(-jitter_ms, +jitter_ms)``, floored at 0:
    later datagrams may overtake earlier ones."""
    loss: float = 0.0
    """Independent loss probability, 0..1."""
    burst: GilbertElliott | None = None
    """Bursty loss, applied as well as ``loss`` if both are given."""
    duplicate: float = 0.0
    """Probability that a forwarded datagram is sent twice (the copy gets its own delay)."""
    seed: int = 0

    def validate(self) -> None:
        """Raise ValueError, naming the field, for any out-of-range value."""
        _check_milliseconds("delay_ms", self.delay_ms)
        _check_milliseconds("jitter_ms", self.jitter_ms)
        _check_probability("loss", self.loss)
        _check_probability("duplicate", self.duplicate)
        if self.burst is not None:
            if not isinstance(self.burst, GilbertElliott):
                raise ValueError(f"burst must be a GilbertElliott or None, got {self.burst!r}")
            self.burst.validate()
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ValueError(f"seed must be an int, got {self.seed!r}")


@dataclass(frozen=True, slots=True)
class Fate:
    """What happens to one datagram."""

    index: int
    """The datagram's arrival index at the relay (0, 1, 2, ...)."""
    delays_ms: tuple[float, ...]
    """``()``: dropped; one entry: forwarded once after that delay; two: duplicated."""

    @property
    def dropped(self) -> bool:
        return not self.delays_ms


class FatePlan:
    """The deterministic decisions: the i-th datagram's fate depends only on (impairment, i)'s
    sequence -- i.e. call next() in arrival order; same seed => same fates.

    Each call draws exactly :data:`DRAWS_PER_DATAGRAM` numbers from ``Random(seed)``, in this
    order: Gilbert-Elliott state, Gilbert-Elliott loss, independent loss, duplicate, delay,
    copy's delay (unused draws are drawn anyway).
    """

    def __init__(self, impairment: Impairment) -> None:
        impairment.validate()
        self.impairment = impairment
        self._random = random.Random(impairment.seed)
        self._index = 0
        self._bad = False

    def next(self) -> Fate:
        imp = self.impairment
        draw = self._random.random
        u_state, u_burst, u_loss, u_duplicate, u_delay, u_copy = (
            draw() for _ in range(DRAWS_PER_DATAGRAM)
        )
        index = self._index
        self._index += 1
        lost = u_loss < imp.loss
        if imp.burst is not None:
            model = imp.burst
            if index == 0:
                self._bad = u_state < model.stationary_bad
            elif self._bad:
                self._bad = not u_state < model.r
            else:
                self._bad = u_state < model.p
            state_loss = model.loss_bad if self._bad else model.loss_good
            lost = lost or u_burst < state_loss
        if lost:
            return Fate(index, ())
        first = self._delay(u_delay)
        if u_duplicate < imp.duplicate:
            return Fate(index, (first, self._delay(u_copy)))
        return Fate(index, (first,))

    def _delay(self, u: float) -> float:
        imp = self.impairment
        return max(0.0, imp.delay_ms + imp.jitter_ms * (2.0 * u - 1.0))


def plan(impairment: Impairment, count: int) -> list[Fate]:
    """The fates of the first ``count`` datagrams."""
    fates = FatePlan(impairment)
    return [fates.next() for _ in range(count)]


@dataclass(slots=True)
class RelayStats:
    """What a relay did. ``forwarded`` counts datagrams sent out (each once, when its first
    copy goes), ``duplicated`` the second copies sent; after :meth:`ImpairmentRelay.drain`
    ``received == forwarded + dropped`` and the target got ``forwarded + duplicated``
    datagrams. ``dropped`` counts only datagrams whose Fate drops them (not ones still
    scheduled when the relay is stopped without ``flush``, nor a send the OS refuses, which
    is simply not counted)."""

    received: int = 0
    forwarded: int = 0
    dropped: int = 0
    duplicated: int = 0
    reordered: int = 0
    """Datagrams sent out after one that arrived later than them (each counted once)."""
    fates: list[Fate] = field(default_factory=list)
    """Every datagram's fate, in arrival order (only the first :data:`MAX_FATES`)."""


def _loopback(address: tuple[str, int], role: str, *, any_port: bool) -> tuple[str, int]:
    """``address`` checked to be in 127.0.0.0/8 (``localhost`` means 127.0.0.1)."""
    try:
        host, port = address
    except (TypeError, ValueError):
        raise ValueError(f"{role} must be a (host, port) pair, got {address!r}") from None
    if host == "localhost":
        host = "127.0.0.1"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"{role} host must be an IPv4 address in 127.0.0.0/8, got {host!r}"
        ) from None
    if ip.version != 4 or ip not in _LOOPBACK:
        raise ValueError(
            f"{role} {host} is not a loopback address: this relay only talks to 127.0.0.0/8"
        )
    lowest = 0 if any_port else 1
    if not isinstance(port, int) or isinstance(port, bool) or not lowest <= port <= 65535:
        raise ValueError(f"{role} port must be {lowest}..65535, got {port!r}")
    return str(ip), port


_Entry = tuple[float, int, int, bool, bytes]
"""A scheduled send: (due time, sequence, arrival index, one of a duplicate pair, payload)."""


class ImpairmentRelay:
    """Receives on `listen` (default 127.0.0.1, port 0 = any free port), forwards each
    datagram's payload unchanged, per its Fate, from its own socket to `target`. The empty
    datagram (the seed's end-of-stream marker) is a datagram like any other. Replies from the
    target are not relayed (one direction), unless ``relay_replies``: then they go back, at
    once and unimpaired, from the relay's listening address to the latest sender (a listener's
    reports and time requests reach the sender; only its way to the listener is impaired).

    A datagram is due at its arrival time (``time.monotonic()``) plus its delay; due
    datagrams go out in due order (ties in arrival order), and one with no delay is sent by
    the receiving thread at once. The sockets are bound in the constructor, so
    :attr:`address` is known before :meth:`start`; datagrams that arrive before ``start``
    wait in the socket buffer.
    """

    def __init__(
        self,
        target: tuple[str, int],
        impairment: Impairment,
        listen: tuple[str, int] = ("127.0.0.1", 0),
        *,
        relay_replies: bool = False,
    ) -> None:
        self._relay_replies = relay_replies
        self._source: tuple[str, int] | None = None
        self.replies = 0
        """Datagrams from the target relayed back to the sender (with ``relay_replies``)."""
        self.target = _loopback(target, "target", any_port=False)
        listen = _loopback(listen, "listen address", any_port=True)
        impairment.validate()
        self.impairment = impairment
        self.stats = RelayStats()
        self._plan = FatePlan(impairment)
        self._receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            with contextlib.suppress(OSError):
                self._receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            self._receiver.bind(listen)
            self._receiver.setblocking(False)
            self._sender.bind(("127.0.0.1", 0))
        except BaseException:
            self._receiver.close()
            self._sender.close()
            raise
        self._address: tuple[str, int] = self._receiver.getsockname()
        self._wake_read, self._wake_write = os.pipe()
        self._cond = threading.Condition()
        self._heap: list[_Entry] = []
        self._sequence = 0
        self._max_sent = -1
        self._twins: dict[int, bool] = {}  # index -> "counted as reordered", first copy sent
        self._reading = False
        self._started = False
        self._stopping = False
        self._flush = False
        self._closing = False
        self._closed = False
        self._threads: list[threading.Thread] = []

    @property
    def address(self) -> tuple[str, int]:
        """Where senders send (the bound address and port)."""
        return self._address

    def start(self) -> None:
        with self._cond:
            if self._started or self._stopping:
                raise RuntimeError("an ImpairmentRelay can be started only once")
            self._started = True
        self._threads = [
            threading.Thread(target=self._receive_loop, name="impair-receive", daemon=True),
            threading.Thread(target=self._send_loop, name="impair-send", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, flush: bool = False) -> None:
        """Stop receiving, close the sockets. Without ``flush`` nothing more is sent: the
        datagrams still scheduled are discarded. With ``flush`` the datagrams already
        waiting in the socket are received too, and everything scheduled is sent when due
        before this returns. Idempotent."""
        with self._cond:
            if self._stopping:
                first = False
            else:
                first = True
                self._stopping = True
                self._flush = flush
                if not flush:
                    self._heap.clear()
                    self._twins.clear()
                self._cond.notify_all()
        if first:
            with contextlib.suppress(OSError):
                os.write(self._wake_write, b"x")
        for thread in self._threads:
            if thread.name == "impair-receive" and thread is not threading.current_thread():
                thread.join()
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join()
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._heap.clear()
            self._cond.notify_all()
        self._receiver.close()
        self._sender.close()
        os.close(self._wake_read)
        os.close(self._wake_write)

    def drain(self, timeout: float = 5.0) -> bool:
        """Wait until every datagram received so far (including any still waiting in the
        socket) has been sent or dropped; False if that takes longer than ``timeout``
        seconds. (After stop() without flush nothing is scheduled any more: True.)"""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if not self._heap and not self._reading and not self._socket_pending():
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, _DRAIN_POLL_S))

    def __enter__(self) -> ImpairmentRelay:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals (all state below is guarded by self._cond) --

    def _socket_pending(self) -> bool:
        if self._closed or (self._stopping and not self._flush):
            return False
        readable, _, _ = select.select([self._receiver], [], [], 0)
        return bool(readable)

    def _receive_loop(self) -> None:
        receiver = self._receiver.fileno()
        watched = [receiver, self._wake_read]
        if self._relay_replies:
            watched.append(self._sender.fileno())
        while True:
            readable, _, _ = select.select(watched, [], [], _RECEIVE_POLL_S)
            with self._cond:
                if self._stopping:
                    break
                if self._sender.fileno() in readable:
                    self._relay_reply()
                if receiver not in readable:
                    continue
                self._reading = True
            try:
                payload: bytes | None
                payload, self._source = self._receiver.recvfrom(MAX_DATAGRAM)
            except OSError:  # nothing after all, or a queued error: not a datagram
                payload = None
            arrived = time.monotonic()
            with self._cond:
                self._reading = False
                if payload is not None and not (self._stopping and not self._flush):
                    self._admit(payload, arrived)
                self._cond.notify_all()
        if self._flush:
            self._receive_remaining()

    def _relay_reply(self) -> None:
        try:
            reply = self._sender.recv(MAX_DATAGRAM)
        except OSError:  # ICMP port unreachable from the target, say
            return
        if self._source is not None:
            with contextlib.suppress(OSError):
                self._receiver.sendto(reply, self._source)
                self.replies += 1

    def _receive_remaining(self) -> None:
        """For stop(flush=True): take in what is already waiting in the socket."""
        while True:
            try:
                payload = self._receiver.recv(MAX_DATAGRAM)
            except OSError:  # BlockingIOError: nothing left
                return
            arrived = time.monotonic()
            with self._cond:
                self._admit(payload, arrived)
                self._cond.notify_all()

    def _admit(self, payload: bytes, arrived: float) -> None:
        fate = self._plan.next()
        stats = self.stats
        stats.received += 1
        if len(stats.fates) < MAX_FATES:
            stats.fates.append(fate)
        if fate.dropped:
            stats.dropped += 1
            return
        twin = len(fate.delays_ms) > 1
        for delay_ms in fate.delays_ms:
            entry = (arrived + delay_ms / 1000.0, self._sequence, fate.index, twin, payload)
            heapq.heappush(self._heap, entry)
            self._sequence += 1
        self._send_due(arrived)

    def _send_loop(self) -> None:
        with self._cond:
            while True:
                self._send_due(time.monotonic())
                if self._closing and not self._heap:
                    return
                if self._heap:
                    self._cond.wait(max(0.0, self._heap[0][0] - time.monotonic()))
                else:
                    self._cond.wait()

    def _send_due(self, now: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= now:
            self._transmit(heapq.heappop(heap))

    def _transmit(self, entry: _Entry) -> None:
        _, _, index, twin, payload = entry
        try:
            self._sender.sendto(payload, self.target)
        except OSError:
            return  # not sent: not counted
        stats = self.stats
        late = index < self._max_sent
        self._max_sent = max(self._max_sent, index)
        if twin and index in self._twins:
            counted = self._twins.pop(index)
            stats.duplicated += 1
            if late and not counted:
                stats.reordered += 1
            return
        if twin:
            self._twins[index] = late
        stats.forwarded += 1
        if late:
            stats.reordered += 1


# -- command line --


def _address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``PORT`` (host 127.0.0.1)."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host = "127.0.0.1"
    try:
        port = int(port_text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}") from None
    return host or "127.0.0.1", port


def _percent(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a percentage, got {text!r}") from None
    if not 0.0 <= value <= 100.0:
        raise argparse.ArgumentTypeError(f"a percentage must be 0..100, got {text}")
    return value / 100.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="impair.py",
        description=(
            "Relay UDP datagrams from a loopback port to a loopback target, delaying, "
            "reordering, dropping and duplicating them reproducibly from a seed. Prints the "
            "address to send to, runs until Ctrl-C, then prints what it did."
        ),
    )
    parser.add_argument(
        "--to",
        type=_address,
        required=True,
        metavar="HOST:PORT",
        help="where to forward datagrams (the listener); must be in 127.0.0.0/8",
    )
    parser.add_argument(
        "--listen",
        type=_address,
        default=("127.0.0.1", 0),
        metavar="HOST:PORT",
        help="where to receive datagrams (point the sender here); default 127.0.0.1 and "
        "any free port (printed at start)",
    )
    parser.add_argument(
        "--delay-ms",
        type=float,
        default=0.0,
        metavar="D",
        help="fixed delay added to every datagram, in milliseconds (default 0)",
    )
    parser.add_argument(
        "--jitter-ms",
        type=float,
        default=0.0,
        metavar="J",
        help="random extra delay, uniform in [-J, +J] ms per datagram (floored at a total of "
        "0); jitter larger than the packet spacing reorders datagrams (default 0)",
    )
    parser.add_argument(
        "--loss",
        type=_percent,
        default=0.0,
        metavar="PCT",
        help="independent loss: each datagram is dropped with this probability, in percent",
    )
    parser.add_argument(
        "--burst-loss",
        type=_percent,
        default=None,
        metavar="PCT",
        help="bursty loss (Gilbert-Elliott): the long-run share of datagrams lost in "
        "bursts, in percent; needs --burst-length; applied as well as --loss",
    )
    parser.add_argument(
        "--burst-length",
        type=float,
        default=None,
        metavar="N",
        help="mean length of a loss burst, in datagrams (>= 1); needs --burst-loss",
    )
    parser.add_argument(
        "--duplicate",
        type=_percent,
        default=0.0,
        metavar="PCT",
        help="probability, in percent, that a forwarded datagram is sent twice (the copy "
        "gets its own delay)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="S",
        help="random seed: the same seed makes the same decisions for the same datagram "
        "sequence (default 0)",
    )
    return parser


def _describe(impairment: Impairment) -> str:
    parts = [f"delay {impairment.delay_ms:g} ms", f"jitter {impairment.jitter_ms:g} ms"]
    parts.append(f"loss {impairment.loss * 100:g}%")
    if impairment.burst is not None:
        burst = impairment.burst
        parts.append(
            f"burst loss {burst.loss_rate * 100:.3g}% in bursts of {1 / burst.r:.3g}"
            if burst.r > 0
            else f"burst loss {burst.loss_rate * 100:.3g}%"
        )
    parts.append(f"duplicate {impairment.duplicate * 100:g}%")
    parts.append(f"seed {impairment.seed}")
    return ", ".join(parts)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if (args.burst_loss is None) != (args.burst_length is None):
        parser.error("--burst-loss and --burst-length go together")
    try:
        burst = (
            None
            if args.burst_loss is None
            else GilbertElliott.from_rate(args.burst_loss, args.burst_length)
        )
        impairment = Impairment(
            delay_ms=args.delay_ms,
            jitter_ms=args.jitter_ms,
            loss=args.loss,
            burst=burst,
            duplicate=args.duplicate,
            seed=args.seed,
        )
        relay = ImpairmentRelay(args.to, impairment, listen=args.listen)
    except (ValueError, OSError) as error:
        parser.error(str(error))
    if threading.current_thread() is threading.main_thread():
        # Ctrl-C and SIGTERM both stop the relay (even if started with SIGINT ignored).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, _raise_interrupt)
    host, port = relay.address
    print(
        f"relaying {host}:{port} -> {relay.target[0]}:{relay.target[1]} "
        f"({_describe(impairment)}); Ctrl-C to stop",
        flush=True,
    )
    try:
        relay.start()
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        relay.stop()
    stats = relay.stats
    print(
        f"received {stats.received} forwarded {stats.forwarded} dropped {stats.dropped} "
        f"duplicated {stats.duplicated} reordered {stats.reordered}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
