"""AdmissionReview v1 in and out, and the JSONPatch that adds the capacity request to a pod.

``parse_review`` refuses (ReviewError) a body that is not an AdmissionReview v1 with a request uid:
the server answers 400 and kube-apiserver applies the failurePolicy (Ignore). Anything wrong inside a
well-formed review (another kind, another operation, a pod it cannot read) is allowed unchanged: the
webhook only ever adds a marker, so it never refuses a pod.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from localcsi.extender.objects import items, meta, section
from localcsi.webhook import CAPACITY_QUANTITY, CAPACITY_RESOURCE
from localcsi.webhook.usage import ClusterLookup, localcsi_reason

API_VERSION: Final = "admission.k8s.io/v1"
KIND: Final = "AdmissionReview"
POD: Final = {"group": "", "version": "v1", "kind": "Pod"}
CREATE: Final = "CREATE"
MAX_UID_LENGTH: Final = 128

Patch = list[dict[str, Any]]


class ReviewError(ValueError):
    """The body is not an AdmissionReview v1 this webhook can answer; the message says what is wrong."""


@dataclass(frozen=True)
class Review:
    uid: str
    kind: Mapping[str, Any]
    operation: str
    namespace: str
    name: str
    pod: Mapping[str, Any] | None  # request.object, when it is a JSON object

    @property
    def label(self) -> str:
        name = self.name or str(meta(self.pod or {}).get("generateName") or "") + "*"
        return f"{self.namespace}/{name}"


def parse_review(body: bytes) -> Review:
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ReviewError(f"the body is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise ReviewError("the body is not a JSON object")
    if document.get("apiVersion") != API_VERSION or document.get("kind") != KIND:
        found = f"{document.get('apiVersion')!r}/{document.get('kind')!r}"
        raise ReviewError(f"expected apiVersion {API_VERSION} and kind {KIND}, got {found}")
    request = document.get("request")
    if not isinstance(request, dict):
        raise ReviewError("the AdmissionReview has no request object")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid or len(uid) > MAX_UID_LENGTH:
        raise ReviewError(f"request.uid must be a non-empty string of at most {MAX_UID_LENGTH} characters")
    kind = request.get("kind")
    pod = request.get("object")
    pod = pod if isinstance(pod, dict) else None
    namespace = request.get("namespace") or meta(pod or {}).get("namespace") or ""
    return Review(
        uid=uid,
        kind=kind if isinstance(kind, dict) else {},
        operation=str(request.get("operation") or ""),
        namespace=str(namespace),
        name=str(request.get("name") or meta(pod or {}).get("name") or ""),
        pod=pod,
    )


def _containers(spec: Mapping[str, Any], field: str) -> list[Mapping[str, Any]]:
    return items(spec, field)


def requests_capacity(pod: Mapping[str, Any]) -> bool:
    """Whether a container or init container already requests or limits the capacity resource."""
    spec = section(pod, "spec")
    for container in _containers(spec, "containers") + _containers(spec, "initContainers"):
        resources = section(container, "resources")
        if CAPACITY_RESOURCE in section(resources, "requests") or CAPACITY_RESOURCE in section(resources, "limits"):
            return True
    return False


def _pointer(token: str) -> str:
    """One JSON Pointer reference token (RFC 6901): ~ and / escaped."""
    return token.replace("~", "~0").replace("/", "~1")


def capacity_patch(pod: Mapping[str, Any]) -> Patch | None:
    """The JSONPatch that makes the pod's first container request and limit CAPACITY_QUANTITY of
    CAPACITY_RESOURCE (an extended resource's request must equal its limit); None when the pod has no
    container to carry it."""
    containers = section(pod, "spec").get("containers")
    if not isinstance(containers, list) or not containers or not isinstance(containers[0], Mapping):
        return None
    base = "/spec/containers/0/resources"
    resources = containers[0].get("resources")
    if not isinstance(resources, Mapping):
        value = {"requests": {CAPACITY_RESOURCE: CAPACITY_QUANTITY}, "limits": {CAPACITY_RESOURCE: CAPACITY_QUANTITY}}
        return [{"op": "add", "path": base, "value": value}]
    patch: Patch = []
    for field in ("requests", "limits"):
        if isinstance(resources.get(field), Mapping):
            path = f"{base}/{field}/{_pointer(CAPACITY_RESOURCE)}"
            patch.append({"op": "add", "path": path, "value": CAPACITY_QUANTITY})
        else:
            patch.append({"op": "add", "path": f"{base}/{field}", "value": {CAPACITY_RESOURCE: CAPACITY_QUANTITY}})
    return patch


@dataclass(frozen=True)
class Decision:
    outcome: str  # mutated | unchanged | ignored
    reason: str
    patch: Patch | None = None


def decide(review: Review, lookup: ClusterLookup) -> Decision:
    kind = f"{review.kind.get('group', '')}/{review.kind.get('version', '')}/{review.kind.get('kind', '')}"
    if dict(review.kind) != POD or review.operation != CREATE:
        return Decision("ignored", f"{review.operation or 'no operation'} of {kind}: only Pod CREATE is handled")
    if review.pod is None:
        return Decision("ignored", "the request carries no pod object")
    if requests_capacity(review.pod):
        return Decision("unchanged", f"a container already requests {CAPACITY_RESOURCE}")
    reason = localcsi_reason(review.pod, review.namespace, lookup)
    if reason is None:
        return Decision("unchanged", "no localcsi volume")
    patch = capacity_patch(review.pod)
    if patch is None:
        return Decision("unchanged", f"{reason}, but the pod has no container to carry the request")
    return Decision("mutated", reason, patch)


def review_response(uid: str, patch: Patch | None) -> bytes:
    """The AdmissionReview answer: allowed, with the JSONPatch when there is one."""
    response: dict[str, Any] = {"uid": uid, "allowed": True}
    if patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(patch, separators=(",", ":")).encode()).decode("ascii")
    return json.dumps({"apiVersion": API_VERSION, "kind": KIND, "response": response}).encode()
