"""IO limits on the pods that use a volume: set at publish, lifted at unpublish, kept true by a resync.

The limit of a volume is per pod and per device: each volume is its own LV, so a pod with several
volumes gets each volume's own limit on that volume's device, and two pods sharing a volume are each
held to it separately. The LV's tags are the truth (ControllerModifyVolume changes them), so the
resync reads them and re-applies: a changed limit reaches running pods within one resync, and under
cgroup v1 the containers started after the publish get it too. A limit that cannot be set never
fails the publish: the volume is mounted, and a log line and an Event say why.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from localcsi.cgroup.pods import is_block_target, is_pod_uid, pod_uid
from localcsi.cgroup.throttle import CgroupError, CgroupVersion, PodCgroup
from localcsi.core.iolimits import Throttle
from localcsi.core.model import LogicalVolume
from localcsi.core.tags import OWNER_TAG
from localcsi.driver.backend import io_limits
from localcsi.fs.types import DeviceNumber, FilesystemOps, PathKind

log = logging.getLogger(__name__)

V1_CONTAINER_WATCH_SECONDS = 60.0
V1_CONTAINER_WATCH_INTERVAL = 0.5
POD_UID_KEY = "csi.storage.k8s.io/pod.uid"  # podInfoOnMount: the kubelet names the pod it publishes for
POD_NAME_KEY = "csi.storage.k8s.io/pod.name"
POD_NAMESPACE_KEY = "csi.storage.k8s.io/pod.namespace"


class PodCgroups(Protocol):
    """The cgroup adapter (``localcsi.cgroup.throttle.Cgroups``)."""

    def find_pod(self, uid: str) -> PodCgroup | None: ...
    def apply(self, pod: PodCgroup, major: int, minor: int, throttle: Throttle) -> None: ...
    def read(self, pod: PodCgroup, major: int, minor: int) -> Throttle: ...


class ListLvs(Protocol):
    def list_lvs(self, vg: str | None = None, tag: str | None = None) -> list[LogicalVolume]: ...


@dataclass(frozen=True)
class InForce:
    """What the last resync found: pod volumes published on this node, and each limited volume's limits."""

    published: int = 0
    limits: tuple[tuple[str, str, Throttle], ...] = ()  # (vg, lv, throttle) of each limited volume
    devices: tuple[tuple[str, str, DeviceNumber], ...] = ()  # (vg, lv, device number) of each published volume


@dataclass(frozen=True)
class PodRef:
    uid: str
    name: str = ""
    namespace: str = ""


# (pod, reason, message): an Event on the pod, if the plugin can record Events.
Reporter = Callable[[PodRef, str, str], None]


def _no_report(_pod: PodRef, _reason: str, _message: str) -> None:
    return None


def pod_of(target_path: str, volume_context: Mapping[str, str]) -> PodRef | None:
    given = volume_context.get(POD_UID_KEY, "")
    uid = given if is_pod_uid(given) else pod_uid(target_path)  # never a path component from elsewhere
    if not uid:
        return None
    return PodRef(uid, volume_context.get(POD_NAME_KEY, ""), volume_context.get(POD_NAMESPACE_KEY, ""))


