from appliance.audio.format import AudioFormat, Encoding
from appliance.listener.session import EndReason, Session
from appliance.wire import Wire


def test_end_line_has_every_figure() -> None:
    session = Session(3, ("192.0.2.7", 40000), started_at=10.0, last_packet_at=15.0)
    session.packets, session.audio_bytes = 250, 80000
    session.underruns, session.dropped_bytes, session.ignored, session.invalid = 1, 640, 2, 4
    session.peak_depth_ms = 120
    session.late, session.reordered, session.duplicates, session.jitter_ms = 2, 5, 1, 4.26
    session.concealed_ms, session.concealments, session.target_ms = 60, 3, 64.6
    session.mean_depth_ms, session.drift_ppm, session.drift_by = 58.2, -998.4, "pauses"
    session.end_reason = EndReason.TIMEOUT
    assert session.start_line() == (
        "session 3 from 192.0.2.7:40000 started: raw 8000 Hz mono s16le"
    )
    assert session.end_line() == (
        "session 3 from 192.0.2.7:40000 ended (timeout): raw 8000 Hz mono s16le, "
        "250 packets, 80000 bytes "
        "(5.00 s of audio) in 5.00 s; underruns 1, dropped 640 bytes, ignored 2, invalid 4, "
        "max buffer 120 ms; late 2, reordered 5, duplicates 1, jitter 4.3 ms, "
        "concealed 60 ms in 3 gaps, latency target 65 ms (mean depth 58 ms), "
        "drift -998 ppm (pauses)"
    )


def test_an_rtp_session_names_its_payload_type_format_and_rtcp() -> None:
    session = Session(
        4, ("127.0.0.1", 5004), 0.0, 2.0, wire=Wire.RTP,
        format=AudioFormat(48000, 2, Encoding.S16BE), payload_type=96,
    )
    session.packets, session.audio_bytes, session.rtcp = 100, 384000, 3
    session.lost, session.target_ms = 4, 60.0
    session.end_reason = EndReason.BYE
    assert session.audio_s == 2.0
    assert session.start_line() == (
        "session 4 from 127.0.0.1:5004 started: RTP type 96, 48000 Hz stereo s16be"
    )
    assert session.end_line() == (
        "session 4 from 127.0.0.1:5004 ended (RTCP BYE): RTP type 96, 48000 Hz stereo s16be, "
        "100 packets, 384000 bytes (2.00 s of audio) in 2.00 s; underruns 0, dropped 0 bytes, "
        "ignored 0, invalid 0, rtcp 3, max buffer 0 ms; lost 4, late 0, reordered 0, "
        "duplicates 0, jitter 0.0 ms, concealed 0 ms in 0 gaps, latency target 60 ms, "
        "drift not measured"
    )
