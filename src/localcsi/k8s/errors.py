"""The client's ApiException as typed errors carrying the apiserver's own message."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from kubernetes.client.exceptions import ApiException

P = ParamSpec("P")
R = TypeVar("R")


class KubeError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class Conflict(KubeError):
    """409 Conflict: the object changed since it was read (stale resourceVersion)."""


class AlreadyExists(KubeError):
    pass


class NotFound(KubeError):
    pass


class Invalid(KubeError):
    """422: the apiserver's validation (schema, CEL) rejected the object."""


class Forbidden(KubeError):
    pass


class Gone(KubeError):
    """410: the resourceVersion of a watch is too old; list again."""


_BY_STATUS: dict[int, type[KubeError]] = {404: NotFound, 422: Invalid, 403: Forbidden, 410: Gone}


def translate(error: ApiException) -> KubeError:
    status = int(error.status or 0)
    reason = str(error.reason or "")
    message = reason
    try:
        body = json.loads(error.body or "{}")
    except (TypeError, ValueError):
        body = {}
    if isinstance(body, dict):
        message = str(body.get("message") or message)
        reason = str(body.get("reason") or reason)
    return error_from_status({"code": status, "reason": reason, "message": message})


def error_from_status(status: dict[str, Any]) -> KubeError:
    """The error a metav1.Status describes (as a watch's ERROR event carries it)."""
    code = int(status.get("code") or 0)
    reason, message = str(status.get("reason") or ""), str(status.get("message") or "")
    if code == 409:
        return (AlreadyExists if reason == "AlreadyExists" else Conflict)(code, reason, message)
    return _BY_STATUS.get(code, KubeError)(code, reason, message)


def translated(function: Callable[P, R]) -> Callable[P, R]:
    """Decorate an API call so it raises KubeError subclasses instead of ApiException."""

    @wraps(function)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return function(*args, **kwargs)
        except ApiException as error:
            raise translate(error) from None

    return call
