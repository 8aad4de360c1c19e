"""Who may open a stream: the allow-list, and whether a new source's datagrams look like one.

A stray datagram, a port scan or a burst of random bytes must not open a session (before, 0.09
s of random datagrams became 120 s of full-scale noise, and one stray 2-byte datagram held
the listener for its whole timeout). A stream is admitted when one source has sent:

- **RTP**: two packets of one SSRC and payload type with nearby sequence numbers (the
  :class:`~appliance.listener.depacketizer.StreamDetector`'s test: 32 equal bits where the SSRC
  is cannot happen by chance);
- **raw PCM** (the seed's wire): :data:`ADMIT_RAW_DATAGRAMS` valid datagrams of one length in a
  row (the seed, ffmpeg and GStreamer all send equal datagrams; random bytes do not), or
  fewer followed by the end-of-stream marker (a stream that short says it is one).

Nothing of an admitted stream is lost to the decision: the datagrams held for it are played.
Each source is judged on its own, so a stranger's junk never delays a real stream from
someone else; at most :data:`MAX_CANDIDATES` sources are held at once (the least recent one
goes first), and a source that sends nothing for :data:`CANDIDATE_WINDOW_S` is forgotten.

:class:`AllowList`: which addresses may stream at all (``[listen] allow``), networks or single
addresses, IPv4 and IPv6; empty means everyone.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from appliance.listener.depacketizer import Detection, StreamDetector
from appliance.listener.session import Address
from appliance.wire import Wire
from appliance.wire.raw import InvalidDatagram, RawDatagram

ADMIT_RAW_DATAGRAMS = 3
"""Equal raw datagrams in a row that make a stream: 60 ms of the seed's, and the first ones
are played, not lost."""
CANDIDATE_WINDOW_S = 1.0
"""A source whose datagrams stop for this long before its stream was admitted is forgotten."""
MAX_CANDIDATES = 16
"""Sources judged at once; more (a spoofed flood) push out the least recent."""
MAX_HELD_BYTES = 64 * 1024
"""What one source may have held for its decision (a few datagrams; bounded regardless)."""

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(slots=True)
class Admitted:
    """A stream's first datagrams, decided: play ``detection.datagrams``, then maybe end."""

    detection: Detection
    ends: bool
    """The end-of-stream marker came with them."""


@dataclass(slots=True)
class Refused:
    """Datagrams of a source that did not look like a stream: counted, dropped."""

    datagrams: int
    reason: str


Verdict = Admitted | Refused | None
"""None: still being judged (the datagram is held)."""


@dataclass(slots=True)
class _Candidate:
    last_at: float
    detector: StreamDetector = field(default_factory=StreamDetector)
    raw: list[bytes] = field(default_factory=list)
    """Raw datagrams of one length held for the decision, in arrival order."""
    is_raw: bool = False
    """The detector said raw: the next datagrams go straight to :attr:`raw`."""
    held_rtp: int = 0
    """Datagrams the detector holds (an RTP-looking first one, and copies of it)."""


