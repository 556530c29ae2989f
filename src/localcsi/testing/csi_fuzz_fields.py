"""The values the CSI fuzz grammar (`csi_fuzz_grammar.py`) fills its requests' fields with: names, sizes,
capacity ranges, parameters, capabilities, volume and snapshot ids and target paths, drawn from the
grammar's `random.Random` and from the `Pools` of what the plugin has made."""

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


class FieldValues:
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
