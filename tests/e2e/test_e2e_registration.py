"""The kubelet knows the driver through localcsi's own registration server (no node-driver-registrar)."""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client

from localcsi import DRIVER_NAME, TOPOLOGY_KEY
from localcsi.testing.e2e_env import E2EEnvironment
from localcsi.testing.waiting import wait_for

REGISTRATION_SOCKET = f"/var/lib/kubelet/plugins_registry/{DRIVER_NAME}-reg.sock"


def test_csinode_lists_the_driver_with_its_topology_key(e2e_env: E2EEnvironment) -> None:
    storage = client.StorageV1Api(e2e_env.api)
    for node in e2e_env.node_names:

        def registered(node: str = node) -> dict[str, Any] | None:
            # Raw JSON: the client's CSINodeSpec model refuses the `drivers: null` of a node with none.
            response = storage.read_csi_node(node, _preload_content=False)
            drivers = json.loads(response.data)["spec"].get("drivers") or []
            return next((d for d in drivers if d["name"] == DRIVER_NAME), None)

        driver = wait_for(f"{DRIVER_NAME} in CSINode {node}", registered, 120, 1.0)
        assert driver["nodeID"] == node
        assert driver["topologyKeys"] == [TOPOLOGY_KEY]
        labels = client.CoreV1Api(e2e_env.api).read_node(node).metadata.labels
        assert labels[TOPOLOGY_KEY] == node


def test_registration_socket_is_private(e2e_env: E2EEnvironment) -> None:
    for node in e2e_env.node_names:
        mode = e2e_env.node(node).run(["stat", "-c", "%a %F", REGISTRATION_SOCKET]).check().stdout.split()
        assert mode == ["600", "socket"]
