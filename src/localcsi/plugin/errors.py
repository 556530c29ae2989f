"""Core errors become gRPC status codes here, and nowhere else."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import NoReturn, TypeVar

import grpc

from localcsi.core.errors import CoreError

log = logging.getLogger(__name__)

Request = TypeVar("Request")
Response = TypeVar("Response")
Servicer = TypeVar("Servicer")
Method = Callable[[Servicer, Request, grpc.ServicerContext], Response]


class Unimplemented(CoreError):
    """An RPC this driver does not offer (a gRPC notion: the core never raises it)."""

    code = "UNIMPLEMENTED"


# gRPC sends the message percent-encoded in the grpc-message trailer, and clients refuse trailers over 16 KiB
# (8 KiB may already be refused): a message echoing a 1 MB field would reach the client as a transport
# RESOURCE_EXHAUSTED with the real code and reason lost.
MAX_MESSAGE_WIRE_BYTES = 4096


def _wire_bytes(char: str) -> int:
    return sum(1 if 0x20 <= byte <= 0x7E and byte != 0x25 else 3 for byte in char.encode("utf-8", "replace"))


def bounded_message(message: str, limit: int = MAX_MESSAGE_WIRE_BYTES) -> str:
    """The message, cut so that its percent-encoded form stays within limit bytes."""
    if len(message) * 12 <= limit or sum(map(_wire_bytes, message)) <= limit:
        return message
    budget = limit - 64  # room for the note on what was cut
    kept = 0
    for index, char in enumerate(message):
        kept += _wire_bytes(char)
        if kept > budget:
            return f"{message[:index]}... ({len(message) - index} more characters not shown)"
    return message


def abort(context: grpc.ServicerContext, error: CoreError) -> NoReturn:
    context.abort(grpc.StatusCode[error.code], bounded_message(error.message))
    raise AssertionError("grpc context.abort returned")  # it always raises


def translate_errors(method: Method[Servicer, Request, Response]) -> Method[Servicer, Request, Response]:
    """Wrap a servicer method: CoreError -> its status code; anything unexpected -> INTERNAL, logged.

    Servicer methods raise CoreError and never call context.abort themselves.
    """

    @functools.wraps(method)
    def wrapper(self: Servicer, request: Request, context: grpc.ServicerContext) -> Response:
        try:
            return method(self, request, context)
        except CoreError as error:
            log.info("%s failed: %s: %s", method.__name__, error.code, error.message)
            abort(context, error)
        except Exception as error:
            log.exception("%s failed unexpectedly", method.__name__)
            context.abort(
                grpc.StatusCode.INTERNAL, bounded_message(f"{method.__name__}: {type(error).__name__}: {error}")
            )
            raise

    return wrapper
