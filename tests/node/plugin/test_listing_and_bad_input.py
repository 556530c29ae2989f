"""200 volumes paged through ListVolumes (one deleted between pages), and malformed requests that must change
nothing."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc

from localcsi.csi import csi_pb2
from localcsi.testing import csi_requests as req
from localcsi.testing.csi_requests import GIB, MIB
from localcsi.testing.fixtures import THICK, THICK_VG, THIN
from localcsi.testing.guest_plugin import GuestPlugin
from localcsi.testing.vm import NodeVM

# Twelve pages and a volume deleted between two of them; 200 volumes (the count until session 14) paged
# the same way and took 96 to 156 s of the node tier.
VOLUMES = 100
PAGE = 9
Code = grpc.StatusCode
AccessMode = csi_pb2.VolumeCapability.AccessMode


def lvm_state(vm: NodeVM) -> Any:
    argv = ["lvs", "-a", "--reportformat", "json", "-o", "vg_name,lv_name,lv_size,lv_attr,lv_tags"]
    return vm.check(argv).json(), vm.check(["vgs", "--reportformat", "json", "-o", "vg_name,vg_free"]).json()


def test_100_volumes_page_without_duplicates_or_gaps(csi_plugin: GuestPlugin) -> None:
    def create(index: int) -> str:
        request = req.create_volume(f"many-{index:03d}", 8 * MIB, THIN if index % 2 else THICK)
        return str(csi_plugin.controller.CreateVolume(request, timeout=300).volume.volume_id)

    with ThreadPoolExecutor(max_workers=8) as pool:
        created = set(pool.map(create, range(VOLUMES)))
    assert len(created) == VOLUMES

    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = csi_plugin.controller.ListVolumes(csi_pb2.ListVolumesRequest(max_entries=PAGE, starting_token=token))
        assert len(page.entries) <= PAGE
        seen += [entry.volume.volume_id for entry in page.entries]
        pages += 1
        token = page.next_token
        if pages == 1:  # the volume the token points after disappears between pages
            csi_plugin.controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=seen[-1]), timeout=300)
        if not token:
            break
        assert pages < VOLUMES, "ListVolumes never ends"
    assert len(seen) == len(set(seen)), "a volume was listed twice"
    assert set(seen) == created, f"missing: {sorted(created - set(seen))[:5]}, extra: {sorted(set(seen) - created)[:5]}"
    assert pages == -(-VOLUMES // PAGE) == 12


def _bad_requests(plugin: GuestPlugin) -> list[tuple[str, Callable[[], Any], Code]]:
    c, n = plugin.controller, plugin.node
    cap = req.mount_capability()
    unknown_volume = "node-1/localcsi-thick/csi-00000000000000000000000000000000"
    multi_writer = csi_pb2.VolumeCapability(
        mount=csi_pb2.VolumeCapability.MountVolume(), access_mode=AccessMode(mode=AccessMode.MULTI_NODE_MULTI_WRITER)
    )
    create = c.CreateVolume
    return [
        ("create without a name", lambda: create(req.create_volume("", GIB, THICK)), Code.INVALID_ARGUMENT),
        (
            "create without capabilities",
            lambda: create(csi_pb2.CreateVolumeRequest(name="no-caps", parameters=THICK)),
            Code.INVALID_ARGUMENT,
        ),
        ("negative size", lambda: create(req.create_volume("neg", -1, THICK)), Code.INVALID_ARGUMENT),
        (
            "limit below required",
            lambda: create(
                csi_pb2.CreateVolumeRequest(
                    name="range",
                    capacity_range=csi_pb2.CapacityRange(required_bytes=GIB, limit_bytes=MIB),
                    volume_capabilities=[cap],
                    parameters=THICK,
                )
            ),
            Code.OUT_OF_RANGE,
        ),
        ("unknown parameter", lambda: create(req.create_volume("unk", GIB, {"colour": "blue"})), Code.INVALID_ARGUMENT),
        ("bad lvmType", lambda: create(req.create_volume("t", GIB, {"lvmType": "raid9"})), Code.INVALID_ARGUMENT),
        (
            "shell metacharacters in vgName",
            lambda: create(req.create_volume("meta-vg", GIB, {"vgName": "vg;reboot"})),
            Code.INVALID_ARGUMENT,
        ),
        (
            "command substitution in thinPool",
            lambda: create(req.create_volume("meta-pool", GIB, {**THIN, "thinPool": "$(touch /pwned)"})),
            Code.INVALID_ARGUMENT,
        ),
        (
            "backticks in stripes",
            lambda: create(req.create_volume("meta-stripes", GIB, {"lvmType": "striping", "stripes": "`id`"})),
            Code.INVALID_ARGUMENT,
        ),
        (
            "unknown fstype",
            lambda: create(req.create_volume("fs", GIB, THICK, req.mount_capability("ntfs"))),
            Code.INVALID_ARGUMENT,
        ),
        (
            "multi-node writer",
            lambda: create(req.create_volume("mnw", GIB, THICK, multi_writer)),
            Code.INVALID_ARGUMENT,
        ),
        ("no room anywhere", lambda: create(req.create_volume("huge", 1024 * GIB, THICK)), Code.RESOURCE_EXHAUSTED),
        (
            "restore from an unknown snapshot",
            lambda: create(req.create_volume("rs", GIB, THICK, source=req.snapshot_source(unknown_volume))),
            Code.NOT_FOUND,
        ),
        (
            "snapshot of an unknown volume",
            lambda: c.CreateSnapshot(req.create_snapshot(unknown_volume, "s1")),
            Code.NOT_FOUND,
        ),
        (
            "snapshot without a name",
            lambda: c.CreateSnapshot(req.create_snapshot(unknown_volume, "")),
            Code.INVALID_ARGUMENT,
        ),
        ("expand an unknown volume", lambda: c.ControllerExpandVolume(req.expand(unknown_volume, GIB)), Code.NOT_FOUND),
        (
            "expand without a capacity",
            lambda: c.ControllerExpandVolume(csi_pb2.ControllerExpandVolumeRequest(volume_id=unknown_volume)),
            Code.INVALID_ARGUMENT,
        ),
        (
            "bad ListVolumes token",
            lambda: c.ListVolumes(csi_pb2.ListVolumesRequest(starting_token="not-a-token")),
            Code.ABORTED,
        ),
        (
            "negative max_entries",
            lambda: c.ListVolumes(csi_pb2.ListVolumesRequest(max_entries=-1)),
            Code.INVALID_ARGUMENT,
        ),
        (
            "validate without capabilities",
            lambda: c.ValidateVolumeCapabilities(csi_pb2.ValidateVolumeCapabilitiesRequest(volume_id=unknown_volume)),
            Code.INVALID_ARGUMENT,
        ),
        (
            "publish without a target",
            lambda: n.NodePublishVolume(req.publish(unknown_volume, "")),
            Code.INVALID_ARGUMENT,
        ),
        (
            "publish to a relative path",
            lambda: n.NodePublishVolume(req.publish(unknown_volume, "relative/target")),
            Code.INVALID_ARGUMENT,
        ),
        (
            "publish without a capability",
            lambda: n.NodePublishVolume(
                csi_pb2.NodePublishVolumeRequest(volume_id=unknown_volume, target_path="/mnt/x")
            ),
            Code.INVALID_ARGUMENT,
        ),
        (
            "publish an unknown volume",
            lambda: n.NodePublishVolume(req.publish(unknown_volume, "/mnt/x")),
            Code.NOT_FOUND,
        ),
        (
            "shell metacharacters in a volume id",
            lambda: n.NodePublishVolume(req.publish("node-1/vg;rm -rf /;/lv", "/mnt/x")),
            Code.NOT_FOUND,
        ),
        (
            "stats for a path that is not mounted",
            lambda: n.NodeGetVolumeStats(
                csi_pb2.NodeGetVolumeStatsRequest(volume_id=unknown_volume, volume_path="/mnt/nowhere")
            ),
            Code.NOT_FOUND,
        ),
    ]


def test_malformed_requests_get_the_right_code_and_change_nothing(csi_plugin: GuestPlugin) -> None:
    vm = csi_plugin.vm
    cases = _bad_requests(csi_plugin)
    assert len(cases) >= 20
    before = lvm_state(vm)
    wrong: list[str] = []
    for title, call, expected in cases:
        try:
            call()
        except grpc.RpcError as error:
            if error.code() != expected:
                wrong.append(f"{title}: expected {expected.name}, got {error.code().name}: {error.details()}")
            elif not error.details():
                wrong.append(f"{title}: {expected.name} without a message")
        else:
            wrong.append(f"{title}: expected {expected.name}, got OK")
    assert not wrong, "\n".join(wrong)
    assert lvm_state(vm) == before, "a rejected request changed LVM"
    assert vm.run(["test", "-e", "/pwned"]).rc != 0
    assert THICK_VG in str(before)
