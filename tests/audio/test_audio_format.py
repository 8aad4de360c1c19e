import pytest

from appliance.audio.format import AudioFormat, Encoding, check_rate
from appliance.errors import UsageError


def test_sizes_follow_rate_channels_and_encoding() -> None:
    cd = AudioFormat(44100, 2, Encoding.S16BE)
    assert (cd.sample_bytes, cd.frame_bytes, cd.bytes_per_second) == (2, 4, 176400)
    assert (cd.packet_frames, cd.packet_bytes) == (882, 3528)
    ulaw = AudioFormat(8000, 1, Encoding.PCMU)
    assert (ulaw.frame_bytes, ulaw.packet_bytes) == (1, 160)
    assert AudioFormat(48000, 2).with_ptime(5).packet_frames == 240


def test_conversions_count_whole_sample_frames() -> None:
    stereo = AudioFormat(48000, 2)
    assert stereo.frames_in(3841) == 960
    assert stereo.frames_for(0.02) == 960
    assert stereo.seconds(24000) == 0.5


def test_decoded_keeps_rate_and_channels_as_s16le() -> None:
    wire = AudioFormat(44100, 2, Encoding.S16BE, ptime_ms=87)
    assert wire.decoded() == AudioFormat(44100, 2, Encoding.S16LE, ptime_ms=87)
    assert wire.same_pcm(AudioFormat(44100, 2))
    assert not wire.same_pcm(AudioFormat(44100, 1))


def test_describe() -> None:
    assert str(AudioFormat()) == "8000 Hz mono s16le"
    assert AudioFormat(48000, 2, Encoding.PCMA).describe() == "48000 Hz stereo pcma"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rate": 96000}, "rate 96000 Hz is outside 8000-48000 Hz"),
        ({"channels": 6}, "6 channels: only mono and stereo are played"),
        ({"ptime_ms": 0}, "packet time 0 ms is not between 0 and 1000 ms"),
    ],
)
def test_impossible_formats_are_refused(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AudioFormat(**kwargs)  # type: ignore[arg-type]


def test_check_rate_names_the_supported_rates() -> None:
    assert check_rate(44100, "--rate") == 44100
    with pytest.raises(UsageError, match=r"--rate: 12345 Hz is not a supported rate \(8000, "):
        check_rate(12345, "--rate")
