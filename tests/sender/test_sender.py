import socket

import pytest
from streams import udp_socket

from appliance.errors import NetworkError
from appliance.sender.sender import Sender, SendReport
from appliance.wire.raw import RawDatagram, frame_pcm

PCM = bytes(i % 256 for i in range(320 * 10 + 100))


def receive_all(sock: socket.socket) -> list[bytes]:
    sock.settimeout(5)
    received = []
    while True:
        data = sock.recv(65536)
        received.append(data)
        if not data:
            return received


def test_sends_every_datagram_in_order_then_the_end_marker() -> None:
    with udp_socket() as receiver:
        with Sender(receiver.getsockname()) as sender:
            report = sender.send(frame_pcm([PCM]))
        received = receive_all(receiver)
    assert received[-1] == b""
    assert b"".join(received) == PCM
    assert [len(d) for d in received] == [320] * 10 + [100, 0]
    assert (report.packets, report.audio_bytes, report.interrupted) == (11, len(PCM), False)


def test_ctrl_c_stops_cleanly_and_still_ends_the_stream() -> None:
    def interrupt_after_three(report: SendReport) -> None:
        if report.packets == 3:
            raise KeyboardInterrupt

    with udp_socket() as receiver:
        with Sender(receiver.getsockname()) as sender:
            report = sender.send(frame_pcm([PCM]), interrupt_after_three)
        received = receive_all(receiver)
    assert report.interrupted
    assert [len(d) for d in received] == [320, 320, 320, 0]
    assert report.summary().startswith("stopped after sending 0.06 s of audio to 127.0.0.1:")


def test_summary_says_what_was_sent() -> None:
    report = SendReport(("10.0.0.2", 5005), packets=50, audio_bytes=16000, wall_s=1.004)
    assert report.summary() == "sent 1.00 s of audio to 10.0.0.2:5005 in 50 packets over 1.00 s"


def test_a_socket_error_is_a_clear_error() -> None:
    # Broadcast without SO_BROADCAST fails locally with EACCES: nothing leaves the machine.
    with Sender(("255.255.255.255", 5005)) as sender, pytest.raises(NetworkError) as caught:
        sender.send([RawDatagram(bytes(320))])
    assert str(caught.value) == "cannot send to 255.255.255.255:5005: Permission denied"
