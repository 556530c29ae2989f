"""The controller driver under kill -9, concurrency and 200 volumes, on real lvm2 in the node VM."""

from __future__ import annotations

import time
from typing import Any

import pytest
from controller_guest import MIB, NODE, GuestController

from localcsi.core.names import volume_lv_name
from localcsi.core.tags import LvKind, LvMetadata, encode_tags
from localcsi.testing.vm import NodeVM, VMConfig

VG = "localcsi-a"
MANY = "localcsi-b"
CREATING = "localcsi.io/state=creating"
SIGKILL = 9


@pytest.fixture(scope="module")
def vm_config() -> VMConfig:
    return VMConfig(disks_gib=[2, 2])


@pytest.fixture(scope="module")
def guest(installed_vm: NodeVM) -> GuestController:
    vdb, vdc = installed_vm.data_disks()
    installed_vm.check(["pvcreate", "-y", vdb, vdc])
    installed_vm.check(["vgcreate", VG, vdb])
    installed_vm.check(["vgcreate", MANY, vdc])
    return GuestController(installed_vm)


def lvs_named(guest: GuestController, vg: str, name: str) -> list[dict[str, str]]:
    return [row for row in guest.lvs(vg) if row["lv_name"] == volume_lv_name(name)]


def wait_for(guest: GuestController, command: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = guest.sh(f"{command} || true").strip()
        if out:
            return out
        time.sleep(0.05)
    raise AssertionError(f"never true: {command}")


def create_like_a_co(guest: GuestController, step: dict[str, Any], attempts: int = 10) -> dict[str, Any]:
    """Retry CreateVolume on ABORTED with a pause, as the external-provisioner does."""
    for _ in range(attempts):
        [result] = guest.run(step)
        if result.get("error") != "ABORTED":
            return result
        time.sleep(1)
    raise AssertionError(f"{step} stayed ABORTED")


@pytest.mark.parametrize("kill_lvcreate_too", [False, True])
def test_kill_9_during_lvcreate_then_a_retry_makes_exactly_one_lv(
    guest: GuestController, kill_lvcreate_too: bool
) -> None:
    name = f"killed-{kill_lvcreate_too}"
    step = {"op": "create", "name": name, "bytes": 64 * MIB, "params": {"vgName": VG}}
    pid = guest.spawn(step, log=f"/tmp/{name}.log")
    lvcreate = wait_for(guest, f"pgrep -f '[l]vcreate .*{volume_lv_name(name)}'")
    guest.vm.guest.signal(pid, SIGKILL, wait=10)
    if kill_lvcreate_too:  # the whole container dies, lvm2 with it
        guest.sh(f"kill -9 {lvcreate.split()[0]} 2>/dev/null || true")
    wait_for(guest, f"pgrep -f '[l]vcreate .*{volume_lv_name(name)}' >/dev/null || echo gone")
    result = create_like_a_co(guest, step)
    assert "ok" in result, result
    assert len(lvs_named(guest, VG, name)) == 1, "exactly one LV for the name"
    [again] = guest.ok(step)
    assert again == result["ok"]
    guest.ok({"op": "delete", "volume": name})
    assert lvs_named(guest, VG, name) == []


def test_kill_9_during_a_restore_copy_never_shows_a_half_copied_volume(guest: GuestController) -> None:
    guest.ok(
        {"op": "create", "name": "origin", "bytes": 768 * MIB, "params": {"vgName": VG}, "access": "block"},
        {"op": "sh", "cmd": "dd if=/dev/urandom of={dev:origin} bs=1M count=768 oflag=direct status=none"},
        {"op": "snapshot", "name": "origin-snap", "volume": "origin", "params": {"snapshotSize": "10%"}},
    )
    want = guest.sha256(f"/dev/{VG}/{volume_lv_name('origin')}", 768)
    guest.sh(f"dd if=/dev/urandom of=/dev/{VG}/{volume_lv_name('origin')} bs=1M count=4 oflag=direct status=none")
    restore = {"op": "create", "name": "restored", "params": {"vgName": VG}, "from_snapshot": "origin-snap"}
    pid = guest.spawn(restore, log="/tmp/restore.log")
    wait_for(guest, f"lvs --noheadings -o lv_tags {VG}/{volume_lv_name('restored')} 2>/dev/null | grep creating")
    time.sleep(2)  # well into the copy
    guest.vm.guest.signal(pid, SIGKILL, wait=10)

    [row] = lvs_named(guest, VG, "restored")
    assert CREATING in row["lv_tags"].split(","), "the half-copied LV is still marked as being created"
    listed, got = guest.run({"op": "list"}, {"op": "get", "volume": "restored"})
    assert not any(volume_lv_name("restored") in volume_id for volume_id in listed["ok"]["ids"])
    assert got["error"] == "NOT_FOUND", "a half-copied volume is never presented"

    result = create_like_a_co(guest, restore)
    assert result["ok"]["ready"]
    [row] = lvs_named(guest, VG, "restored")
    assert CREATING not in row["lv_tags"]
    assert guest.sha256(f"/dev/{VG}/{volume_lv_name('restored')}", 768) == want, "the retry finished the copy"
    guest.ok(
        {"op": "delete", "volume": "restored"},
        {"op": "delete_snapshot", "snapshot": "origin-snap"},
        {"op": "delete", "volume": "origin"},
    )


def test_parallel_creates_each_get_one_volume(guest: GuestController) -> None:
    names = [f"parallel-{i}" for i in range(12)]
    [outcomes] = guest.ok({"op": "parallel_create", "names": names, "bytes": 8 * MIB, "params": {"vgName": VG}})
    assert [outcome.get("error") for outcome in outcomes] == [None] * len(names)
    ids = {outcome["ok"]["id"] for outcome in outcomes}
    assert len(ids) == len(names)
    [same] = guest.ok({"op": "parallel_create", "names": ["twin"] * 4, "bytes": 8 * MIB, "params": {"vgName": VG}})
    assert {outcome.get("error", "OK") for outcome in same} <= {"OK", "ABORTED"}
    assert len(lvs_named(guest, VG, "twin")) == 1, "racing creates of one name make one LV"
    guest.sh(f"lvremove -y {VG} >/dev/null")


def test_two_hundred_volumes_page_without_duplicates_or_gaps(guest: GuestController) -> None:
    names = [f"many-{i:03}" for i in range(200)]
    commands = []
    for name in names:
        tags = encode_tags(LvMetadata(LvKind.VOLUME, name, 4 * MIB))
        addtags = " ".join(f"--addtag {tag}" for tag in tags)
        commands.append(f"lvcreate --yes --type linear -n {volume_lv_name(name)} -L 4m {addtags} {MANY}")
    guest.vm.check(["lvm"], stdin=("\n".join(commands) + "\n").encode(), timeout=600)
    assert len(guest.lvs(MANY)) == 200

    expected = {f"{NODE}/{MANY}/{volume_lv_name(name)}" for name in names}
    [first] = guest.ok({"op": "list", "max": 17})
    deleted = first["ids"][-1]  # the volume the token points after disappears between pages
    seen, token, pages = list(first["ids"]), first["next"], 1
    guest.ok({"op": "delete", "volume_id": deleted})
    while token:
        [page] = guest.ok({"op": "list", "max": 17, "token": token})
        seen += page["ids"]
        token, pages = page["next"], pages + 1
    assert len(seen) == len(set(seen)), "no duplicates"
    assert set(seen) == expected, "no gaps: every volume that existed throughout was listed"
    assert pages == 12
    guest.sh(f"lvremove -y {MANY} >/dev/null")
