"""Clock drift on real parts: a sender whose clock runs 1000 ppm fast or slow, for over a minute.

The listener plays into the test rig's PulseAudio null sink, which runs on this machine's
clock; the sender's schedule runs ``(1 + ppm / 1e6)`` times as fast. Without drift control a
+1000 ppm sender grows the buffer by 60 ms a minute and a -1000 ppm one drains it as fast, into
an underrun (tests/listener/test_drift.py shows both, in simulated time). With it: no underrun,
and the buffer's level within 20 ms of its reference throughout.

The latency is fixed at the default start target (90 ms): the test is about the clocks. With a
60 ms start and the adaptive target (which may come down toward 40 ms on clean loopback), one
CI run of the fast sender had an underrun: a stall of the loaded machine, not drift.

The signal is a steady tone (no pauses), so the drift is corrected by resampling; pauses are
the cheaper path, tested in simulated time.
"""

from __future__ import annotations

import math
import socket
import threading
import time
from array import array

import pytest
from audio_rig import AudioSink
from listener_fixtures import ListenerFactory

from appliance.listener.defaults import DEFAULT_BUFFER_MS
from appliance.listener.listener import Listener
from appliance.wire.raw import RAW_FORMAT
from appliance.wire.rtcp import bye
from appliance.wire.rtp import RtpPacket

SECONDS = 65.0
RATE = 8000
PACKET_FRAMES = 160
SETTLE_S = 4.0
"""The level is judged once the control has settled its reference (2 s of playing) and the
first seconds' transient is over."""
MAX_ERROR_MS = 20.0


def tone(seconds: float, frequency: float = 440.0) -> bytes:
    count = round(seconds * RATE)
    return array(
        "h", (round(9000 * math.sin(2 * math.pi * frequency * i / RATE)) for i in range(count))
    ).tobytes()


def send_skewed(pcm: bytes, port: int, ppm: float, *, rtp: bool) -> int:
    """Send ``pcm`` in 20 ms packets on a clock running ``ppm`` fast (negative: slow)."""
    interval = PACKET_FRAMES / RATE / (1 + ppm * 1e-6)
    packet_bytes = PACKET_FRAMES * 2
    ssrc = 0xD21F7
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        start = time.monotonic()
        for index, offset in enumerate(range(0, len(pcm), packet_bytes)):
            chunk = pcm[offset : offset + packet_bytes]
            if rtp:
                chunk = bytes(
                    RtpPacket(
                        payload_type=97,
                        sequence=index % 2**16,
                        timestamp=(index * PACKET_FRAMES) % 2**32,
                        ssrc=ssrc,
                        payload=_to_big_endian(chunk),
                        marker=index == 0,
                    )
                )
            sock.sendto(chunk, ("127.0.0.1", port))
            sent += 1
            time.sleep(max(0.0, start + (index + 1) * interval - time.monotonic()))
        sock.sendto(bye(ssrc) if rtp else b"", ("127.0.0.1", port))
    return sent


def _to_big_endian(pcm: bytes) -> bytes:
    samples = array("h", pcm)
    samples.byteswap()
    return samples.tobytes()


class LevelWatch:
    """Samples the drift control's level error and the buffer's underruns every 50 ms."""

    def __init__(self, listener: Listener) -> None:
        self._listener = listener
        self.errors: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> LevelWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        drift = self._listener._playout.drift
        started: float | None = None
        while not self._stop.wait(0.05):
            if drift.level_ms is None:
                continue
            now = time.monotonic()
            started = started or now
            self.errors.append((now - started, drift.error_ms))


@pytest.mark.parametrize(
    ("ppm", "rtp"),
    [(+1000.0, False), (-1000.0, True)],
    ids=["raw-1000ppm-fast", "rtp-1000ppm-slow"],
)
def test_drift_is_corrected_without_underruns(
    audio_sink: AudioSink, make_listener: ListenerFactory, ppm: float, rtp: bool
) -> None:
    listener = make_listener(buffer_ms=DEFAULT_BUFFER_MS, fixed_latency=True)
    listener.start()
    pcm = tone(SECONDS)
    with LevelWatch(listener) as watch:
        send_skewed(pcm, listener.port, ppm, rtp=rtp)
        assert listener.wait_session_played(1, timeout=15)
    session = listener.sessions[0]
    judged = [error for at, error in watch.errors if at >= SETTLE_S]
    assert len(judged) > (SECONDS - SETTLE_S - 5) * 10  # sampled throughout
    assert (session.underruns, session.concealed_ms, session.late) == (0, 0, 0)
    assert max(abs(e) for e in judged) <= MAX_ERROR_MS, session.end_line()
    assert session.drift_by == "resampling"
    assert session.drift_ppm is not None
    assert abs(session.drift_ppm - ppm) < 300, session.end_line()
    assert session.audio_bytes == len(pcm)  # every packet arrived and was played
    assert session.format.rate == RAW_FORMAT.rate
