"""DriftControl driven in simulated time: a sender whose clock runs fast or slow, a card that
reads fixed periods on time, a fake clock shared by both (no wall-clock time anywhere)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pytest

from appliance.audio.format import AudioFormat
from appliance.listener.depacketizer import Frame
from appliance.listener.playout.buffer import Phase, PlayoutBuffer
from appliance.listener.playout.drift import QUIET_PEAK, SETTLE_S, DriftControl
from appliance.listener.playout.latency import CALM_S, UPDATE_S, LatencyTarget

Samples = npt.NDArray[np.int16]

RATE = 8000
PTIME_S = 0.02
PERIOD_S = 0.03
START_MS = 60.0
AMPLITUDE = 8000.0


# -- signals --------------------------------------------------------------------------------------


def tone(freq: float, seconds: float, rate: int = RATE) -> Samples:
    t = np.arange(round(seconds * rate)) / rate
    return np.rint(AMPLITUDE * np.sin(2 * np.pi * freq * t)).astype("<i2")


def speech_like(seconds: float, rate: int = RATE) -> Samples:
    """A 200 Hz tone 1.5 s on, 0.5 s off: talk with pauses (the pauses are digital silence)."""
    t = np.arange(round(seconds * rate)) / rate
    on = (t % 2.0) < 1.5
    return np.rint(AMPLITUDE * np.sin(2 * np.pi * 200 * t) * on).astype("<i2")


def stereo(left: Samples, right: Samples) -> Samples:
    return np.column_stack([left, right]).reshape(-1).astype("<i2")


def signal_for(kind: str, seconds: float) -> Samples:
    return tone(440, seconds) if kind == "tone" else speech_like(seconds)


# -- the simulation -------------------------------------------------------------------------------


@dataclass
class Tick:
    """The state after one read of the card."""

    t: float
    phase: Phase
    error_ms: float
    depth_ms: float
    """The buffer's depth plus what the sender produced since its last packet: no sawtooth of
    arrivals against reads (what DriftControl measures, less its own pending audio)."""
    reference_ms: float | None
    """The level DriftControl holds (target plus packet and period sizes), once settled."""
    engaged: bool


@dataclass
class Sim:
    """A sender ``ppm`` fast (negative: slow), or ``speed`` times real time; a card reading
    ``period_s`` on time, through DriftControl (``controlled``) or straight from the buffer."""

    signal: Samples
    ppm: float = 0.0
    fmt: AudioFormat = field(default_factory=lambda: AudioFormat(RATE, 1))
    controlled: bool = True
    latency: LatencyTarget | None = None
    speed: float = 1.0
    period_s: float = PERIOD_S
    ptime_s: float = PTIME_S

    def __post_init__(self) -> None:
        self.now = 0.0
        latency = self.latency or LatencyTarget(START_MS, 20, 200, adaptive=False)
        self.buffer = PlayoutBuffer(
            latency.target_ms, 120, 100, self.fmt, latency=latency, clock=lambda: self.now
        )
        self.control = DriftControl(self.buffer)
        self.buffer.begin_stream(self.fmt)
        self.packet = round(self.fmt.rate * self.ptime_s)
        self.read_frames = round(self.fmt.rate * self.period_s)
        self.frames = len(self.signal) // self.fmt.channels
        self.pos = 0
        self.pushes = 0
        self.reads = 0
        self.interval = self.ptime_s / ((1 + self.ppm * 1e-6) * self.speed)
        self.out: list[bytes] = []
        self.ticks: list[Tick] = []

    @property
    def rate(self) -> int:
        return self.fmt.rate

    def next_push(self) -> float:
        return self.pushes * self.interval

    def next_read(self) -> float:
        return self.reads * self.period_s

    @property
    def sent_all(self) -> bool:
        return self.pos + self.packet > self.frames

    def push(self) -> None:
        self.now = self.next_push()
        ch = self.fmt.channels
        payload = self.signal[self.pos * ch : (self.pos + self.packet) * ch].tobytes()
        self.buffer.push(Frame(self.pos, payload, self.fmt))
        self.pos += self.packet
        self.pushes += 1

    def read(self) -> None:
        self.now = self.next_read()
        self.reads += 1
        if self.controlled:
            self.out.append(self.control.read(self.read_frames))
        else:
            self.out.append(self.buffer.read(self.read_frames))
        buffer, control = self.buffer, self.control
        depth = (buffer.depth + buffer.since_last_push(self.now)) * 1000 / self.rate
        level = control.level_ms
        settled = (
            self.controlled
            and level is not None
            and buffer.phase is Phase.PLAYING
            and self.now >= SETTLE_S + 1.0
        )
        reference = level - control.error_ms if settled and level is not None else None
        self.ticks.append(
            Tick(self.now, buffer.phase, control.error_ms, depth, reference, control.engaged)
        )

    def run(self, until_s: float | None = None) -> Sim:
        """Push and read in time order until ``until_s`` or the whole signal is sent."""
        while not self.sent_all:
            if until_s is not None and min(self.next_push(), self.next_read()) >= until_s:
                break
            if self.next_push() <= self.next_read():
                self.push()
            else:
                self.read()
        return self

    def finish(self) -> Sim:
        """The stream ends: read until the buffer has played it all and its tail."""
        self.run()
        self.buffer.end_stream()
        while self.buffer.phase is not Phase.WAITING:
            self.read()
        for _ in range(3):  # whatever DriftControl still holds (a stretched pause)
            self.read()
        return self

    def output(self) -> Samples:
        return np.frombuffer(b"".join(self.out), dtype="<i2")

    def played(self) -> Samples:
        """The output without the prebuffer's leading silence, aligned with the signal."""
        out, sent = self.output(), self.signal
        lead = int(np.flatnonzero(out)[0]) - int(np.flatnonzero(sent)[0])
        assert lead >= 0 and lead % self.fmt.channels == 0
        return out[lead:]

    def after_settle(self, skip_s: float = 0.0) -> list[Tick]:
        return [k for k in self.ticks if k.reference_ms is not None and k.t >= skip_s]


