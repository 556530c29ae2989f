"""A stand-in for grpc.ServicerContext in servicer unit tests: records the status it aborts with."""

from __future__ import annotations

from typing import NoReturn

import grpc


class ContextAborted(Exception):
    """Raised by FakeContext.abort, as grpc's real context raises to end the call."""


class FakeContext:
    def __init__(self) -> None:
        self.code: grpc.StatusCode | None = None
        self.details = ""

    def abort(self, code: grpc.StatusCode, details: str) -> NoReturn:
        self.code, self.details = code, details
        raise ContextAborted(details)
