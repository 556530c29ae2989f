"""CSI calls made as the sidecars make them: again after ABORTED (an operation on the same volume is
still running) and after DEADLINE_EXCEEDED (the controller stopped waiting for the agent, which goes
on), until a budget runs out.

In cluster mode the controller waits a bounded time for the agent's LogicalVolume, then answers
DEADLINE_EXCEEDED and leaves the resource in place, so the sidecars' retry is what finishes a slow
operation. The cluster tier's agent runs in a VM that, beside the e2e tier in CI, gets a small share
of the host's CPU (in a rerun of stop 22's failing CI step: a Device create took 15 s, a restore 101 s
after its kill), so a test that wants the operation's outcome, not the timeout, calls through here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import grpc

RETRIED = frozenset({grpc.StatusCode.ABORTED, grpc.StatusCode.DEADLINE_EXCEEDED})
BUDGET = 600.0  # seconds over all attempts
CALL_TIMEOUT = 90.0  # each attempt's gRPC deadline, above the controller's wait for the agent

Response = TypeVar("Response")


def call_retrying(
    method: Callable[..., Response],
    request: Any,
    budget: float = BUDGET,
    call_timeout: float = CALL_TIMEOUT,
    pause: float = 1.0,
) -> Response:
    """``method(request)`` until it answers anything but ABORTED or DEADLINE_EXCEEDED, or ``budget``
    seconds have passed (then the last error is raised)."""
    deadline = time.monotonic() + budget
    while True:
        try:
            return method(request, timeout=call_timeout)
        except grpc.RpcError as error:
            if error.code() not in RETRIED or time.monotonic() > deadline:
                raise
        time.sleep(pause)
