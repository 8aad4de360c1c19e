"""Noticing that another host claims our instance name after we registered it.

python-zeroconf probes before registering, but two hosts that probe at the same moment both
win (it does not break simultaneous-probe ties, RFC 6762 section 8.2), and a host that was
offline during our probe may start announcing our name later. Both cases show up the same way
afterwards: an SRV record for our instance name whose data (port, target host) differs from
ours. :class:`ConflictWatcher` listens for exactly that; :func:`loses_to` is the deterministic
rule that makes exactly one of the two hosts rename: as in section 8.2, the records' data are
compared as bytes and the lexicographically later one keeps the name. Identical data is not a
conflict (RFC 6762 section 9: two hosts may answer with the same record).
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass

from zeroconf import RecordUpdate, RecordUpdateListener, ServiceInfo, Zeroconf, current_time_millis
from zeroconf._dns import DNSQuestion, DNSService
from zeroconf._protocol.outgoing import DNSOutgoing
from zeroconf.const import (
    _CLASS_IN,
    _FLAGS_AA,
    _FLAGS_QR_QUERY,
    _FLAGS_QR_RESPONSE,
    _TYPE_SRV,
    _TYPE_TXT,
)


@dataclass(frozen=True, slots=True)
class ServiceClaim:
    """The data of one host's SRV record for a name: what the tie-break compares."""

    server: str
    port: int
    priority: int = 0
    weight: int = 0

    def rdata(self) -> bytes:
        """The SRV RDATA as on the wire (RFC 2782), the target in lower case, uncompressed:
        the byte string RFC 6762 section 8.2 compares."""
        labels = [label for label in self.server.lower().rstrip(".").split(".") if label]
        target = b"".join(bytes([len(e)]) + e for e in (x.encode() for x in labels)) + b"\0"
        return struct.pack("!HHH", self.priority, self.weight, self.port) + target

    def describe(self) -> str:
        return f"{self.server.rstrip('.')}:{self.port}"


def loses_to(ours: ServiceClaim, theirs: ServiceClaim) -> bool:
    """True if we must give up the name to ``theirs``: their data is lexicographically later.
    Both hosts compute the same comparison, so exactly one of them renames."""
    return ours.rdata() < theirs.rdata()


def srv_goodbye(info: ServiceInfo) -> DNSOutgoing:
    """Withdraws the loser's SRV record only (TTL 0, RFC 6762 section 10.1). Caches key records
    by their data, so this removes our claim and leaves the winner's; a goodbye for the PTR
    record (the same for both hosts) would make browsers drop the winner's name too."""
    out = DNSOutgoing(_FLAGS_QR_RESPONSE | _FLAGS_AA)
    out.add_answer_at_time(info.dns_service(override_ttl=0), 0)
    return out


def reassert_query(service_name: str) -> DNSOutgoing:
    """Asks (multicast) for the name's SRV and TXT: the winner answers with cache-flush records,
    which makes browsers drop any record of ours older than 1 s (RFC 6762 section 10.2), our
    TXT included. Needed when the winner never heard of the conflict (we heard it first)."""
    out = DNSOutgoing(_FLAGS_QR_QUERY)
    out.add_question(DNSQuestion(service_name, _TYPE_SRV, _CLASS_IN))
    out.add_question(DNSQuestion(service_name, _TYPE_TXT, _CLASS_IN))
    return out


class ConflictWatcher(RecordUpdateListener):
    """Calls ``on_conflict(theirs)`` (on zeroconf's event loop thread: it must not block) for
    every SRV record of the watched name whose data differs from ours.

    :meth:`watch` sets the name and our claim (None: watch nothing), from any thread.
    """

    def __init__(self, on_conflict: Callable[[ServiceClaim], None]) -> None:
        super().__init__()
        self._on_conflict = on_conflict
        self._lock = threading.Lock()
        self._name: str | None = None
        self._ours: ServiceClaim | None = None

    def watch(self, service_name: str | None, ours: ServiceClaim | None) -> None:
        with self._lock:
            self._name = None if service_name is None else service_name.lower()
            self._ours = ours

    def check_cache(self, zc: Zeroconf) -> None:
        """Look at what is already cached (a claim heard before :meth:`watch` was set)."""
        with self._lock:
            name = self._name
        if name is None:
            return
        now = current_time_millis()
        for record in zc.cache.get_all_by_details(name, _TYPE_SRV, _CLASS_IN):
            if not record.is_expired(now):
                self._consider(record)

    def async_update_records(self, zc: Zeroconf, now: float, records: list[RecordUpdate]) -> None:
        for update in records:
            self._consider(update.new)

    def _consider(self, record: object) -> None:
        if not isinstance(record, DNSService) or record.ttl == 0:
            return  # not an SRV, or a goodbye
        with self._lock:
            if self._ours is None or record.name.lower() != self._name:
                return
            ours = self._ours
        theirs = ServiceClaim(record.server, record.port, record.priority, record.weight)
        if theirs.rdata() != ours.rdata():
            self._on_conflict(theirs)
