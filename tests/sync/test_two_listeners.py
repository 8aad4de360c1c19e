"""Two real listeners (60 and 150 ms fixed buffers), one ``appliance send --to A --to B``, one
null sink: what is true today, before synchronised playout, and will stay true after it.

Both listeners play every click (each found twice, or merged), and the skew between them is
the same for every click of the run within the rig's resolution (0.01 ms, see
test_rig_resolution.py): each listener's drift control holds its buffer, so nothing creeps.
The skew's size is not asserted: today it is about the difference of the buffers (120.000 ms
for 40 vs 150 ms over 60 s, tests/bench_sync.py), part 2 of issue 12 makes it small. The
shorter buffer is 60 ms here, not the issue's 40: at 40 ms (22 ms mean depth, 30 ms output
periods) a listener may underrun when CI's cores are busy and rejoin at another skew, which
is not what this test is about; the benchmark keeps 40.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from audio_rig import AudioSink
from clicks import click_positions, click_track, copies_heard, skews
from sync_rig import RIG_RESOLUTION_MS, TwoListeners, send_to

RATE = 8000
SECONDS = 5.0
BUFFERS_MS = (60, 150)


@pytest.mark.audio
def test_two_listeners_play_every_click_at_a_constant_skew(
    audio_sink: AudioSink, tmp_path: Path
) -> None:
    track = tmp_path / "clicks.raw"
    track.write_bytes(click_track(RATE, 1, SECONDS))
    sent = len(click_positions(RATE, SECONDS))
    with TwoListeners(audio_sink, BUFFERS_MS) as pair:
        audio_sink.start_recording()
        result = send_to(pair.ports, track)
        recording = audio_sink.stop_recording(settle_s=0.6)
        logs = pair.logs()
    assert result.returncode == 0, result.stderr
    found = skews(recording, RATE)
    assert [s.index for s in found] == list(range(sent)), (found, logs)
    assert copies_heard(found) == 2 * sent, (found, logs)
    spread = max(s.skew_ms for s in found) - min(s.skew_ms for s in found)
    assert spread <= RIG_RESOLUTION_MS, (found, logs)
