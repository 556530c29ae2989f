"""Pods' IO limits: set at publish, lifted at unpublish, re-applied from the LV tags by the resync."""

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from node_fakes import DEVTMPFS, FakeFilesystems

from localcsi.cgroup.throttle import CgroupError, CgroupVersion, PodCgroup
from localcsi.core.iolimits import Throttle
from localcsi.core.model import LogicalVolume
from localcsi.core.tags import OWNER_TAG
from localcsi.driver import pod_limits
from localcsi.driver.pod_limits import POD_NAME_KEY, POD_NAMESPACE_KEY, POD_UID_KEY, PodIoLimits, PodRef, pod_of
from localcsi.fs.types import DeviceNumber, Mount, PathInfo, PathKind

pytestmark = pytest.mark.unit

UID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
OTHER_UID = "11111111-2222-3333-4444-555555555555"
MIB = 1024**2
GIB = 1024**3


def fs_target(uid: str = UID, pv: str = "pvc-1") -> str:
    return f"/var/lib/kubelet/pods/{uid}/volumes/kubernetes.io~csi/{pv}/mount"


def block_target(uid: str = UID, pv: str = "pvc-1") -> str:
    return f"/var/lib/kubelet/plugins/kubernetes.io/csi/volumeDevices/publish/{pv}/{uid}"


def lv(name: str = "csi-a", minor: int = 3, *limits: str, active: bool = True) -> LogicalVolume:
    return LogicalVolume(
        vg="localcsi-vg",
        name=name,
        size_bytes=GIB,
        attr="-wi-ao----",
        tags=(OWNER_TAG, *(f"{OWNER_TAG}/{limit}" for limit in limits)),
        kernel_major=253 if active else None,
        kernel_minor=minor if active else None,
    )


class FakeCgroups:
    """Pods by uid; apply records the call and makes read() show the limit, as the kernel would."""

    def __init__(self, *uids: str, version: CgroupVersion = CgroupVersion.V2) -> None:
        self.pods = {uid: PodCgroup(uid, version, Path(f"/sys/fs/cgroup/kubepods/pod{uid}")) for uid in uids}
        self.current: dict[tuple[str, int, int], Throttle] = {}
        self.applied: list[tuple[str, int, int, Throttle]] = []
        self.failure: CgroupError | None = None

    def find_pod(self, uid: str) -> PodCgroup | None:
        return self.pods.get(uid)

    def apply(self, pod: PodCgroup, major: int, minor: int, throttle: Throttle) -> None:
        if self.failure is not None:
            raise self.failure
        self.applied.append((pod.uid, major, minor, throttle))
        self.current[(pod.uid, major, minor)] = throttle

    def read(self, pod: PodCgroup, major: int, minor: int) -> Throttle:
        return self.current.get((pod.uid, major, minor), Throttle())


class FakeLvs:
    def __init__(self, *lvs: LogicalVolume) -> None:
        self.lvs = list(lvs)
        self.calls: list[tuple[str | None, str | None]] = []

    def list_lvs(self, vg: str | None = None, tag: str | None = None) -> list[LogicalVolume]:
        self.calls.append((vg, tag))
        return [lv for lv in self.lvs if tag is None or tag in lv.tags]


class Reports:
    def __init__(self) -> None:
        self.calls: list[tuple[PodRef, str, str]] = []

    def __call__(self, pod: PodRef, reason: str, message: str) -> None:
        self.calls.append((pod, reason, message))


