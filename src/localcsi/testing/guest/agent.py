"""Guest side of the node VM harness: runs as the last step of the guest's init.

One JSON request per TCP connection, answered with one JSON line. It runs argv lists
(never a shell), moves files in and out, starts background processes and powers the
machine off. It only listens inside the VM; qemu forwards one host loopback port to it.
"""

from __future__ import annotations

import base64
import ctypes
import json
import os
import socketserver
import subprocess
import sys
from typing import Any

PORT = 7000
LINUX_REBOOT_CMD_POWER_OFF = 0x4321FEDC


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _run(req: dict[str, Any]) -> dict[str, Any]:
    env = dict(os.environ)
    env.update(req.get("env") or {})
    stdin = base64.b64decode(req["stdin"]) if req.get("stdin") else None
    try:
        proc = subprocess.run(
            req["argv"],
            input=stdin,
            capture_output=True,
            timeout=float(req.get("timeout_s", 300)),
            env=env,
            cwd=req.get("cwd") or "/",
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        return {"rc": 124, "stdout": _b64(exc.stdout or b""), "stderr": _b64(b"timed out\n")}
    except OSError as exc:
        return {"rc": 127, "stdout": "", "stderr": _b64(f"{exc}\n".encode())}
    return {"rc": proc.returncode, "stdout": _b64(proc.stdout), "stderr": _b64(proc.stderr)}


SPAWNED: dict[int, subprocess.Popen[bytes]] = {}


def _spawn(req: dict[str, Any]) -> dict[str, Any]:
    env = dict(os.environ)
    env.update(req.get("env") or {})
    with open(req["log"], "ab") as log:
        proc = subprocess.Popen(
            req["argv"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=req.get("cwd") or "/",
            start_new_session=True,
        )
    SPAWNED[proc.pid] = proc
    return {"pid": proc.pid}


def _signal(req: dict[str, Any]) -> dict[str, Any]:
    """Send a signal (0 just probes); reports whether the process still runs and its exit code."""
    pid = int(req["pid"])
    proc = SPAWNED.get(pid)
    if proc is not None and proc.poll() is not None:
        return {"alive": False, "rc": proc.returncode}
    try:
        os.kill(pid, int(req["signal"]))
    except ProcessLookupError:
        return {"alive": False, "rc": None}
    if req.get("wait") and proc is not None:
        try:
            return {"alive": False, "rc": proc.wait(timeout=float(req["wait"]))}
        except subprocess.TimeoutExpired:
            pass
    return {"alive": True, "rc": None}


def _put(req: dict[str, Any]) -> dict[str, Any]:
    path = req["path"]
    os.makedirs(os.path.dirname(path) or "/", exist_ok=True)
    with open(path, "wb") as f:
        f.write(base64.b64decode(req["data"]))
    os.chmod(path, int(req.get("mode", 0o644)))
    return {}


def _get(req: dict[str, Any]) -> dict[str, Any]:
    with open(req["path"], "rb") as f:
        return {"data": _b64(f.read())}


def _poweroff(_: dict[str, Any]) -> dict[str, Any]:
    os.sync()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.reboot(LINUX_REBOOT_CMD_POWER_OFF)
    return {}


HANDLERS = {
    "ping": lambda req: {"pong": True},
    "run": _run,
    "spawn": _spawn,
    "signal": _signal,
    "put": _put,
    "get": _get,
    "poweroff": _poweroff,
}


class Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        line = self.rfile.readline()
        try:
            req = json.loads(line)
            reply = HANDLERS[req["op"]](req)
            reply["ok"] = True
        except Exception as exc:  # every failure goes back to the caller
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        self.wfile.write(json.dumps(reply).encode() + b"\n")


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main() -> None:
    with Server(("0.0.0.0", PORT), Handler) as server:  # noqa: S104 - inside the VM only
        print(f"localcsi-guest-agent listening on {PORT}", file=sys.stderr, flush=True)
        server.serve_forever()


if __name__ == "__main__":
    main()
