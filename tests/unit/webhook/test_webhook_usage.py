"""Which pods use localcsi storage: inline, ephemeral and PVC volumes, default classes, unknowns."""

from __future__ import annotations

import pytest
from webhook_objects import (
    OTHER,
    OURS,
    claim,
    ephemeral_volume,
    inline_volume,
    lookup,
    pod,
    pvc_volume,
    storage_class,
)

from localcsi.webhook.usage import choose_default_class, localcsi_reason

pytestmark = pytest.mark.unit


def reason(
    *volumes: dict[str, object], claims: tuple[dict[str, object], ...] = (), default: str | None = None
) -> str | None:
    return localcsi_reason(pod(*volumes), "shop", lookup(*claims, default=default))


def test_a_pod_without_volumes_or_with_other_volumes_is_not_ours() -> None:
    assert reason() is None
    assert reason({"name": "scratch", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "cfg"}}) is None
    assert reason(inline_volume("secrets", driver="secrets-store.csi.k8s.io")) is None


def test_an_inline_volume_of_our_driver() -> None:
    assert reason(inline_volume("scratch")) == "inline volume scratch of driver localcsi.io"


def test_a_pvc_of_our_class_and_of_another() -> None:
    assert reason(pvc_volume("data", "data"), claims=(claim("data", OURS),)) == (
        "PVC shop/data: StorageClass localcsi-lvm is provisioned by localcsi.io"
    )
    assert reason(pvc_volume("data", "data"), claims=(claim("data", OTHER),)) is None


def test_a_pvc_bound_by_hand_with_no_class_is_not_counted() -> None:
    assert reason(pvc_volume("data", "data"), claims=(claim("data", ""),), default=OURS) is None


def test_a_pvc_without_a_class_follows_the_default_class() -> None:
    volume = pvc_volume("data", "data")
    assert reason(volume, claims=(claim("data", None),), default=OURS) == (
        "PVC shop/data: the default StorageClass localcsi-lvm is provisioned by localcsi.io"
    )
    assert reason(volume, claims=(claim("data", None),), default=OTHER) is None
    assert reason(volume, claims=(claim("data", None),)) is None


def test_ephemeral_volumes_by_their_template() -> None:
    assert reason(ephemeral_volume("scratch", OURS)) == (
        "ephemeral volume scratch: StorageClass localcsi-lvm is provisioned by localcsi.io"
    )
    assert reason(ephemeral_volume("scratch", OTHER)) is None
    assert reason(ephemeral_volume("scratch", None), default=OURS) is not None
    assert reason(ephemeral_volume("scratch", None), default=OTHER) is None


def test_what_cannot_be_known_counts_as_ours() -> None:
    missing_claim = reason(pvc_volume("data", "later"))
    assert missing_claim == "PVC shop/later does not exist (yet): counted as ours"
    missing_class = reason(pvc_volume("data", "data"), claims=(claim("data", "fast"),))
    assert missing_class == "PVC shop/data: StorageClass fast does not exist (yet): counted as ours"
    failing = lookup(claim("data", OTHER))
    failing.failing = True
    unreadable = localcsi_reason(pod(pvc_volume("data", "data")), "shop", failing)
    assert unreadable == "PVC shop/data could not be read (503 Service Unavailable): counted as ours"


def test_volumes_that_need_no_read_are_judged_first() -> None:
    found = lookup(claim("a", OTHER), claim("b", OURS))
    result = localcsi_reason(pod(pvc_volume("a", "a"), pvc_volume("b", "b"), inline_volume("c")), "shop", found)
    assert result == "inline volume c of driver localcsi.io"
    assert found.calls == []
    result = localcsi_reason(pod(pvc_volume("a", "a"), pvc_volume("b", "b")), "shop", found)
    assert result is not None and result.startswith("PVC shop/b:")
    assert found.calls == ["claim shop/a", f"class {OTHER}", "claim shop/b", f"class {OURS}"]


def test_malformed_volumes_are_skipped() -> None:
    malformed = pod("not a volume", {"name": "x", "persistentVolumeClaim": None}, {"name": "y", "csi": "z"})  # type: ignore[arg-type]
    assert localcsi_reason(malformed, "shop", lookup()) is None
    assert localcsi_reason({"spec": {"volumes": "nope"}}, "shop", lookup()) is None
    assert localcsi_reason({}, "shop", lookup()) is None


def test_the_newest_default_class_wins_as_in_the_apiserver() -> None:
    old = storage_class("old", default=True, created="2023-05-01T00:00:00Z")
    new = storage_class("new", default=True, created="2024-05-01T00:00:00Z")
    twin = storage_class("alpha", default=True, created="2024-05-01T00:00:00Z")
    plain = storage_class("plain", created="2025-01-01T00:00:00Z")
    beta = storage_class("beta", created="2022-01-01T00:00:00Z")
    beta["metadata"]["annotations"] = {"storageclass.beta.kubernetes.io/is-default-class": "true"}
    not_default = storage_class("off", created="2026-01-01T00:00:00Z")
    not_default["metadata"]["annotations"] = {"storageclass.kubernetes.io/is-default-class": "false"}
    assert choose_default_class([old, new, plain, not_default]) is new
    assert choose_default_class([new, twin]) is twin
    assert choose_default_class([beta, plain]) is beta
    assert choose_default_class([plain, not_default]) is None