class Setup:
    def __init__(self, *lvs: LogicalVolume, uids: tuple[str, ...] = (UID,), version: CgroupVersion = CgroupVersion.V2):
        self.cgroups = FakeCgroups(*uids, version=version)
        self.fs = FakeFilesystems()
        self.lvm = FakeLvs(*lvs)
        self.reports = Reports()
        self.limits = PodIoLimits(self.cgroups, self.fs, self.lvm, self.reports)

    def mount_fs(self, volume: LogicalVolume, target: str) -> None:
        assert volume.kernel_major is not None and volume.kernel_minor is not None
        device = DeviceNumber(volume.kernel_major, volume.kernel_minor)
        self.fs.mounts.setdefault(target, []).append(Mount(target, volume.mapper_path, "ext4", ("rw",), device))

    def mount_block(self, volume: LogicalVolume, target: str) -> None:
        assert volume.kernel_major is not None and volume.kernel_minor is not None
        self.fs.mounts.setdefault(target, []).append(Mount(target, "udev[/dm-3]", "devtmpfs", ("rw",), DEVTMPFS))
        self.fs.bound[target] = DeviceNumber(volume.kernel_major, volume.kernel_minor)


LIMITED = lv("csi-a", 3, "bps=1048576")
CONTEXT = {POD_UID_KEY: UID, POD_NAME_KEY: "web-0", POD_NAMESPACE_KEY: "shop"}


# -- pod_of ---------------------------------------------------------------------------------------


def test_the_pod_comes_from_the_volume_context_first() -> None:
    assert pod_of("/somewhere/else", CONTEXT) == PodRef(UID, "web-0", "shop")
    assert pod_of(fs_target(OTHER_UID), {POD_UID_KEY: UID}) == PodRef(UID)


def test_the_pod_comes_from_the_target_path_otherwise() -> None:
    assert pod_of(block_target(), {}) == PodRef(UID)
    assert pod_of(fs_target(), {POD_UID_KEY: "", POD_NAME_KEY: "web-0"}) == PodRef(UID, "web-0")
    assert pod_of("/mnt/x", {}) is None


# -- published ------------------------------------------------------------------------------------


def test_a_volume_without_limits_touches_no_cgroup() -> None:
    setup = Setup()
    setup.cgroups.pods.clear()  # even a missing pod cgroup is no concern then
    setup.limits.published(lv("csi-a", 3), fs_target(), CONTEXT)
    setup.limits.published(lv("csi-a", 3, "bps=0", "iops=0"), fs_target(), CONTEXT)
    assert setup.cgroups.applied == []
    assert setup.reports.calls == []


def test_limits_are_applied_to_the_pod_named_by_the_context() -> None:
    setup = Setup(uids=(UID, OTHER_UID))
    volume = lv("csi-a", 3, "bps=1048576", "writeIops=20")
    setup.limits.published(volume, fs_target(OTHER_UID), CONTEXT)
    assert setup.cgroups.applied == [(UID, 253, 3, Throttle(read_bps=MIB, write_bps=MIB, write_iops=20))]
    assert setup.reports.calls == []


@pytest.mark.parametrize("target", [fs_target(), block_target()])
def test_limits_are_applied_to_the_pod_of_the_target_path_without_context(target: str) -> None:
    setup = Setup(uids=(UID, OTHER_UID))
    setup.limits.published(lv("csi-a", 9, "iops=100"), target, {})
    assert setup.cgroups.applied == [(UID, 253, 9, Throttle(read_iops=100, write_iops=100))]


def test_no_pod_at_all_applies_nothing_and_raises_nothing() -> None:
    setup = Setup()
    setup.limits.published(LIMITED, "/mnt/not-kubelet", {})
    assert setup.cgroups.applied == []
    assert setup.reports.calls == []


def test_a_missing_pod_cgroup_is_reported_not_raised() -> None:
    setup = Setup(uids=(OTHER_UID,))
    setup.limits.published(LIMITED, fs_target(), CONTEXT)
    assert setup.cgroups.applied == []
    [(pod, reason, message)] = setup.reports.calls
    assert pod == PodRef(UID, "web-0", "shop")
    assert reason == "IOLimitNotApplied"
    assert "shop/web-0" in message and "localcsi-vg/csi-a" in message


def test_a_failing_apply_is_reported_not_raised() -> None:
    setup = Setup()
    setup.cgroups.failure = CgroupError("writing io.max failed: Permission denied")
    setup.limits.published(LIMITED, fs_target(), CONTEXT)
    [(pod, reason, message)] = setup.reports.calls
    assert (pod.uid, reason) == (UID, "IOLimitNotApplied")
    assert "Permission denied" in message


