from appliance import audio_format as fmt


def test_the_seed_wire_format() -> None:
    assert (fmt.SAMPLE_RATE, fmt.SAMPLE_WIDTH, fmt.CHANNELS) == (8000, 2, 1)
    assert (fmt.FRAME_MS, fmt.SAMPLES_PER_FRAME, fmt.FRAME_BYTES) == (20, 160, 320)
    assert fmt.DEFAULT_PORT == 5005
    assert fmt.BYTES_PER_SECOND == 16000


def test_conversions() -> None:
    assert fmt.bytes_to_seconds(32000) == 2.0
    assert fmt.seconds_to_bytes(0.02) == 320
    assert fmt.seconds_to_bytes(0.00013) == 2  # whole samples only: one sample


def test_describe() -> None:
    assert fmt.describe() == "8000 Hz, 16-bit signed little-endian, mono"
