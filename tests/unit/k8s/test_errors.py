"""ApiException → typed KubeError, keeping the apiserver's message."""

from __future__ import annotations

import json

import pytest
from kubernetes.client.exceptions import ApiException

from localcsi.k8s import errors


def api_exception(status: int, reason: str, message: str) -> ApiException:
    error = ApiException(status=status, reason=reason)
    error.body = json.dumps({"kind": "Status", "status": "Failure", "reason": reason, "message": message})
    return error


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
    error = errors.translate(api_exception(status, reason, "the apiserver said why"))
    assert type(error) is expected
    assert (error.status, error.reason, error.message) == (status, reason, "the apiserver said why")


def test_a_body_that_is_not_json_keeps_the_http_reason() -> None:
    raw = ApiException(status=503, reason="Service Unavailable")
    raw.body = "<html>proxy error</html>"
    error = errors.translate(raw)
    assert (error.status, error.message) == (503, "Service Unavailable")


def test_translated_raises_kube_errors_and_passes_results_through() -> None:
    @errors.translated
    def call(fail: bool) -> str:
        if fail:
            raise api_exception(422, "Invalid", "spec.size: Invalid value: -1: must be > 0")
        return "ok"

    assert call(False) == "ok"
    with pytest.raises(errors.Invalid, match=r"spec\.size"):
        call(True)