def test_an_inactive_lv_applies_nothing() -> None:
    setup = Setup()
    setup.limits.published(lv("csi-a", 3, "bps=1048576", active=False), fs_target(), CONTEXT)
    assert setup.cgroups.applied == []


def test_v2_limits_already_in_force_are_not_rewritten_but_v1_are() -> None:
    v2 = Setup()
    v2.cgroups.current[(UID, 253, 3)] = Throttle(read_bps=MIB, write_bps=MIB)
    v2.limits.published(LIMITED, fs_target(), CONTEXT)
    assert v2.cgroups.applied == []
    v1 = Setup(version=CgroupVersion.V1)
    v1.cgroups.current[(UID, 253, 3)] = Throttle(read_bps=MIB, write_bps=MIB)
    v1.limits.published(LIMITED, fs_target(), CONTEXT)  # containers started since need it too
    assert v1.cgroups.applied == [(UID, 253, 3, Throttle(read_bps=MIB, write_bps=MIB))]


# -- unpublished ----------------------------------------------------------------------------------


@pytest.mark.parametrize("target", [fs_target(), block_target()])
def test_unpublish_lifts_the_limit(target: str) -> None:
    setup = Setup()
    setup.limits.published(LIMITED, target, {})
    setup.limits.unpublished(LIMITED, target)
    assert setup.cgroups.applied[-1] == (UID, 253, 3, Throttle())
    assert setup.cgroups.read(setup.cgroups.pods[UID], 253, 3) == Throttle()


def test_unpublish_of_a_gone_pod_or_unknown_volume_does_nothing() -> None:
    setup = Setup(uids=())
    setup.limits.unpublished(LIMITED, fs_target())
    setup.limits.unpublished(None, fs_target())
    setup.limits.unpublished(LIMITED, "/mnt/not-kubelet")
    assert setup.cgroups.applied == []
    assert setup.reports.calls == []


def test_unpublish_of_an_unlimited_volume_does_nothing() -> None:
    setup = Setup()
    setup.cgroups.current[(UID, 253, 3)] = Throttle(read_bps=5)
    setup.limits.unpublished(lv("csi-a", 3), fs_target())
    assert setup.cgroups.applied == []


# -- resync ---------------------------------------------------------------------------------------


def test_resync_applies_the_tags_to_filesystem_and_block_volumes() -> None:
    fs_volume = lv("csi-a", 3, "bps=1048576")
    block_volume = lv("csi-b", 4, "readIops=50")
    setup = Setup(fs_volume, block_volume, uids=(UID, OTHER_UID))
    setup.mount_fs(fs_volume, fs_target(UID, "pvc-a"))
    setup.mount_block(block_volume, block_target(OTHER_UID, "pvc-b"))
    assert setup.limits.resync() == 2
    assert sorted(setup.cgroups.applied) == [
        (UID, 253, 3, Throttle(read_bps=MIB, write_bps=MIB)),
        (OTHER_UID, 253, 4, Throttle(read_iops=50)),
    ]
    assert setup.lvm.calls == [(None, OWNER_TAG)]


def test_resync_gives_each_pod_volume_its_own_limit() -> None:
    first, second = lv("csi-a", 3, "bps=1048576"), lv("csi-b", 4, "iops=10")
    setup = Setup(first, second, uids=(UID, OTHER_UID))
    setup.mount_fs(first, fs_target(UID, "pvc-a"))
    setup.mount_fs(second, fs_target(UID, "pvc-b"))
    setup.mount_fs(first, fs_target(OTHER_UID, "pvc-a"))  # a shared volume: each pod held to it
    assert setup.limits.resync() == 3
    assert sorted(setup.cgroups.applied) == [
        (UID, 253, 3, Throttle(read_bps=MIB, write_bps=MIB)),
        (UID, 253, 4, Throttle(read_iops=10, write_iops=10)),
        (OTHER_UID, 253, 3, Throttle(read_bps=MIB, write_bps=MIB)),
    ]
    assert setup.limits.in_force.published == 3
    assert [(volume, throttle) for _vg, volume, throttle in setup.limits.in_force.limits] == [
        ("csi-a", Throttle(read_bps=MIB, write_bps=MIB)),
        ("csi-b", Throttle(read_iops=10, write_iops=10)),
    ], "one entry per volume, however many pods use it"