def loud_only(samples: Samples) -> Samples:
    """The samples louder than what DriftControl may treat as a pause, in order."""
    return samples[np.abs(samples.astype(np.int32)) > QUIET_PEAK]


def switch_index(sim: Sim) -> int:
    """The first output sample frame that came through the resampler."""
    first = next(i for i, tick in enumerate(sim.ticks) if tick.engaged)
    return (first + 1) * sim.read_frames


class ScheduledTarget(LatencyTarget):
    """A fixed target that moves to given values at given times (as an adaptive one would)."""

    def __init__(self, start_ms: float, moves: list[tuple[float, float]]) -> None:
        super().__init__(start_ms, 20, 200, adaptive=False)
        self.moves = sorted(moves)

    def update(self, now: float, pending_ms: float = 0.0) -> bool:
        if self.moves and now >= self.moves[0][0]:
            _, value = self.moves.pop(0)
            return self._set(value, now)
        return False


def reference_moves(sim: Sim) -> list[tuple[float, float]]:
    """(time, new reference) each time the reference moved."""
    ticks = sim.after_settle()
    return [
        (b.t, b.reference_ms)
        for a, b in itertools.pairwise(ticks)
        if a.reference_ms is not None
        and b.reference_ms is not None
        and abs(b.reference_ms - a.reference_ms) > 1
    ]


def time_to_follow(sim: Sim, since: float, tolerance_ms: float) -> float | None:
    """Seconds from ``since`` until both the depth and the smoothed level are within
    ``tolerance_ms`` of the reference (None: never)."""
    for tick in sim.after_settle(since):
        assert tick.reference_ms is not None
        if (
            abs(tick.depth_ms - tick.reference_ms) <= tolerance_ms
            and abs(tick.error_ms) <= tolerance_ms
        ):
            return tick.t - since
    return None


