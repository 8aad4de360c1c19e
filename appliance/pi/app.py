"""What ``appliance listen`` runs on the Pi: the listener and everything around it.

The listener plays; the rest observes its state machine or steers it, and none of it touches
the audio path:

* the **mDNS record** (:class:`~appliance.discovery.Advertiser`) appears while listening and
  carries in its TXT record the state, the latency target (``lat``: the starting one, then
  each ended session's), the last session's network figures (``net``) and, playing in step
  with a group of speakers, the offset to the sender, the distance from the schedule and the
  group delay (``syn``), which ``appliance status`` shows;
* the **buttons and LEDs** (:mod:`appliance.pi.controls`) start and stop listening and show the
  state;
* the **log** says what happened, and **systemd** hears READY=1, STATUS= and the watchdog.

Example (what the ``listen`` command does)::

    app = ListenerApp(load_config(None), ListenerConfig())
    stop = threading.Event()
    app.run(stop)        # until stop is set (SIGTERM, SIGINT)
    app.close()
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from appliance.config import ApplianceConfig, should_autostart
from appliance.discovery import Advertiser
from appliance.discovery.records import AUTH_SRTP, NetworkFigures
from appliance.discovery.syncrecord import SyncRecord
from appliance.errors import AudioDeviceError
from appliance.listener.listener import Listener, ListenerConfig
from appliance.listener.session import Session
from appliance.listener.state import ListenerState, Transition
from appliance.pi import systemd
from appliance.pi.controls import Controls, open_controls, systemctl_poweroff
from appliance.pi.volume import Volume

log = logging.getLogger(__name__)

MDNS_READY_TIMEOUT_S = 10.0
RETRY_FIRST_S = 1.0
RETRY_MAX_S = 10.0
"""A sound card that is not there yet (USB DACs and HATs can appear after boot) is tried
again after 1, 2, 4, 8, 10, 10... seconds."""
HEALTHY_SILENCE_S = 5.0
"""The watchdog is fed only while the audio callback has run within this many seconds."""
POLL_S = 0.2
SYNC_REFRESH_S = 10.0
SYNC_MOVED_MS = 0.5
"""TXT ``syn`` is refreshed at most this often, and only when a figure moved this much."""

QUIET_STATES = frozenset({ListenerState.BUFFERING, ListenerState.DRAINING})
"""Transitions into these are logged at debug level: every stream passes through them."""


class ListenerApp:
    """The listener with its advertiser, controls, volume, log and systemd observers.

    ``retry_audio``: keep retrying when the audio output cannot be opened, instead of exiting
    (None: only under systemd, where the appliance has nobody to restart it by hand).
    """

    def __init__(
        self,
        config: ApplianceConfig,
        listener_config: ListenerConfig,
        *,
        mdns: bool = True,
        retry_audio: bool | None = None,
        pin_factory: Any = None,
        shutdown: Callable[[], None] = systemctl_poweroff,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self.listener = Listener(listener_config)
        machine = self.listener.state_machine
        machine.subscribe(log_transition)
        machine.subscribe(report_to_systemd)
        self.volume = Volume.from_config(config.volume)
        self.listener.set_gain(self.volume.factor)
        self.advertiser: Advertiser | None = None
        self.controls: Controls | None = None
        if retry_audio is None:
            retry_audio = systemd.under_systemd(environ)
        self._retry_audio = retry_audio
        self._sync_published: tuple[SyncRecord | None, float] = (None, 0.0)
        """The last TXT ``syn`` asked for, and when."""
        self._sync_lock = threading.Lock()
        """Session ends (the listener's thread) and refreshes (the main loop) both publish:
        a refresh must not put a live figure back over the ended session's."""
        try:
            if mdns:
                self.advertiser = Advertiser(
                    config.listen.name,
                    lambda: self.listener.port,
                    list(config.listen.interfaces) or None,
                    machine,
                    payload_map=self.listener.payload_map,
                    auth=AUTH_SRTP if listener_config.key_file is not None else None,
                )
                # Before attach(), so that the first registration already carries ``lat``.
                self.advertiser.set_playout(round(self.listener.buffer.target_ms), None)
                self.listener.subscribe_sessions(self._publish_session)
                self.advertiser.attach()
            self.controls = open_controls(
                config.gpio,
                self.listener,
                volume=self.volume,
                shutdown=shutdown,
                pin_factory=pin_factory,
                environ=environ,
            )
        except BaseException:
            self.close()
            raise

    def _publish_session(self, session: Session) -> None:
        """An ended session's figures to the mDNS record (on the receiving thread: it only
        records what is wanted; the advertiser's worker publishes)."""
        advertiser = self.advertiser
        if advertiser is not None:
            advertiser.set_playout(round(session.target_ms), NetworkFigures.from_session(session))
            record = SyncRecord.from_figures(session.sync)
            with self._sync_lock:
                advertiser.set_sync(record)
                self._sync_published = (record, time.monotonic())

    def _refresh_sync(self) -> None:
        """While a session plays in step with a group, its figures to the mDNS record: as
        soon as there are some, then at most every :data:`SYNC_REFRESH_S` and only when one
        moved (:data:`SYNC_MOVED_MS`): mDNS is multicast, everyone on the LAN hears it."""
        advertiser, client = self.advertiser, self.listener.timesync
        if advertiser is None or client is None:
            return
        with self._sync_lock:
            if self.listener.timesync is not client:
                return  # the session ended meanwhile: its own figures are published
            record = SyncRecord.from_figures(client.figures())
            if record is None:
                return
            now = time.monotonic()
            last, at = self._sync_published
            if last is not None and (now - at < SYNC_REFRESH_S or not _moved(last, record)):
                return
            advertiser.set_sync(record)
            self._sync_published = (record, now)

    @property
    def autostart(self) -> bool:
        has_button = self.controls is not None and self.controls.has_listen_button
        return should_autostart(self.config, has_button)

    def run(self, stop: threading.Event) -> None:
        """Listen (at once, or when the button says so) until ``stop`` is set.

        With ``once`` in the listener's configuration, returns after one stream was played.
        """
        if self.autostart:
            self._start_listening(stop)
        advertising = self.advertiser is not None and self.listener.is_listening
        if advertising and not self._advertised(MDNS_READY_TIMEOUT_S):
            log.warning("mDNS registration is taking long; carrying on")
        systemd.notify_ready(status=str(self.listener.state_machine.state))
        with systemd.Watchdog(self.healthy):
            self._wait(stop)

    def _advertised(self, timeout: float) -> bool:
        return self.advertiser is not None and self.advertiser.wait_registered(timeout=timeout)

    def _start_listening(self, stop: threading.Event) -> None:
        delay = RETRY_FIRST_S
        while not stop.is_set():
            try:
                self.listener.start()
                return
            except AudioDeviceError as error:
                if not self._retry_audio:
                    raise
                log.warning("%s; trying again in %g s", error, delay)
                stop.wait(delay)
                delay = min(delay * 2, RETRY_MAX_S)

    def _wait(self, stop: threading.Event) -> None:
        once = self.listener.config.once
        while not stop.is_set():
            self._refresh_sync()
            if once and self.listener.wait_session_played(timeout=POLL_S):
                return
            if not once:
                stop.wait(POLL_S * 5)

    def healthy(self) -> bool:
        """For the systemd watchdog: the audio callback and the receiver are alive (or, when
        not listening, the main loop that answers the button is)."""
        if not self.listener.is_listening:
            return True
        return self.listener.healthy(HEALTHY_SILENCE_S)

    def close(self) -> None:
        """Stop in the order users see: withdraw the record, release the pins, stop audio."""
        systemd.notify_stopping()
        if self.advertiser is not None:
            self.advertiser.close()
            self.advertiser = None
        if self.controls is not None:
            self.controls.close()
            self.controls = None
        self.listener.close()


def _moved(before: SyncRecord, after: SyncRecord) -> bool:
    """A figure moved enough to be worth a multicast update."""
    schedule_moved = (before.schedule_ms is None) != (after.schedule_ms is None) or abs(
        (before.schedule_ms or 0.0) - (after.schedule_ms or 0.0)
    ) > SYNC_MOVED_MS
    return (
        schedule_moved
        or abs(before.offset_ms - after.offset_ms) > SYNC_MOVED_MS
        or before.delay_ms != after.delay_ms
    )


def log_transition(transition: Transition) -> None:
    state = transition.current
    if state is ListenerState.ERROR:
        # An error raised to the caller is reported there (the command line's one line, the
        # listen button's log line): logged here too, it was printed twice.
        level = logging.DEBUG if transition.raised else logging.ERROR
        log.log(level, "error: %s", transition.reason)
    elif state is ListenerState.UNDERRUN:
        log.warning("underrun: the stream stalled; playing silence while it refills")
    else:
        level = logging.DEBUG if state in QUIET_STATES else logging.INFO
        log.log(level, "state: %s -> %s", transition.previous, state)


def report_to_systemd(transition: Transition) -> None:
    text = str(transition.current)
    if transition.current is ListenerState.ERROR:
        text = f"error: {transition.reason}"
    systemd.notify_status(text)

