from appliance.session import EndReason, Session


def test_end_line_has_every_figure() -> None:
    session = Session(3, ("192.0.2.7", 40000), started_at=10.0, last_packet_at=15.0)
    session.packets, session.audio_bytes = 250, 80000
    session.underruns, session.dropped_bytes, session.ignored, session.invalid = 1, 640, 2, 4
    session.peak_depth_bytes = 1920
    session.end_reason = EndReason.TIMEOUT
    assert session.start_line() == "session 3 from 192.0.2.7:40000 started"
    assert session.end_line() == (
        "session 3 from 192.0.2.7:40000 ended (timeout): 250 packets, 80000 bytes "
        "(5.00 s of audio) in 5.00 s; underruns 1, dropped 640 bytes, ignored 2, invalid 4, "
        "max buffer 120 ms"
    )
