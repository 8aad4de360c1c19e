"""A network audio listener appliance for the Raspberry Pi.

The sender pipeline is ``source -> framing -> pacing -> sender`` and the listener pipeline is
``receiver -> depacketizer -> jitterbuffer -> player``; ``state`` holds the one state machine
that the logs, the mDNS record and the LEDs observe.
"""

__version__ = "0.1.0"
