"""Controller requests as plain values: what the gRPC layer hands the driver, protobuf-free."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from localcsi.core.capabilities import Capability
from localcsi.core.tags import Source
from localcsi.driver.topology import Segments, TopologyRequirement


@dataclass(frozen=True)
class CreateVolumeRequest:
    name: str
    capabilities: tuple[Capability, ...] = ()
    required_bytes: int = 0  # 0: unset
    limit_bytes: int = 0  # 0: unset
    parameters: Mapping[str, str] = field(default_factory=dict)
    source: Source | None = None
    topology: TopologyRequirement | None = None
    mutable_parameters: Mapping[str, str] = field(default_factory=dict)  # from a VolumeAttributesClass
    ephemeral_pod_dir: str = ""  # an inline ephemeral volume's pod directory, recorded in its tags


@dataclass(frozen=True)
class ExpandVolumeRequest:
    volume_id: str
    required_bytes: int = 0
    limit_bytes: int = 0
    capability: Capability | None = None


@dataclass(frozen=True)
class CapacityRequest:
    parameters: Mapping[str, str] = field(default_factory=dict)
    capabilities: tuple[Capability, ...] = ()
    topology: Segments | None = None  # None: across every node


@dataclass(frozen=True)
class ListSnapshotsRequest:
    max_entries: int = 0
    starting_token: str = ""
    snapshot_id: str = ""
    source_volume_id: str = ""
