"""NodeLocalStorageInitConfig (``deploy/crds/nodelocalstorageinitconfig.yaml``): the storage
configuration of every node, from which the storage controller writes each NodeLocalStorage's spec.

``globalConfig`` applies to every node; each ``nodesConfig`` entry applies to the nodes its label
selector picks (the merge rule: ``localcsi.core.initconfig``, docs/storage-controller.md).
"""

from __future__ import annotations

from typing import NotRequired, TypedDict

from localcsi.resources.meta import Condition, ObjectMeta
from localcsi.resources.nodelocalstorage import ListConfig, ReservedSpace, ResourceToBeInited

KIND = "NodeLocalStorageInitConfig"


class StorageConfig(TypedDict, total=False):
    listConfig: ListConfig
    resourceToBeInited: ResourceToBeInited
    reservedSpace: list[ReservedSpace]


class LabelSelectorRequirement(TypedDict):
    key: str
    operator: str  # In, NotIn, Exists or DoesNotExist
    values: NotRequired[list[str]]


class LabelSelector(TypedDict, total=False):
    matchLabels: dict[str, str]
    matchExpressions: list[LabelSelectorRequirement]


class NodeConfig(TypedDict):
    selector: LabelSelector
    listConfig: NotRequired[ListConfig]
    resourceToBeInited: NotRequired[ResourceToBeInited]
    reservedSpace: NotRequired[list[ReservedSpace]]


class NodeLocalStorageInitConfigSpec(TypedDict, total=False):
    globalConfig: StorageConfig
    nodesConfig: list[NodeConfig]


class NodeLocalStorageInitConfigStatus(TypedDict, total=False):
    nodes: int  # nodes that have a NodeLocalStorage written from this config
    conditions: list[Condition]


class NodeLocalStorageInitConfig(TypedDict):
    apiVersion: NotRequired[str]
    kind: NotRequired[str]
    metadata: ObjectMeta
    spec: NodeLocalStorageInitConfigSpec
    status: NotRequired[NodeLocalStorageInitConfigStatus]
