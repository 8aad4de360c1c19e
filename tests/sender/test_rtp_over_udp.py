"""The Sender over RTP on real parts: a UDP socket on 127.0.0.1 receives what it sends, parsed
with the wire modules, decoded back to the exact source PCM, ended by RTCP BYEs."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from appliance.audio.format import AudioFormat, Encoding
from appliance.sender.pacing import Pacer
from appliance.sender.packetizer import BYE_GAP_S, RtpStream
from appliance.sender.plan import StreamPlan
from appliance.sender.sender import Sender, SendReport
from appliance.wire import Wire, rtcp
from appliance.wire.codecs import codec_for
from appliance.wire.rtp import RtpPacket

RECEIVE_TIMEOUT_S = 30.0


def pcm_frames(n_frames: int, channels: int, seed: int = 0) -> bytes:
    count = n_frames * channels
    return struct.pack(f"<{count}h", *((i * 31 + seed) % 65535 - 32767 for i in range(count)))


@dataclass
class Arrival:
    data: bytes
    at: float


@dataclass
class Collector:
    """Receives on its own thread (a 48 kHz stereo second is ~190 kB of datagrams, more than
    a default socket buffer holds) until two BYEs or an empty datagram have arrived."""

    sock: socket.socket
    arrivals: list[Arrival] = field(default_factory=list)
    thread: threading.Thread | None = None

    def start(self) -> Collector:
        self.sock.settimeout(RECEIVE_TIMEOUT_S)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        byes = 0
        while byes < 2:
            data = self.sock.recv(65536)
            self.arrivals.append(Arrival(data, time.monotonic()))
            if not data:
                return
            if rtcp.is_rtcp(data):
                byes += 1

    def join(self) -> list[Arrival]:
        assert self.thread is not None
        self.thread.join(RECEIVE_TIMEOUT_S)
        assert not self.thread.is_alive(), "the stream did not end"
        return self.arrivals


@pytest.fixture
def receiver() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock


def split(arrivals: list[Arrival]) -> tuple[list[RtpPacket], list[Arrival]]:
    media = [RtpPacket.parse(a.data) for a in arrivals if not rtcp.is_rtcp(a.data)]
    control = [a for a in arrivals if rtcp.is_rtcp(a.data)]
    return media, control


@pytest.mark.parametrize(
    ("rate", "channels", "payload_type"),
    [(48000, 2, 127), (44100, 2, 10), (11025, 1, 114), (8000, 1, 112)],
)
def test_rtp_arrives_and_decodes_to_the_exact_source(
    receiver: socket.socket, rate: int, channels: int, payload_type: int
) -> None:
    fmt = AudioFormat(rate, channels)
    source = pcm_frames(fmt.packet_frames * 12 + 7, channels)  # 12 packets and a short one
    collector = Collector(receiver).start()
    address = receiver.getsockname()
    with Sender(address) as sender:
        report = sender.send(
            StreamPlan(Wire.RTP, fmt, payload_type).stream([source]), target="kitchen (here)"
        )
    media, control = split(collector.join())

    assert len(media) == report.packets == 13
    ssrc = media[0].ssrc
    assert {(p.payload_type, p.ssrc) for p in media} == {(payload_type, ssrc)}
    assert [p.marker for p in media] == [True] + [False] * 12
    assert [(p.sequence - media[0].sequence) % 2**16 for p in media] == list(range(13))
    assert [(p.timestamp - media[0].timestamp) % 2**32 for p in media] == [
        k * fmt.packet_frames for k in range(13)
    ]
    codec = codec_for(Encoding.S16BE)
    assert b"".join(codec.decode(p.payload, channels) for p in media) == source

    # The end: two BYEs for this SSRC, the second BYE_GAP_S after the first.
    assert len(control) == 2
    for arrival in control:
        byes = [p for p in rtcp.parse_compound(arrival.data) if isinstance(p, rtcp.Bye)]
        assert [b.ssrcs for b in byes] == [(ssrc,)]
    assert control[1].at - control[0].at >= BYE_GAP_S * 0.9

    # Paced on whole packets: never faster than the audio it carries.
    assert report.wall_s >= 12 * fmt.packet_frames / rate
    assert report.audio_bytes == len(source)
    assert report.audio_s == pytest.approx((fmt.packet_frames * 12 + 7) / rate)


def test_the_summary_says_wire_format_and_type() -> None:
    report = SendReport(
        ("127.0.0.1", 5005),
        packets=250,
        audio_bytes=960000,
        wall_s=5.001,
        audio_format=AudioFormat(48000, 2, Encoding.S16BE),
        wire=Wire.RTP,
        payload_type=127,
        target="kitchen (127.0.0.1:5005)",
    )
    assert report.summary() == (
        "sent 5.00 s of 48000 Hz stereo audio over RTP (type 127) to kitchen (127.0.0.1:5005) "
        "in 250 packets over 5.00 s"
    )


def test_ctrl_c_ends_an_rtp_stream_with_its_byes(receiver: socket.socket) -> None:
    fmt = AudioFormat(48000, 2)

    def interrupt_after_three(report: SendReport) -> None:
        if report.packets == 3:
            raise KeyboardInterrupt

    collector = Collector(receiver).start()
    stream = RtpStream([pcm_frames(960 * 50, 2)], fmt, 127)
    with Sender(receiver.getsockname()) as sender:
        report = sender.send(stream, interrupt_after_three)
    media, control = split(collector.join())
    assert report.interrupted
    assert len(media) == 3
    assert len(control) == 2
    assert report.summary().startswith(
        "stopped after sending 0.06 s of 48000 Hz stereo audio over RTP (type 127) to 127.0.0.1:"
    )


def test_a_raw_plan_is_the_seed_wire(receiver: socket.socket) -> None:
    source = pcm_frames(160 * 2 + 10, 1)
    collector = Collector(receiver).start()
    with Sender(receiver.getsockname()) as sender:
        report = sender.send(StreamPlan(Wire.RAW, AudioFormat()).stream([source]))
    received = [a.data for a in collector.join()]
    assert [len(d) for d in received] == [320, 320, 20, 0]
    assert b"".join(received) == source
    assert report.summary().startswith("sent 0.04 s of audio to 127.0.0.1:")


@pytest.mark.parametrize(("rate", "interval"), [(8000, 0.02), (11025, 220 / 11025), (48000, 0.02)])
def test_the_pacer_follows_the_packet_time(
    receiver: socket.socket, monkeypatch: pytest.MonkeyPatch, rate: int, interval: float
) -> None:
    made: list[Pacer] = []

    class RecordingPacer(Pacer):
        def __init__(self, interval: float) -> None:
            super().__init__(interval=interval)
            made.append(self)

    monkeypatch.setattr("appliance.sender.sender.Pacer", RecordingPacer)
    collector = Collector(receiver).start()
    with Sender(receiver.getsockname()) as sender:
        sender.send(RtpStream([pcm_frames(10, 1)], AudioFormat(rate, 1), 112))
    collector.join()
    assert [p.interval for p in made] == [interval]
