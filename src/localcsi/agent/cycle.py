"""One agent cycle: discover, initialise VGs, write status, report orphans.

The cycle counts every command it runs, and logs one line with that count (``commands``; of which
``lvm_commands``). Discovery alone is three commands however many LVs exist; probing and VG creation
add commands only for the devices of VGs still to be created.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from localcsi.agent.activation import activate_managed
from localcsi.agent.discovery import CountingRunner, Discovery
from localcsi.agent.mountpoint_init import FSTAB, MountPointInitializer
from localcsi.agent.orphans import OrphanTracker, claimed, collect, find_orphans
from localcsi.agent.status import (
    NORMAL,
    REASON_MOUNT_POINT_FAILED,
    REASON_ORPHAN,
    REASON_ORPHAN_REMOVED,
    REASON_VG_CREATED,
    REASON_VG_FAILED,
    WARNING,
    StatusPublisher,
)
from localcsi.agent.vginit import VgInitializer
from localcsi.core.errors import CoreError
from localcsi.core.mountpoint_init import parse_mount_points_to_init
from localcsi.core.nodestorage import DEFAULT_DEVICE_PATTERNS, NodeInventory, StorageSpec, parse_spec
from localcsi.core.nodestorage_init import VgInitPlan, devices_to_probe, plan_vg_init
from localcsi.core.nodestorage_status import (
    build_status,
    discovered_condition,
    discovery_failed,
    failed_status,
    init_condition,
    offered_devices,
    scoped_devices,
)
from localcsi.core.sizes import format_bytes
from localcsi.driver.local_backend import LocalLvmBackend
from localcsi.logs import fields
from localcsi.lvm.lvm import Lvm
from localcsi.lvm.runner import CommandRunner

log = logging.getLogger(__name__)

ListVolumes = Callable[[], list[dict[str, Any]]]


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class CycleResult:
    commands: int
    lvm_commands: int
    seconds: float
    written: bool
    inventory: NodeInventory | None
    plan: VgInitPlan
    orphans: int


class Agent:
    def __init__(
        self,
        node: str,
        runner: CommandRunner,
        publisher: StatusPublisher,
        list_volumes: ListVolumes | None,
        *,
        orphans: OrphanTracker,
        patterns: Sequence[str] = DEFAULT_DEVICE_PATTERNS,
        discard: bool = True,
        fstab: str = FSTAB,
    ) -> None:
        self.node = node
        self.runner = CountingRunner(runner)
        self.discovery = Discovery(self.runner)
        self.publisher = publisher
        self.list_volumes = list_volumes
        self.orphans = orphans
        self.patterns = tuple(patterns)
        self.initializer = VgInitializer(self.runner, discard=discard)
        self.mount_points = MountPointInitializer(self.runner, fstab)
        self.backend = LocalLvmBackend(Lvm(self.runner), node)

    def _initialise(
        self, nls: Mapping[str, Any] | None, spec: StorageSpec, inventory: NodeInventory
    ) -> tuple[VgInitPlan, dict[str, str], bool]:
        scoped = scoped_devices(inventory, self.patterns)
        signatures = self.discovery.probe(devices_to_probe(spec, inventory))
        offered = frozenset(offered_devices(spec, inventory, scoped))
        plan = plan_vg_init(spec, inventory, signatures, frozenset(d.path for d in scoped), offered)
        refusals = list(plan.refusals)
        failures: dict[str, str] = {}
        created = False
        for action in plan.create:
            result = self.initializer.create(action)
            refusals += result.refusals
            if result.error:
                failures[action.name] = result.error
            elif result.created:
                created = True
                devices = ", ".join(action.devices)
                self.publisher.event(nls, NORMAL, REASON_VG_CREATED, f"created VG {action.name} on {devices}")
        self.publisher.report_refusals(nls, refusals)
        texts = (f"creating VG {vg} failed: {error}" for vg, error in failures.items())
        self.publisher.report_while_it_lasts(nls, REASON_VG_FAILED, texts)
        return replace(plan, refusals=tuple(refusals)), failures, created

    def _init_mount_points(self, nls: Mapping[str, Any]) -> bool:
        """resourceToBeInited.mountpoints (agent/mountpoint_init.py); True when there were any."""
        entries, problems = parse_mount_points_to_init(nls.get("spec") or {})
        results = [self.mount_points.ensure(entry) for entry in entries]
        texts = [*problems, *(f"mount point {r.path}: {r.reason}" for r in results if not r.ready)]
        self.publisher.report_while_it_lasts(nls, REASON_MOUNT_POINT_FAILED, texts)
        return bool(entries)

    def _orphans(self, nls: Mapping[str, Any] | None, inventory: NodeInventory) -> int:
        if self.list_volumes is None:
            return 0
        try:
            keys = claimed(self.list_volumes())
        except Exception as error:  # no judgement without the full list
            log.warning("cannot list LogicalVolumes, orphans not checked this cycle: %s", error)
            return 0
        report = self.orphans.observe(find_orphans(inventory.lvs, keys))
        for lv in report.new:
            meta = lv.metadata
            what = f"{meta.kind} {meta.name!r}" if meta is not None else "LV"
            message = (
                f"{lv.vg}/{lv.name} ({what}, {format_bytes(lv.size_bytes)}) carries localcsi tags but no "
                "LogicalVolume names it"
            )
            self.publisher.event(nls, WARNING, REASON_ORPHAN, message)
        if not report.due:
            return report.count
        try:
            fresh = claimed(self.list_volumes())  # again, right before anything is removed
        except Exception as error:
            log.warning("cannot list LogicalVolumes again, no orphan removed this cycle: %s", error)
            return report.count
        for lv in report.due:
            if (lv.vg, lv.name) in fresh or ("", lv.name) in fresh:
                self.orphans.forget(lv)
                continue
            if collect(self.backend, self.node, lv):
                self.orphans.forget(lv)
                self.publisher.event(nls, NORMAL, REASON_ORPHAN_REMOVED, f"wiped and removed orphan {lv.vg}/{lv.name}")
        return report.count

    def activate(self, nls: Mapping[str, Any] | None) -> list[str]:
        """At start: activate the LVs of the managed VGs (see activation.py)."""
        try:
            inventory = self.discovery.discover()
        except CoreError as error:
            log.error("discovery failed, nothing activated: %s", error.message)
            return []
        spec = parse_spec((nls or {}).get("spec") or {}) if nls is not None else None
        return activate_managed(Lvm(self.runner), inventory, spec)

    def _report(
        self, nls: Mapping[str, Any], spec: StorageSpec, inventory: NodeInventory
    ) -> tuple[NodeInventory, VgInitPlan, bool]:
        """Initialise what the spec asks for, then write the status; returns what was written from."""
        plan, failures, created = self._initialise(nls, spec, inventory)
        if self._init_mount_points(nls):
            created = True  # the mount table may have changed
        if created:
            inventory = self.discovery.discover()
        conditions = [discovered_condition(spec, inventory), init_condition(spec, plan, failures)]
        status = build_status(
            spec, inventory, conditions, previous=nls.get("status"), now=now_rfc3339(),
            generation=int((nls.get("metadata") or {}).get("generation") or 0), patterns=self.patterns,
        )  # fmt: skip
        return inventory, plan, self.publisher.publish(nls, status)

    def cycle(self, nls: Mapping[str, Any] | None) -> CycleResult:
        """One cycle; ``nls`` is the node's NodeLocalStorage, None while the controller has not made it."""
        started = time.monotonic()
        self.runner.reset()
        plan = VgInitPlan()
        written = False
        orphan_count = 0
        if nls is None:
            log.warning("NodeLocalStorage %s does not exist yet: discovering, but not initialising nor reporting",
                        self.node)  # fmt: skip
        try:
            inventory: NodeInventory | None = self.discovery.discover()
        except CoreError as error:
            inventory = None
            log.error("discovery failed: %s", error.message)
            if nls is not None:
                generation = int((nls.get("metadata") or {}).get("generation") or 0)
                status = failed_status(nls.get("status"), discovery_failed(error.message), now_rfc3339(), generation)
                written = self.publisher.publish(nls, status)
        if inventory is not None:
            if nls is not None:
                spec = parse_spec(nls.get("spec") or {})
                inventory, plan, written = self._report(nls, spec, inventory)
            orphan_count = self._orphans(nls, inventory)
        result = CycleResult(
            self.runner.count, self.runner.lvm_count, time.monotonic() - started, written, inventory, plan, orphan_count
        )
        log.info(
            "cycle done",
            extra=fields(
                commands=result.commands,
                lvm_commands=result.lvm_commands,
                seconds=round(result.seconds, 3),
                status_written=written,
                vgs=len(inventory.vgs) if inventory else None,
                lvs=len(inventory.lvs) if inventory else None,
                orphans=orphan_count,
                resource_found=nls is not None,
            ),
        )
        return result
