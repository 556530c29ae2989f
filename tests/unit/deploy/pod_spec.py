"""What the deploy tests read of a rendered pod spec. Imported by basename, as tests/e2e's e2e_kube."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def all_containers(pod_spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every container of a pod spec: its init containers (native sidecars among them, such as the CSI
    controller's plugin) and then its containers. For checks that hold for each container of ours."""
    return [*pod_spec.get("initContainers", []), *pod_spec["containers"]]
