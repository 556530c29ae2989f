"""Crash points in the node VM, with no hook in the plugin: stand-ins for the commands it runs.

Each stand-in sits first on the plugin's ``PATH``. Unarmed, it runs the real command. Armed (a file
named after the command in ARMED_DIR, holding an argv substring that must match, or nothing for any
call), it kills its parent, the plugin, with SIGKILL before the real command runs, and disarms
itself. So a test can kill the plugin exactly between two steps of an operation: after every
command before the armed one, before the armed one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import grpc

from localcsi.testing.guest_plugin import GuestPlugin
from localcsi.testing.vm import NodeVM
from localcsi.testing.waiting import wait_for

SHIM_DIR = "/opt/localcsi-crash"
ARMED_DIR = "/run/localcsi-crash"
GUEST_PATH = f"{SHIM_DIR}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SHIM = f"""#!/usr/bin/python3
import os, signal, sys
name = os.path.basename(sys.argv[0])
armed = os.path.join({ARMED_DIR!r}, name)
if os.path.exists(armed):
    with open(armed) as f:
        wanted = f.read()
    if wanted in " ".join(sys.argv[1:]):
        os.unlink(armed)
        os.kill(os.getppid(), signal.SIGKILL)
        sys.exit(137)
for directory in os.environ["PATH"].split(":"):
    real = os.path.join(directory, name)
    if directory != {SHIM_DIR!r} and os.access(real, os.X_OK):
        os.execv(real, [name, *sys.argv[1:]])
sys.exit(127)
"""


def install(vm: NodeVM, commands: Iterable[str]) -> dict[str, str]:
    """Put stand-ins for ``commands`` in the VM; returns the environment to start the plugin with."""
    for name in commands:
        vm.guest.put(f"{SHIM_DIR}/{name}", SHIM.encode(), mode=0o755)
    vm.check(["mkdir", "-p", ARMED_DIR])
    return {"PATH": GUEST_PATH}


def arm(vm: NodeVM, command: str, matching: str = "") -> None:
    vm.guest.put(f"{ARMED_DIR}/{command}", matching.encode())


def is_armed(vm: NodeVM, command: str) -> bool:
    return vm.run(["test", "-e", f"{ARMED_DIR}/{command}"]).rc == 0


def crash_at(plugin: GuestPlugin, command: str, call: Callable[[], object], matching: str = "") -> None:
    """Arm ``command``, make the call, see the plugin die there, and start it again."""
    arm(plugin.vm, command, matching)
    try:
        call()
    except grpc.RpcError:
        pass
    else:
        raise AssertionError(f"the call completed: it never ran `{command}` with {matching!r}")

    # The connection drops as the process exits, a moment before it can be reaped: look for a while.
    def dead() -> bool:
        return not plugin.vm.guest.signal(plugin.pid or 0, 0)[0]

    wait_for(f"the plugin dead at the crash point at {command}", dead, 10, 0.2, plugin.logs)
    if is_armed(plugin.vm, command):
        raise AssertionError(f"the call failed before it reached `{command}`:\n{plugin.logs()}")
    plugin.kill()  # reap it
    plugin.start()
