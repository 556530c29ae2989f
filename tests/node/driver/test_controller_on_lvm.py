"""The controller driver on real lvm2 in the node VM: every volume type through its whole life,
wipe-on-delete, capacity and topology, and malformed requests that must leave LVM untouched."""

from __future__ import annotations

import pytest
from controller_guest import GIB, MIB, NODE, GuestController

from localcsi import TOPOLOGY_KEY
from localcsi.testing.vm import NodeVM
from localcsi.testing.vm_config import VMConfig

TWO_PVS = "localcsi-a"  # striping and raid1 need two PVs
ONE_PV = "localcsi-b"
POOL = "localcsi-thinpool"
NONZERO = (
    'python3 -c \'import sys\nf = open(sys.argv[1], "rb"); f.seek(int(sys.argv[2])); n = 0\n'
    "while b := f.read(1 << 20): n += len(b) - b.count(0)\nprint(n)'"
)


@pytest.fixture(scope="module")
def vm_config() -> VMConfig:
    return VMConfig(disks_gib=[2, 2, 2])


@pytest.fixture(scope="module")
def guest(installed_vm: NodeVM) -> GuestController:
    vdb, vdc, vdd = installed_vm.data_disks()
    installed_vm.check(["pvcreate", "-y", vdb, vdc, vdd])
    installed_vm.check(["vgcreate", TWO_PVS, vdb, vdc])
    installed_vm.check(["vgcreate", ONE_PV, vdd])
    # Thin pools are the administrator's (or agent's): the driver only uses existing ones.
    installed_vm.check(["lvcreate", "-y", "--type", "thin-pool", "--zero", "y", "-n", POOL, "-L", "1g", TWO_PVS])
    return GuestController(installed_vm)


def our_lvs(guest: GuestController) -> list[str]:
    return sorted(row["lv_name"] for vg in (TWO_PVS, ONE_PV) for row in guest.lvs(vg) if row["lv_name"] != POOL)


def nonzero_bytes(device: str, offset: int = 0) -> str:
    return f"{NONZERO} {device} {offset}"


@pytest.mark.parametrize("lvm_type", ["linear", "striping", "raid1", "thin"])
def test_every_volume_type_lives_a_full_life(guest: GuestController, lvm_type: str) -> None:
    params = {"lvmType": lvm_type}
    vol, snap, restore, clone = (f"{kind}-{lvm_type}" for kind in ("vol", "snap", "restore", "clone"))
    # 16 MiB + 1 B in whole 4 MiB extents (x 2 stripes). Small on purpose: under TCG every MiB is written,
    # hashed, copied by the restore and the clone, and wiped at delete (64 MiB took 100 s a life).
    size = (24 if lvm_type == "striping" else 20) * MIB
    results = guest.run(
        {"op": "create", "name": vol, "bytes": 16 * MIB + 1, "params": params},
        {"op": "create", "name": vol, "bytes": 16 * MIB + 1, "params": params},
        {"op": "create", "name": vol, "bytes": 32 * MIB, "params": params},
        {"op": "sh", "cmd": f"dd if=/dev/urandom of={{dev:{vol}}} bs=1M count={size // MIB} oflag=direct status=none"},
        {"op": "sh", "cmd": f"sha256sum < {{dev:{vol}}}"},
        {"op": "snapshot", "name": snap, "volume": vol},
        {"op": "sh", "cmd": f"dd if=/dev/urandom of={{dev:{vol}}} bs=1M count=4 oflag=direct status=none"},
        {"op": "sh", "cmd": f"sha256sum < {{dev:{vol}}}"},
        {"op": "create", "name": restore, "params": params, "from_snapshot": snap, "access": "block"},
        {"op": "sh", "cmd": f"sha256sum < {{dev:{restore}}}"},
        {"op": "sh", "cmd": f"printf written >{{dev:{restore}}} && sync && head -c 7 {{dev:{restore}}}"},
        {"op": "create", "name": clone, "bytes": 32 * MIB, "params": params, "from_volume": vol},
        {"op": "sh", "cmd": f"head -c {size} {{dev:{clone}}} | sha256sum"},
        {"op": "expand", "volume": vol, "bytes": 40 * MIB},
        {"op": "list_snapshots"},
        {"op": "list"},
    )
    first, again, bigger, _, at_snapshot, created, _, changed, restored, restored_sum, written = results[:11]
    cloned, cloned_sum, expanded, snapshots, volumes = results[11:]
    volume = first["ok"]
    assert (volume["size"], volume["lvm_type"], volume["ready"]) == (size, lvm_type, True)
    assert volume["id"] == f"{NODE}/{volume['vg']}/{volume['lv']}" and volume["context"] == {
        "localcsi.io/fstype": "ext4"
    }
    assert again["ok"]["id"] == volume["id"], "the same request again is the same volume"
    assert bigger["error"] == "ALREADY_EXISTS"
    snapshot = created["ok"]
    assert (snapshot["thin"], snapshot["ready"], snapshot["size"]) == (lvm_type == "thin", True, size)
    assert at_snapshot["ok"]["stdout"] != changed["ok"]["stdout"]
    assert restored["ok"]["size"] == size and restored["ok"]["ready"]
    assert restored_sum["ok"]["stdout"] == at_snapshot["ok"]["stdout"], "the restore holds the snapshot's data"
    assert written["ok"]["stdout"] == "written", "a restored volume is writable"
    assert cloned["ok"]["size"] == 32 * MIB
    assert cloned_sum["ok"]["stdout"] == changed["ok"]["stdout"], "the clone holds the source's current data"
    assert expanded["ok"]["size"] >= 40 * MIB and expanded["ok"]["node_expansion"]
    assert snapshot["id"] in snapshots["ok"]["ids"]
    assert {volume["id"], restored["ok"]["id"], cloned["ok"]["id"]} <= set(volumes["ok"]["ids"])

    guest.ok(
        {"op": "delete_snapshot", "snapshot": snap},
        {"op": "delete_snapshot", "snapshot": snap},
        *({"op": "delete", "volume": name} for name in (restore, clone, vol, vol)),
    )
    assert our_lvs(guest) == [], "no LV (nor a clone's temporary snapshot) is left behind"


