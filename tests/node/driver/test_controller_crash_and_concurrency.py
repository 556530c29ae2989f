"""The controller driver under kill -9 during lvcreate and under concurrency, on real lvm2 in the node VM.

A kill during a restore copy and 200 volumes paged (with a delete between pages) are proven one layer
up, through the plugin's gRPC: tests/node/plugin/test_data_safety.py and test_listing_and_bad_input.py."""

from __future__ import annotations

import time
from typing import Any

import pytest
from controller_guest import MIB, GuestController

from localcsi.core.names import volume_lv_name
from localcsi.testing.vm import NodeVM
from localcsi.testing.vm_config import VMConfig

VG = "localcsi-a"
SIGKILL = 9


@pytest.fixture(scope="module")
def vm_config() -> VMConfig:
    return VMConfig(disks_gib=[2])


@pytest.fixture(scope="module")
def guest(installed_vm: NodeVM) -> GuestController:
    [vdb] = installed_vm.data_disks()
    installed_vm.check(["pvcreate", "-y", vdb])
    installed_vm.check(["vgcreate", VG, vdb])
    return GuestController(installed_vm)


def lvs_named(guest: GuestController, vg: str, name: str) -> list[dict[str, str]]:
    return [row for row in guest.lvs(vg) if row["lv_name"] == volume_lv_name(name)]


def wait_for(guest: GuestController, command: str, timeout: int = 120) -> str:
    """Poll ``command`` inside the guest every 20 ms until it prints something; returns what it printed.

    The loop runs in the guest. Polled over ssh, an ssh round trip per poll on a busy one-vCPU VM, an
    lvcreate of 64 MiB can start and finish between two polls: in stop 22's CI it was never seen."""
    loop = (
        f"deadline=$(( $(date +%s) + {timeout} )); while [ $(date +%s) -lt $deadline ]; do "
        f'out=$({command} || true); if [ -n "$out" ]; then echo "$out"; exit 0; fi; sleep 0.02; done'
    )
    out = guest.vm.check(["sh", "-c", loop], timeout=timeout + 60).stdout.strip()
    if not out:
        raise AssertionError(f"never true within {timeout} s: {command}")
    return out


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
