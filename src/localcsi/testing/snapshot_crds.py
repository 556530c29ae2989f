"""The VolumeSnapshot CRDs of the pinned external-snapshotter, read from the Go module cache.

Upstream keeps them in `client/config/crd/` of its repository. `client/` has a go.mod of its own, so
they ship in the module `github.com/kubernetes-csi/external-snapshotter/client/v8`, not in `.../v8`.
"""

from __future__ import annotations

from pathlib import Path

from localcsi.testing.tools import SNAPSHOTTER_CLIENT_MODULE, SNAPSHOTTER_VERSION, go_module_dir

CRD_DIRECTORY = "config/crd"
SNAPSHOT_CRD_PATTERN = "snapshot.storage.k8s.io_*.yaml"


def snapshot_crd_paths(version: str = SNAPSHOTTER_VERSION) -> list[Path]:
    """VolumeSnapshotClass, VolumeSnapshotContent and VolumeSnapshot CRD files, sorted by name.

    The module is downloaded into the Go module cache first when absent (needs go on PATH).
    """
    directory = go_module_dir(SNAPSHOTTER_CLIENT_MODULE, version) / CRD_DIRECTORY
    paths = sorted(directory.glob(SNAPSHOT_CRD_PATTERN))
    if not paths:
        raise FileNotFoundError(f"no {SNAPSHOT_CRD_PATTERN} in {directory}")
    return paths
