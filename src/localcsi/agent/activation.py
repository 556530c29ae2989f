"""At start: bring the LVs of managed VGs back (after a reboot, or when autoactivation is off).

Managed VGs are those the node's listConfig.vgs selects, and those carrying our tag (created by the
agent). Only they are activated, in one ``vgchange --activate y``; other VGs are not the agent's.
"""

from __future__ import annotations

import logging

from localcsi.core.errors import CoreError
from localcsi.core.nodestorage import NodeInventory, StorageSpec
from localcsi.core.tags import OWNER_TAG
from localcsi.lvm.lvm import Lvm

log = logging.getLogger(__name__)


def managed_vgs(inventory: NodeInventory, spec: StorageSpec | None) -> list[str]:
    return sorted(
        vg.name for vg in inventory.vgs if OWNER_TAG in vg.tags or (spec is not None and spec.vgs.accepts(vg.name))
    )


def activate_managed(lvm: Lvm, inventory: NodeInventory, spec: StorageSpec | None) -> list[str]:
    """Activate the managed VGs' LVs; returns their names. A failure is logged, not raised."""
    names = managed_vgs(inventory, spec)
    if not names:
        log.info("no managed volume group to activate")
        return []
    try:
        lvm.activate_vgs(*names)
    except CoreError as error:
        log.error("activating the volume groups %s failed: %s", ", ".join(names), error.message)
        return []
    log.info("activated the logical volumes of %s", ", ".join(names))
    return names
