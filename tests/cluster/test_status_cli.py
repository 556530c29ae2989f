"""`localcsi status` against the real apiserver: what the agents reported and the volumes placed."""

from __future__ import annotations

import json
import subprocess
import sys

from localcsi.k8s.resources import LOGICAL_VOLUME, NODE_LOCAL_STORAGE, CustomResources
from localcsi.testing.cluster import KubeCluster
from localcsi.testing.storage_nodes import GIB, add_storage_node

NODE = "status-node-1"


def test_status_lists_each_node_and_vg_with_its_volumes(kube_cluster: KubeCluster) -> None:
    add_storage_node(kube_cluster, NODE, {"localcsi-status-a": 20 * GIB, "localcsi-status-b": 5 * GIB})
    volumes = CustomResources(kube_cluster.kube_api(), LOGICAL_VOLUME)
    spec = {"nodeName": NODE, "vgName": "localcsi-status-a", "kind": "Volume", "csiName": "pvc-status",
            "size": GIB, "lvmType": "linear"}  # fmt: skip
    name = "csi-" + "5" * 32
    volumes.create({"metadata": {"name": name}, "spec": spec})
    try:
        argv = [sys.executable, "-m", "localcsi", "status", "--kubeconfig", str(kube_cluster.kubeconfig()), "--output"]
        listed = json.loads(subprocess.run([*argv, "json"], capture_output=True, text=True, check=True).stdout)
        mine = [row for row in listed["volumeGroups"] if row["node"] == NODE]
        assert [row for row in listed["exclusive"] if row["node"] == NODE] == [], "no disk or mount point reported"
        assert [(r["vg"], r["total"], r["volumes"]) for r in mine] == [
            ("localcsi-status-a", 20 * GIB, 1),
            ("localcsi-status-b", 5 * GIB, 0),
        ]
        table = subprocess.run([*argv, "table"], capture_output=True, text=True, check=True).stdout
        assert table.splitlines()[0].split()[:2] == ["NODE", "VG"]
        assert any(line.split()[:3] == [NODE, "localcsi-status-a", "20.0Gi"] for line in table.splitlines())
    finally:
        volumes.delete(name)
        CustomResources(kube_cluster.kube_api(), NODE_LOCAL_STORAGE).delete(NODE)
        kube_cluster.delete_node(NODE)
