"""A CommandRunner that runs each argv inside the node VM: the host-side Lvm adapter drives real lvm2."""

from __future__ import annotations

import time
from collections.abc import Sequence

from localcsi.lvm.runner import COMMAND_ENV, CommandFailed, CommandResult, CommandTimedOut
from localcsi.testing.vm import NodeVM

# The guest agent hands a command the console as stdin; a prompt would wait on it forever.
# "$@" passes argv through untouched: no word of it is interpreted by the shell.
_NO_STDIN = ["sh", "-c", 'exec "$@" </dev/null', "sh"]


class GuestRunner:
    def __init__(self, vm: NodeVM, timeout: float = 120.0) -> None:
        self.vm = vm
        self.timeout = timeout
        self.commands: list[tuple[str, ...]] = []

    def run(self, argv: Sequence[str], *, timeout: float | None = None) -> CommandResult:
        limit = self.timeout if timeout is None else timeout
        started = time.monotonic()
        self.commands.append(tuple(argv))
        result = self.vm.run([*_NO_STDIN, *argv], timeout=limit, env=dict(COMMAND_ENV))
        if result.rc == 124 and time.monotonic() - started >= limit:
            raise CommandTimedOut(argv, limit)
        if result.rc != 0:
            raise CommandFailed(argv, result.rc, result.stderr, result.stdout)
        return CommandResult(tuple(argv), result.rc, result.stdout, result.stderr, time.monotonic() - started)
