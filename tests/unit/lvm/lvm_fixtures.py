"""lvm2 2.03 JSON reports as the tools print them (``--reportformat json --units b --nosuffix``).

Two 10 GiB loop PVs in vg0 (4 MiB extents, 4 MiB of each PV taken by metadata); one orphan PV.
"""

from __future__ import annotations

import json

from localcsi.core.model import LogicalVolume
from localcsi.lvm.reports import lv_from_row


def render(section: str, rows: list[dict[str, str]]) -> str:
    """A report laid out as lvm2 2.03 prints it: one row per line, ``"key":"value"`` joined by ", "."""
    body = ",\n".join(" " * 18 + json.dumps(row, separators=(", ", ":")) for row in rows)
    head = '  {\n      "report": [\n          {\n              "' + section + '": [\n'
    return head + body + "\n              ]\n          }\n      ]\n  }\n"


# A verbatim sample of the layout, for the record; the fixtures below are rendered the same way.
VGS_SAMPLE = """\
  {
      "report": [
          {
              "vg": [
                  {"vg_name":"vg0", "vg_size":"21466447872", "vg_free":"7474249728"}
              ]
          }
      ]
  }
"""

VG_ROWS = [
    {
        "vg_name": "vg0", "vg_uuid": "wB3kzW-HT2C-3bqA-7tvV-2xJd-Hc8P-sYkB9q", "vg_size": "21466447872",
        "vg_free": "7474249728", "vg_extent_size": "4194304", "pv_count": "2", "lv_count": "9",
        "vg_attr": "wz--n-", "vg_tags": "",
    },
    {
        "vg_name": "vg-ssd", "vg_uuid": "Pq1c2D-aaaa-bbbb-cccc-dddd-eeee-ffffff", "vg_size": "10733223936",
        "vg_free": "10733223936", "vg_extent_size": "4194304", "pv_count": "1", "lv_count": "0",
        "vg_attr": "wz--n-", "vg_tags": "fast,localcsi.io",
    },
]  # fmt: skip
VGS_JSON = render("vg", VG_ROWS)

PV_ROWS = [
    {"pv_name": "/dev/loop0", "vg_name": "vg0", "pv_size": "10733223936", "pv_free": "2109734912"},
    {"pv_name": "/dev/loop1", "vg_name": "vg0", "pv_size": "10733223936", "pv_free": "5364514816"},
    {"pv_name": "/dev/loop2", "vg_name": "vg-ssd", "pv_size": "10733223936", "pv_free": "10733223936"},
    {"pv_name": "/dev/loop3", "vg_name": "", "pv_size": "10737418240", "pv_free": "10737418240"},
]
for _row, _attr in zip(PV_ROWS, ["a--", "a--", "a--", "---"], strict=True):
    _row["pv_attr"] = _attr  # orphan PVs (no VG) are not allocatable
PVS_JSON = render("pv", PV_ROWS)

# name "pvc-1" -> base64url "cHZjLTE"; "snap-1" -> "c25hcC0x"; "pvc-thin" -> "cHZjLXRoaW4"
LINEAR = "csi-9a0364b9e99bb480dd25e1f0284c8555"
STRIPED = "csi-1b4f0e9851971998e84ece0fd1d79e42"
RAID1 = "csi-2e7d2c03a9507ae265ecf5b5356885a5"
THIN = "csi-4e07408562bedb8b60ce05c1703d2f42"
THICK_SNAP = "snap-0f7c6f1e3b2d4a5c6e7f8091a2b3c4d5"
THIN_SNAP = "snap-1a2b3c4d5e6f708192a3b4c5d6e7f809"
POOL = "localcsi-thinpool"


def lv_row(name: str, vg: str = "vg0", attr: str = "-wi-a-----", **fields: str) -> dict[str, str]:
    row = {
        "lv_uuid": "u-" + name,
        "lv_name": name,
        "vg_name": vg,
        "lv_attr": attr,
        "lv_size": "1073741824",
        "lv_layout": "linear",
        "lv_tags": "",
        "pool_lv": "",
        "origin": "",
        "origin_size": "",
        "data_percent": "",
        "metadata_percent": "",
        "lv_health_status": "",
        "lv_time": "2024-05-01 10:11:12 +0000",
        "lv_kernel_major": "254",
        "lv_kernel_minor": "0",
    }
    row.update(fields)
    return row


