"""Crash points in the node VM, with no hook in the plugin: stand-ins for the commands it runs.

Each stand-in sits first on the plugin's ``PATH``. Unarmed, it runs the real command. Armed (a file
named after the command in ARMED_DIR, holding an argv substring that must match, or nothing for any
call), it kills its parent, the plugin, with SIGKILL before the real command runs, and disarms
itself. So a test can kill the plugin exactly between two steps of an operation: after every
command before the armed one, before the armed one. Armed with ``skip`` too (a second file: how many
matching calls to let through first), it kills at a later matching call: the second ``lvs`` of an LV,
say, when the first comes before the step and the second after it.

The parent may be the plugin or the node agent (``localcsi agent``, cluster mode, whose LogicalVolume
reconciler runs the same lvm2 commands): anything that runs them itself and can be started again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import grpc

from localcsi.testing.vm import NodeVM
from localcsi.testing.waiting import wait_for

SHIM_DIR = "/opt/localcsi-crash"
ARMED_DIR = "/run/localcsi-crash"
GUEST_PATH = f"{SHIM_DIR}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def shim(shim_dir: str = SHIM_DIR, armed_dir: str = ARMED_DIR) -> str:
    """The stand-in's script (a parameter for each directory, so that a unit test can run it elsewhere)."""
    return f"""#!/usr/bin/python3
import os, signal, sys
name = os.path.basename(sys.argv[0])
armed = os.path.join({armed_dir!r}, name)
if os.path.exists(armed):
    with open(armed) as f:
        wanted = f.read()
    if wanted in " ".join(sys.argv[1:]):
        skip = armed + ".skip"
        left = int(open(skip).read()) if os.path.exists(skip) else 0
        if left > 0:
            with open(skip, "w") as f:
                f.write(str(left - 1))
        else:
            for path in (skip, armed):
                if os.path.exists(path):
                    os.unlink(path)
            os.kill(os.getppid(), signal.SIGKILL)
            sys.exit(137)
for directory in os.environ["PATH"].split(":"):
    real = os.path.join(directory, name)
    if directory != {shim_dir!r} and os.access(real, os.X_OK):
        os.execv(real, [name, *sys.argv[1:]])
sys.exit(127)
"""


SHIM = shim()


def install(vm: NodeVM, commands: Iterable[str]) -> dict[str, str]:
    """Put stand-ins for ``commands`` in the VM; returns the environment to start the plugin with."""
    for name in commands:
        vm.guest.put(f"{SHIM_DIR}/{name}", SHIM.encode(), mode=0o755)
    vm.check(["mkdir", "-p", ARMED_DIR])
    return {"PATH": GUEST_PATH}


class Restartable(Protocol):
    """A process in the VM that runs the commands: the plugin (GuestPlugin) or the agent."""

    vm: NodeVM
    pid: int | None

    def start(self) -> object: ...
    def kill(self) -> object: ...
    def logs(self) -> str: ...


def arm(vm: NodeVM, command: str, matching: str = "", skip: int = 0) -> None:
    """Kill at the first call of ``command`` whose argv holds ``matching``, after ``skip`` such calls."""
    if skip:
        vm.guest.put(f"{ARMED_DIR}/{command}.skip", str(skip).encode())
    vm.guest.put(f"{ARMED_DIR}/{command}", matching.encode())


def is_armed(vm: NodeVM, command: str) -> bool:
    return vm.run(["test", "-e", f"{ARMED_DIR}/{command}"]).rc == 0


def crash_at(
    plugin: Restartable,
    command: str,
    call: Callable[[], object],
    matching: str = "",
    *,
    skip: int = 0,
    within: float = 10.0,
    on_dead: Callable[[], object] | None = None,
) -> None:
    """Arm ``command``, make the call, see the process die there (within ``within`` seconds of the
    call's end), and start it again. The call must fail: the process that would answer it is dead (the
    plugin), or what it waits for is (the controller waiting for the agent: DEADLINE_EXCEEDED)."""
    arm(plugin.vm, command, matching, skip)
    try:
        call()
    except grpc.RpcError:
        pass
    else:
        raise AssertionError(f"the call completed: it never ran `{command}` with {matching!r}")

    # The connection drops as the process exits, a moment before it can be reaped: look for a while.
    def dead() -> bool:
        return not plugin.vm.guest.signal(plugin.pid or 0, 0)[0]

    wait_for(f"the process dead at the crash point at {command}", dead, within, 0.2, plugin.logs)
    if is_armed(plugin.vm, command):
        raise AssertionError(f"the call failed before it reached `{command}`:\n{plugin.logs()}")
    plugin.kill()  # reap it
    if on_dead is not None:
        on_dead()
    plugin.start()


@dataclass(frozen=True)
class Source:
    """A volume the crash matrices restore and clone from: its id, its snapshot's, its data's digest."""

    volume_id: str
    snapshot_id: str
    digest: str
