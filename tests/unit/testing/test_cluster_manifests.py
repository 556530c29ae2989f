"""The test cluster finds deploy/ in the source tree, and refuses to start without manifests."""

from __future__ import annotations

from pathlib import Path

import pytest

from localcsi.testing.cluster import ClusterError, manifests
from localcsi.testing.install import project_root


def test_the_source_trees_crds_and_rbac_are_found() -> None:
    crds = [path.name for path in manifests(project_root() / "deploy" / "crds")]
    assert crds == ["logicalvolume.yaml", "nodelocalstorage.yaml", "nodelocalstorageinitconfig.yaml"]
    assert "agent.yaml" in [path.name for path in manifests(project_root() / "deploy" / "rbac")]


def test_a_folder_without_manifests_is_an_error_not_an_empty_install(tmp_path: Path) -> None:
    with pytest.raises(ClusterError, match="no manifests in"):
        manifests(tmp_path)
