from appliance.depacketizer import Frame, RawDepacketizer
from appliance.framing import RawDatagram


def test_raw_frames_are_positioned_back_to_back() -> None:
    depacketizer = RawDepacketizer()
    frames = [depacketizer.depacketize(RawDatagram(bytes(n))) for n in (320, 100, 320)]
    assert [(f.position, f.samples, f.end) for f in frames] == [
        (0, 160, 160), (160, 50, 210), (210, 160, 370),
    ]


def test_positions_can_continue_from_a_given_start() -> None:
    frame = RawDepacketizer(start_position=1000).depacketize(RawDatagram(b"\x01\x00"))
    assert frame == Frame(1000, b"\x01\x00")