def dominant_hz(samples: npt.NDArray[np.float64], rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


# -- no drift: nothing is touched -----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["tone", "speech"])
def test_without_drift_the_output_is_bit_exact_and_nothing_is_corrected(kind: str) -> None:
    sim = Sim(signal_for(kind, 60)).finish()
    control, n = sim.control, len(sim.signal)
    played = sim.played()
    assert np.array_equal(played[:n], sim.signal)
    assert not played[n:].any()  # the drain tail
    assert not any(tick.engaged for tick in sim.ticks)
    assert control.adjusted_frames == 0
    assert control.drift_ppm == 0
    assert sim.buffer.control.drift_ppm == 0
    assert sim.buffer.control.drift_by == ""
    assert sim.buffer.stats().underruns == 0
    assert max(abs(tick.error_ms) for tick in sim.ticks) == 0


# -- +-1000 ppm: the level is held ----------------------------------------------------------------


@pytest.mark.parametrize("ppm", [1000, -1000])
@pytest.mark.parametrize(("kind", "by"), [("tone", "resampling"), ("speech", "pauses")])
def test_drift_is_corrected(kind: str, by: str, ppm: int) -> None:
    sim = Sim(signal_for(kind, 120), ppm).run()
    control, buffer = sim.control, sim.buffer
    started = next(i for i, tick in enumerate(sim.ticks) if tick.phase is Phase.PLAYING)
    assert buffer.stats().underruns == 0
    assert all(tick.phase is Phase.PLAYING for tick in sim.ticks[started:])
    assert max(abs(tick.error_ms) for tick in sim.ticks) <= 20
    settled = sim.after_settle()
    assert settled[-1].t > 119
    for tick in settled:
        assert tick.reference_ms is not None
        assert abs(tick.depth_ms - tick.reference_ms) <= 20, tick
    assert abs(control.drift_ppm - ppm) <= 100
    assert buffer.control.drift_ppm is not None
    assert abs(buffer.control.drift_ppm - ppm) <= 100
    assert control.engaged == (kind == "tone")
    assert buffer.control.drift_by == by
    if kind == "speech":
        # Quiet frames dropped when the sender is fast, inserted when it is slow.
        assert np.sign(control.adjusted_frames) == np.sign(ppm)
        assert abs(control.adjusted_frames) > 0.9 * 120 * RATE * abs(ppm) * 1e-6 - 20 * RATE / 1000
    else:
        assert control.adjusted_frames == 0


@pytest.mark.parametrize("ppm", [1000, -1000])
def test_without_drift_control_the_buffer_runs_dry_or_creeps(ppm: int) -> None:
    """What DriftControl is for: the same streams read straight from the buffer."""
    sim = Sim(signal_for("tone", 120), ppm, controlled=False).run()
    stats = sim.buffer.stats()
    underruns = stats.underruns
    if ppm < 0:
        # Running dry mid-stream is concealed first (the timeline kept), then an underrun.
        assert stats.concealed > 0
        assert underruns >= 1
    else:
        assert underruns == 0

        def depth_at(t: float) -> float:
            return float(np.mean([k.depth_ms for k in sim.ticks if t <= k.t < t + 1]))

        assert depth_at(118) - depth_at(3) >= 100


# -- pauses keep the audio bit-exact --------------------------------------------------------------


@pytest.mark.parametrize("ppm", [1000, -1000])
def test_pauses_leave_the_audible_audio_bit_exact(ppm: int) -> None:
    sim = Sim(speech_like(120), ppm).finish()
    assert not sim.control.engaged
    assert sim.control.adjusted_frames != 0
    out = sim.output()
    assert np.array_equal(loud_only(out), loud_only(sim.signal))
    # And the pauses were shortened or stretched, not the talk: the loud runs (bursts of
    # samples above QUIET_PEAK, split where quiet lasts more than a sine's zero crossing)
    # are the same runs.
    assert loud_runs(out) == loud_runs(sim.signal)


def loud_runs(samples: Samples) -> list[bytes]:
    loud = np.abs(samples.astype(np.int32)) > QUIET_PEAK
    edges = np.flatnonzero(np.diff(np.concatenate(([0], loud.view(np.int8), [0]))))
    runs: list[bytes] = []
    start = end = -1
    for begin, stop in zip(edges[::2], edges[1::2], strict=True):
        if runs and begin - end <= 10:  # a zero crossing of the 200 Hz tone, not a pause
            end = int(stop)
            runs[-1] = samples[start:end].tobytes()
            continue
        start, end = int(begin), int(stop)
        runs.append(samples[start:end].tobytes())
    return runs


# -- bursts are not drift -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["tone", "speech"])
def test_a_burst_is_played_whole_and_bit_exact(kind: str) -> None:
    """The seed's sender pushes at twice real time: 20 s of audio in 10 s, then the end."""
    sim = Sim(signal_for(kind, 20), speed=2.0)
    sim.run()
    assert sim.now == pytest.approx(10, abs=0.05)
    sim.finish()
    n = len(sim.signal)
    played = sim.played()
    assert np.array_equal(played[:n], sim.signal)
    assert not played[n:].any()
    assert not any(tick.engaged for tick in sim.ticks)
    assert sim.control.drift_ppm == 0
    assert sim.control.adjusted_frames == 0
    assert sim.buffer.control.drift_ppm is None
    assert sim.buffer.control.drift_by == ""
    stats = sim.buffer.stats()
    assert stats.underruns == 0
    assert stats.dropped == 0


# -- the switch to the resampler ------------------------------------------------------------------


def test_the_switch_to_the_resampler_is_seamless() -> None:
    sent = tone(440, 60)
    max_step = int(np.abs(np.diff(sent.astype(np.int32))).max())
    sim = Sim(sent, -1000).run()
    assert sim.control.engaged
    assert sim.buffer.stats().underruns == 0
    out = sim.output().astype(np.int32)
    switch = switch_index(sim)
    assert 5 * RATE < switch < 30 * RATE
    around = out[switch - RATE // 10 : switch + RATE // 10]
    assert np.abs(np.diff(around)).max() <= 1.5 * max_step
    assert np.abs(np.diff(out)).max() <= 1.5 * max_step
    # Up to the switch nothing was resampled: the output is the sent signal, late.
    lead = int(np.flatnonzero(out)[0]) - int(np.flatnonzero(sent)[0])
    assert np.array_equal(out[lead:switch], sent[: switch - lead])
    # What follows the switch continues the tone in phase, from the last sample played (the
    # first 5 ms: later the look-ahead's synthetic continuation drifts, then blends back).
    after = out[switch : switch + RATE // 200].astype(np.float64)
    expected = sent[switch - lead : switch - lead + RATE // 200].astype(np.float64)
    correlation = np.dot(after, expected) / np.sqrt(
        np.dot(after, after) * np.dot(expected, expected)
    )
    assert correlation > 0.99


# -- stereo at 48 kHz -----------------------------------------------------------------------------


def test_stereo_48k_stays_interleaved() -> None:
    rate, seconds = 48000, 60
    fmt = AudioFormat(rate, 2)
    sim = Sim(stereo(tone(440, seconds, rate), tone(1000, seconds, rate)), 1000, fmt=fmt).run()
    assert sim.control.engaged
    assert sim.buffer.stats().underruns == 0
    assert max(abs(tick.error_ms) for tick in sim.ticks) <= 20
    assert abs(sim.control.drift_ppm - 1000) <= 100
    frames = sim.output().reshape(-1, 2).astype(np.float64)
    last = frames[-10 * rate :]  # resampled throughout
    # Played 1000 ppm faster than sent: 440.44 Hz and 1001 Hz, each on its own channel.
    assert dominant_hz(last[:, 0], rate) == pytest.approx(440, abs=1)
    assert dominant_hz(last[:, 1], rate) == pytest.approx(1000, abs=2)
    for channel, other in ((0, 1000.0), (1, 440.0)):
        spectrum = np.abs(np.fft.rfft(last[:, channel] * np.hanning(len(last))))
        freqs = np.fft.rfftfreq(len(last), 1 / rate)
        leak = spectrum[np.abs(freqs - other) < 3].max()
        assert leak < 1e-3 * spectrum.max()


# -- a new stream ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["tone", "speech"])
def test_a_new_stream_resets_the_control(kind: str) -> None:
    sim = Sim(signal_for(kind, 60), -1000).run(until_s=30)
    control = sim.control
    if kind == "tone":
        assert control.engaged
    else:
        assert control.adjusted_frames < 0
    assert control.drift_ppm < 0
    sim.buffer.begin_stream(sim.fmt)  # the same format: the buffer plays on
    sim.read()
    assert not control.engaged
    assert control.adjusted_frames == 0
    assert control.drift_ppm == 0
    assert control.error_ms == 0
    assert sim.buffer.control.drift_ppm is None
    assert sim.buffer.control.drift_by == ""
    # The new stream settles afresh and is corrected again.
    sim.run()
    assert sim.buffer.stats().underruns == 0
    assert abs(control.drift_ppm + 1000) <= 150
    assert control.engaged == (kind == "tone")


# -- the target moves -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "within_s"),
    [
        ("speech", 2.0),  # the next pause (one comes every 2 s) does it
        ("tone", 10.0),  # GRACE_S, then the PI loop's time constant (about 10 s)
    ],
)
def test_the_depth_follows_target_moves(kind: str, within_s: float) -> None:
    latency = ScheduledTarget(START_MS, [(20.26, START_MS + 20), (40.26, START_MS)])
    sim = Sim(signal_for(kind, 60), latency=latency).run()
    moves = reference_moves(sim)
    assert len(moves) == 2
    for (t, _), scheduled in zip(moves, (20.26, 40.26), strict=True):
        assert scheduled - 1e-9 <= t < scheduled + PERIOD_S  # at the next read
    assert [round(ref - moves[0][1], 1) for _, ref in moves] == [0, -20]
    for t, _ in moves:
        took = time_to_follow(sim, t, 3.0)
        assert took is not None and took <= within_s, (t, took)
    assert sim.control.engaged == (kind == "tone")
    assert sim.buffer.stats().underruns == 0
    # Settled: within a few ms of the new reference 15 s after the move.
    assert all(abs(k.error_ms) <= 5 for k in sim.after_settle(35) if k.t < 40)
    assert all(abs(k.error_ms) <= 5 for k in sim.after_settle(55))


@pytest.mark.parametrize(("kind", "within_s"), [("speech", 2.0), ("tone", 25.0)])
def test_the_depth_follows_an_adaptive_target_down(kind: str, within_s: float) -> None:
    """A perfect network: the adaptive target comes down from 100 ms by a quarter of the spare
    slack at a time, once every CALM_S (from the first packet, then from each step): five
    steps in two minutes, each followed by the depth."""
    latency = LatencyTarget(100, 20, 200, adaptive=True)
    sim = Sim(signal_for(kind, 120), latency=latency).run()
    moves = reference_moves(sim)
    assert latency.lowerings == len(moves) == 5
    assert latency.raises == 0
    assert latency.target_ms < 60
    # Each step at the first update (every UPDATE_S, on a read) once CALM_S has passed: from
    # the first packet pushed while playing (at 100 ms), then from the step before.
    first_packet = 0.1
    assert CALM_S <= moves[0][0] - first_packet < CALM_S + UPDATE_S + PERIOD_S
    for (a, _), (b, _) in itertools.pairwise(moves):
        assert CALM_S <= b - a < CALM_S + UPDATE_S + PERIOD_S
    # Down every time.
    assert all(after < before for (_, before), (_, after) in itertools.pairwise(moves))
    for t, _ in moves:
        took = time_to_follow(sim, t, 3.0)
        assert took is not None and took <= within_s, (t, took)
    assert sim.buffer.stats().underruns == 0
    assert sim.buffer.stats().late_frames == 0


# -- jitter is not drift -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["tone", "speech"])
def test_a_jittery_network_alone_moves_nothing(kind: str) -> None:
    """+-30 ms of jitter (packets reordered) on clocks that agree, a target that covers it:
    the level wanders, but within the dead bands: nothing adjusted, played bit-exact."""
    signal = signal_for(kind, 60)
    fmt = AudioFormat(RATE, 1)
    now = [0.0]
    latency = LatencyTarget(120, 20, 200, adaptive=False)
    buffer = PlayoutBuffer(120, 120, 100, fmt, latency=latency, clock=lambda: now[0])
    control = DriftControl(buffer)
    buffer.begin_stream(fmt)
    packet, read_frames = round(RATE * PTIME_S), round(RATE * PERIOD_S)
    rng = np.random.default_rng(5)
    arrivals = sorted(
        (index * PTIME_S + 0.03 + rng.uniform(-0.03, 0.03), index)
        for index in range(len(signal) // packet)
    )
    out: list[bytes] = []
    reads = 0
    for at, index in arrivals:
        while reads * PERIOD_S < at:
            now[0] = reads * PERIOD_S
            out.append(control.read(read_frames))
            reads += 1
        now[0] = at
        payload = signal[index * packet : (index + 1) * packet].tobytes()
        buffer.push(Frame(index * packet, payload, fmt))
    buffer.end_stream()
    for _ in range(20):
        out.append(control.read(read_frames))
    played = np.frombuffer(b"".join(out), dtype=np.int16)
    start = int(np.flatnonzero(played)[0]) - int(np.flatnonzero(signal)[0])
    assert np.array_equal(played[start : start + len(signal)], signal)
    assert (control.adjusted_frames, control.engaged) == (0, False)
    stats = buffer.stats()
    assert (stats.late_frames, stats.concealed, stats.underruns) == (0, 0, 0)
    assert stats.reordered_frames > 100
