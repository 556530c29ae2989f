"""Host side of the guest agent protocol: one JSON request per TCP connection."""

from __future__ import annotations

import base64
import contextlib
import json
import socket
from dataclasses import dataclass
from typing import Any


class GuestError(RuntimeError):
    """The guest agent could not be reached or refused a request."""


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    rc: int
    stdout: str
    stderr: str

    def check(self) -> Result:
        if self.rc != 0:
            raise GuestError(f"{' '.join(self.argv)} exited {self.rc}: {self.stderr.strip()}")
        return self

    def json(self) -> Any:
        return json.loads(self.stdout)


class GuestClient:
    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.port = port
        self.host = host

    def request(self, op: str, timeout: float = 330.0, **fields: Any) -> dict[str, Any]:
        payload = json.dumps({"op": op, **fields}).encode() + b"\n"
        try:
            with socket.create_connection((self.host, self.port), timeout=timeout) as conn:
                conn.sendall(payload)
                reply = conn.makefile("rb").readline()
        except OSError as exc:
            raise GuestError(f"guest agent on port {self.port} unreachable: {exc}") from exc
        if not reply:
            raise GuestError(f"guest agent on port {self.port} closed the connection during {op}")
        answer: dict[str, Any] = json.loads(reply)
        if not answer.get("ok"):
            raise GuestError(f"guest agent refused {op}: {answer.get('error')}")
        return answer

    def ping(self, timeout: float = 2.0) -> bool:
        try:
            return bool(self.request("ping", timeout=timeout).get("pong"))
        except GuestError:
            return False

    def run(
        self,
        argv: list[str],
        timeout: float = 300.0,
        stdin: bytes | None = None,
        env: dict[str, str] | None = None,
    ) -> Result:
        answer = self.request(
            "run",
            timeout=timeout + 30,
            argv=argv,
            timeout_s=timeout,
            stdin=base64.b64encode(stdin).decode() if stdin else "",
            env=env or {},
        )
        return Result(
            argv=tuple(argv),
            rc=int(answer["rc"]),
            stdout=base64.b64decode(answer["stdout"]).decode(errors="replace"),
            stderr=base64.b64decode(answer["stderr"]).decode(errors="replace"),
        )

    def put(self, path: str, data: bytes, mode: int = 0o644) -> None:
        self.request("put", path=path, data=base64.b64encode(data).decode(), mode=mode)

    def get(self, path: str) -> bytes:
        return base64.b64decode(self.request("get", path=path)["data"])

    def spawn(self, argv: list[str], log: str, env: dict[str, str] | None = None) -> int:
        return int(self.request("spawn", argv=argv, log=log, env=env or {})["pid"])

    def signal(self, pid: int, signum: int, wait: float = 0.0) -> tuple[bool, int | None]:
        answer = self.request("signal", pid=pid, signal=signum, wait=wait, timeout=wait + 30)
        return bool(answer["alive"]), answer.get("rc")

    def poweroff(self) -> None:
        # The machine may die before it answers: that is the point.
        with contextlib.suppress(GuestError):
            self.request("poweroff", timeout=10)
