"""The Controller servicer: real protobuf requests through a real ControllerDriver, codes as a CO sees them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, cast

import grpc
import pytest

from localcsi import TOPOLOGY_KEY
from localcsi.core.health import Condition
from localcsi.core.sizes import GiB, MiB
from localcsi.csi import csi_pb2
from localcsi.driver.backend import CONTEXT_FSTYPE
from localcsi.driver.controller import ControllerDriver
from localcsi.driver.local_backend import LocalLvmBackend
from localcsi.plugin.config import PluginConfig
from localcsi.plugin.controller import ControllerServicer, build_controller_servicer

sys.path.insert(0, str(Path(__file__).parents[1] / "driver"))  # the driver tests' in-memory backend
from controller_fakes import NODE, FakeBackend, make_vg

from localcsi.testing.fake_context import ContextAborted, FakeContext

pytestmark = pytest.mark.unit

Code = grpc.StatusCode
Cap = csi_pb2.VolumeCapability
Rpc = csi_pb2.ControllerServiceCapability.RPC
ContentSource = csi_pb2.VolumeContentSource
WRITER = Cap.AccessMode(mode=Cap.AccessMode.SINGLE_NODE_WRITER)


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend(make_vg("localcsi-a", 4, 4), make_vg("localcsi-b", 2), pool_in="localcsi-a")


@pytest.fixture
def servicer(backend: FakeBackend) -> ControllerServicer:
    return ControllerServicer(ControllerDriver(backend))


def call(method: Any, request: object) -> Any:
    return method(request, cast(grpc.ServicerContext, FakeContext()))


def fails(method: Any, request: object) -> tuple[grpc.StatusCode | None, str]:
    context = FakeContext()
    with pytest.raises(ContextAborted):
        method(request, cast(grpc.ServicerContext, context))
    return context.code, context.details


def mount(fs_type: str = "", mode: Cap.AccessMode.Mode = Cap.AccessMode.SINGLE_NODE_WRITER) -> Cap:
    return Cap(mount=Cap.MountVolume(fs_type=fs_type), access_mode=Cap.AccessMode(mode=mode))


def block() -> csi_pb2.VolumeCapability:
    return Cap(block=Cap.BlockVolume(), access_mode=WRITER)


def create_request(name: str = "pvc-1", size: int = GiB, **fields: Any) -> csi_pb2.CreateVolumeRequest:
    fields.setdefault("volume_capabilities", [mount()])
    return csi_pb2.CreateVolumeRequest(name=name, capacity_range=csi_pb2.CapacityRange(required_bytes=size), **fields)


def test_capabilities_are_exactly_what_is_implemented(servicer: ControllerServicer) -> None:
    reply = call(servicer.ControllerGetCapabilities, csi_pb2.ControllerGetCapabilitiesRequest())
    kinds = {cap.rpc.type for cap in reply.capabilities}
    assert kinds == {
        Rpc.CREATE_DELETE_VOLUME, Rpc.CREATE_DELETE_SNAPSHOT, Rpc.LIST_SNAPSHOTS, Rpc.LIST_VOLUMES,
        Rpc.CLONE_VOLUME, Rpc.EXPAND_VOLUME, Rpc.GET_CAPACITY, Rpc.GET_VOLUME, Rpc.VOLUME_CONDITION,
        Rpc.MODIFY_VOLUME,
    }  # fmt: skip


def test_create_volume_reply(servicer: ControllerServicer) -> None:
    reply = call(servicer.CreateVolume, create_request(size=GiB + 1, volume_capabilities=[mount("xfs")]))
    volume = reply.volume
    assert volume.capacity_bytes == GiB + 4 * MiB
    assert volume.volume_id.startswith(f"{NODE}/localcsi-b/csi-")
    assert [dict(t.segments) for t in volume.accessible_topology] == [{TOPOLOGY_KEY: NODE}]
    assert dict(volume.volume_context) == {CONTEXT_FSTYPE: "xfs"}
    assert not volume.HasField("content_source")


def test_create_from_snapshot_and_volume_report_their_source() -> None:
    # localcsi-b keeps room after the restore: a clone of its thick volume needs an extent there
    backend = FakeBackend(make_vg("localcsi-a", 4, 4), make_vg("localcsi-b", 3), pool_in="localcsi-a")
    servicer = ControllerServicer(ControllerDriver(backend))
    source = call(servicer.CreateVolume, create_request("src")).volume
    snapshot = call(servicer.CreateSnapshot, csi_pb2.CreateSnapshotRequest(name="s", source_volume_id=source.volume_id))
    from_snapshot = ContentSource(snapshot=ContentSource.SnapshotSource(snapshot_id=snapshot.snapshot.snapshot_id))
    restored = call(servicer.CreateVolume, create_request("r", volume_content_source=from_snapshot)).volume
    assert restored.content_source == from_snapshot
    from_volume = ContentSource(volume=ContentSource.VolumeSource(volume_id=source.volume_id))
    clone = call(servicer.CreateVolume, create_request("c", volume_content_source=from_volume)).volume
    assert clone.content_source == from_volume and clone.capacity_bytes == GiB


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (csi_pb2.CreateVolumeRequest(volume_capabilities=[mount()]), Code.INVALID_ARGUMENT),
        (csi_pb2.CreateVolumeRequest(name="x"), Code.INVALID_ARGUMENT),
        (create_request(volume_capabilities=[Cap(mount=Cap.MountVolume())]), Code.INVALID_ARGUMENT),
        (create_request(volume_capabilities=[Cap(access_mode=WRITER)]), Code.INVALID_ARGUMENT),
        (create_request(size=-1), Code.INVALID_ARGUMENT),
        (create_request(size=1 << 40), Code.RESOURCE_EXHAUSTED),
        (create_request(parameters={"lvmType": "thin", "stripes": "2"}), Code.INVALID_ARGUMENT),
        (create_request(volume_content_source=ContentSource()), Code.INVALID_ARGUMENT),
        (
            create_request(volume_content_source=ContentSource(
                snapshot=ContentSource.SnapshotSource(snapshot_id="non-existing-snapshot-id"))),
            Code.NOT_FOUND,
        ),
        (
            create_request(accessibility_requirements=csi_pb2.TopologyRequirement(
                requisite=[csi_pb2.Topology(segments={TOPOLOGY_KEY: "node-9"})])),
            Code.RESOURCE_EXHAUSTED,
        ),
    ],
)  # fmt: skip
def test_create_volume_errors(
    servicer: ControllerServicer, backend: FakeBackend, request_: csi_pb2.CreateVolumeRequest, code: Code
) -> None:
    assert fails(servicer.CreateVolume, request_)[0] == code
    assert backend.lvs == {}


def test_same_name_different_size_already_exists(servicer: ControllerServicer) -> None:
    call(servicer.CreateVolume, create_request(size=GiB))
    code, details = fails(servicer.CreateVolume, create_request(size=2 * GiB))
    assert code == Code.ALREADY_EXISTS and "pvc-1" in details


def test_delete_volume(servicer: ControllerServicer, backend: FakeBackend) -> None:
    volume_id = call(servicer.CreateVolume, create_request()).volume.volume_id
    call(servicer.DeleteVolume, csi_pb2.DeleteVolumeRequest(volume_id=volume_id))
    call(servicer.DeleteVolume, csi_pb2.DeleteVolumeRequest(volume_id=volume_id))
    call(servicer.DeleteVolume, csi_pb2.DeleteVolumeRequest(volume_id="invalid-id"))
    assert backend.deleted == [volume_id]
    assert fails(servicer.DeleteVolume, csi_pb2.DeleteVolumeRequest())[0] == Code.INVALID_ARGUMENT


def test_list_and_get_volumes_report_conditions(servicer: ControllerServicer, backend: FakeBackend) -> None:
    ids = [call(servicer.CreateVolume, create_request(f"v{i}", 4 * MiB)).volume.volume_id for i in range(3)]
    backend.conditions[ids[1]] = Condition(True, "a physical volume under it is missing")
    first = call(servicer.ListVolumes, csi_pb2.ListVolumesRequest(max_entries=2))
    rest = call(servicer.ListVolumes, csi_pb2.ListVolumesRequest(starting_token=first.next_token))
    entries = [*first.entries, *rest.entries]
    assert [e.volume.volume_id for e in entries] == sorted(ids) and rest.next_token == ""
    abnormal = [e.volume.volume_id for e in entries if e.status.volume_condition.abnormal]
    assert abnormal == [ids[1]]
    got = call(servicer.ControllerGetVolume, csi_pb2.ControllerGetVolumeRequest(volume_id=ids[1]))
    assert got.volume.volume_id == ids[1] and got.status.volume_condition.abnormal
    assert "missing" in got.status.volume_condition.message
    bad_token = csi_pb2.ListVolumesRequest(starting_token="invalid-token")
    assert fails(servicer.ListVolumes, bad_token)[0] == Code.ABORTED
    missing = csi_pb2.ControllerGetVolumeRequest(volume_id=f"{NODE}/localcsi-a/csi-00")
    assert fails(servicer.ControllerGetVolume, missing)[0] == Code.NOT_FOUND


def test_validate_volume_capabilities(servicer: ControllerServicer) -> None:
    volume_id = call(servicer.CreateVolume, create_request()).volume.volume_id
    request = csi_pb2.ValidateVolumeCapabilitiesRequest(
        volume_id=volume_id, volume_capabilities=[mount(), block()], volume_context={"a": "b"}
    )
    reply = call(servicer.ValidateVolumeCapabilities, request)
    assert list(reply.confirmed.volume_capabilities) == [mount(), block()]
    assert dict(reply.confirmed.volume_context) == {"a": "b"}
    multi = csi_pb2.ValidateVolumeCapabilitiesRequest(
        volume_id=volume_id, volume_capabilities=[mount(mode=Cap.AccessMode.MULTI_NODE_MULTI_WRITER)]
    )
    reply = call(servicer.ValidateVolumeCapabilities, multi)
    assert not reply.HasField("confirmed") and "one node" in reply.message
    no_caps = csi_pb2.ValidateVolumeCapabilitiesRequest(volume_id=volume_id)
    assert fails(servicer.ValidateVolumeCapabilities, no_caps)[0] == Code.INVALID_ARGUMENT
    no_id = csi_pb2.ValidateVolumeCapabilitiesRequest(volume_capabilities=[mount()])
    assert fails(servicer.ValidateVolumeCapabilities, no_id)[0] == Code.INVALID_ARGUMENT
    gone = csi_pb2.ValidateVolumeCapabilitiesRequest(volume_id="fake-vol", volume_capabilities=[mount()])
    assert fails(servicer.ValidateVolumeCapabilities, gone)[0] == Code.NOT_FOUND


def test_get_capacity(servicer: ControllerServicer) -> None:
    reply = call(servicer.GetCapacity, csi_pb2.GetCapacityRequest())
    assert reply.available_capacity == 6 * GiB and reply.maximum_volume_size.value == 4 * GiB
    here = csi_pb2.GetCapacityRequest(accessible_topology=csi_pb2.Topology(segments={TOPOLOGY_KEY: NODE}))
    assert call(servicer.GetCapacity, here).available_capacity == 6 * GiB
    there = csi_pb2.GetCapacityRequest(accessible_topology=csi_pb2.Topology(segments={TOPOLOGY_KEY: "x"}))
    assert call(servicer.GetCapacity, there).available_capacity == 0
    thin = csi_pb2.GetCapacityRequest(parameters={"lvmType": "thin"}, volume_capabilities=[block()])
    assert call(servicer.GetCapacity, thin).available_capacity == 4 * GiB
    bad = csi_pb2.GetCapacityRequest(parameters={"lvmType": "bogus"})
    assert fails(servicer.GetCapacity, bad)[0] == Code.INVALID_ARGUMENT


def test_snapshots(servicer: ControllerServicer) -> None:
    source = call(servicer.CreateVolume, create_request("src")).volume.volume_id
    reply = call(servicer.CreateSnapshot, csi_pb2.CreateSnapshotRequest(name="s", source_volume_id=source))
    snapshot = reply.snapshot
    assert snapshot.ready_to_use and snapshot.size_bytes == GiB and snapshot.source_volume_id == source
    assert snapshot.creation_time.seconds > 0
    listed = call(servicer.ListSnapshots, csi_pb2.ListSnapshotsRequest(snapshot_id=snapshot.snapshot_id))
    assert [e.snapshot.snapshot_id for e in listed.entries] == [snapshot.snapshot_id]
    none = call(servicer.ListSnapshots, csi_pb2.ListSnapshotsRequest(snapshot_id="none-exist-id"))
    assert list(none.entries) == []
    no_name = csi_pb2.CreateSnapshotRequest(source_volume_id="testId")
    assert fails(servicer.CreateSnapshot, no_name)[0] == Code.INVALID_ARGUMENT
    no_source = csi_pb2.CreateSnapshotRequest(name="name")
    assert fails(servicer.CreateSnapshot, no_source)[0] == Code.INVALID_ARGUMENT
    other = call(servicer.CreateVolume, create_request("other")).volume.volume_id
    taken = csi_pb2.CreateSnapshotRequest(name="s", source_volume_id=other)
    assert fails(servicer.CreateSnapshot, taken)[0] == Code.ALREADY_EXISTS
    call(servicer.DeleteSnapshot, csi_pb2.DeleteSnapshotRequest(snapshot_id=snapshot.snapshot_id))
    call(servicer.DeleteSnapshot, csi_pb2.DeleteSnapshotRequest(snapshot_id="reallyfakesnapshotid"))
    assert fails(servicer.DeleteSnapshot, csi_pb2.DeleteSnapshotRequest())[0] == Code.INVALID_ARGUMENT
    assert list(call(servicer.ListSnapshots, csi_pb2.ListSnapshotsRequest()).entries) == []


def test_expand_volume(servicer: ControllerServicer) -> None:
    volume_id = call(servicer.CreateVolume, create_request()).volume.volume_id
    grow = csi_pb2.ControllerExpandVolumeRequest(
        volume_id=volume_id, capacity_range=csi_pb2.CapacityRange(required_bytes=2 * GiB), volume_capability=mount()
    )
    reply = call(servicer.ControllerExpandVolume, grow)
    assert (reply.capacity_bytes, reply.node_expansion_required) == (2 * GiB, True)
    grow.volume_capability.CopyFrom(block())
    assert not call(servicer.ControllerExpandVolume, grow).node_expansion_required
    no_range = csi_pb2.ControllerExpandVolumeRequest(volume_id=volume_id)
    assert fails(servicer.ControllerExpandVolume, no_range)[0] == Code.INVALID_ARGUMENT
    no_id = csi_pb2.ControllerExpandVolumeRequest(capacity_range=csi_pb2.CapacityRange(required_bytes=GiB))
    assert fails(servicer.ControllerExpandVolume, no_id)[0] == Code.INVALID_ARGUMENT


def test_modify_volume_changes_limits_and_refuses_what_csi_sanity_probes(
    servicer: ControllerServicer, backend: FakeBackend
) -> None:
    created = call(servicer.CreateVolume, create_request(parameters={"bps": "1Mi"}, mutable_parameters={"iops": "50"}))
    volume_id = created.volume.volume_id
    fstype = {"localcsi.io/fstype": "ext4"}
    assert dict(created.volume.volume_context) == fstype | {"localcsi.io/bps": str(MiB), "localcsi.io/iops": "50"}
    call(servicer.ControllerModifyVolume, csi_pb2.ControllerModifyVolumeRequest(
        volume_id=volume_id, mutable_parameters={"iops": "0", "writeBps": "2Mi"}))  # fmt: skip
    reply = call(servicer.ControllerGetVolume, csi_pb2.ControllerGetVolumeRequest(volume_id=volume_id))
    assert dict(reply.volume.volume_context) == fstype | {
        "localcsi.io/bps": str(MiB), "localcsi.io/iops": "0", "localcsi.io/writeBps": str(2 * MiB),
    }  # fmt: skip
    before = dict(backend.lvs)
    refusals = [
        (csi_pb2.ControllerModifyVolumeRequest(mutable_parameters={"iops": "5"}), Code.INVALID_ARGUMENT),
        (csi_pb2.ControllerModifyVolumeRequest(volume_id="no-such-volume", mutable_parameters={"iops": "5"}),
         Code.NOT_FOUND),
        (csi_pb2.ControllerModifyVolumeRequest(volume_id=volume_id, mutable_parameters={"XXX_FakeKey": "x"}),
         Code.INVALID_ARGUMENT),
        (csi_pb2.ControllerModifyVolumeRequest(volume_id=volume_id, mutable_parameters={"bps": "-1"}),
         Code.INVALID_ARGUMENT),
    ]  # fmt: skip
    for request, code in refusals:
        assert fails(servicer.ControllerModifyVolume, request)[0] == code, request
    assert backend.lvs == before, "a refused modify changes nothing"
    bad_create = create_request("pvc-2", mutable_parameters={"XXX_FakeKey": "x"})
    assert fails(servicer.CreateVolume, bad_create)[0] == Code.INVALID_ARGUMENT


@pytest.mark.parametrize(
    ("method", "request_"),
    [
        ("ControllerPublishVolume", csi_pb2.ControllerPublishVolumeRequest(volume_id="v", node_id="n")),
        ("ControllerUnpublishVolume", csi_pb2.ControllerUnpublishVolumeRequest(volume_id="v")),
        ("GetSnapshot", csi_pb2.GetSnapshotRequest(snapshot_id="s")),
    ],
)
def test_unsupported_rpcs_are_unimplemented(servicer: ControllerServicer, method: str, request_: object) -> None:
    assert fails(getattr(servicer, method), request_)[0] == Code.UNIMPLEMENTED


def test_a_bad_page_request_is_refused_before_lvm_is_asked() -> None:
    class Unreachable(FakeBackend):
        def volumes(self) -> list[Any]:
            raise AssertionError("state was read for a request that is refused anyway")

        def snapshots(self) -> list[Any]:
            raise AssertionError("state was read for a request that is refused anyway")

    servicer = ControllerServicer(ControllerDriver(Unreachable()))
    assert fails(servicer.ListVolumes, csi_pb2.ListVolumesRequest(starting_token="x"))[0] == Code.ABORTED
    assert fails(servicer.ListSnapshots, csi_pb2.ListSnapshotsRequest(starting_token="x"))[0] == Code.ABORTED
    assert fails(servicer.ListVolumes, csi_pb2.ListVolumesRequest(max_entries=-1))[0] == Code.INVALID_ARGUMENT


def test_an_unexpected_failure_is_internal(servicer: ControllerServicer, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: object) -> None:
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(servicer.driver, "list_volumes", broken)
    code, details = fails(servicer.ListVolumes, csi_pb2.ListVolumesRequest())
    assert code == Code.INTERNAL and "boom" in details


def test_build_controller_servicer_uses_this_nodes_lvm_within_the_allowed_vgs() -> None:
    servicer = build_controller_servicer(PluginConfig(node_id="node-7", lvm_nsenter=True))
    backend = servicer.driver.backend
    assert isinstance(backend, LocalLvmBackend)
    assert backend.nodes() == ("node-7",)
    assert backend.vg_allowed("localcsi-ssd") and not backend.vg_allowed("ubuntu-vg")
    assert backend.lvm.runner.nsenter  # type: ignore[attr-defined]
