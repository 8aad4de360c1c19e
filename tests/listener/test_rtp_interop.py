"""RTP from real peers (ffmpeg, GStreamer) into the listener, on real parts: UDP on 127.0.0.1,
PyAudio -> ALSA -> a PulseAudio null sink whose monitor is recorded and compared.

L16 must come out bit-exact; G.711 equal to the reference decoding of the bytes the peer sent.
The seed's raw stream next to them is in test_listener.py (it must never be taken for RTP).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import peers
import pytest
from audio_rig import AudioSink, assert_played, test_signal, without_concealed_tail
from listener_fixtures import ListenerFactory
from streams import send_rtp

from appliance.listener.session import EndReason
from appliance.wire import Wire
from appliance.wire.rtp import RtpExtension

PLAY_TIMEOUT_S = 60
Peer = Callable[[bytes, int, Path], bytes]


@pytest.mark.audio
@pytest.mark.parametrize(
    ("peer", "payload_type", "end_reason"),
    [
        pytest.param(peers.ffmpeg_l16, 97, EndReason.BYE, id="ffmpeg-L16-97"),
        pytest.param(peers.ffmpeg_pcmu, 0, EndReason.BYE, id="ffmpeg-PCMU-0"),
        pytest.param(peers.gstreamer_l16, 96, EndReason.TIMEOUT, id="gstreamer-rtpL16pay-96"),
        pytest.param(peers.gstreamer_pcma, 8, EndReason.TIMEOUT, id="gstreamer-rtppcmapay-8"),
    ],
)
def test_a_peer_plays_with_no_configuration(
    audio_sink: AudioSink,
    make_listener: ListenerFactory,
    tmp_path: Path,
    peer: Peer,
    payload_type: int,
    end_reason: EndReason,
) -> None:
    sent = test_signal(seconds=2.0, seed=payload_type + 10)
    listener = make_listener(timeout_s=1.0)
    audio_sink.start_recording()
    listener.start()
    expected = peer(sent, listener.port, tmp_path)
    assert listener.wait_session_played(timeout=PLAY_TIMEOUT_S)
    recorded = audio_sink.stop_recording()
    if end_reason is EndReason.TIMEOUT:  # GStreamer sends no BYE: its end looked late
        recorded = without_concealed_tail(recorded, expected)
    assert_played(recorded, expected)
    [session] = listener.sessions
    assert (session.wire, session.payload_type, session.end_reason) == (
        Wire.RTP, payload_type, end_reason,
    )
    # Underruns are not asserted: they depend on how the peer paces (ffmpeg -re sends bursts)
    # and on the load on this machine; the audio is compared whole above.
    assert (session.audio_bytes, session.invalid) == (len(expected), 0)


@pytest.mark.audio
def test_sequence_numbers_wrap_and_rtcp_on_the_port_is_counted_not_played(
    audio_sink: AudioSink, make_listener: ListenerFactory, tmp_path: Path
) -> None:
    sent = test_signal(seconds=2.0, seed=31)
    listener = make_listener(timeout_s=1.0)
    audio_sink.start_recording()
    listener.start()
    peers.ffmpeg_l16(sent, listener.port, tmp_path, first_seq=65530)
    assert listener.wait_session_played(timeout=PLAY_TIMEOUT_S)
    assert_played(audio_sink.stop_recording(), sent)
    [session] = listener.sessions
    assert session.packets == 50  # 2 s in ffmpeg's 40 ms packets, across 65535 -> 0
    assert session.rtcp >= 1  # the BYE (its first report may come before the first packet)
    assert session.end_reason is EndReason.BYE


@pytest.mark.audio
def test_csrcs_a_header_extension_and_padding_are_skipped_not_played(
    audio_sink: AudioSink, make_listener: ListenerFactory
) -> None:
    sent = test_signal(seconds=1.0, seed=32)
    listener = make_listener()
    audio_sink.start_recording()
    listener.start()
    header = {
        "csrcs": (1, 2, 3),
        "extension": RtpExtension(profile=0xBEDE, data=bytes(range(1, 13))),
        "padding": 7,
    }
    send_rtp(sent, listener.port, header=header)
    assert listener.wait_session_played(timeout=PLAY_TIMEOUT_S)
    assert_played(audio_sink.stop_recording(), sent)
    [session] = listener.sessions
    assert (session.wire, session.audio_bytes, session.invalid) == (Wire.RTP, len(sent), 0)
