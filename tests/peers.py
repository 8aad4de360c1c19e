"""Independent RTP senders for interop tests: ffmpeg and GStreamer as subprocesses.

Each function sends ``pcm`` (s16le) to 127.0.0.1:``port`` in real time and returns when the
peer has finished, with the PCM a correct receiver plays: the same bytes for L16, the
reference decoding of the exact G.711 bytes the peer sent for PCMU and PCMA (ffmpeg decodes
them: encoders differ, decoders agree).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from child_output import ChildOutput

PEER_TIMEOUT_S = 120
BIND_TIMEOUT_S = 30.0
"""How long a peer may take to bind its port: a second usually; more on a loaded CI machine
(a fixed one-second sleep once sent before ffmpeg listened)."""


def need(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        pytest.skip(
            f"{program} is not installed (apt-get install ffmpeg gstreamer1.0-tools "
            "gstreamer1.0-plugins-base gstreamer1.0-plugins-good, or deploy/setup-dev.sh)"
        )
    return path


def udp_port_bound(port: int) -> bool:
    """Whether any socket of this machine is bound to UDP ``port`` (IPv4 or IPv6)."""
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        # "  sl  local_address rem_address ...": local_address is ADDRESS:PORT, both hex.
        if any(int(line.split()[1].rsplit(":", 1)[1], 16) == port for line in lines):
            return True
    return False


def wait_until_bound(process: subprocess.Popen[bytes] | subprocess.Popen[str], port: int) -> None:
    """Return once ``process`` (a receiving peer) has bound UDP ``port``; fail if it exits or
    takes longer than :data:`BIND_TIMEOUT_S`."""
    deadline = time.monotonic() + BIND_TIMEOUT_S
    while not udp_port_bound(port):
        if process.poll() is not None:
            raise AssertionError(f"the peer exited ({process.returncode}) before binding {port}")
        if time.monotonic() > deadline:
            raise AssertionError(f"the peer did not bind UDP port {port} in {BIND_TIMEOUT_S} s")
        time.sleep(0.02)


class GstReceiver:
    """``gst-launch-1.0 PIPELINE`` as a receiving peer, its output collected on a thread.

    :meth:`wait_playing` returns once gst-launch has set the pipeline PLAYING and ``port`` is
    bound (udpsrc binds its port in READY, before the pipeline plays). :meth:`stop` sends
    SIGINT to its process group: gst-launch (without ``-e``, which would wait for an EOS on
    every branch) stops the pipeline, and a filesink writes what it has.
    """

    PLAYING = "Setting pipeline to PLAYING"

    def __init__(self, pipeline: list[str]) -> None:
        self.process = subprocess.Popen(
            [need("gst-launch-1.0"), *pipeline],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # SIGINT to its group reaches gst-launch alone
        )
        self.output = ChildOutput(self.process)

    @property
    def lines(self) -> list[str]:
        return self.output.lines

    def wait_playing(self, port: int) -> None:
        if not self.output.wait_for(self.PLAYING, BIND_TIMEOUT_S):
            output = "\n".join(self.lines)
            raise AssertionError(f"GStreamer did not start playing:\n{output}")
        wait_until_bound(self.process, port)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=PEER_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.output.finish()


def run(command: list[str]) -> bytes:
    done = subprocess.run(command, capture_output=True, timeout=PEER_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise AssertionError(
            f"{command[0]} failed ({done.returncode}): {done.stderr.decode(errors='replace')}"
        )
    return done.stdout


def ffmpeg(*args: str) -> bytes:
    return run([need("ffmpeg"), "-hide_banner", "-loglevel", "error", "-nostdin", *args])


def g711_decode(codec: str, encoded: bytes, tmp: Path) -> bytes:
    """ffmpeg's decoding of mu-law (``"mulaw"``) or A-law (``"alaw"``) bytes to s16le."""
    path = tmp / f"reference.{codec}"
    path.write_bytes(encoded)
    return ffmpeg("-f", codec, "-ar", "8000", "-ac", "1", "-i", str(path), "-f", "s16le", "-")


def rtp_url(port: int) -> str:
    # RTCP to the same port (RFC 5761 style), so that the listener sees ffmpeg's reports and
    # its BYE; by default ffmpeg sends RTCP to port + 1.
    return f"rtp://127.0.0.1:{port}?rtcpport={port}"


def ffmpeg_l16(
    pcm: bytes, port: int, tmp: Path, *, rate: int = 8000, channels: int = 1,
    payload_type: int | None = None, first_seq: int | None = None,
) -> bytes:
    source = tmp / "source.raw"
    source.write_bytes(pcm)
    options = ["-payload_type", str(payload_type)] if payload_type is not None else []
    if first_seq is not None:
        options += ["-seq", str(first_seq)]
    ffmpeg(
        "-re", "-f", "s16le", "-ar", str(rate), "-ac", str(channels), "-i", str(source),
        "-c:a", "pcm_s16be", *options, "-rtpflags", "send_bye", "-f", "rtp", rtp_url(port),
    )
    return pcm


def ffmpeg_pcmu(pcm: bytes, port: int, tmp: Path) -> bytes:
    source = tmp / "source.raw"
    source.write_bytes(pcm)
    encoded = tmp / "sent.ul"
    ffmpeg("-f", "s16le", "-ar", "8000", "-ac", "1", "-i", str(source), "-f", "mulaw", str(encoded))
    ffmpeg(
        "-re", "-f", "mulaw", "-ar", "8000", "-ac", "1", "-i", str(encoded), "-c:a", "copy",
        "-rtpflags", "send_bye", "-f", "rtp", rtp_url(port),
    )
    return g711_decode("mulaw", encoded.read_bytes(), tmp)


def _gst_source(source: Path) -> list[str]:
    return [
        "filesrc", f"location={source}", "!", "rawaudioparse", "format=pcm",
        "pcm-format=s16le", "sample-rate=8000", "num-channels=1", "!",
    ]


def gstreamer_l16(pcm: bytes, port: int, tmp: Path) -> bytes:
    """GStreamer's rtpL16pay: payload type 96, packets as large as the MTU (about 87 ms)."""
    source = tmp / "source.raw"
    source.write_bytes(pcm)
    run([
        need("gst-launch-1.0"), "-q", *_gst_source(source), "audioconvert", "!",
        "audio/x-raw,format=S16BE", "!", "rtpL16pay", "!",
        "udpsink", "host=127.0.0.1", f"port={port}", "sync=true",
    ])
    return pcm


def gstreamer_pcma(pcm: bytes, port: int, tmp: Path) -> bytes:
    """GStreamer's alawenc and rtppcmapay (type 8); a tee keeps the A-law bytes it sent."""
    source = tmp / "source.raw"
    source.write_bytes(pcm)
    sent = tmp / "sent.al"
    run([
        need("gst-launch-1.0"), "-q", *_gst_source(source), "alawenc", "!", "tee", "name=t",
        "!", "queue", "!", "rtppcmapay", "!",
        "udpsink", "host=127.0.0.1", f"port={port}", "sync=true",
        "t.", "!", "queue", "!", "filesink", f"location={sent}",
    ])
    return g711_decode("alaw", sent.read_bytes(), tmp)
