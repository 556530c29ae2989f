"""Running commands: argv lists only (never a shell), a timeout, captured output, typed failures.

In a container, ``nsenter=True`` runs the host's binaries in PID 1's namespaces, so lvm2 sees the
host's /run/lock/lvm, udev and device nodes instead of a diverging copy inside the container.

Every command's duration and failure is counted by program name (``localcsi.metrics.commands``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from localcsi.core.errors import Internal, Unavailable
from localcsi.metrics.commands import COMMANDS, Outcome

NSENTER_PREFIX = ("nsenter", "--target", "1", "--mount", "--uts", "--ipc", "--net", "--pid", "--")
# LC_ALL=C keeps lvm2's messages in English, which error translation matches on. lvm2 warns about
# every inherited file descriptor unless told not to.
COMMAND_ENV = {"LC_ALL": "C", "LVM_SUPPRESS_FD_WARNINGS": "1"}
DEFAULT_TIMEOUT = 120.0
_STDERR_IN_MESSAGE = 2000


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float


class CommandFailed(Internal):
    """A command exited non-zero. Carries argv, the exit status and stderr."""

    def __init__(self, argv: Sequence[str], returncode: int, stderr: str, stdout: str = "") -> None:
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stderr = stderr
        self.stdout = stdout
        detail = stderr.strip()[-_STDERR_IN_MESSAGE:] or "(no output on stderr)"
        super().__init__(f"`{' '.join(self.argv)}` failed with exit status {returncode}: {detail}")


class CommandTimedOut(Unavailable):
    def __init__(self, argv: Sequence[str], timeout: float) -> None:
        self.argv = tuple(argv)
        self.timeout = timeout
        super().__init__(
            f"`{' '.join(self.argv)}` did not finish within {timeout:g}s and was killed; "
            "check for a stuck device or lock, then retry"
        )


class CommandRunner(Protocol):
    def run(self, argv: Sequence[str], *, timeout: float | None = None) -> CommandResult:
        """Run ``argv``; raise CommandFailed on a non-zero exit, CommandTimedOut on a timeout."""
        ...


def _kill_group(proc: subprocess.Popen[str]) -> None:
    # nsenter --pid forks; killing only nsenter would leave the real command running.
    if proc.pid > 0:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    else:
        proc.kill()


class SubprocessRunner:
    def __init__(
        self,
        *,
        nsenter: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.nsenter = nsenter
        self.timeout = timeout
        self.env = {**os.environ, **COMMAND_ENV, **(extra_env or {})}

    def full_argv(self, argv: Sequence[str]) -> tuple[str, ...]:
        # A str is a Sequence too: "lvs -a" would run as the characters l, v, s...
        if isinstance(argv, str) or not argv or any(not isinstance(arg, str) for arg in argv):
            raise TypeError(f"argv must be a non-empty sequence of strings, got {argv!r}")
        return (*NSENTER_PREFIX, *argv) if self.nsenter else tuple(argv)

    def run(self, argv: Sequence[str], *, timeout: float | None = None) -> CommandResult:
        full = self.full_argv(argv)
        limit = self.timeout if timeout is None else timeout
        started = time.monotonic()
        try:
            proc = subprocess.Popen(
                full,
                stdin=subprocess.DEVNULL,  # a prompt must never wait for an answer
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                encoding="utf-8",
                errors="replace",
                env=self.env,
                start_new_session=True,
            )
        except OSError as exc:
            COMMANDS.observe(full, time.monotonic() - started, Outcome.EXEC)
            raise CommandFailed(full, 127, f"cannot execute {full[0]}: {exc.strerror or exc}") from exc
        try:
            stdout, stderr = proc.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.communicate()
            COMMANDS.observe(full, time.monotonic() - started, Outcome.TIMEOUT)
            raise CommandTimedOut(full, limit) from None
        result = CommandResult(full, proc.returncode, stdout or "", stderr or "", time.monotonic() - started)
        COMMANDS.observe(full, result.seconds, Outcome.OK if result.returncode == 0 else Outcome.EXIT)
        if result.returncode != 0:
            raise CommandFailed(full, result.returncode, result.stderr, result.stdout)
        return result
