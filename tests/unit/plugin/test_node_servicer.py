"""The Node servicer translates protobuf to NodeService calls and core errors to status codes."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any, cast
from unittest import mock

import grpc
import pytest

from localcsi import TOPOLOGY_KEY
from localcsi.core.capabilities import AccessType, Capability
from localcsi.core.errors import AlreadyExists, NotFound, OutOfRange
from localcsi.core.exclusive import MOUNTPOINT_GROUP, device_vg_name
from localcsi.core.health import Condition
from localcsi.csi import csi_pb2, services
from localcsi.driver.node import ExpandRequest, NodeInfo, NodeService, PublishRequest, VolumeStats
from localcsi.driver.node_mountpoints import NodeServiceWithMountPoints
from localcsi.fs.adapter import Filesystems
from localcsi.fs.types import FsUsage
from localcsi.lvm.lvm import Lvm
from localcsi.lvm.runner import SubprocessRunner
from localcsi.plugin.config import Mode, PluginConfig
from localcsi.plugin.node import NodeServicer, build_node_servicer
from localcsi.testing.fake_context import ContextAborted, FakeContext

pytestmark = pytest.mark.unit

Mode_ = csi_pb2.VolumeCapability.AccessMode
Rpc = csi_pb2.NodeServiceCapability.RPC
VOLUME = "node-1/localcsi-vg/csi-aaaa"
TARGET = "/var/lib/kubelet/pods/p/volumes/kubernetes.io~csi/pv/mount"


def ctx(fake: FakeContext | None = None) -> grpc.ServicerContext:
    return cast(grpc.ServicerContext, fake or FakeContext())


def servicer() -> tuple[NodeServicer, Any]:
    service = mock.create_autospec(NodeService, instance=True)
    return NodeServicer(service), service


def call_failing(method: Any, request: object) -> FakeContext:
    context = FakeContext()
    with pytest.raises(ContextAborted):
        method(request, ctx(context))
    return context


def test_publish_passes_the_mount_capability_through() -> None:
    node, service = servicer()
    capability = csi_pb2.VolumeCapability(
        mount=csi_pb2.VolumeCapability.MountVolume(fs_type="xfs", mount_flags=["noatime", "nodev"]),
        access_mode=Mode_(mode=Mode_.SINGLE_NODE_READER_ONLY),
    )
    request = csi_pb2.NodePublishVolumeRequest(
        volume_id=VOLUME, target_path=TARGET, volume_capability=capability, readonly=True
    )
    assert node.NodePublishVolume(request, ctx()) == csi_pb2.NodePublishVolumeResponse()
    service.publish.assert_called_once_with(
        PublishRequest(
            VOLUME, TARGET, Capability("SINGLE_NODE_READER_ONLY", AccessType.MOUNT, "xfs", ("noatime", "nodev")), True
        )
    )


@pytest.mark.parametrize(
    ("capability", "expected"),
    [
        (None, None),
        (
            csi_pb2.VolumeCapability(
                block=csi_pb2.VolumeCapability.BlockVolume(), access_mode=Mode_(mode=Mode_.SINGLE_NODE_WRITER)
            ),
            Capability("SINGLE_NODE_WRITER", AccessType.BLOCK),
        ),
        (csi_pb2.VolumeCapability(), Capability("UNKNOWN", None)),
    ],
)
def test_publish_capability_shapes(capability: csi_pb2.VolumeCapability | None, expected: Capability | None) -> None:
    node, service = servicer()
    request = csi_pb2.NodePublishVolumeRequest(volume_id=VOLUME, target_path=TARGET, volume_capability=capability)
    node.NodePublishVolume(request, ctx())
    assert service.publish.call_args.args[0].capability == expected


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (NotFound("volume x does not exist"), grpc.StatusCode.NOT_FOUND),
        (AlreadyExists("already published differently"), grpc.StatusCode.ALREADY_EXISTS),
        (RuntimeError("bug"), grpc.StatusCode.INTERNAL),
    ],
)
def test_errors_become_status_codes(error: Exception, code: grpc.StatusCode) -> None:
    node, service = servicer()
    service.unpublish.side_effect = error
    context = call_failing(node.NodeUnpublishVolume, csi_pb2.NodeUnpublishVolumeRequest(volume_id=VOLUME))
    assert context.code == code
    assert str(error) in context.details


def test_unpublish_passes_id_and_target() -> None:
    node, service = servicer()
    request = csi_pb2.NodeUnpublishVolumeRequest(volume_id=VOLUME, target_path=TARGET)
    assert node.NodeUnpublishVolume(request, ctx()) == csi_pb2.NodeUnpublishVolumeResponse()
    service.unpublish.assert_called_once_with(VOLUME, TARGET)


@pytest.mark.parametrize("method", ["NodeStageVolume", "NodeUnstageVolume"])
def test_staging_is_unimplemented(method: str) -> None:
    node, service = servicer()
    request = getattr(csi_pb2, f"{method}Request")(volume_id=VOLUME)
    context = call_failing(getattr(node, method), request)
    assert context.code == grpc.StatusCode.UNIMPLEMENTED
    assert service.method_calls == []


def test_stats_of_a_filesystem_volume() -> None:
    node, service = servicer()
    usage = FsUsage(1000, 600, 400, 50, 40, 10)
    service.stats.return_value = VolumeStats(1000, usage, Condition(True, "pool full"))
    request = csi_pb2.NodeGetVolumeStatsRequest(volume_id=VOLUME, volume_path=TARGET)
    response = node.NodeGetVolumeStats(request, ctx())
    service.stats.assert_called_once_with(VOLUME, TARGET)
    Usage = csi_pb2.VolumeUsage
    assert list(response.usage) == [
        Usage(unit=Usage.BYTES, total=1000, available=600, used=400),
        Usage(unit=Usage.INODES, total=50, available=40, used=10),
    ]
    assert response.volume_condition == csi_pb2.VolumeCondition(abnormal=True, message="pool full")


def test_stats_of_a_block_volume_has_bytes_only() -> None:
    node, service = servicer()
    service.stats.return_value = VolumeStats(4096, None, Condition(False, "volume is healthy"))
    response = node.NodeGetVolumeStats(csi_pb2.NodeGetVolumeStatsRequest(), ctx())
    assert list(response.usage) == [csi_pb2.VolumeUsage(unit=csi_pb2.VolumeUsage.BYTES, total=4096)]
    assert not response.volume_condition.abnormal


def test_expand_reports_the_capacity() -> None:
    node, service = servicer()
    service.expand.return_value = 2 * 1024**3
    request = csi_pb2.NodeExpandVolumeRequest(
        volume_id=VOLUME, volume_path=TARGET, capacity_range=csi_pb2.CapacityRange(required_bytes=1024**3)
    )
    assert node.NodeExpandVolume(request, ctx()).capacity_bytes == 2 * 1024**3
    service.expand.assert_called_once_with(ExpandRequest(VOLUME, TARGET, 1024**3))
    service.expand.side_effect = OutOfRange("too big")
    assert call_failing(node.NodeExpandVolume, request).code == grpc.StatusCode.OUT_OF_RANGE


def test_capabilities_are_exactly_what_is_implemented() -> None:
    node, _ = servicer()
    response = node.NodeGetCapabilities(csi_pb2.NodeGetCapabilitiesRequest(), ctx())
    kinds = {capability.rpc.type for capability in response.capabilities}
    assert kinds == {Rpc.GET_VOLUME_STATS, Rpc.EXPAND_VOLUME, Rpc.VOLUME_CONDITION}
    assert Rpc.STAGE_UNSTAGE_VOLUME not in kinds


def test_info_has_the_topology_key() -> None:
    node, service = servicer()
    service.info.return_value = NodeInfo("node-7", 100, {TOPOLOGY_KEY: "node-7"})
    response = node.NodeGetInfo(csi_pb2.NodeGetInfoRequest(), ctx())
    assert (response.node_id, response.max_volumes_per_node) == ("node-7", 100)
    assert dict(response.accessible_topology.segments) == {"topology.localcsi.io/node": "node-7"}


@pytest.mark.parametrize("nsenter", [False, True])
def test_the_factory_builds_real_adapters_from_the_config(nsenter: bool) -> None:
    config = PluginConfig(mode=Mode.NODE, node_id="worker-3", lvm_nsenter=nsenter, max_volumes_per_node=12)
    service = build_node_servicer(config).service
    assert (service.node_id, service.max_volumes_per_node) == ("worker-3", 12)
    assert isinstance(service.fs, Filesystems) and isinstance(service.lvm, Lvm)
    for runner in (service.fs.runner, service.lvm.runner):
        assert isinstance(runner, SubprocessRunner) and runner.nsenter is nsenter
    assert service.vg_allowed("localcsi-ssd") and not service.vg_allowed("system")


def test_in_cluster_mode_the_node_plugin_serves_the_agents_device_and_mountpoint_volumes() -> None:
    """The agent took the disk or mount point its NodeLocalStorage gave; the node plugin finds them by id."""
    only = ("^localcsi-ssd$",)
    service = build_node_servicer(PluginConfig(mode=Mode.NODE, node_id="worker-3", vg_patterns=only)).service
    assert service.vg_allowed(device_vg_name("pvc-1")) and not service.vg_allowed(MOUNTPOINT_GROUP)
    assert isinstance(service, NodeServiceWithMountPoints)
    standalone = PluginConfig(mode=Mode.STANDALONE, node_id="worker-3", vg_patterns=only)
    assert not standalone.vg_allowed(device_vg_name("pvc-1")), "standalone: only with --device"
    assert not isinstance(build_node_servicer(standalone).service, NodeServiceWithMountPoints)


@pytest.fixture
def channel(tmp_path: Path) -> Iterator[grpc.Channel]:
    service = mock.create_autospec(NodeService, instance=True)
    service.info.return_value = NodeInfo("node-1", 0, {TOPOLOGY_KEY: "node-1"})
    service.publish.side_effect = NotFound("volume node-1/vg/csi-x does not exist")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    services.add_node(NodeServicer(service), server)
    server.add_insecure_port(f"unix:{tmp_path / 'csi.sock'}")
    server.start()
    with grpc.insecure_channel(f"unix:{tmp_path / 'csi.sock'}") as opened:
        yield opened
    server.stop(grace=None)


def test_over_the_wire(channel: grpc.Channel) -> None:
    stub = services.node_stub(channel)
    assert stub.NodeGetInfo(csi_pb2.NodeGetInfoRequest(), timeout=10).node_id == "node-1"
    with pytest.raises(grpc.RpcError) as raised:
        stub.NodePublishVolume(csi_pb2.NodePublishVolumeRequest(volume_id="x"), timeout=10)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert "does not exist" in (raised.value.details() or "")
    with pytest.raises(grpc.RpcError) as raised:
        stub.NodeStageVolume(csi_pb2.NodeStageVolumeRequest(), timeout=10)
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
