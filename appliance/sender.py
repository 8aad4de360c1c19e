"""The sender's socket stage: paced datagrams out of one UDP socket, and a report at the end.

Example::

    with open_source("speech.wav") as source:
        report = Sender(("127.0.0.1", 5005)).send(frame_pcm(source.chunks()))
    print(report.summary())
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from appliance.audio_format import bytes_to_seconds
from appliance.errors import NetworkError
from appliance.framing import END_OF_STREAM, RawDatagram
from appliance.pacing import Pacer, Reanchor

log = logging.getLogger(__name__)

Address = tuple[str, int]


@dataclass(slots=True)
class SendReport:
    destination: Address
    packets: int = 0
    audio_bytes: int = 0
    wall_s: float = 0.0
    reanchors: list[Reanchor] = field(default_factory=list)
    interrupted: bool = False

    @property
    def audio_s(self) -> float:
        return bytes_to_seconds(self.audio_bytes)

    def summary(self) -> str:
        host, port = self.destination
        verb = "stopped after sending" if self.interrupted else "sent"
        text = (
            f"{verb} {self.audio_s:.2f} s of audio to {host}:{port} in {self.packets} packets "
            f"over {self.wall_s:.2f} s"
        )
        if self.reanchors:
            text += f"; {len(self.reanchors)} stall(s) skipped"
        return text


ProgressCallback = Callable[[SendReport], None]


class Sender:
    """Sends datagrams to one destination on a real-time schedule (see :mod:`appliance.pacing`)."""

    def __init__(
        self,
        destination: Address,
        *,
        pacer: Pacer | None = None,
        sock: socket.socket | None = None,
    ) -> None:
        self.destination = destination
        self._pacer = pacer or Pacer()
        family = socket.AF_INET6 if ":" in destination[0] else socket.AF_INET
        self._sock = sock or socket.socket(family, socket.SOCK_DGRAM)

    def send(
        self,
        datagrams: Iterable[RawDatagram],
        on_progress: ProgressCallback | None = None,
        *,
        end_of_stream: bool = True,
    ) -> SendReport:
        """Send every datagram on schedule, then (unless told not to) the end-of-stream marker.

        Ctrl-C (KeyboardInterrupt) ends the stream cleanly: the report says it was interrupted.
        """
        report = SendReport(self.destination)
        started = time.monotonic()
        try:
            for datagram in datagrams:
                stall = self._pacer.wait()
                if stall is not None:
                    report.reanchors.append(stall)
                    log.warning(
                        "sender fell %.0f ms behind at packet %d (system stalled?); "
                        "resuming in real time instead of bursting",
                        stall.lateness * 1000,
                        stall.packet_index,
                    )
                self._transmit(bytes(datagram))
                report.packets += 1
                report.audio_bytes += len(datagram.payload)
                if on_progress is not None:
                    on_progress(report)
        except KeyboardInterrupt:
            report.interrupted = True
        finally:
            report.wall_s = time.monotonic() - started
            if end_of_stream or report.interrupted:
                self._transmit(bytes(END_OF_STREAM), quiet=True)
        return report

    def _transmit(self, data: bytes, quiet: bool = False) -> None:
        try:
            self._sock.sendto(data, self.destination)
        except OSError as error:
            if quiet:
                return
            host, port = self.destination
            raise NetworkError(f"cannot send to {host}:{port}: {error.strerror}") from None

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Sender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
