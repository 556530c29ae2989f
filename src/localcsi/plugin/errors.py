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


def abort(context: grpc.ServicerContext, error: CoreError) -> NoReturn:
    context.abort(grpc.StatusCode[error.code], error.message)
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
            context.abort(grpc.StatusCode.INTERNAL, f"{method.__name__}: {type(error).__name__}: {error}")
            raise

    return wrapper
