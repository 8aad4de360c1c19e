"""The appliance around the listener on a Raspberry Pi: the app that runs it all
(:mod:`.app`), buttons (:mod:`.controls`), LEDs (:mod:`.leds`), volume (:mod:`.volume`),
systemd (:mod:`.systemd`) and the wiring diagram (:mod:`.wiring`)."""
