"""Which node gets a volume when Kubernetes did not choose one (Immediate binding).

Under WaitForFirstConsumer the scheduler picks the node and the request's topology names it. Without
a topology any node may do; the one with the most room for this kind of volume, in the requested VG
when ``vgName`` is set, goes first, so volumes spread over nodes instead of filling one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from localcsi.core.model import ThinPool, VolumeGroup
from localcsi.core.params import VolumeParams
from localcsi.core.placement import capacity

NodeVgs = tuple[Sequence[VolumeGroup], Sequence[ThinPool]]


def most_free_first(storage: Mapping[str, NodeVgs], params: VolumeParams) -> list[str]:
    """Node names, most room first: room for ``params``' volume type (in ``vgName`` when given),
    then the largest single volume, then the name, so equal nodes keep a stable order."""

    def key(node: str) -> tuple[int, int, str]:
        vgs, pools = storage[node]
        room = capacity(vgs, pools, params)
        return -room.available_bytes, -room.maximum_volume_bytes, node

    return sorted(storage, key=key)
