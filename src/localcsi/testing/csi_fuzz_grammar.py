"""A seeded grammar of CSI requests for the plugin fuzzer (`csi_fuzz.py`, run inside the node VM).

Every choice comes from one `random.Random(seed)`, so a seed and a request count replay a run exactly
(as long as the plugin answers the same way: the pools of real ids grow from its answers).
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from localcsi.csi import csi_pb2

MIB = 1024**2
GIB = 1024**3
INT64_MAX = 2**63 - 1
AccessMode = csi_pb2.VolumeCapability.AccessMode
Cap = csi_pb2.VolumeCapability
# Targets a real volume may be published to: never over a directory the guest needs to keep running.
SAFE_TARGET_ROOT = "/var/lib/kubelet/pods"
LINK_DIR = "/tmp/csi-fuzz-links"  # noqa: S108 - in the throwaway guest; the driver makes these symlinks
LINKS = (f"{LINK_DIR}/to-victim", f"{LINK_DIR}/to-etc", f"{LINK_DIR}/dangling", f"{LINK_DIR}/loop")
VICTIM_DIR = "/tmp/csi-fuzz-victim"  # noqa: S108 - in the throwaway guest


@dataclass
class Pools:
    """What the fuzzer knows of the node: grown from the plugin's successful answers."""

    thick_vg: str
    thin_vg: str
    thin_pool: str
    node_id: str
    vg_free: dict[str, int] = field(default_factory=dict)
    volumes: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)  # names that created a volume or snapshot
    snapshots: list[str] = field(default_factory=list)
    published: list[tuple[str, str]] = field(default_factory=list)  # (volume id, target)


