# mypy: disable-error-code="comparison-overlap"
# (phases change under the checker's feet: that is what these tests are about)
import wave
from pathlib import Path

from appliance.listener.depacketizer import Frame
from appliance.listener.outputs.wavfile import WavFileOutput
from appliance.listener.playout.buffer import PlayoutBuffer
from appliance.listener.render import Playout, steps_to
from appliance.listener.state import ListenerState, StateMachine
from appliance.wire.raw import RAW_FORMAT

N = 320
F = N // 2  # sample frames in N bytes of 16-bit mono
S = ListenerState


def make() -> tuple[PlayoutBuffer, StateMachine, Playout]:
    buffer = PlayoutBuffer(target_ms=40, capacity_s=2.0, drain_tail_ms=40)
    buffer.begin_stream(RAW_FORMAT, timed=False)  # running dry is an underrun, not concealed
    machine = StateMachine()
    machine.set(S.WAITING)
    playout = Playout(buffer, machine)
    playout.reset()
    return buffer, machine, playout


def test_render_publishes_the_buffer_phase_as_the_listener_state() -> None:
    buffer, machine, playout = make()
    buffer.push(Frame(0, b"\x01" * N))
    playout.render(F)
    assert machine.state is S.BUFFERING
    buffer.push(Frame(160, b"\x02" * N))
    assert playout.render(F) == b"\x01" * N
    assert machine.state is S.PLAYING
    playout.render(F)
    playout.render(F)
    assert machine.state is S.UNDERRUN
    buffer.end_stream()
    for _ in range(3):
        playout.render(F)
    assert machine.state is S.WAITING
    assert [t.current for t in machine.history()] == [
        S.WAITING, S.BUFFERING, S.PLAYING, S.UNDERRUN, S.DRAINING, S.WAITING,
    ]
    assert playout.callbacks == 7


def test_render_applies_the_gain() -> None:
    buffer, _, playout = make()
    playout.gain = 0.5
    buffer.push(Frame(0, (1000).to_bytes(2, "little", signed=True) * 160))
    buffer.push(Frame(160, bytes(N)))
    assert playout.render(F) == (500).to_bytes(2, "little", signed=True) * 160


def test_render_leaves_the_state_alone_once_listening_stopped() -> None:
    buffer, machine, playout = make()
    machine.set(S.IDLE)
    buffer.push(Frame(0, b"\x01" * N))
    assert playout.render(F) == bytes(N)  # a last callback racing the stop: no exception
    assert machine.state is S.IDLE


def test_wav_file_output_records_what_is_rendered_in_real_time(tmp_path: Path) -> None:
    buffer, _, playout = make()
    for i in range(5):
        buffer.push(Frame(i * 160, bytes([i + 1]) * N))
    buffer.end_stream()
    output = WavFileOutput(playout.render, tmp_path / "out.wav")
    output.start()
    assert not output.is_active()
    assert output.negotiate(RAW_FORMAT) == RAW_FORMAT
    output.open(RAW_FORMAT)
    assert output.is_active()
    while buffer.phase.value != "waiting":
        pass
    output.stop()
    with wave.open(str(tmp_path / "out.wav")) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
        frames = wav.readframes(wav.getnframes())
    assert frames.strip(b"\0") == b"".join(bytes([i + 1]) * N for i in range(5))


def test_a_buffer_that_filled_before_the_first_callback_is_still_seen_buffering() -> None:
    # While the output opens for a new stream, frames pile up past the target: the first
    # callback finds the buffer playing, and the states still go the legal way.
    buffer, machine, playout = make()
    for i in range(3):
        buffer.push(Frame(i * 160, b"\x01" * N))
    playout.render(F)
    assert machine.state is S.PLAYING
    buffer.end_stream()
    for _ in range(6):
        playout.render(F)
    assert [t.current for t in machine.history()] == [
        S.WAITING, S.BUFFERING, S.PLAYING, S.DRAINING, S.WAITING,
    ]


def test_steps_to_walks_legal_transitions_only() -> None:
    assert steps_to(S.WAITING, S.UNDERRUN) == (S.BUFFERING, S.PLAYING, S.UNDERRUN)
    assert steps_to(S.WAITING, S.DRAINING) == (S.BUFFERING, S.DRAINING)
    assert steps_to(S.BUFFERING, S.UNDERRUN) == (S.PLAYING, S.UNDERRUN)
    assert steps_to(S.PLAYING, S.DRAINING) == (S.DRAINING,)
    assert steps_to(S.IDLE, S.PLAYING) == (S.PLAYING,)  # refused by the machine: controls win