class PodIoLimits:
    def __init__(self, cgroups: PodCgroups, fs: FilesystemOps, lvm: ListLvs, report: Reporter = _no_report) -> None:
        self.cgroups = cgroups
        self.fs = fs
        self.lvm = lvm
        self.report = report
        # Held by a resync pass and by an unpublish: a pass never re-applies a limit an unpublish lifts.
        self.lock = threading.Lock()
        # (pod UID, major, minor) of each v1 container watch -> the limit it applies
        self._watched: dict[tuple[str, int, int], Throttle] = {}
        self._closed = threading.Event()
        self.in_force = InForce()

    def published(self, lv: LogicalVolume, target: str, volume_context: Mapping[str, str]) -> None:
        throttle = io_limits(lv.tags).throttle()
        if throttle.unlimited:
            return
        pod = pod_of(target, volume_context)
        if pod is None:
            log.warning("IO limits %s of %s/%s not applied: %s is not a kubelet pod path and names no pod",
                        throttle, lv.vg, lv.name, target)  # fmt: skip
            return
        cgroup = self._enforce(pod, lv, throttle, report=True)
        if cgroup is not None and cgroup.version is CgroupVersion.V1:
            self._watch_new_containers(cgroup, lv, throttle)

    def _watch_new_containers(self, cgroup: PodCgroup, lv: LogicalVolume, throttle: Throttle) -> None:
        """Under cgroup v1 the pod's containers get cgroups of their own after the publish, and the flat
        v1 throttle does not reach them: re-apply often for a while, so that they start limited (the
        resync covers containers started later)."""
        assert lv.kernel_major is not None and lv.kernel_minor is not None
        key = (cgroup.uid, lv.kernel_major, lv.kernel_minor)
        self._watched[key] = throttle

        def watch() -> None:
            deadline = time.monotonic() + V1_CONTAINER_WATCH_SECONDS
            while time.monotonic() < deadline and not self._closed.wait(V1_CONTAINER_WATCH_INTERVAL):
                with self.lock:
                    latest = self._watched.get(key)  # a resync may have applied a modified limit since
                    if latest is None:
                        return  # unpublished meanwhile: its limit was lifted
                    try:
                        self.cgroups.apply(cgroup, key[1], key[2], latest)
                    except CgroupError:
                        return  # the pod is gone
            with self.lock:
                self._watched.pop(key, None)

        threading.Thread(target=watch, name=f"io-limits-{cgroup.uid[:8]}", daemon=True).start()

    def close(self) -> None:
        """Stop the container watches (at shutdown)."""
        self._closed.set()

    def unpublished(self, lv: LogicalVolume | None, target: str) -> None:
        """Lift the volume's limit from the pod (when its cgroup still exists). Called with ``lock`` held."""
        uid = pod_uid(target)
        if lv is None or uid is None or lv.kernel_major is None or lv.kernel_minor is None:
            return
        self._watched.pop((uid, lv.kernel_major, lv.kernel_minor), None)
        if io_limits(lv.tags).throttle().unlimited:
            return
        self._enforce(PodRef(uid), lv, Throttle(), report=False)

    def _enforce(self, pod: PodRef, lv: LogicalVolume, throttle: Throttle, *, report: bool) -> PodCgroup | None:
        """Make the pod's limit for the LV's device ``throttle``; the pod's cgroup, or None when that
        could not be done (or the pod is gone)."""
        if lv.kernel_major is None or lv.kernel_minor is None:
            return None
        who = f"pod {pod.namespace}/{pod.name}" if pod.name else f"pod {pod.uid}"
        try:
            cgroup = self.cgroups.find_pod(pod.uid)
            if cgroup is None:
                if throttle.unlimited:
                    return None  # the pod is gone, and its limits with it
                raise CgroupError(f"no cgroup of {who} was found under the cgroup root")
            # v2 limits sit on the pod's cgroup alone; under v1 containers started since need them too.
            current = self.cgroups.read(cgroup, lv.kernel_major, lv.kernel_minor)
            if current == throttle and (cgroup.version is CgroupVersion.V2 or throttle.unlimited):
                return cgroup
            self.cgroups.apply(cgroup, lv.kernel_major, lv.kernel_minor, throttle)
            key = (pod.uid, lv.kernel_major, lv.kernel_minor)
            if key in self._watched:
                self._watched[key] = throttle
        except CgroupError as error:
            message = f"IO limits {throttle} of volume {lv.vg}/{lv.name} are not in force for {who}: {error}"
            log.warning("%s", message)
            if report:
                self.report(pod, "IOLimitNotApplied", message)
            return None
        log.info("IO limits of %s/%s on %s (%s): %s", lv.vg, lv.name, who, cgroup.version, throttle)
        return cgroup

    def resync(self) -> int:
        """Re-apply the tags' limits to every pod with one of our volumes published; returns how many
        pod volumes are held to a limit. One findmnt and one lvs, plus a stat per block volume's target."""
        with self.lock:
            return self._resync()

    def _resync(self) -> int:
        targets = [(mount, uid) for mount in self.fs.list_mounts() if (uid := pod_uid(mount.target)) is not None]
        if not targets:
            self.in_force = InForce()
            return 0
        by_device = {
            DeviceNumber(lv.kernel_major, lv.kernel_minor): lv
            for lv in self.lvm.list_lvs(tag=OWNER_TAG)
            if lv.kernel_major is not None and lv.kernel_minor is not None
        }
        limited = 0
        published = 0
        in_force: dict[tuple[str, str], Throttle] = {}
        devices: dict[tuple[str, str], DeviceNumber] = {}
        for mount, uid in targets:
            device: DeviceNumber | None = mount.device
            if device not in by_device and is_block_target(mount.target):  # a device node bind-mounted on a file
                info = self.fs.path_info(mount.target)
                device = info.rdev if info is not None and info.kind is PathKind.BLOCK_DEVICE else None
            lv = by_device.get(device) if device is not None else None
            if lv is None or device is None:
                continue  # another driver's volume
            published += 1
            devices[(lv.vg, lv.name)] = device
            throttle = io_limits(lv.tags).throttle()
            if self._enforce(PodRef(uid), lv, throttle, report=False) is not None and not throttle.unlimited:
                limited += 1
                in_force[(lv.vg, lv.name)] = throttle
        self.in_force = InForce(
            published,
            tuple((vg, lv, throttle) for (vg, lv), throttle in sorted(in_force.items())),
            tuple((vg, lv, number) for (vg, lv), number in sorted(devices.items())),
        )
        return limited
