"""Command output as lsblk 2.38, findmnt 2.38 and lvm2 2.03.16 print it (trimmed from the node VM)."""

from __future__ import annotations

import json
from typing import Any

MiB = 1024**2


def _dev(kname: str, size: int, kind: str, parent: str | None = None, **kw: Any) -> dict[str, Any]:
    row = {"name": kname, "kname": kname, "path": f"/dev/{kname}", "size": size, "ro": False, "type": kind,
           "rota": True, "fstype": None, "mountpoint": None, "pkname": parent}  # fmt: skip
    row.update(kw)
    return row


def _dm(name: str, kname: str, parent: str, **kw: Any) -> dict[str, Any]:
    row = _dev(kname, 4 * MiB, "lvm", parent, name=name, path=f"/dev/mapper/{name}")
    row.update(kw)
    return row


# vda: root disk; vdb: two partitions, vdb1 a PV with an LV on it; vdc: blank; sr0: a CD drive
LSBLK = json.dumps(
    {
        "blockdevices": [
            _dev("vda", 3072 * MiB, "disk", mountpoint="/"),
            _dev(
                "vdb",
                2048 * MiB,
                "disk",
                children=[
                    _dev("vdb1", 500 * MiB, "part", "vdb", children=[_dm("vgx-lv1", "dm-0", "vdb1")]),
                    _dev("vdb2", 500 * MiB, "part", "vdb", mountpoint="[SWAP]"),
                ],
            ),
            _dev("vdc", 2048 * MiB, "disk", rota=False, ro=True, fstype="ext4"),
            _dev("sr0", 1024, "rom"),
        ]
    }
)

FINDMNT = json.dumps(
    {
        "filesystems": [
            {"target": "/", "source": "/dev/vda", "fstype": "ext4", "options": "rw,relatime",
             "size": 3094126592, "avail": 2213326848, "fsroot": "/"},
            {"target": "/proc", "source": "proc", "fstype": "proc", "options": "rw,nosuid", "size": 0, "avail": 0,
             "fsroot": "/"},
            {"target": "/srv/data", "source": "/dev/vdc[/data]", "fstype": "ext4", "options": "ro,relatime",
             "size": 2000, "avail": 1000, "fsroot": "/data"},
        ]
    }
)  # fmt: skip


def _report(vg: list[dict[str, str]], pv: list[dict[str, str]], lv: list[dict[str, str]]) -> dict[str, Any]:
    return {"vg": vg, "pv": pv, "lv": lv, "pvseg": [{"pvseg_start": "0"}], "seg": [{"seg_start": "0"}]}


def lv_row(name: str, size: int, attr: str = "-wi-a-----", tags: str = "") -> dict[str, str]:
    return {"lv_uuid": "u-" + name, "lv_name": name, "vg_name": "vgx", "lv_attr": attr, "lv_size": str(size),
            "lv_layout": "linear", "lv_tags": tags, "pool_lv": "", "origin": "", "origin_size": "",
            "data_percent": "", "metadata_percent": "", "lv_health_status": "", "lv_time": "1700000000",
            "lv_kernel_major": "-1", "lv_kernel_minor": "-1"}  # fmt: skip


def pv_row(name: str, vg: str, size_mib: int, free_mib: int, attr: str = "a--") -> dict[str, str]:
    return {"pv_name": name, "vg_name": vg, "pv_size": str(size_mib * MiB), "pv_free": str(free_mib * MiB),
            "pv_attr": attr}  # fmt: skip


def fullreport(lv_count: int = 2) -> str:
    vg = {"vg_name": "vgx", "vg_uuid": "x", "vg_size": str(2496 * MiB), "vg_free": str(2396 * MiB),
          "vg_extent_size": str(4 * MiB), "pv_count": "2", "lv_count": str(lv_count), "vg_attr": "wz--n-",
          "vg_tags": "localcsi.io"}  # fmt: skip
    pvs = [pv_row("/dev/vdb1", "vgx", 496, 396), pv_row("/dev/vdd", "vgx", 2000, 2000)]
    lvs = [lv_row(f"lv{i}", 4 * MiB, tags="localcsi.io") for i in range(lv_count)]
    orphan = {"pv": [pv_row("/dev/vde", "", 1, 1, attr="---")], "pvseg": [{"pvseg_start": "0"}]}
    return json.dumps({"report": [_report([vg], pvs, lvs), orphan]})
