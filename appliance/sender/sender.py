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

With ``listen=True`` (``appliance send``) it also hears the listeners: one connected UDP socket
per target, read without blocking between packets (:mod:`appliance.sender.replies`). A target
that is busy, unreachable or, when it must report, silent is dropped (nothing more is sent to
it, not even the stream's end); the stream goes on to the others, and stops when none is left.
After the end it waits up to :data:`~appliance.sender.replies.FINAL_WAIT_S` for each reporting
listener's stopped report. Several targets (``targets=``) get the same packets, one ``send`` per
target per packet time::

    targets = [Target(("10.0.0.2", 5005), "kitchen (10.0.0.2:5005)", required=True),
               Target(("10.0.0.3", 5005), "bedroom (10.0.0.3:5005)", required=True)]
    with Sender(targets=targets, listen=True) as sender:
        report = sender.send(stream)
    for state in report.targets:
        print(state.failure or state.played_line(report.audio_format))

On RTP with ``listen=True`` it also serves the listeners' shared timeline
(:mod:`appliance.sender.timeserver`): time requests are answered as they arrive (the pacer's
waits watch the sockets), and an appliance listener (one that reports) gets sender reports
and the group delay.
``clock=`` is the sender's clock (a skewed one in tests); the pacing follows it too.

With ``key=`` (:mod:`appliance.wire.srtp`) every RTP packet and the RTCP BYE leave as SRTP and
SRTCP, and the listeners' replies are read only if they authenticate with the same key. The raw
wire is refused: its datagrams are bare PCM, with no header to carry a packet index or a tag.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from appliance.audio.format import AudioFormat, channel_word
from appliance.errors import NetworkError, UsageError
from appliance.sender.pacing import Pacer, Reanchor
from appliance.sender.packetizer import BYE_GAP_S, PacketStream, RawStream, RtpStream
from appliance.sender.replies import FINAL_WAIT_S, TargetState
from appliance.sender.timeserver import TimeServer
from appliance.sync.clock import SECOND_NS, Clock, MonotonicClock
from appliance.wire import Wire
from appliance.wire.raw import RAW_FORMAT, RawDatagram
from appliance.wire.srtp import SrtpError, SrtpProtector, SrtpUnprotector

log = logging.getLogger(__name__)

Address = tuple[str, int]

REPLY_SIZE = 2048
"""Larger than any reply a listener sends (an RTCP compound of a few packets)."""
FINAL_POLL_S = 0.01
RAW_WITH_KEY = (
    "the raw wire cannot be authenticated (its datagrams are bare PCM, with no room for a "
    "packet index or a tag): with a key the stream goes as SRTP (--rtp)"
)


@dataclass(frozen=True, slots=True)
class Target:
    """A destination: its address, how to name it, and whether it must report back."""

    destination: Address
    name: str | None = None
    required: bool = False

    @property
    def label(self) -> str:
        """:attr:`name`, else ``HOST:PORT``."""
        return self.name or f"{self.destination[0]}:{self.destination[1]}"


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
    targets: list[TargetState] = field(default_factory=list)
    """Each destination and what its listener said (filled when the sender listens)."""
    group_delay: str | None = None
    """The group's playout delay and where it came from, when the listeners played in step."""

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
NoticeCallback = Callable[[str], None]


class Sender:
    """Sends a stream to one destination on a real-time schedule (:mod:`.pacing`).

    :param pacer: the schedule to follow, as given (tests use a fake clock); by default a new
        :class:`Pacer` per stream, one packet every :attr:`PacketStream.interval_s`.
    :param targets: several destinations (instead of ``destination``), each sent every packet.
    :param listen: hear the listeners back (see the module docstring): a connected socket per
        target; without it (the default) a plain ``sendto`` of ``sock``, as before replies.
    :param on_notice: called with a warning line (an address that does not report).
    :param key: the SRTP key (:mod:`appliance.wire.srtp`): the stream goes as SRTP.
    :param clock: the sender's clock (monotonic by default): the time it tells listeners, and
        the pacing's when no ``pacer`` is given.
    :param group_delay_us: the playout delay announced to the listeners (None: agreed among
        them when there are several targets, else none).
    """

    def __init__(
        self,
        destination: Address | None = None,
        *,
        pacer: Pacer | None = None,
        sock: socket.socket | None = None,
        targets: Iterable[Target] = (),
        listen: bool = False,
        on_notice: NoticeCallback | None = None,
        key: bytes | None = None,
        clock: Clock | None = None,
        group_delay_us: int | None = None,
    ) -> None:
        self._clock: Clock = clock or MonotonicClock()
        self._group_delay_us = group_delay_us
        self.timeserver: TimeServer | None = None
        """The timeline of the current (or last) RTP stream, when listening."""
        self._protector = None if key is None else SrtpProtector(key)
        self._unprotector = None if key is None else SrtpUnprotector(key)
        self._targets = list(targets)
        if destination is not None:
            self._targets.insert(0, Target(destination))
        if not self._targets:
            raise ValueError("a sender needs a destination")
        if sock is not None and len(self._targets) > 1:
            raise ValueError("one socket cannot be given for several destinations")
        self.destination = self._targets[0].destination
        self._pacer = pacer
        self._listen = listen
        self._on_notice = on_notice
        self._socks = [sock or _udp_socket(t.destination) for t in self._targets]
        self._sock = self._socks[0]
        self._states: list[TargetState] = []
        self._ssrc: int | None = None
        """The RTP stream's SSRC, to find our report block in a listener's RTCP."""

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
        if self._protector is not None and packets.wire is not Wire.RTP:
            raise UsageError(RAW_WITH_KEY)
        pacer = self._pacer or self._new_pacer(packets.interval_s)
        states = [TargetState(t.destination, t.label, t.required) for t in self._targets]
        self._states = states
        report = SendReport(
            self.destination,
            audio_format=packets.wire_format,
            wire=packets.wire,
            payload_type=packets.payload_type,
            target=target,
            targets=states if self._listen else [],
        )
        self._ssrc = packets.ssrc if isinstance(packets, RtpStream) else None
        self.timeserver = None
        if self._listen and self._ssrc is not None:
            self.timeserver = TimeServer(
                self._clock, self._ssrc, group_delay_us=self._group_delay_us,
                agree_among=len(states),
            )
        if self._listen:
            self._connect()
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
                datagram = self._protect(packet.datagram)
                for index, state in enumerate(states):
                    if state.live:
                        self._transmit(index, datagram)
                        if state.live:
                            if state.first_sent_at is None:
                                state.first_sent_at = time.monotonic()
                            state.packets += 1
                            state.audio_bytes += packet.payload_bytes
                report.packets += 1
                report.audio_bytes += packet.payload_bytes
                if self.timeserver is not None:
                    self._timeline_after(pacer, packet.datagram)
                if self._listen:
                    self._hear(time.monotonic())
                    if not any(s.live for s in states):
                        break
                if on_progress is not None:
                    on_progress(report)
        except KeyboardInterrupt:
            report.interrupted = True
        finally:
            report.wall_s = time.monotonic() - started
            report.group_delay = self._group_delay_line()
            if end_of_stream or report.interrupted:
                self._say_goodbye(packets)
        if self._listen:
            # Ctrl-C again while waiting for the listener's last word: done.
            with contextlib.suppress(KeyboardInterrupt):
                self._wait_for_final()
        return report

    def _connect(self) -> None:
        for index, state in enumerate(self._states):
            sock = self._socks[index]
            try:
                sock.connect(state.destination)
                sock.setblocking(False)
            except OSError as error:
                host, port = state.destination
                raise NetworkError(f"cannot send to {host}:{port}: {error.strerror}") from None

    def _hear(self, now: float) -> None:
        """Read every reply waiting on the targets' sockets (never blocks); judge silences."""
        for index, state in enumerate(self._states):
            if not state.live:
                continue
            sock = self._socks[index]
            while state.live:
                try:
                    data = sock.recv(REPLY_SIZE)
                except (BlockingIOError, InterruptedError):
                    break
                except ConnectionRefusedError:
                    state.refused()
                    break
                except OSError:
                    break
                received_ns = self._clock.now_ns()  # t2 of a time request, before anything
                if self._unprotector is not None:
                    try:
                        data = self._unprotector.unprotect(data)
                    except SrtpError:
                        continue  # not from a listener with our key: not a reply at all
                if self.timeserver is not None:
                    self._serve_time(index, data, received_ns)
                state.receive(data, self._ssrc)
                if self.timeserver is not None and state.last is not None and state.live:
                    self._follow_timeline(index)
            notice = state.check(now)
            if notice is not None and self._on_notice is not None:
                self._on_notice(notice)

    def _serve_time(self, index: int, data: bytes, received_ns: int) -> None:
        """Answer the time requests in ``data`` from target ``index`` at once."""
        timeserver = self.timeserver
        assert timeserver is not None
        for request in timeserver.requests(data):
            self._transmit(index, self._protect(timeserver.answer(request, received_ns)), True)
            self._follow_timeline(index)
            need_us = timeserver.note(index, request)
            if need_us is not None:  # said once per target, by the time server
                log.warning(
                    "%s needs %.0f ms, more than the group's %.0f ms: it may drop out "
                    "(set --delay-ms)",
                    self._states[index].name, need_us / 1000,
                    (timeserver.group_delay_us or 0) / 1000,
                )
        if timeserver.agree(self._clock.now_ns()):
            self._announce_delay()

    def _follow_timeline(self, index: int) -> None:
        """Target ``index`` is an appliance listener: a sender report at once, the first
        time, and from then on with the others'."""
        timeserver = self.timeserver
        assert timeserver is not None
        if timeserver.join(index):
            self._send_report(index)

    def _timeline_after(self, pacer: Pacer, datagram: bytes) -> None:
        """A packet left: note when it was due (the pacing schedule on our clock, or now for
        a pacer of its own) and send the sender reports when they are due."""
        timeserver = self.timeserver
        assert timeserver is not None
        now = self._clock.now_ns()
        due = now
        if self._pacer is None:  # our own pacer runs on our clock: its schedule is exact
            due = round(pacer.deadline(pacer.packets_released - 1) * SECOND_NS)
        timeserver.sent(due, int.from_bytes(datagram[4:8]))
        if timeserver.agree(now):
            self._announce_delay()
        elif timeserver.reports_due(now):
            for index in sorted(timeserver.joined):
                if self._states[index].live:
                    self._send_report(index)

    def _announce_delay(self) -> None:
        """The group delay was just agreed: every listener waiting for it hears it now."""
        timeserver = self.timeserver
        assert timeserver is not None
        for index in sorted(timeserver.joined):
            if self._states[index].live:
                self._send_report(index)

    @property
    def group_delay_ms(self) -> float | None:
        """The group delay of the current (or last) RTP stream: given or agreed; None when
        there was none, or it was not agreed yet."""
        timeserver = self.timeserver
        if timeserver is None or not timeserver.group_delay_us:
            return None
        return timeserver.group_delay_us / 1000

    def _group_delay_line(self) -> str | None:
        """``group delay 219 ms (agreed after 62 ms: kitchen 105 ms, hall 213 ms)``, for the
        report."""
        timeserver, delay = self.timeserver, self.group_delay_ms
        if timeserver is None or delay is None or not timeserver.joined:
            return None  # no appliance listener followed the timeline: no group played
        if not timeserver.agreeing:
            return f"group delay {delay:g} ms (--delay-ms)"
        needs = ", ".join(
            f"{self._states[i].name} {need / 1000:.0f} ms"
            for i, need in sorted(timeserver.agreed_needs_us.items())
        )
        after = f"agreed after {timeserver.agreed_after_us / 1000:.0f} ms"
        return f"group delay {delay:g} ms ({after}: {needs or 'no listener said; the default'})"

    def _send_report(self, index: int) -> None:
        timeserver = self.timeserver
        assert timeserver is not None
        state = self._states[index]
        report = timeserver.report(state.packets, state.audio_bytes)
        if report is not None:
            self._transmit(index, self._protect(report), quiet=True)

    def _new_pacer(self, interval_s: float) -> Pacer:
        """Paced on our clock; while listening, waiting on the sockets (:meth:`_wait_answering`).
        Neither is needed by a plain sender on the monotonic clock: the pacer's defaults."""
        if not self._listen and isinstance(self._clock, MonotonicClock):
            return Pacer(interval=interval_s)
        sleep = self._wait_answering if self._listen else time.sleep
        return Pacer(interval=interval_s, clock=self._clock_s, sleep=sleep)

    def _clock_s(self) -> float:
        """The sender's clock in seconds, for the pacer."""
        return self._clock.now_ns() / SECOND_NS

    def _wait_answering(self, seconds: float) -> None:
        """The pacer's sleep while listening: wait on the targets' sockets, and read what
        comes at once, so that a time request is answered within microseconds of arriving
        rather than at the next packet (up to 20 ms later: a worse rtt, a worse estimate)."""
        socks = [s for s, state in zip(self._socks, self._states, strict=True) if state.live]
        if not socks:
            time.sleep(seconds)
            return
        try:
            ready, _, _ = select.select(socks, [], [], max(seconds, 0.0))
        except (OSError, ValueError):
            time.sleep(seconds)
            return
        if ready:
            self._hear(time.monotonic())

    def _wait_for_final(self) -> None:
        """Wait (briefly) for the stopped report of each listener that has been reporting."""
        deadline = time.monotonic() + FINAL_WAIT_S
        while True:
            waiting = [s for s in self._states if s.live and s.reports and s.final is None]
            if not waiting or time.monotonic() >= deadline:
                return
            time.sleep(FINAL_POLL_S)
            self._hear(time.monotonic())

    def _say_goodbye(self, packets: PacketStream) -> None:
        try:
            for index, datagram in enumerate(packets.goodbye()):
                if index:
                    time.sleep(BYE_GAP_S)
                datagram = self._protect(datagram)  # each copy its own SRTCP index
                for target, state in enumerate(self._states):
                    if state.live:
                        self._transmit(target, datagram, quiet=True)
        except KeyboardInterrupt:
            pass  # a second Ctrl-C while ending: the first copy is out, that will do

    def _protect(self, datagram: bytes) -> bytes:
        """SRTP or SRTCP with a key; as it is without one."""
        if self._protector is None:
            return datagram
        return self._protector.protect(datagram)

    def _transmit(self, index: int, data: bytes, quiet: bool = False) -> None:
        state = self._states[index]
        sock = self._socks[index]
        try:
            if self._listen:
                sock.send(data)
            else:
                sock.sendto(data, state.destination)
        except (BlockingIOError, InterruptedError):
            return  # the socket buffer is full for a moment: this packet is lost, as on a LAN
        except ConnectionRefusedError:
            if self._listen:
                state.refused()
                return
            if not quiet:
                host, port = state.destination
                raise NetworkError(f"cannot send to {host}:{port}: Connection refused") from None
        except OSError as error:
            if quiet:
                return
            host, port = state.destination
            if len(self._states) > 1:
                state.fail(f"cannot send to {host}:{port}: {error.strerror}")
                return
            raise NetworkError(f"cannot send to {host}:{port}: {error.strerror}") from None

    def close(self) -> None:
        for sock in self._socks:
            sock.close()

    def __enter__(self) -> Sender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _udp_socket(destination: Address) -> socket.socket:
    family = socket.AF_INET6 if ":" in destination[0] else socket.AF_INET
    return socket.socket(family, socket.SOCK_DGRAM)
