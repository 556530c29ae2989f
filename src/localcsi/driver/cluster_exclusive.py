"""Cluster mode's Device and MountPoint volumes: a LogicalVolume that the node's agent carries out.

The controller writes the same ids as standalone mode: a Device volume is ``<node>/localcsi-dev-<hex
of the CSI name>/csi-<hex>`` (a VG of its own on one whole disk), a MountPoint volume
``<node>/localcsi-mountpoint/csi-<hex>``. The resource says which (``spec.volumeType``), the class's
``mediaType`` and the capacity range; the agent on ``spec.nodeName`` picks the disk or mount point
among those its NodeLocalStorage's ``listConfig`` selects (``driver/devices.py``,
``driver/mountpoints.py``, the standalone code) and reports the one it took in ``status.device`` or
``status.mountPoint``. The node plugin then finds the LV, or the mount point by its owner marker, as
in standalone mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from localcsi import API_GROUP, API_VERSION
from localcsi.core.errors import NotFound, ResourceExhausted
from localcsi.core.exclusive import MOUNTPOINT_GROUP, device_vg_name, usable_bytes
from localcsi.core.ids import LvRef, make_ref
from localcsi.core.model import Volume
from localcsi.core.names import volume_lv_name
from localcsi.core.params import LvmType, MediaType, VolumeParams, VolumeType
from localcsi.core.placement import Capacity
from localcsi.driver.backend import is_ready
from localcsi.driver.cluster_backend import ClusterBackend
from localcsi.driver.cluster_resources import Resource
from localcsi.driver.exclusive_volumes import refuse_block_mount_point
from localcsi.driver.requests import CreateVolumeRequest
from localcsi.driver.topology import candidate_nodes
from localcsi.resources import logicalvolume as llv
from localcsi.resources.logicalvolume import KIND, LogicalVolumeSpec, ResourceKind


def exclusive_resource(
    ref: LvRef, request: CreateVolumeRequest, params: VolumeParams, fs_type: str | None, access: str | None
) -> llv.LogicalVolume:
    """The LogicalVolume of a Device or MountPoint volume at ``ref``."""
    spec: LogicalVolumeSpec = {
        "nodeName": ref.node,
        "vgName": ref.vg,
        "kind": ResourceKind.VOLUME.value,
        "csiName": request.name,
        "size": max(request.required_bytes, 1),  # the disk's real size is status.currentSize
        "requiredBytes": request.required_bytes,
        "volumeType": params.volume_type.value,
    }
    if params.volume_type is VolumeType.DEVICE:
        spec["lvmType"] = LvmType.LINEAR.value
        if params.media_type is not None:
            spec["mediaType"] = params.media_type.value
    if request.limit_bytes:
        spec["limitBytes"] = request.limit_bytes
    if fs_type is not None:
        spec["fsType"] = fs_type
    if access is not None:
        spec["accessType"] = access
    return {"apiVersion": f"{API_GROUP}/{API_VERSION}", "kind": KIND, "metadata": llv.metadata(ref), "spec": spec}


def exclusive_mismatch(existing: llv.Wire, body: llv.LogicalVolume) -> str | None:
    """Why an existing resource of the same CSI name is not this request, if it is not."""
    old, new = llv.spec(existing), body["spec"]
    for key, what in (
        ("volumeType", "it is a {} volume"),
        ("requiredBytes", "it asks for {} bytes"),
        ("limitBytes", "its limit is {} bytes"),
        ("mediaType", "its mediaType is {}"),
        ("fsType", "it was made for {}"),
    ):
        if old.get(key) != new.get(key):
            return what.format(old.get(key) or "none")
    return None


class ClusterExclusiveVolumes:
    """``ExclusiveVolumes``' calls in cluster mode, over the cluster backend's resources and caches."""

    def __init__(self, backend: ClusterBackend) -> None:
        self.backend = backend

    def _node(self, request: CreateVolumeRequest, params: VolumeParams) -> str:
        """The scheduler's node (WaitForFirstConsumer); without one, the first node reporting a fit."""
        reports = {str(obj["metadata"]["name"]): obj for obj in self.backend.storage_view.items()}
        nodes = candidate_nodes(sorted(reports), request.topology)
        if request.topology is not None and request.topology.preferred and nodes:
            return nodes[0]
        for node in nodes:
            if any(size >= request.required_bytes for size in self._free(reports[node], params)):
                return node
        raise ResourceExhausted(
            f"no node reports a free {params.volume_type} of at least {request.required_bytes} bytes"
            + (f" ({params.media_type})" if params.media_type is not None else "")
        )

    def _free(self, nls: Resource, params: VolumeParams) -> list[int]:
        """Sizes a volume of ``params`` can get from the node's report: free disks or mount points."""
        status: dict[str, Any] = nls.get("status") or {}
        info = status.get("nodeStorageInfo") or {}
        filtered = status.get("filteredStorageInfo") or {}
        node = str(nls["metadata"]["name"])
        if params.volume_type is VolumeType.DEVICE:
            offered = set(filtered.get("devices") or [])
            return [
                usable_bytes(int(d.get("total") or 0))
                for d in info.get("deviceInfo") or []
                if d.get("name") in offered
                and not d.get("readOnly")
                and params.media_type in (None, _media(d.get("mediaType")))
            ]
        taken = {
            llv.status(obj).get("mountPoint")
            for obj in self.backend.volume_view.items()
            if llv.spec(obj).get("nodeName") == node
        }
        offered = set(filtered.get("mountPoints") or []) - taken
        return [int(m.get("total") or 0) for m in info.get("mountPoints") or [] if m.get("name") in offered]

    def create(
        self,
        nodes: Sequence[str],
        request: CreateVolumeRequest,
        params: VolumeParams,
        fs_type: str | None,
        access: str | None,
    ) -> Volume:
        del nodes  # the VG-reporting nodes; an exclusive volume's node is chosen from every report
        refuse_block_mount_point(params, access)
        node = self._node(request, params)
        group = device_vg_name(request.name) if params.volume_type is VolumeType.DEVICE else MOUNTPOINT_GROUP
        body = exclusive_resource(make_ref(node, group, volume_lv_name(request.name)), request, params, fs_type,
                                  access)  # fmt: skip
        backend = self.backend
        deadline = backend._deadline()
        obj = backend._create(body, deadline, lambda existing: exclusive_mismatch(existing, body))
        volume = backend._volume(backend._wait_ready(obj, deadline))
        if volume is None:
            raise NotFound(f"LogicalVolume {llv.name(obj)} is Ready but does not read back as a volume")
        return volume

    def delete(self, nodes: Sequence[str], ref: LvRef) -> None:
        del nodes  # the resource names its node
        obj = self.backend.volumes_api.get(ref.lv)
        if obj is None or llv.spec(obj).get("nodeName") != ref.node or llv.spec(obj).get("vgName") != ref.vg:
            return
        self.backend._remove(obj, self.backend._deadline())

    def mount_point_volume(self, ref: LvRef) -> Volume:
        volume = self.backend.get_volume(ref)
        if volume is None or not is_ready(volume):
            raise NotFound(f"volume {ref} does not exist")
        return volume

    def volumes(self) -> list[Volume]:
        return []  # they are LogicalVolumes: the backend lists them with the others

    def capacity(self, params: VolumeParams, nodes: Sequence[str], node: str | None = None) -> Capacity:
        """Over every reporting node (``nodes`` lists only those with VGs), or ``node``'s alone."""
        del nodes
        reports = [nls for nls in self.backend.storage_view.items() if node in (None, nls["metadata"]["name"])]
        sizes = [size for nls in reports for size in self._free(nls, params)]
        return Capacity(available_bytes=sum(sizes), maximum_volume_bytes=max(sizes, default=0))


def _media(value: object) -> MediaType | None:
    try:
        return MediaType(str(value).lower()) if value else None
    except ValueError:
        return None