def test_resync_skips_unchanged_v2_limits_and_reapplies_changed_tags() -> None:
    setup = Setup(LIMITED)
    setup.mount_fs(LIMITED, fs_target())
    assert setup.limits.resync() == 1
    assert len(setup.cgroups.applied) == 1
    assert setup.limits.resync() == 1  # read() already shows the limit: no write
    assert len(setup.cgroups.applied) == 1
    setup.lvm.lvs = [replace(LIMITED, tags=(OWNER_TAG, f"{OWNER_TAG}/bps=2097152"))]  # ControllerModifyVolume
    assert setup.limits.resync() == 1
    assert setup.cgroups.applied[1:] == [(UID, 253, 3, Throttle(read_bps=2 * MIB, write_bps=2 * MIB))]


def test_resync_reapplies_v1_limits_every_pass() -> None:
    setup = Setup(LIMITED, version=CgroupVersion.V1)
    setup.mount_fs(LIMITED, fs_target())
    assert setup.limits.resync() == 1
    assert setup.limits.resync() == 1
    assert len(setup.cgroups.applied) == 2


def test_resync_lifts_a_limit_removed_from_the_tags() -> None:
    setup = Setup(LIMITED)
    setup.mount_fs(LIMITED, fs_target())
    setup.limits.resync()
    setup.lvm.lvs = [replace(LIMITED, tags=(OWNER_TAG, f"{OWNER_TAG}/bps=0"))]
    assert setup.limits.resync() == 0
    assert setup.cgroups.applied[-1] == (UID, 253, 3, Throttle())
    assert setup.limits.resync() == 0
    assert len(setup.cgroups.applied) == 2  # lifted once; nothing more to do


def test_resync_counts_only_limits_in_force() -> None:
    setup = Setup(LIMITED, lv("csi-b", 4), uids=(OTHER_UID,))
    setup.mount_fs(LIMITED, fs_target(UID))  # its pod cgroup is missing
    setup.mount_fs(lv("csi-b", 4), fs_target(OTHER_UID))  # unlimited
    assert setup.limits.resync() == 0
    assert setup.cgroups.applied == []
    assert setup.reports.calls == []  # the resync logs; Events are the publish's
    assert setup.limits.in_force.published == 2 and setup.limits.in_force.limits == ()
    devices = [(volume, str(number)) for _vg, volume, number in setup.limits.in_force.devices]
    assert devices == [("csi-a", "253:3"), ("csi-b", "253:4")], "every published volume's device, limited or not"


def test_resync_ignores_mounts_outside_kubelet_pod_paths() -> None:
    setup = Setup(LIMITED)
    setup.mount_fs(LIMITED, "/var/lib/kubelet/plugins/kubernetes.io/csi/localcsi.io/abc/globalmount")
    setup.mount_fs(LIMITED, "/mnt/data")
    setup.mount_fs(LIMITED, f"/var/lib/kubelet/pods/{UID}/volumes/kubernetes.io~empty-dir/x")
    assert setup.limits.resync() == 0
    assert setup.cgroups.applied == []
    assert setup.lvm.calls == []  # nothing published to a pod: not even an lvs