class Admission:
    """Judges new sources' datagrams until one of them is a stream (see the module's text)."""

    def __init__(
        self,
        raw_datagrams: int = ADMIT_RAW_DATAGRAMS,
        window_s: float = CANDIDATE_WINDOW_S,
        max_candidates: int = MAX_CANDIDATES,
    ) -> None:
        self._raw_datagrams = raw_datagrams
        self._window_s = window_s
        self._max_candidates = max_candidates
        self._candidates: OrderedDict[Address, _Candidate] = OrderedDict()

    @property
    def pending(self) -> bool:
        """Some source's datagrams are held for a decision."""
        return bool(self._candidates)

    def offer(self, source: Address, data: bytes, now: float) -> Verdict:
        """Judge one more datagram of ``source``'s."""
        candidate = self._candidates.pop(source, None)
        if candidate is None:
            if not data:
                return Refused(1, "an end marker with no stream")
            candidate = _Candidate(now)
        candidate.last_at = now
        verdict = self._judge(candidate, data)
        if not isinstance(verdict, Admitted) and _held(candidate):
            self._candidates[source] = candidate  # the most recent last
            while len(self._candidates) > self._max_candidates:
                _, oldest = self._candidates.popitem(last=False)
                del oldest
        return verdict

    def forget(self, source: Address) -> None:
        self._candidates.pop(source, None)

    def clear(self) -> int:
        """Forget every source; returns how many datagrams were held."""
        held = sum(_held(c) for c in self._candidates.values())
        self._candidates.clear()
        return held

    def expire(self, now: float) -> Refused | None:
        """Forget sources silent for ``window_s``: what they had sent was not a stream."""
        stale = [s for s, c in self._candidates.items() if now - c.last_at >= self._window_s]
        if not stale:
            return None
        held = sum(_held(self._candidates.pop(s)) for s in stale)
        return Refused(held, "nothing like a stream followed")

    def _judge(self, candidate: _Candidate, data: bytes) -> Verdict:
        if not candidate.is_raw:
            detection = candidate.detector.offer(data)
            if detection is None:
                candidate.held_rtp += 1
                return None
            candidate.held_rtp = 0
            if detection.wire is Wire.RTP:
                return Admitted(detection, ends=False)
            candidate.is_raw = True
            datagrams = detection.datagrams
        else:
            datagrams = (data,)
        refused = 0
        for datagram in datagrams:
            if not datagram:  # the end marker: what came before was a (short) stream
                if candidate.raw:
                    return Admitted(Detection(Wire.RAW, (*candidate.raw, b"")), ends=True)
                refused += 1
                continue
            try:
                RawDatagram.parse(datagram)
            except InvalidDatagram:
                refused += len(candidate.raw) + 1
                candidate.raw.clear()
                continue
            run = candidate.raw
            if run and (
                len(datagram) != len(run[0]) or sum(map(len, run)) > MAX_HELD_BYTES
            ):
                refused += len(run)
                run.clear()
            run.append(datagram)
            if len(run) >= self._raw_datagrams:
                return Admitted(Detection(Wire.RAW, tuple(run)), ends=False)
        if refused:
            return Refused(refused, "datagrams of differing lengths or not audio")
        return None


def _held(candidate: _Candidate) -> int:
    return len(candidate.raw) + candidate.held_rtp


class AllowList:
    """The addresses that may stream (``[listen] allow``): empty lets everyone in.

    Example::

        allow = AllowList.parse(["192.168.1.0/24", "10.0.0.5", "fd00::/8"])
        allow.permits("192.168.1.20")   # True
    """

    def __init__(self, networks: Iterable[Network] = ()) -> None:
        self.networks = tuple(networks)
        self._decided: OrderedDict[str, bool] = OrderedDict()
        """Recent answers, so that a flood costs one dictionary lookup per datagram."""

    @classmethod
    def parse(cls, texts: Iterable[str]) -> AllowList:
        """From ``"ADDRESS"`` or ``"NETWORK/PREFIX"`` texts; ValueError names a bad one."""
        networks = []
        for text in texts:
            try:
                networks.append(ipaddress.ip_network(text.strip(), strict=False))
            except ValueError:
                raise ValueError(
                    f"{text!r} is not an IP address or network (e.g. 192.168.1.0/24)"
                ) from None
        return cls(networks)

    @property
    def open(self) -> bool:
        return not self.networks

    def permits(self, host: str) -> bool:
        if not self.networks:
            return True
        answer = self._decided.get(host)
        if answer is None:
            answer = self._check(host)
            self._decided[host] = answer
            if len(self._decided) > 256:
                self._decided.popitem(last=False)
        return answer

    def _check(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # a dual-stack socket's view of an IPv4 sender
        return any(address in network for network in self.networks)

    def __str__(self) -> str:
        return ", ".join(str(n) for n in self.networks) or "everyone"
