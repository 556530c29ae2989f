"""NodeLocalStorage (``deploy/crds/nodelocalstorage.yaml``): one node's storage, open-local's layout.

The storage controller writes the spec from the NodeLocalStorageInitConfig; the agent on the node
writes the status (what it found, what passes the filters, capacity). The pieces of a node's storage
configuration (``ListConfig``, ``ResourceToBeInited``, ``ReservedSpace``) are shared with the init
config, which holds them per node selector.
"""

from __future__ import annotations

from typing import NotRequired, TypedDict

from localcsi.resources.meta import Condition, ObjectMeta

KIND = "NodeLocalStorage"


# -- spec: what localcsi manages on the node -------------------------------------------------------


class Patterns(TypedDict, total=False):
    """Regular expressions: a name passes when it matches an include and no exclude."""

    include: list[str]
    exclude: list[str]


class ListConfig(TypedDict, total=False):
    devices: Patterns
    vgs: Patterns
    mountPoints: Patterns


class VgToInit(TypedDict):
    name: str
    devices: list[str]


class MountPointToInit(TypedDict):
    path: str
    device: str
    fsType: NotRequired[str]
    options: NotRequired[list[str]]


class ResourceToBeInited(TypedDict, total=False):
    vgs: list[VgToInit]
    mountpoints: list[MountPointToInit]  # spelled as in open-local


class ReservedSpace(TypedDict):
    vgName: str
    size: NotRequired[int | str]  # bytes, or a quantity such as 10Gi
    percent: NotRequired[int]


class NodeLocalStorageSpec(TypedDict):
    nodeName: str
    listConfig: NotRequired[ListConfig]
    resourceToBeInited: NotRequired[ResourceToBeInited]
    reservedSpace: NotRequired[list[ReservedSpace]]


# -- status: what the agent found ------------------------------------------------------------------


class DeviceInfo(TypedDict):
    name: str
    mediaType: NotRequired[str]
    readOnly: NotRequired[bool]
    total: NotRequired[int]
    condition: NotRequired[str]


class LogicalVolumeInfo(TypedDict):
    name: str
    vgname: NotRequired[str]
    total: NotRequired[int]
    condition: NotRequired[str]


class PhysicalVolumeInfo(TypedDict):
    name: str
    total: NotRequired[int]
    available: NotRequired[int]


class ThinPoolInfo(TypedDict):
    name: str
    total: NotRequired[int]
    dataPercent: NotRequired[float]
    metadataPercent: NotRequired[float]
    virtual: NotRequired[int]


class VolumeGroupInfo(TypedDict):
    name: str
    physicalVolumes: NotRequired[list[str]]
    logicalVolumes: NotRequired[list[LogicalVolumeInfo]]
    total: NotRequired[int]
    available: NotRequired[int]
    allocatable: NotRequired[int]
    reserved: NotRequired[int]
    extentSize: NotRequired[int]
    physicalVolumeInfo: NotRequired[list[PhysicalVolumeInfo]]
    thinPools: NotRequired[list[ThinPoolInfo]]
    condition: NotRequired[str]


class MountPointInfo(TypedDict):
    name: str
    device: NotRequired[str]
    fsType: NotRequired[str]
    options: NotRequired[list[str]]
    readOnly: NotRequired[bool]
    total: NotRequired[int]
    available: NotRequired[int]
    isBind: NotRequired[bool]
    condition: NotRequired[str]


class NodeStorageInfo(TypedDict, total=False):
    deviceInfo: list[DeviceInfo]
    volumeGroups: list[VolumeGroupInfo]
    mountPoints: list[MountPointInfo]


class UpdateStatusInfo(TypedDict, total=False):
    lastUpdateTime: str
    updateStatus: str  # accepted, pending or failed
    reason: str


class FilteredStorageInfo(TypedDict, total=False):
    volumeGroups: list[str]
    devices: list[str]
    mountPoints: list[str]
    updateStatusInfo: UpdateStatusInfo


class Summary(TypedDict, total=False):
    readyVolumeGroups: int
    total: int
    allocatable: int


class NodeLocalStorageStatus(TypedDict, total=False):
    nodeStorageInfo: NodeStorageInfo
    filteredStorageInfo: FilteredStorageInfo
    summary: Summary
    conditions: list[Condition]


class NodeLocalStorage(TypedDict):
    apiVersion: NotRequired[str]
    kind: NotRequired[str]
    metadata: ObjectMeta
    spec: NodeLocalStorageSpec
    status: NotRequired[NodeLocalStorageStatus]
