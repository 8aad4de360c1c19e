"""A child process's output, collected on a thread: for peers and benchmarks that start a
program (GStreamer, the listener) and wait for a line saying it is ready."""

from __future__ import annotations

import subprocess
import threading
import time


class ChildOutput:
    """Collects a child's merged stdout/stderr on a thread (so its pipe never fills) and tells
    when a line containing ``marker`` has appeared."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, marker: str, timeout: float) -> bool:
        """Whether a line containing ``marker`` appeared within ``timeout`` seconds (False at
        once when the child has exited and all its output is read)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not any(marker in line for line in self.lines):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.process.poll() is not None and self._done()):
                    return False
                self._changed.wait(min(remaining, 0.2))
            return True

    def _done(self) -> bool:
        return not self._thread.is_alive()

    def finish(self) -> list[str]:
        """Every line, once the child's output has ended (waits up to 5 s for it)."""
        self._thread.join(timeout=5)
        return self.lines
