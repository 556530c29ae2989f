"""A seeded grammar of CSI requests for the plugin fuzzer (`csi_fuzz.py`, run inside the node VM).

Every choice comes from one `random.Random(seed)`, so a seed and a request count replay a run exactly
(as long as the plugin answers the same way: the pools of real ids grow from its answers).
"""

from __future__ import annotations

from typing import Any

from localcsi.csi import csi_pb2
from localcsi.testing.csi_fuzz_fields import MIB, AccessMode, Cap, FieldValues


class Grammar(FieldValues):
    # -- requests -----------------------------------------------------------------------------
    def request(self) -> tuple[str, Any]:
        rng = self.rng
        rpc = rng.choice(RPC_WEIGHTS)
        return rpc, getattr(self, f"_{rpc}")()

    def good_capability(self) -> Cap:
        writer = AccessMode(mode=AccessMode.SINGLE_NODE_WRITER)
        if self.rng.random() < 0.25:
            return Cap(block=Cap.BlockVolume(), access_mode=writer)
        return Cap(mount=Cap.MountVolume(fs_type=self.rng.choice(("ext4", "xfs", ""))), access_mode=writer)

    def _good_create(self) -> Any:
        """A request that should work, so that there are real volumes to snapshot, publish and mangle."""
        rng = self.rng
        p = self.pools
        self.serial += 1
        thin = {"vgName": p.thin_vg, "lvmType": "thin", "thinPool": p.thin_pool}
        return csi_pb2.CreateVolumeRequest(
            name=f"fz-ok-{self.serial}-{rng.randrange(10**6)}",
            capacity_range=csi_pb2.CapacityRange(required_bytes=rng.choice((4 * MIB, 8 * MIB, 20 * MIB + 1))),
            volume_capabilities=[self.good_capability()],
            parameters=rng.choice(({"vgName": p.thick_vg}, thin)),
        )

    def _CreateVolume(self) -> Any:
        rng = self.rng
        if rng.random() < 0.35:
            return self._good_create()
        request = csi_pb2.CreateVolumeRequest(
            name=self.name(),
            capacity_range=self.capacity(),
            volume_capabilities=self.capabilities(),
            parameters=self.parameters(),
        )
        if rng.random() < 0.15:
            request.volume_content_source.snapshot.snapshot_id = self.snapshot_id()
        elif rng.random() < 0.1:
            request.volume_content_source.volume.volume_id = self.volume_id()
        elif rng.random() < 0.05:
            request.volume_content_source.SetInParent()  # neither snapshot nor volume
        if rng.random() < 0.1:
            request.mutable_parameters.update({rng.choice(("iops", "bps", "colour")): self.value()})
        if rng.random() < 0.1:
            request.accessibility_requirements.requisite.add().segments.update({self.junk(20): self.junk(20)})
        return request

    def _DeleteVolume(self) -> Any:
        return csi_pb2.DeleteVolumeRequest(volume_id=self.volume_id())

    def _ControllerExpandVolume(self) -> Any:
        request = csi_pb2.ControllerExpandVolumeRequest(volume_id=self.volume_id(), capacity_range=self.capacity())
        if self.rng.random() < 0.5:
            request.volume_capability.CopyFrom(self.capability())
        return request

    def _CreateSnapshot(self) -> Any:
        rng = self.rng
        if self.pools.volumes and rng.random() < 0.4:
            self.serial += 1
            name = f"fz-snap-{self.serial}-{rng.randrange(10**6)}"
            return csi_pb2.CreateSnapshotRequest(source_volume_id=rng.choice(self.pools.volumes), name=name)
        params = {} if rng.random() < 0.5 else {rng.choice(("snapshotSize", "colour")): self.value()}
        return csi_pb2.CreateSnapshotRequest(source_volume_id=self.volume_id(), name=self.name(), parameters=params)

    def _DeleteSnapshot(self) -> Any:
        return csi_pb2.DeleteSnapshotRequest(snapshot_id=self.snapshot_id())

    def _token(self) -> str:
        return str(self.rng.choice(("", "", "0", "1", "-1", "999999", "99999999999999999999", self.junk())))

    def _ListVolumes(self) -> Any:
        entries = self.rng.choice((0, 1, 3, -1, 2**31 - 1))
        return csi_pb2.ListVolumesRequest(max_entries=entries, starting_token=self._token())

    def _ListSnapshots(self) -> Any:
        rng = self.rng
        return csi_pb2.ListSnapshotsRequest(
            max_entries=rng.choice((0, 2, -5)),
            starting_token=self._token(),
            snapshot_id=self.snapshot_id() if rng.random() < 0.3 else "",
            source_volume_id=self.volume_id() if rng.random() < 0.3 else "",
        )

    def _ValidateVolumeCapabilities(self) -> Any:
        return csi_pb2.ValidateVolumeCapabilitiesRequest(
            volume_id=self.volume_id(),
            volume_capabilities=self.capabilities(),
            parameters=self.parameters() if self.rng.random() < 0.5 else {},
        )

    def _ControllerModifyVolume(self) -> Any:
        rng = self.rng
        params = {rng.choice(("iops", "bps", "readBps", "writeIops", "colour", "")): self.value()}
        return csi_pb2.ControllerModifyVolumeRequest(
            volume_id=self.volume_id(), mutable_parameters=params if rng.random() < 0.8 else {}
        )

    def _NodePublishVolume(self) -> Any:
        rng = self.rng
        if self.pools.volumes and rng.random() < 0.4:
            return csi_pb2.NodePublishVolumeRequest(
                volume_id=rng.choice(self.pools.volumes),
                target_path=self.fresh_target() if rng.random() < 0.7 else self.target(True),
                volume_capability=self.good_capability(),
                readonly=rng.random() < 0.2,
            )
        volume_id = self.volume_id()
        request = csi_pb2.NodePublishVolumeRequest(
            volume_id=volume_id,
            target_path=self.target(volume_id in self.pools.volumes),
            readonly=rng.random() < 0.2,
        )
        if rng.random() < 0.9:
            request.volume_capability.CopyFrom(self.capability())
        if rng.random() < 0.1:
            request.volume_context.update({self.junk(20): self.junk(20)})
        return request

    def _NodeUnpublishVolume(self) -> Any:
        rng = self.rng
        if self.pools.published and rng.random() < 0.3:
            volume_id, target = rng.choice(self.pools.published)
            return csi_pb2.NodeUnpublishVolumeRequest(volume_id=volume_id, target_path=target)
        volume_id = self.volume_id()
        return csi_pb2.NodeUnpublishVolumeRequest(volume_id=volume_id, target_path=self.target(True))

    def _NodeExpandVolume(self) -> Any:
        rng = self.rng
        if self.pools.published and rng.random() < 0.5:
            volume_id, path = rng.choice(self.pools.published)
        else:
            volume_id = self.volume_id()
            path = self.target(False)
        return csi_pb2.NodeExpandVolumeRequest(volume_id=volume_id, volume_path=path, capacity_range=self.capacity())

    def _NodeGetVolumeStats(self) -> Any:
        rng = self.rng
        if self.pools.published and rng.random() < 0.5:
            path = rng.choice(self.pools.published)[1]
            return csi_pb2.NodeGetVolumeStatsRequest(volume_id=self.volume_id(), volume_path=path)
        return csi_pb2.NodeGetVolumeStatsRequest(volume_id=self.volume_id(), volume_path=self.target(False))

    def _GetCapacity(self) -> Any:
        rng = self.rng
        request = csi_pb2.GetCapacityRequest(volume_capabilities=self.capabilities(), parameters=self.parameters())
        if rng.random() < 0.3:
            request.accessible_topology.segments.update({self.junk(20): self.junk(20)})
        return request


# Each name once per unit of weight: creates and publishes often, so that real ids exist to be mangled.
RPC_WEIGHTS = (
    *["CreateVolume"] * 5,
    *["DeleteVolume"] * 2,
    *["ControllerExpandVolume"] * 2,
    *["CreateSnapshot"] * 2,
    "DeleteSnapshot",
    "ListVolumes",
    "ListSnapshots",
    "ValidateVolumeCapabilities",
    "ControllerModifyVolume",
    *["NodePublishVolume"] * 3,
    *["NodeUnpublishVolume"] * 2,
    "NodeExpandVolume",
    "NodeGetVolumeStats",
    "GetCapacity",
)
