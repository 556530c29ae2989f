from __future__ import annotations

from typing import Any

import grpc
import pytest

from localcsi.testing.sidecar_calls import call_retrying

pytestmark = pytest.mark.unit


class Failure(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code


class Method:
    """Answers with the given outcomes in turn, recording each call's timeout."""

    def __init__(self, *outcomes: Any) -> None:
        self.outcomes = list(outcomes)
        self.timeouts: list[float] = []

    def __call__(self, request: str, timeout: float) -> str:
        self.timeouts.append(timeout)
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, grpc.StatusCode):
            raise Failure(outcome)
        return f"{outcome} for {request}"


@pytest.fixture(autouse=True)
def no_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("localcsi.testing.sidecar_calls.time.sleep", lambda _seconds: None)


def test_aborted_and_deadline_exceeded_are_retried_until_an_answer() -> None:
    method = Method(grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED, "done")
    assert call_retrying(method, "req", call_timeout=7) == "done for req"
    assert method.timeouts == [7, 7, 7]


def test_any_other_code_is_raised_at_once() -> None:
    method = Method(grpc.StatusCode.ABORTED, grpc.StatusCode.NOT_FOUND, "never reached")
    with pytest.raises(Failure) as raised:
        call_retrying(method, "req")
    assert raised.value.code() is grpc.StatusCode.NOT_FOUND
    assert method.outcomes == ["never reached"]


def test_the_last_error_is_raised_once_the_budget_is_spent() -> None:
    method = Method(grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.DEADLINE_EXCEEDED, "too late")
    with pytest.raises(Failure) as raised:
        call_retrying(method, "req", budget=-1)
    assert raised.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert len(method.timeouts) == 1