def _tags(kind: str, name_b64: str, size: str, *extra: str) -> str:
    fields = [f"kind={kind}", f"name={name_b64}", f"size={size}", *extra]
    return ",".join(["localcsi.io", *(f"localcsi.io/{field}" for field in fields)])


LV_ROWS = [
    lv_row(
        LINEAR, attr="owi-aos---", lv_uuid="dHWJ1x-0001",
        lv_tags=_tags("volume", "cHZjLTE", "1000000000", "fstype=ext4"),
    ),
    lv_row(
        THICK_SNAP, attr="swi-a-s---", lv_size="1086324736", origin=LINEAR, origin_size="1073741824",
        data_percent="0.01", lv_time="2024-05-01 10:20:00 +0000", lv_kernel_minor="3",
        lv_tags=_tags("snapshot", "c25hcC0x", "1073741824", f"source=volume:node1/vg0/{LINEAR}"),
    ),
    lv_row(
        STRIPED, lv_size="2147483648", lv_layout="striped", lv_kernel_minor="4",
        lv_tags=_tags("volume", "cHZjLTI", "2147483648"),
    ),
    lv_row(
        RAID1, attr="rwi-a-r-p-", lv_layout="raid,raid1", lv_health_status="partial", lv_kernel_minor="9",
        lv_tags=_tags("volume", "cHZjLTM", "1073741824", "access=block"),
    ),
    lv_row(
        POOL, attr="twi-aotz--", lv_size="4294967296", lv_layout="thin,pool", lv_tags="localcsi.io",
        data_percent="12.50", metadata_percent="10.84", lv_kernel_minor="7",
    ),
    lv_row(
        THIN, attr="Vwi-a-tz--", lv_size="3221225472", lv_layout="thin,sparse", pool_lv=POOL,
        data_percent="16.67", lv_kernel_minor="8", lv_tags=_tags("volume", "cHZjLXRoaW4", "3221225472"),
    ),
    lv_row(
        THIN_SNAP, attr="Vwi---tz--", lv_size="3221225472", lv_layout="thin,sparse", pool_lv=POOL,
        origin=THIN, origin_size="3221225472", data_percent="16.67",
        lv_kernel_major="-1", lv_kernel_minor="-1",  # inactive
        lv_tags=_tags("snapshot", "dGhpbi1zbmFw", "3221225472", f"source=volume:node1/vg0/{THIN}"),
    ),
    lv_row(
        "root", attr="-wi-ao----", lv_size="4294967296", lv_time="2023-11-02 08:00:00 +0100",
        lv_kernel_minor="1",
    ),
]  # fmt: skip
LVS_JSON = render("lv", LV_ROWS)


def lvs_json(*rows: dict[str, str]) -> str:
    return render("lv", list(rows))


def _rows(rows: list[dict[str, str]]) -> str:
    return ",\n".join("                      " + json.dumps(row, separators=(", ", ":")) for row in rows)


def _section(name: str, rows: list[dict[str, str]]) -> str:
    if not rows:
        return f'                  "{name}": [\n                  ]'
    return f'                  "{name}": [\n{_rows(rows)}\n                  ]'


def _vg_entry(sections: dict[str, list[dict[str, str]]]) -> str:
    body = ",\n".join(_section(name, rows) for name, rows in sections.items())
    return "              {\n" + body + "\n              }"


def fullreport_json() -> str:
    """``lvm fullreport`` output: one entry per VG (vg, pv, lv, pvseg, seg), then one for orphan PVs."""
    vgs, pvs, lvs = VG_ROWS, PV_ROWS, LV_ROWS
    entries = [
        {
            "vg": [vgs[0]],
            "pv": pvs[:2],
            "lv": lvs,
            "pvseg": [{"pvseg_start": "0"}, {"pvseg_start": "256"}],
            "seg": [{"seg_start": "0"}] * len(lvs),
        },
        {"vg": [vgs[1]], "pv": [pvs[2]], "lv": [], "pvseg": [{"pvseg_start": "0"}], "seg": []},
        {"pv": [pvs[3]], "pvseg": [{"pvseg_start": "0"}]},
    ]
    inner = ",\n".join(_vg_entry(entry) for entry in entries)
    return '  {\n      "report": [\n' + inner + "\n      ]\n  }\n"


def parsed_lv(name: str, attr: str = "-wi-a-----", **fields: str) -> LogicalVolume:
    return lv_from_row(lv_row(name, attr=attr, **fields))
