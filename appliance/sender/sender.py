"""The sender's socket stage: paced datagrams out of one UDP socket, and a report at the end.

:meth:`Sender.send` takes a :class:`~appliance.sender.packetizer.PacketStream` (RTP or raw)
or, as before RTP, plain raw datagrams from :func:`~appliance.wire.raw.frame_pcm`. One packet
leaves every packet time on the monotonic clock (:mod:`appliance.sender.pacing`, its interval
taken from the stream), then the stream's end: the empty datagram on the raw wire, an RTCP
BYE (twice) on RTP; on Ctrl-C too.

Example::

    with open_source("speech.wav") as source:
        report = Sender(("127.0.0.1", 5005)).send(frame_pcm(source.chunks()))
    print(report.summary())   # sent 8.00 s of audio to 127.0.0.1:5005 in 400 packets over 8.00 s

    stream = RtpStream(source.chunks(), source.format, payload_type=127)
    Sender(("127.0.0.1", 5005)).send(stream, target="kitchen (127.0.0.1:5005)")
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from appliance.audio.format import AudioFormat, channel_word
from appliance.errors import NetworkError
from appliance.sender.pacing import Pacer, Reanchor
from appliance.sender.packetizer import BYE_GAP_S, PacketStream, RawStream
from appliance.wire import Wire
from appliance.wire.raw import RAW_FORMAT, RawDatagram

log = logging.getLogger(__name__)

Address = tuple[str, int]


@dataclass(slots=True)
class SendReport:
    destination: Address
    packets: int = 0
    audio_bytes: int = 0
    """Audio payload bytes sent, in :attr:`audio_format` (headers not counted)."""
    wall_s: float = 0.0
    reanchors: list[Reanchor] = field(default_factory=list)
    interrupted: bool = False
    audio_format: AudioFormat = RAW_FORMAT
    """The audio as it was on the wire."""
    wire: Wire = Wire.RAW
    payload_type: int | None = None
    target: str | None = None
    """How to name the destination in the summary (``"kitchen (192.168.1.20:5005)"``)."""

    @property
    def audio_s(self) -> float:
        return self.audio_bytes / self.audio_format.bytes_per_second

    def summary(self) -> str:
        host, port = self.destination
        verb = "stopped after sending" if self.interrupted else "sent"
        if self.wire is Wire.RTP:
            fmt = self.audio_format
            what = (
                f"{self.audio_s:.2f} s of {fmt.rate} Hz {channel_word(fmt.channels)} audio "
                f"over RTP (type {self.payload_type})"
            )
        else:
            # The raw wire's summary is unchanged from before RTP (scripts may read it).
            what = f"{self.audio_s:.2f} s of audio"
        target = self.target or f"{host}:{port}"
        text = f"{verb} {what} to {target} in {self.packets} packets over {self.wall_s:.2f} s"
        if self.reanchors:
            text += f"; {len(self.reanchors)} stall(s) skipped"
        return text


ProgressCallback = Callable[[SendReport], None]


class Sender:
    """Sends a stream to one destination on a real-time schedule (:mod:`.pacing`).

    :param pacer: the schedule to follow, as given (tests use a fake clock); by default a new
        :class:`Pacer` per stream, one packet every :attr:`PacketStream.interval_s`.
    """

    def __init__(
        self,
        destination: Address,
        *,
        pacer: Pacer | None = None,
        sock: socket.socket | None = None,
    ) -> None:
        self.destination = destination
        self._pacer = pacer
        family = socket.AF_INET6 if ":" in destination[0] else socket.AF_INET
        self._sock = sock or socket.socket(family, socket.SOCK_DGRAM)

    def send(
        self,
        stream: PacketStream | Iterable[RawDatagram],
        on_progress: ProgressCallback | None = None,
        *,
        end_of_stream: bool = True,
        target: str | None = None,
    ) -> SendReport:
        """Send every packet on schedule, then (unless told not to) the end of the stream.

        ``stream`` is a :class:`PacketStream`, or raw datagrams (sent as a :class:`RawStream`).
        Ctrl-C (KeyboardInterrupt) ends the stream cleanly: the report says it was interrupted.
        ``target`` names the destination in the report's summary.
        """
        packets = stream if isinstance(stream, PacketStream) else RawStream(stream)
        pacer = self._pacer or Pacer(interval=packets.interval_s)
        report = SendReport(
            self.destination,
            audio_format=packets.wire_format,
            wire=packets.wire,
            payload_type=packets.payload_type,
            target=target,
        )
        started = time.monotonic()
        try:
            for packet in packets:
                stall = pacer.wait()
                if stall is not None:
                    report.reanchors.append(stall)
                    log.warning(
                        "sender fell %.0f ms behind at packet %d (system stalled?); "
                        "resuming in real time instead of bursting",
                        stall.lateness * 1000,
                        stall.packet_index,
                    )
                self._transmit(packet.datagram)
                report.packets += 1
                report.audio_bytes += packet.payload_bytes
                if on_progress is not None:
                    on_progress(report)
        except KeyboardInterrupt:
            report.interrupted = True
        finally:
            report.wall_s = time.monotonic() - started
            if end_of_stream or report.interrupted:
                self._say_goodbye(packets)
        return report

    def _say_goodbye(self, packets: PacketStream) -> None:
        try:
            for index, datagram in enumerate(packets.goodbye()):
                if index:
                    time.sleep(BYE_GAP_S)
                self._transmit(datagram, quiet=True)
        except KeyboardInterrupt:
            pass  # a second Ctrl-C while ending: the first copy is out, that will do

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