def test_deleted_volumes_leave_no_data_for_the_next_tenant(guest: GuestController) -> None:
    guest.ok(
        {"op": "create", "name": "tenant-1", "bytes": 128 * MIB, "params": {"vgName": ONE_PV}, "access": "block"},
        {"op": "sh", "cmd": "dd if=/dev/urandom of={dev:tenant-1} bs=1M count=128 oflag=direct status=none"},
        {"op": "snapshot", "name": "tenant-1-snap", "volume": "tenant-1"},
        # the COW store now holds a copy of the first 64 MiB of tenant-1's data
        {"op": "sh", "cmd": "dd if=/dev/urandom of={dev:tenant-1} bs=1M count=64 oflag=direct status=none"},
        {"op": "delete_snapshot", "snapshot": "tenant-1-snap"},
        {"op": "delete", "volume": "tenant-1"},
    )
    scan = "/dev/localcsi-b/scan"
    guest.sh(f"lvcreate -y --zero n --wipesignatures n -l 100%FREE -n scan {ONE_PV} >/dev/null 2>&1")
    try:
        assert guest.sh(nonzero_bytes(scan)).strip() == "0", "every freed extent must read as zeroes"
    finally:
        guest.sh(f"lvremove -y {ONE_PV}/scan")

    thin = {"lvmType": "thin"}
    [_, _, _, _, second, tail] = guest.ok(
        {"op": "create", "name": "thin-1", "bytes": 64 * MIB, "params": thin, "access": "block"},
        {"op": "sh", "cmd": "dd if=/dev/urandom of={dev:thin-1} bs=1M count=64 oflag=direct status=none"},
        {"op": "delete", "volume": "thin-1"},
        {"op": "create", "name": "thin-2", "bytes": 64 * MIB, "params": thin, "access": "block"},
        {"op": "sh", "cmd": "dd if=/dev/urandom of={dev:thin-2} bs=4k count=1 oflag=direct status=none"},
        {"op": "sh", "cmd": nonzero_bytes("{dev:thin-2}", 4096)},
    )
    assert second["rc"] == 0
    assert tail["stdout"].strip() == "0", "the pool zeroes the rest of a newly provisioned block"
    guest.ok({"op": "delete", "volume": "thin-2"})


def test_capacity_follows_lvm_and_topology(guest: GuestController) -> None:
    free = {line.split()[0]: int(line.split()[1]) for line in guest.sh(
        "vgs --noheadings --units b --nosuffix -o vg_name,vg_free").splitlines()}  # fmt: skip
    here, elsewhere = {TOPOLOGY_KEY: NODE}, {TOPOLOGY_KEY: "node-2"}
    every, pinned, other, thin, thin2, b_only = guest.ok(
        {"op": "capacity"},
        {"op": "capacity", "topology": here},
        {"op": "capacity", "topology": elsewhere},
        {"op": "capacity", "params": {"lvmType": "thin"}},
        {"op": "capacity", "params": {"lvmType": "thin", "overProvisioningRatio": "2"}},
        {"op": "capacity", "params": {"vgName": ONE_PV}},
    )
    assert every["available"] == free[TWO_PVS] + free[ONE_PV] == pinned["available"]
    assert every["maximum"] == max(free[TWO_PVS], free[ONE_PV]) and other == {"available": 0, "maximum": 0}
    assert (thin["available"], thin2["available"]) == (GIB, 2 * GIB)
    [created, after, refused, preferred] = guest.run(
        {"op": "create", "name": "cap", "bytes": 256 * MIB, "params": {"vgName": ONE_PV}},
        {"op": "capacity", "params": {"vgName": ONE_PV}},
        {"op": "create", "name": "cap-2", "requisite": [elsewhere]},
        {"op": "create", "name": "cap-3", "preferred": [elsewhere], "params": {"vgName": ONE_PV}},
    )
    assert created["ok"]["size"] == 256 * MIB
    assert after["ok"]["available"] == b_only["available"] - 256 * MIB, "capacity is read back from lvm2"
    assert refused["error"] == "RESOURCE_EXHAUSTED"
    assert preferred["ok"]["id"].startswith(f"{NODE}/")
    guest.ok({"op": "delete", "volume": "cap"}, {"op": "delete", "volume": "cap-3"})


