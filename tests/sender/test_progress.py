import io

from appliance.audio.format import AudioFormat, Encoding
from appliance.sender.progress import ProgressLine, clock_text
from appliance.sender.sender import SendReport


def test_clock_text() -> None:
    assert clock_text(75.25) == "01:15.2"


def test_progress_bar_with_a_known_total() -> None:
    out = io.StringIO()
    line = ProgressLine(out, total_s=4.0, target="kitchen (10.0.0.5:5005)")
    line.update(SendReport(("10.0.0.5", 5005), audio_bytes=32000), force=True)
    assert out.getvalue() == (
        "\r[############............] 00:02.0 / 00:04.0 -> kitchen (10.0.0.5:5005)\x1b[K"
    )


def test_progress_for_standard_input_has_no_total() -> None:
    out = io.StringIO()
    line = ProgressLine(out, total_s=None, target="10.0.0.5:5005")
    line.finish(SendReport(("10.0.0.5", 5005), audio_bytes=16000))
    assert out.getvalue() == "\r00:01.0 -> 10.0.0.5:5005\x1b[K\n"


def test_updates_are_throttled() -> None:
    out = io.StringIO()
    line = ProgressLine(out, total_s=None, target="x")
    report = SendReport(("x", 1))
    line.update(report)
    line.update(report)
    assert out.getvalue().count("\r") == 1


def test_progress_counts_time_in_the_streams_format() -> None:
    out = io.StringIO()
    line = ProgressLine(out, total_s=2.0, target="kitchen (10.0.0.5:5005)")
    stereo = AudioFormat(48000, 2, Encoding.S16BE)
    line.update(SendReport(("10.0.0.5", 5005), audio_bytes=192000, audio_format=stereo), True)
    assert out.getvalue() == (
        "\r[############............] 00:01.0 / 00:02.0 -> kitchen (10.0.0.5:5005)\x1b[K"
    )
