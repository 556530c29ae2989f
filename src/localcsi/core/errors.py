"""Core errors. Each maps 1:1 to a gRPC status code through its ``code`` name.

The gRPC layer translates with ``grpc.StatusCode[err.code]``; the core itself never imports grpc.
Messages say what failed and what to do about it.
"""

from __future__ import annotations


class CoreError(Exception):
    """Base of every error the core raises on purpose."""

    code = "UNKNOWN"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(CoreError):
    code = "INVALID_ARGUMENT"


class NotFound(CoreError):
    code = "NOT_FOUND"


class AlreadyExists(CoreError):
    code = "ALREADY_EXISTS"


class ResourceExhausted(CoreError):
    code = "RESOURCE_EXHAUSTED"


class FailedPrecondition(CoreError):
    code = "FAILED_PRECONDITION"


class OutOfRange(CoreError):
    code = "OUT_OF_RANGE"


class Aborted(CoreError):
    code = "ABORTED"


class Unavailable(CoreError):
    code = "UNAVAILABLE"


class Internal(CoreError):
    code = "INTERNAL"


class DeadlineExceeded(CoreError):
    """The work was not finished in time but may still be under way: the caller retries the same request."""

    code = "DEADLINE_EXCEEDED"


ALL_ERRORS: tuple[type[CoreError], ...] = (
    InvalidArgument,
    NotFound,
    AlreadyExists,
    ResourceExhausted,
    FailedPrecondition,
    OutOfRange,
    Aborted,
    Unavailable,
    Internal,
    DeadlineExceeded,
)
