"""Runs `localcsi plugin` inside the node VM, and talks CSI to it from the host.

A tcp endpoint forwarded to the host's loopback lets host-side tests and the demo use the
generated gRPC stubs directly; a unix endpoint is what csi-sanity and kubelet use in the guest.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from typing import Any

import grpc

from localcsi.csi import services
from localcsi.testing.guest_client import GuestError
from localcsi.testing.install import GUEST_LAUNCHER
from localcsi.testing.vm import NodeVM

PLUGIN_TCP_PORT = 10000
UNIX_ENDPOINT = "unix:///run/localcsi/csi.sock"
LOG = "/var/log/localcsi-plugin.log"


@dataclass
class GuestPlugin:
    vm: NodeVM
    node_id: str = "node-1"
    endpoint: str = f"tcp://0.0.0.0:{PLUGIN_TCP_PORT}"
    extra_args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)  # added to the guest agent's environment
    pid: int | None = field(default=None, init=False)
    _channel: grpc.Channel | None = field(default=None, init=False)

    def argv(self) -> list[str]:
        base = [GUEST_LAUNCHER, "--log-format", "text", "--log-level", "debug", "plugin"]
        return [
            *base,
            "--mode",
            "standalone",
            "--endpoint",
            self.endpoint,
            "--node-id",
            self.node_id,
            *self.extra_args,
        ]

    def start(self, timeout: float = 60.0) -> GuestPlugin:
        self.pid = self.vm.guest.spawn(self.argv(), log=LOG, env=self.env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            alive, rc = self.vm.guest.signal(self.pid, 0)
            if not alive:
                raise GuestError(f"plugin exited with {rc} at start:\n{self.logs()}")
            if self._listening():
                return self
            time.sleep(0.3)
        raise GuestError(f"plugin not listening on {self.endpoint} after {timeout:.0f}s:\n{self.logs()}")

    def _listening(self) -> bool:
        if self.endpoint.startswith("unix://"):
            return self.vm.run(["test", "-S", self.endpoint.removeprefix("unix://")]).rc == 0
        port = self.endpoint.rpartition(":")[2]
        return self.vm.run(["ss", "-Htln", f"sport = :{port}"]).stdout.strip() != ""

    def kill(self, signum: int = signal.SIGKILL, wait: float = 30.0) -> int | None:
        assert self.pid is not None, "plugin not started"
        _, rc = self.vm.guest.signal(self.pid, signum, wait=wait)
        self.pid = None
        self.close_channel()
        return rc

    def stop(self) -> int | None:
        return self.kill(signal.SIGTERM) if self.pid is not None else None

    def logs(self, tail: int = 6000) -> str:
        result = self.vm.run(["tail", "-c", str(tail), LOG])
        return result.stdout if result.rc == 0 else f"(no log: {result.stderr.strip()})"

    # -- host-side CSI client over the forwarded tcp port -------------------------------------
    def channel(self) -> grpc.Channel:
        if self._channel is None:
            port = self.vm.host_port(PLUGIN_TCP_PORT)
            self._channel = grpc.insecure_channel(f"127.0.0.1:{port}")
            grpc.channel_ready_future(self._channel).result(timeout=30)
        return self._channel

    def close_channel(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    @property
    def identity(self) -> Any:
        return services.identity_stub(self.channel())

    @property
    def controller(self) -> Any:
        return services.controller_stub(self.channel())

    @property
    def node(self) -> Any:
        return services.node_stub(self.channel())