class Grammar:
    def __init__(self, rng: random.Random, pools: Pools) -> None:
        self.rng = rng
        self.pools = pools
        self.serial = 0

    def pick(self, *options: Callable[[], Any]) -> Any:
        return self.rng.choice(options)()

    # -- leaves -------------------------------------------------------------------------------
    def junk(self, max_len: int = 40) -> str:
        rng = self.rng
        alphabet = string.ascii_letters + string.digits + "-_.:/@+=%"
        kinds: tuple[Callable[[], str], ...] = (
            lambda: "",
            lambda: "x" * rng.choice((64, 127, 128, 129, 255, 256, 1000, 5000)),
            lambda: "".join(rng.choice("üñïçødé卷🙂\u200b\u202eΩ") for _ in range(rng.randint(1, 20))),
            lambda: rng.choice(("../../etc/passwd", "..", ".", "a/../b", "/../..", "../", "a/b/c")),
            # control characters, never NUL
            lambda: "".join(rng.choice("\x01\x07\t\n\r\x1b\x7f a") for _ in range(rng.randint(1, 8))),
            lambda: rng.choice(("$(touch /pwned)", "`id`", "; rm -rf /", "a|b", "a&&b", "-rf", "--help", "a b", "'\"")),
            lambda: "x" * rng.choice((100_000, 1_000_000)),
            lambda: "".join(rng.choice(alphabet) for _ in range(rng.randint(1, max_len))),
            lambda: "".join(rng.choice(alphabet) for _ in range(rng.randint(1, max_len))),
        )
        return rng.choice(kinds)()

    def name(self) -> str:
        rng = self.rng
        if rng.random() < 0.45:
            self.serial += 1
            return f"fz-{self.serial}-{rng.randrange(10**6)}"
        if self.pools.names and rng.random() < 0.3:
            return rng.choice(self.pools.names)
        return self.junk()

    def size(self) -> int:
        rng = self.rng
        free = max(self.pools.vg_free.values(), default=GIB)
        return int(
            rng.choice(
                (0, 1, MIB, 4 * MIB + 1, 8 * MIB, 32 * MIB, free + 1, free + 4 * MIB, GIB * 1024, 2**62, INT64_MAX, -1)
            )
        )

    def capacity(self) -> csi_pb2.CapacityRange:
        rng = self.rng
        required = self.size()
        kind = rng.randrange(5)
        if kind == 0:
            return csi_pb2.CapacityRange()
        if kind == 1:  # limit below required: a negative span
            return csi_pb2.CapacityRange(required_bytes=required, limit_bytes=max(required - rng.randint(1, MIB), -1))
        if kind == 2:
            return csi_pb2.CapacityRange(limit_bytes=self.size())
        if kind == 3:
            return csi_pb2.CapacityRange(required_bytes=required, limit_bytes=self.size())
        return csi_pb2.CapacityRange(required_bytes=required)

    def parameters(self) -> dict[str, str]:
        rng = self.rng
        p = self.pools
        base = rng.choice(
            (
                {"vgName": p.thick_vg},
                {"vgName": p.thin_vg, "lvmType": "thin", "thinPool": p.thin_pool},
                {},
            )
        )
        params = dict(base)
        for _ in range(rng.choice((0, 0, 1, 1, 2, 3))):
            key = rng.choice(
                (
                    "vgName", "lvmType", "thinPool", "stripes", "stripeSize", "overprovisioningRatio", "volumeType",
                    "bps", "iops", "readBps", "writeIops", "csi.storage.k8s.io/fstype", "fsType", "colour",
                    "snapshotSize", "", self.junk(20),
                )
            )  # fmt: skip
            params[key] = self.value()
        return params

    def value(self) -> str:
        rng = self.rng
        return str(
            rng.choice(
                (
                    "thin", "linear", "striping", "raid1", "raid9", "Device", "MountPoint", "LVM", "0", "-1", "1", "2",
                    "99", "129", "1e9", "1.5", "4k", "64Ki", "1Gi", "10M", "nope", "ext4", "xfs", "ntfs",
                    self.pools.thick_vg, self.pools.thin_vg, "vg;reboot", "../x", self.junk(),
                )
            )
        )  # fmt: skip

    def capability(self) -> Cap:
        rng = self.rng
        mode = rng.choice((1, 1, 1, 2, 3, 4, 5, 6, 7, 0, 99, -3))
        access = AccessMode(mode=cast(Any, mode))  # proto3 enums are open: 99 and -3 go on the wire
        kind = rng.randrange(6)
        if kind == 0:
            return Cap(access_mode=access)  # no access type
        if kind == 1:
            return Cap(block=Cap.BlockVolume(), access_mode=access)
        if kind == 2:
            return Cap(block=Cap.BlockVolume())  # no access mode
        fs = rng.choice(("ext4", "ext4", "xfs", "", "ntfs", "btrfs", self.junk(10)))
        flags = rng.choice(((), (), ("noatime",), ("ro",), ("bind",), ("remount,rw",), (self.junk(10),), ("",)))
        return Cap(mount=Cap.MountVolume(fs_type=fs, mount_flags=list(flags)), access_mode=access)

    def capabilities(self) -> list[Cap]:
        rng = self.rng
        kind = rng.randrange(6)
        if kind == 0:
            return []
        if kind == 1:  # block and mount together, as two capabilities (one proto cannot hold both)
            return [
                Cap(block=Cap.BlockVolume(), access_mode=AccessMode(mode=AccessMode.SINGLE_NODE_WRITER)),
                self.capability(),
            ]
        if kind == 2:
            return [self.capability() for _ in range(rng.randint(2, 4))]
        return [self.capability()]

    def volume_id(self) -> str:
        return self._id(self.pools.volumes, "csi-")

    def snapshot_id(self) -> str:
        return self._id(self.pools.snapshots, "snap-")

    def _id(self, known: list[str], prefix: str) -> str:
        rng = self.rng
        p = self.pools
        if known and rng.random() < 0.5:
            real = rng.choice(known)
            kind = rng.randrange(9)
            if kind < 3:
                return real
            node, _, rest = real.partition("/")
            vg, _, lv = rest.partition("/")
            return str(
                rng.choice(
                    (
                        real[:-1] + rng.choice("0af-"),
                        real + rng.choice(("/", "x", "/..", " ")),
                        f"{node}/{p.thin_vg if vg == p.thick_vg else p.thick_vg}/{lv}",
                        f"other-node/{vg}/{lv}",
                        f"{node}/{vg}/../{vg}/{lv}",
                        real.upper(),
                        f"{node}/{vg}/{'snap-' if lv.startswith('csi-') else 'csi-'}{lv.partition('-')[2]}",
                    )
                )
            )
        vg = rng.choice((p.thick_vg, p.thin_vg, "nope", "vg;reboot", ""))
        lv = prefix + "".join(rng.choice("0123456789abcdef") for _ in range(rng.choice((32, 31, 8))))
        return str(rng.choice((f"{p.node_id}/{vg}/{lv}", self.junk(), f"{p.node_id}/{vg}/{p.thin_pool}", lv)))

    def fresh_target(self) -> str:
        return f"{SAFE_TARGET_ROOT}/{self.rng.randrange(10**9):09d}/volumes/kubernetes.io~csi/pv/mount"

    def target(self, real_volume: bool) -> str:
        rng = self.rng
        fresh = self.fresh_target()
        choices = [fresh, fresh, f"{VICTIM_DIR}/sub", *LINKS, f"{LINK_DIR}/to-victim/sub", "", "relative/target"]
        choices += [f"{SAFE_TARGET_ROOT}/a/../b", f"{SAFE_TARGET_ROOT}//x/", f"{SAFE_TARGET_ROOT}/x\x01y"]
        if self.pools.published and rng.random() < 0.4:
            choices.append(rng.choice(self.pools.published)[1])
        if not real_volume:  # a real volume must not be mounted over the guest's own directories
            choices += ["/", "/etc", "/proc/self", "/sys", "/dev/null", "/run/localcsi", self.junk()]
        return str(rng.choice(choices))

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
