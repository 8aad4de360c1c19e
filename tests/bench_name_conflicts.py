"""Benchmark: two listeners started at the same moment with one name, many times.

    PYTHONPATH=. python tests/bench_name_conflicts.py [PAIRS] [PAIRS_PER_ROUND]

Each pair is two Advertisers on 127.0.0.1 playing two hosts (own Zeroconf, own SRV target),
asked to register within microseconds of each other; pairs of one round run side by side under
different names. Prints how many pairs ended with two names (seen by a browser, each name with
its own host only), how many were told apart by python-zeroconf's probe and how many only by
the re-check after registering, and the time from start to settled. Not collected by pytest.
"""

from __future__ import annotations

import logging
import os
import statistics
import sys
import time

from zeroconf import ServiceBrowser, Zeroconf, current_time_millis
from zeroconf.const import _CLASS_IN, _TYPE_SRV

from appliance.discovery import Advertiser, make_zeroconf
from appliance.discovery.records import SERVICE_TYPE, service_name

LO = ["127.0.0.1"]
PORT = 5005
SETTLE_TIMEOUT_S = 30.0
SERVERS = [f"hosta-{os.getpid():07d}.local.", f"hostb-{os.getpid():07d}.local."]


class RenameCounter(logging.Handler):
    """Counts the advertiser's "now advertising as" lines: renames after registration."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "now advertising as" in record.getMessage():
            self.count += 1


def owners(zc: Zeroconf, name: str) -> set[str]:
    now = current_time_millis()
    records = zc.cache.get_all_by_details(service_name(name).lower(), _TYPE_SRV, _CLASS_IN)
    return {r.server.lower() for r in records if r.ttl and not r.is_expired(now)}  # type: ignore[attr-defined]


def settled(zc: Zeroconf, pair: list[Advertiser]) -> bool:
    names = [a.registered_name for a in pair]
    if None in names or len({(n or "").lower() for n in names}) != 2:
        return False
    return all(owners(zc, n or "") == {s.lower()} for n, s in zip(names, SERVERS, strict=True))


def main(pairs: int, per_round: int) -> None:
    counter = RenameCounter()
    logging.getLogger("appliance.discovery.advertise").addHandler(counter)
    logging.getLogger("appliance.discovery.advertise").setLevel(logging.INFO)
    browser_zc = make_zeroconf(LO)
    browser = ServiceBrowser(browser_zc, [SERVICE_TYPE], handlers=[lambda **kw: None])
    times: list[float] = []
    failed = 0
    try:
        for first in range(0, pairs, per_round):
            group = [
                [Advertiser(f"bench{os.getpid()}-{n}", PORT, LO, server=s) for s in SERVERS]
                for n in range(first, min(pairs, first + per_round))
            ]
            started = time.monotonic()
            for pair in group:
                for advertiser in pair:
                    advertiser.register()
            for pair in group:
                while not settled(browser_zc, pair):
                    if time.monotonic() - started > SETTLE_TIMEOUT_S:
                        failed += 1
                        break
                    time.sleep(0.05)
                else:
                    times.append(time.monotonic() - started)
            for pair in group:
                for advertiser in pair:
                    advertiser.close()
    finally:
        browser.cancel()
        browser_zc.close()
    print(f"pairs started together: {pairs} ({per_round} side by side)")
    print(f"ended with two names:   {len(times)}, failed: {failed}")
    print(f"  told apart by the probe:                {len(times) - counter.count}")
    print(f"  told apart only by the re-check after:  {counter.count}")
    if times:
        print(
            f"start to settled: median {statistics.median(times):.2f} s, "
            f"max {max(times):.2f} s"
        )


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 60,
        int(sys.argv[2]) if len(sys.argv) > 2 else 6,
    )
