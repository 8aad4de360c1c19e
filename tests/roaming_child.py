"""A listener-shaped process advertising on ALL interfaces of its (test) network namespace:
run by tests/discovery/test_address_change.py inside a namespace it created, never on the
machine's own network.

    python tests/roaming_child.py NAME PORT SERVER POLL_INTERVAL_S

Logs to stderr, prints ``registered <name>`` once registered, and on SIGTERM unregisters,
prints ``closed`` and exits 0.
"""

from __future__ import annotations

import logging
import sys
import threading

from appliance.discovery import Advertiser, install_shutdown_signals
from appliance.listener.state import ListenerState, StateMachine

REGISTER_TIMEOUT_S = 10.0


def main(argv: list[str]) -> int:
    name, port, server, poll_s = argv[0], int(argv[1]), argv[2], float(argv[3])
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    stop = threading.Event()
    restore = install_shutdown_signals(lambda signum: stop.set())
    machine = StateMachine()
    machine.start()
    advertiser = Advertiser(
        name, port, None, machine, server=server, address_poll_interval_s=poll_s
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