def test_malformed_requests_get_their_code_and_leave_lvm_unchanged(guest: GuestController) -> None:
    [keep] = guest.ok({"op": "create", "name": "keep", "bytes": 64 * MIB, "params": {"vgName": ONE_PV}})
    before = guest.sh("lvs -a --units b -o lv_name,vg_name,lv_size,lv_attr,lv_tags; vgs --units b")
    bad: list[tuple[dict[str, object], str]] = [
        ({"name": ""}, "INVALID_ARGUMENT"),
        ({"name": "x" * 129}, "INVALID_ARGUMENT"),
        ({"name": "$(touch /tmp/pwned)", "params": {"vgName": "localcsi-a; touch /tmp/pwned"}}, "INVALID_ARGUMENT"),
        ({"name": "`touch /tmp/pwned`", "bytes": -1}, "INVALID_ARGUMENT"),
        ({"name": "neg-limit", "limit": -1}, "INVALID_ARGUMENT"),
        ({"name": "range", "bytes": 2 * GIB, "limit": GIB}, "OUT_OF_RANGE"),
        ({"name": "unknown", "params": {"unknownKey": "1"}}, "INVALID_ARGUMENT"),
        ({"name": "zfs", "params": {"lvmType": "zfs"}}, "INVALID_ARGUMENT"),
        ({"name": "stripes", "params": {"stripes": "2"}}, "INVALID_ARGUMENT"),
        ({"name": "pool", "params": {"lvmType": "thin", "thinPool": "../../etc"}}, "INVALID_ARGUMENT"),
        ({"name": "ratio", "params": {"lvmType": "thin", "overProvisioningRatio": "-2"}}, "INVALID_ARGUMENT"),
        ({"name": "bps", "params": {"bps": "fast"}}, "INVALID_ARGUMENT"),
        ({"name": "fs", "fs": "btrfs"}, "INVALID_ARGUMENT"),
        ({"name": "multi", "mode": "MULTI_NODE_MULTI_WRITER"}, "INVALID_ARGUMENT"),
        ({"name": "novg", "params": {"vgName": "localcsi-missing"}}, "RESOURCE_EXHAUSTED"),
        ({"name": "huge", "bytes": 1024 * GIB}, "RESOURCE_EXHAUSTED"),
        ({"name": "src1", "from_snapshot": "node-1/localcsi-a/snap-$(touch /tmp/pwned)"}, "NOT_FOUND"),
        ({"name": "src2", "from_volume": "node-1/localcsi-a/csi-0;reboot"}, "NOT_FOUND"),
        ({"name": "away", "requisite": [{TOPOLOGY_KEY: "node-2"}]}, "RESOURCE_EXHAUSTED"),
    ]
    other: list[tuple[dict[str, object], str]] = [
        ({"op": "snapshot", "name": "", "volume": "keep"}, "INVALID_ARGUMENT"),
        ({"op": "snapshot", "name": "s", "volume_id": "a b; touch /tmp/pwned"}, "NOT_FOUND"),
        ({"op": "snapshot", "name": "s", "volume": "keep", "params": {"snapshotSize": "200%"}}, "INVALID_ARGUMENT"),
        ({"op": "expand", "volume_id": "", "bytes": GIB}, "INVALID_ARGUMENT"),
        ({"op": "expand", "volume": "keep", "bytes": -5}, "INVALID_ARGUMENT"),
        ({"op": "expand", "volume": "keep", "bytes": 256 * MIB, "limit": 128 * MIB}, "OUT_OF_RANGE"),
        ({"op": "list", "token": "not-a-token"}, "ABORTED"),
    ]
    steps = [{"op": "create", **step} for step, _ in bad] + [step for step, _ in other]
    results = guest.run(*steps)
    codes = [result.get("error") for result in results]
    assert codes == [code for _, code in bad + other]
    assert guest.ok({"op": "delete", "volume_id": f"{NODE}/{ONE_PV}/csi-x'; lvremove -y {ONE_PV}'"}) == [None]
    assert guest.sh("lvs -a --units b -o lv_name,vg_name,lv_size,lv_attr,lv_tags; vgs --units b") == before
    assert guest.vm.run(["test", "-e", "/tmp/pwned"]).rc == 1, "no metacharacter ever reached a shell"
    guest.ok({"op": "delete", "volume_id": keep["id"]})
