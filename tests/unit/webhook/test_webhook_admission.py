"""AdmissionReview parsing and refusals, the JSONPatch, and the answer's exact fields."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from webhook_objects import OTHER, OURS, apply_patch, claim, inline_volume, lookup, pod, pvc_volume, review, review_body

from localcsi.webhook import CAPACITY_RESOURCE
from localcsi.webhook.admission import ReviewError, capacity_patch, decide, parse_review, review_response

pytestmark = pytest.mark.unit

UID = "705ab4f5-6393-11e8-b7cc-42010a800002"


def with_request(**changes: Any) -> bytes:
    document = review(pod())
    document["request"].update(changes)
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "the body is not JSON"),
        (b"{\"apiVersion\": ", "the body is not JSON"),
        (b"\xff\xfe", "the body is not JSON"),
        (b"[]", "the body is not a JSON object"),
        (b'{"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {"uid": "u"}}',
         "expected apiVersion admission.k8s.io/v1 and kind AdmissionReview, got 'admission.k8s.io/v1beta1'"),
        (b'{"apiVersion": "admission.k8s.io/v1", "kind": "Pod"}', "and kind AdmissionReview, got"),
        (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}', "has no request object"),
        (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": []}', "has no request object"),
        (with_request(uid=None), "request.uid must be a non-empty string"),
        (with_request(uid=""), "request.uid must be a non-empty string"),
        (with_request(uid=7), "request.uid must be a non-empty string"),
        (with_request(uid="u" * 129), "request.uid must be a non-empty string"),
    ],
)  # fmt: skip
def test_what_is_not_an_admission_review_is_refused(body: bytes, message: str) -> None:
    with pytest.raises(ReviewError) as refused:
        parse_review(body)
    assert message in str(refused.value)


def test_a_review_is_read() -> None:
    parsed = parse_review(review_body(pod()))
    assert (parsed.uid, parsed.operation, parsed.namespace, parsed.name) == (UID, "CREATE", "shop", "app")
    assert parsed.kind == {"group": "", "version": "v1", "kind": "Pod"}
    assert parsed.pod == pod()
    generated = review(pod())
    generated["request"]["name"] = ""
    generated["request"]["object"]["metadata"] = {"generateName": "web-5d8f-"}
    assert parse_review(json.dumps(generated).encode()).label == "shop/web-5d8f-*"


CAPACITY = {CAPACITY_RESOURCE: "1"}


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        (None, {"requests": CAPACITY, "limits": CAPACITY}),
        ({}, {"requests": CAPACITY, "limits": CAPACITY}),
        ({"requests": None, "limits": None}, {"requests": CAPACITY, "limits": CAPACITY}),
        ({"requests": {"cpu": "100m"}}, {"requests": {"cpu": "100m", **CAPACITY}, "limits": CAPACITY}),
        (
            {"requests": {"cpu": "1"}, "limits": {"memory": "1Gi"}, "claims": [{"name": "gpu"}]},
            {
                "requests": {"cpu": "1", **CAPACITY},
                "limits": {"memory": "1Gi", **CAPACITY},
                "claims": [{"name": "gpu"}],
            },
        ),
    ],
)
def test_the_patch_adds_request_and_limit_to_the_first_container(
    resources: dict[str, Any] | None, expected: dict[str, Any]
) -> None:
    original = pod(resources=resources)
    patch = capacity_patch(original)
    assert patch is not None
    patched = apply_patch(original, patch)
    assert patched["spec"]["containers"][0]["resources"] == expected
    assert patched["spec"]["containers"][1] == original["spec"]["containers"][1]  # the others are untouched
    del patched["spec"]["containers"][0]["resources"]
    original["spec"]["containers"][0].pop("resources", None)
    assert patched == original  # nothing else changed


def test_the_resource_name_is_escaped_in_the_pointer() -> None:
    patch = capacity_patch(pod(resources={"requests": {}, "limits": {}}))
    assert patch == [
        {"op": "add", "path": "/spec/containers/0/resources/requests/localcsi.io~1capacity", "value": "1"},
        {"op": "add", "path": "/spec/containers/0/resources/limits/localcsi.io~1capacity", "value": "1"},
    ]
    assert capacity_patch(pod()) == [
        {"op": "add", "path": "/spec/containers/0/resources", "value": {"requests": CAPACITY, "limits": CAPACITY}}
    ]


@pytest.mark.parametrize("spec", [{}, {"containers": []}, {"containers": "app"}, {"containers": ["app"]}])
def test_no_container_no_patch(spec: dict[str, Any]) -> None:
    assert capacity_patch({"spec": spec}) is None


def decision_for(obj: Any, **kwargs: Any) -> tuple[str, str, Any]:
    found = lookup(claim("data", OURS), claim("logs", OTHER))
    decision = decide(parse_review(review_body(obj, **kwargs)), found)
    return decision.outcome, decision.reason, decision.patch


def test_pods_using_localcsi_are_mutated_and_others_not() -> None:
    outcome, reason, patch = decision_for(pod(pvc_volume("d", "data")))
    assert (outcome, reason) == ("mutated", "PVC shop/data: StorageClass localcsi-lvm is provisioned by localcsi.io")
    assert patch == capacity_patch(pod())
    assert decision_for(pod(pvc_volume("l", "logs"))) == ("unchanged", "no localcsi volume", None)
    assert decision_for(pod()) == ("unchanged", "no localcsi volume", None)


def test_a_pod_that_already_requests_the_resource_is_left_alone() -> None:
    init = pod(inline_volume("scratch"))
    init["spec"]["initContainers"] = [{"name": "init", "resources": {"limits": {CAPACITY_RESOURCE: "1"}}}]
    assert decision_for(init)[:2] == ("unchanged", f"a container already requests {CAPACITY_RESOURCE}")
    assert decision_for(pod(inline_volume("s"), resources={"requests": CAPACITY, "limits": CAPACITY}))[0] == "unchanged"


def test_other_requests_are_allowed_unchanged() -> None:
    assert decision_for(pod(inline_volume("s")), operation="UPDATE") == (
        "ignored", "UPDATE of /v1/Pod: only Pod CREATE is handled", None
    )  # fmt: skip
    assert decision_for({"kind": "Deployment"}, kind="Deployment")[0] == "ignored"
    assert decision_for(None) == ("ignored", "the request carries no pod object", None)
    assert decision_for("a string") == ("ignored", "the request carries no pod object", None)
    no_containers = pod(inline_volume("s"))
    no_containers["spec"]["containers"] = []
    assert decision_for(no_containers)[0] == "unchanged"


def test_the_answer_has_the_admission_v1_fields() -> None:
    patch = capacity_patch(pod())
    answer = json.loads(review_response(UID, patch))
    assert set(answer) == {"apiVersion", "kind", "response"}
    assert (answer["apiVersion"], answer["kind"]) == ("admission.k8s.io/v1", "AdmissionReview")
    response = answer["response"]
    assert set(response) == {"uid", "allowed", "patchType", "patch"}
    assert (response["uid"], response["allowed"], response["patchType"]) == (UID, True, "JSONPatch")
    assert json.loads(base64.b64decode(response["patch"], validate=True)) == patch
    assert json.loads(review_response(UID, None)) == {
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": {"uid": UID, "allowed": True}
    }  # fmt: skip
