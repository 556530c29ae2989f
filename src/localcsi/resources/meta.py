"""What every resource carries: the apiserver's ObjectMeta and metav1.Condition."""

from __future__ import annotations

from typing import NotRequired, TypedDict


class OwnerReference(TypedDict):
    apiVersion: str
    kind: str
    name: str
    uid: NotRequired[str]
    controller: NotRequired[bool]
    blockOwnerDeletion: NotRequired[bool]


class ObjectMeta(TypedDict, total=False):
    """The keys of metav1.ObjectMeta that localcsi reads or writes (the apiserver fills most)."""

    name: str
    uid: str
    resourceVersion: str
    generation: int
    creationTimestamp: str
    deletionTimestamp: str
    labels: dict[str, str]
    annotations: dict[str, str]
    finalizers: list[str]
    ownerReferences: list[OwnerReference]


class Condition(TypedDict):
    """A metav1.Condition; ``status`` is "True", "False" or "Unknown"."""

    type: str
    status: str
    observedGeneration: NotRequired[int]
    lastTransitionTime: str
    reason: str
    message: str
