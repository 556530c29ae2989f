"""Inline ephemeral volumes on this node: made at publish, removed at unpublish, collected after a crash.

The node plugin carries out what the CSI controller does for a PVC (the same ``ControllerDriver``
over lvm2 on this node), named after the kubelet's volume id so that a retried publish finds the LV
its crashed predecessor made. A volume whose unpublish never completed (the plugin died, or the
pod was deleted while the plugin was down) is removed by ``collect`` once its pod's directory is
gone and nothing holds it open; while the kubelet keeps the pod's directory, it is never touched.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from localcsi.core.capabilities import Capability
from localcsi.core.ephemeral import EphemeralRequest
from localcsi.core.model import Volume
from localcsi.core.names import volume_lv_name
from localcsi.driver.backend import Backend, ephemeral_pod_dir
from localcsi.driver.controller import ControllerDriver
from localcsi.driver.requests import CreateVolumeRequest
from localcsi.fs.types import FilesystemOps

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Collected:
    removed: tuple[str, ...]  # volume ids
    kept: tuple[str, ...]  # pod gone but the LV still open: tried again next time


class EphemeralVolumes:
    def __init__(self, backend: Backend, fs: FilesystemOps) -> None:
        self.backend = backend
        self.driver = ControllerDriver(backend)
        self.fs = fs

    def create(self, volume_id: str, request: EphemeralRequest, capability: Capability) -> Volume:
        """The volume for a kubelet inline volume id, made now or found from an earlier attempt."""
        return self.driver.create_volume(
            CreateVolumeRequest(
                name=volume_id,
                capabilities=(capability,),
                required_bytes=request.size_bytes,
                parameters=request.parameters,
                ephemeral_pod_dir=request.pod_dir,
            )
        )

    def find(self, volume_id: str) -> Volume | None:
        volume = self.backend.find_volume(volume_lv_name(volume_id))
        if volume is None or ephemeral_pod_dir(volume) is None or volume.name != volume_id:
            return None
        return volume

    def delete(self, volume: Volume) -> None:
        self.driver.delete_volume(volume.id)
        log.info("removed inline ephemeral volume %s (%s)", volume.name, volume.id)

    def collect(self) -> Collected:
        """Remove the inline volumes whose pods are gone from this node."""
        removed: list[str] = []
        kept: list[str] = []
        for volume in self.backend.volumes():
            pod_dir = ephemeral_pod_dir(volume)
            if pod_dir is None or self.fs.path_info(pod_dir) is not None:
                continue
            if volume.lv.is_open:
                log.warning("inline volume %s outlived its pod (%s) but is still open; kept", volume.id, pod_dir)
                kept.append(volume.id)
                continue
            log.info("inline volume %s outlived its pod (%s): removing it", volume.id, pod_dir)
            self.delete(volume)
            removed.append(volume.id)
        return Collected(tuple(removed), tuple(kept))
