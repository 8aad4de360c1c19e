"""Run the real ``appliance`` command line in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOOPBACK_CONFIG = REPO / "tests" / "data" / "loopback.toml"
LOOPBACK = ("--config", str(LOOPBACK_CONFIG))
"""``listen`` options for tests: UDP and mDNS on 127.0.0.1 only, no GPIO."""


def appliance_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def run_appliance(
    *args: str,
    timeout: float = 60,
    input: bytes | None = None,
    cwd: Path | None = None,
    **env: str,
) -> subprocess.CompletedProcess[str]:
    """Run ``appliance ARGS``; ``input`` is fed as bytes, the output comes back as text."""
    result = subprocess.run(
        [sys.executable, "-m", "appliance", *args],
        env=appliance_env(**env),
        input=input if input is not None else b"",
        capture_output=True,
        timeout=timeout,
        check=False,
        cwd=cwd,
    )
    return subprocess.CompletedProcess(
        result.args, result.returncode, result.stdout.decode(), result.stderr.decode()
    )


@contextmanager
def listening_once(*args: str, ready_line: str = "listening on") -> Iterator[ListenerRun]:
    """``appliance listen --once`` with the loopback configuration, running until the block
    ends; yields once its log says ``ready_line``. The log is in ``.log`` afterwards."""
    process = start_appliance("listen", *LOOPBACK, "--once", *args)
    run = ListenerRun(process)
    try:
        assert process.stderr is not None
        for line in process.stderr:
            run.log += line
            if ready_line in line:
                break
        yield run
        _, rest = process.communicate(timeout=60)
        run.log += rest
    finally:
        process.kill()
        process.wait()


@dataclass
class ListenerRun:
    process: subprocess.Popen[str]
    log: str = ""

    @property
    def returncode(self) -> int | None:
        return self.process.returncode


def start_appliance(*args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "appliance", *args],
        env=appliance_env(**env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
