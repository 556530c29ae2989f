"""The apiserver's error responses as typed errors carrying its own message."""

from __future__ import annotations

import json
from typing import Any


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


def error_from_response(status: int, http_reason: str, body: bytes) -> KubeError:
    """The error of a non-2xx response: the reason and message of its metav1.Status body, else the HTTP
    reason phrase (a proxy's HTML error page, an empty body)."""
    reason = message = http_reason
    try:
        decoded = json.loads(body or b"{}")
    except ValueError:
        decoded = {}
    if isinstance(decoded, dict):
        message = str(decoded.get("message") or message)
        reason = str(decoded.get("reason") or reason)
    return error_from_status({"code": status, "reason": reason, "message": message})


def error_from_status(status: dict[str, Any]) -> KubeError:
    """The error a metav1.Status describes (as a watch's ERROR event carries it)."""
    code = int(status.get("code") or 0)
    reason, message = str(status.get("reason") or ""), str(status.get("message") or "")
    if code == 409:
        return (AlreadyExists if reason == "AlreadyExists" else Conflict)(code, reason, message)
    return _BY_STATUS.get(code, KubeError)(code, reason, message)
