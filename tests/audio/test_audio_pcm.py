from array import array

from appliance.audio.pcm import apply_gain


def pcm(*samples: int) -> bytes:
    return array("h", samples).tobytes()


def test_unity_gain_returns_the_very_same_bytes() -> None:
    data = pcm(1, -2, 32767)
    assert apply_gain(data, 1.0) is data


def test_gain_scales_and_rounds() -> None:
    assert apply_gain(pcm(1000, -1000, 3), 0.5) == pcm(500, -500, 2)


def test_gain_clips_instead_of_wrapping() -> None:
    assert apply_gain(pcm(20000, -20000, 100), 2.0) == pcm(32767, -32768, 200)


def test_zero_gain_is_silence() -> None:
    assert apply_gain(pcm(5, -5), 0.0) == pcm(0, 0)
