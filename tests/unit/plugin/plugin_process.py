"""`localcsi plugin` as a real process in the plugin's unit tests: started, waited for, stopped cleanly."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PLUGIN = [sys.executable, "-m", "localcsi", "plugin"]


@contextmanager
def running(args: list[str]) -> Iterator[subprocess.Popen[str]]:
    """``localcsi plugin ARGS``, killed on the way out if a failed assertion left it running."""
    proc = subprocess.Popen([*PLUGIN, *args], stderr=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def stop(proc: subprocess.Popen[str], signum: int = signal.SIGTERM) -> str:
    """Signal the plugin, wait for it to exit, and return what it logged."""
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=30)
    return stderr


def wait_for_socket(path: Path, proc: subprocess.Popen[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return
        assert proc.poll() is None, f"plugin exited early: {proc.communicate()[1]}"
        time.sleep(0.05)
    raise AssertionError(f"no socket at {path} after {timeout}s")