def test_resync_ignores_devices_that_are_not_our_lvs() -> None:
    setup = Setup(LIMITED)
    other_fs = fs_target(UID, "pvc-other")
    setup.fs.mounts[other_fs] = [Mount(other_fs, "/dev/sdz", "ext4", ("rw",), DeviceNumber(8, 0))]
    other_block = block_target(UID, "pvc-other")
    setup.fs.mounts[other_block] = [Mount(other_block, "udev[/sdz]", "devtmpfs", ("rw",), DEVTMPFS)]
    setup.fs.bound[other_block] = DeviceNumber(8, 16)
    regular_file = block_target(UID, "pvc-file")
    setup.fs.mounts[regular_file] = [Mount(regular_file, "/dev/x", "ext4", ("rw",), DEVTMPFS)]
    setup.fs.paths[regular_file] = PathInfo(PathKind.FILE, rdev=DeviceNumber(253, 3))
    assert setup.limits.resync() == 0
    assert setup.cgroups.applied == []


def test_resync_skips_inactive_lvs_and_untagged_ones() -> None:
    inactive = lv("csi-a", 3, "bps=1048576", active=False)
    foreign = replace(lv("other", 5, "bps=1048576"), tags=())
    setup = Setup(inactive, foreign)
    setup.fs.mounts[fs_target(UID, "a")] = [Mount(fs_target(UID, "a"), "x", "ext4", (), DeviceNumber(253, 5))]
    assert setup.limits.resync() == 0
    assert setup.cgroups.applied == []


# -- the v1 container watch -----------------------------------------------------------------------


def _wait(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10  # a bound for a hung thread, not a timing assertion
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def test_v1_publish_keeps_applying_the_latest_limit_until_unpublished(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pod_limits, "V1_CONTAINER_WATCH_INTERVAL", 0.01)
    setup = Setup(LIMITED, version=CgroupVersion.V1)
    setup.limits.published(LIMITED, fs_target(), CONTEXT)
    _wait(lambda: len(setup.cgroups.applied) >= 3, "the watch re-applies for containers made after the publish")
    assert set(setup.cgroups.applied) == {(UID, 253, 3, Throttle(read_bps=MIB, write_bps=MIB))}
    raised = replace(LIMITED, tags=(OWNER_TAG, f"{OWNER_TAG}/bps=2097152"))
    setup.lvm.lvs = [raised]
    setup.mount_fs(raised, fs_target())
    setup.limits.resync()  # ControllerModifyVolume's new tags
    seen = len(setup.cgroups.applied)
    _wait(lambda: len(setup.cgroups.applied) >= seen + 2, "the watch goes on")
    assert setup.cgroups.applied[-1] == (UID, 253, 3, Throttle(read_bps=2 * MIB, write_bps=2 * MIB)), (
        "the watch must apply the modified limit, not the one of the publish"
    )
    with setup.limits.lock:
        setup.limits.unpublished(raised, fs_target())
    lifted = len(setup.cgroups.applied)
    time.sleep(0.1)
    assert setup.cgroups.applied[lifted - 1 :] == [(UID, 253, 3, Throttle())], "nothing re-applied after the lift"
    setup.limits.close()


def test_v2_publish_starts_no_watch() -> None:
    setup = Setup(LIMITED)
    setup.limits.published(LIMITED, fs_target(), CONTEXT)
    assert setup.limits._watched == {}


def test_resync_stats_only_block_targets_it_cannot_place(monkeypatch: pytest.MonkeyPatch) -> None:
    foreign = lv("other-driver", 9)
    setup = Setup(LIMITED)
    setup.mount_fs(foreign, fs_target(UID, "pvc-foreign"))  # another CSI driver's filesystem volume
    setup.mount_fs(LIMITED, fs_target(UID, "pvc-ours"))
    stats: list[str] = []
    real = setup.fs.path_info

    def counted(path: str, *, follow: bool = False) -> PathInfo | None:
        stats.append(path)
        return real(path, follow=follow)

    monkeypatch.setattr(setup.fs, "path_info", counted)
    assert setup.limits.resync() == 1
    assert stats == [], "a filesystem mount's device number is enough: no stat per foreign volume"
    setup.mount_block(LIMITED, block_target(OTHER_UID, "pvc-block"))
    setup.limits.resync()
    assert stats == [block_target(OTHER_UID, "pvc-block")]
