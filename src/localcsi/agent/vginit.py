"""Creating the VGs a plan allows: blkid again, discard, pvcreate, vgcreate with our tag.

Safety, on top of the plan's checks:
- ``blkid -p`` runs again on every device right before anything is written; a signature found now
  refuses the VG, and nothing is touched;
- ``blkdiscard`` (no ``--force``: it refuses a device with a signature itself) so that a new LV's
  first blocks never show what the disk held before; a device that cannot discard is used as is;
- ``pvcreate`` without ``--yes`` or ``-ff``: lvm2's own prompt about a signature is answered "no"
  because stdin is /dev/null, a third guard;
- ``vgcreate --addtag localcsi.io``; when it fails, the PVs just made are removed again
  (``pvremove`` on devices that were blank a moment ago), so a retry starts from the same state.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from localcsi.core.errors import CoreError
from localcsi.core.names import validate_vg_name
from localcsi.core.nodestorage_init import Refusal, VgCreate
from localcsi.core.tags import OWNER_TAG
from localcsi.fs.adapter import Filesystems
from localcsi.fs.paths import validate_path
from localcsi.lvm.runner import CommandFailed, CommandRunner

log = logging.getLogger(__name__)

# Discarding a whole disk is proportional to its size on some devices.
DISCARD_TIMEOUT = 1800.0


def pvcreate_argv(devices: Sequence[str]) -> list[str]:
    return ["pvcreate", *(validate_path(d, "device") for d in devices)]


def vgcreate_argv(name: str, devices: Sequence[str]) -> list[str]:
    return ["vgcreate", "--addtag", OWNER_TAG, validate_vg_name(name), *(validate_path(d, "device") for d in devices)]


def pvremove_argv(devices: Sequence[str]) -> list[str]:
    return ["pvremove", *(validate_path(d, "device") for d in devices)]


def blkdiscard_argv(device: str) -> list[str]:
    return ["blkdiscard", validate_path(device, "device")]


@dataclass(frozen=True)
class InitResult:
    vg: str
    created: bool
    refusals: tuple[Refusal, ...] = ()
    error: str = ""


class VgInitializer:
    def __init__(self, runner: CommandRunner, *, discard: bool = True) -> None:
        self.runner = runner
        self.fs = Filesystems(runner)
        self.discard = discard

    def _still_blank(self, action: VgCreate) -> list[Refusal]:
        refusals = []
        for device in action.devices:
            try:
                signature = self.fs.probe(device)
            except CoreError as error:
                refusals.append(Refusal(action.name, device, f"could not be probed with blkid: {error.message}"))
                continue
            if signature is not None:
                reason = f"blkid now finds {signature} on it; wipe it yourself (wipefs -a) if its data is not needed"
                refusals.append(Refusal(action.name, device, reason))
        return refusals

    def _discard(self, device: str) -> None:
        try:
            self.runner.run(blkdiscard_argv(device), timeout=DISCARD_TIMEOUT)
        except CommandFailed as failure:
            log.info("%s was not discarded (%s); using it as it is", device, failure.stderr.strip() or failure.message)
        except CoreError as error:
            log.warning("discarding %s did not finish (%s); using it as it is", device, error.message)

    def create(self, action: VgCreate) -> InitResult:
        refusals = self._still_blank(action)
        if refusals:
            return InitResult(action.name, False, tuple(refusals))
        if self.discard:
            for device in action.devices:
                self._discard(device)
        try:
            self.runner.run(pvcreate_argv(action.devices))
        except CoreError as error:
            return InitResult(action.name, False, error=error.message)
        try:
            self.runner.run(vgcreate_argv(action.name, action.devices))
        except CoreError as error:
            self._undo_pvcreate(action.devices)
            return InitResult(action.name, False, error=error.message)
        log.info("created volume group %s on %s", action.name, ", ".join(action.devices))
        return InitResult(action.name, True)

    def _undo_pvcreate(self, devices: Sequence[str]) -> None:
        try:
            self.runner.run(pvremove_argv(devices))
        except CoreError as error:
            log.error("could not remove the PVs just made on %s: %s", ", ".join(devices), error.message)
