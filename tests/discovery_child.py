"""A listener-shaped process that only advertises: run by the discovery tests.

    python tests/discovery_child.py NAME PORT INTERFACE [SERVER [POLL_INTERVAL_S]]

Advertises NAME on INTERFACE the way ``appliance listen`` does (StateMachine -> WAITING,
Advertiser attached, :func:`install_shutdown_signals` setting an Event), prints
``registered <name>`` once registered, and on SIGTERM/SIGINT unregisters, prints ``closed``
and exits 0. INTERFACE ``all``: every interface of its network namespace (run so only in a
namespace a test created), its addresses polled every POLL_INTERVAL_S and followed.
"""

from __future__ import annotations

import logging
import sys
import threading

from appliance.discovery import Advertiser, install_shutdown_signals
from appliance.discovery.advertise import ADDRESS_POLL_INTERVAL_S
from appliance.listener.state import ListenerState, StateMachine

REGISTER_TIMEOUT_S = 10.0


def main(argv: list[str]) -> int:
    name, port, interface = argv[0], int(argv[1]), argv[2]
    server = argv[3] if len(argv) > 3 else None
    interfaces = None if interface == "all" else [interface]
    poll_s = ADDRESS_POLL_INTERVAL_S
    if len(argv) > 4:  # the address-change test reads what the advertiser logs
        poll_s = float(argv[4])
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    stop = threading.Event()
    restore = install_shutdown_signals(lambda signum: stop.set())
    machine = StateMachine()
    machine.start()
    advertiser = Advertiser(
        name, port, interfaces, machine, server=server, address_poll_interval_s=poll_s
    )
    try:
        advertiser.attach()
        machine.set(ListenerState.WAITING, "child listening")
        if not advertiser.wait_registered(REGISTER_TIMEOUT_S):
            print(f"not registered: {advertiser.last_error}", flush=True)
            return 1
        print(f"registered {advertiser.registered_name}", flush=True)
        stop.wait()
    finally:
        restore()
        advertiser.close()
        machine.close()
    print("closed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
