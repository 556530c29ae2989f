"""Command output as lvm2 2.03.16 prints it (trimmed from the node VM)."""

from __future__ import annotations

import json
from typing import Any

MiB = 1024**2


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
