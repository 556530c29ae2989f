"""An apiserver's error response → typed KubeError, keeping the apiserver's message."""

from __future__ import annotations

import json

import pytest

from localcsi.k8s import errors


def status_body(reason: str, message: str) -> bytes:
    return json.dumps({"kind": "Status", "status": "Failure", "reason": reason, "message": message}).encode()


@pytest.mark.parametrize(
    ("status", "reason", "expected"),
    [
        (404, "NotFound", errors.NotFound),
        (409, "AlreadyExists", errors.AlreadyExists),
        (409, "Conflict", errors.Conflict),
        (422, "Invalid", errors.Invalid),
        (403, "Forbidden", errors.Forbidden),
        (410, "Expired", errors.Gone),
        (500, "InternalError", errors.KubeError),
    ],
)
def test_status_codes_map_to_typed_errors(status: int, reason: str, expected: type[errors.KubeError]) -> None:
    error = errors.error_from_response(status, "HTTP reason", status_body(reason, "the apiserver said why"))
    assert type(error) is expected
    assert (error.status, error.reason, error.message) == (status, reason, "the apiserver said why")


@pytest.mark.parametrize("body", [b"<html>proxy error</html>", b"", b"\xff\xfe", b'["not", "a", "status"]'])
def test_a_body_that_is_not_a_status_keeps_the_http_reason(body: bytes) -> None:
    error = errors.error_from_response(503, "Service Unavailable", body)
    assert type(error) is errors.KubeError
    assert (error.status, error.reason, error.message) == (503, "Service Unavailable", "Service Unavailable")


def test_a_watch_error_event_status_maps_like_a_response() -> None:
    status = {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old resource version: 1 (5)"}
    error = errors.error_from_status(status)
    assert isinstance(error, errors.Gone)
    assert str(error) == "410 Expired: too old resource version: 1 (5)"
