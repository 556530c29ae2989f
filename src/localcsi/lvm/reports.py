"""Parsing lvm2's JSON reports (``--reportformat json --units b --nosuffix -o <fields>``).

Layout, as lvm2 2.03 prints it: ``{"report": [{"lv": [{"lv_name": "x", ...}, ...]}]}`` -- the
section is named after the command (vgs: "vg", pvs: "pv", lvs: "lv"), every value is a string, and a
value that does not apply is "" (data_percent of a linear LV, origin of a non-snapshot). With
``log/report_command_log=1`` a "log" section sits beside "report"; it is ignored.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from localcsi.core.errors import Internal
from localcsi.core.model import LogicalVolume, PhysicalVolume, VolumeGroup

VG_FIELDS = (
    "vg_name",
    "vg_uuid",
    "vg_size",
    "vg_free",
    "vg_extent_size",
    "pv_count",
    "lv_count",
    "vg_attr",
    "vg_tags",
)
PV_FIELDS = ("pv_name", "vg_name", "pv_size", "pv_free", "pv_attr")
# lv_layout rather than segtype: segtype is a per-segment field, so an LV extended onto a second
# segment would come back as two rows.
LV_FIELDS = (
    "lv_uuid",
    "lv_name",
    "vg_name",
    "lv_attr",
    "lv_size",
    "lv_layout",
    "lv_tags",
    "pool_lv",
    "origin",
    "origin_size",
    "data_percent",
    "metadata_percent",
    "lv_health_status",
    "lv_time",
    "lv_kernel_major",
    "lv_kernel_minor",
)
# lvm2's default report/time_format.
_LV_TIME_FORMAT = "%Y-%m-%d %H:%M:%S %z"


class ReportError(Internal):
    """lvm2 printed something that is not the report we asked for."""


def report_rows(stdout: str, section: str, command: str = "lvm") -> list[dict[str, str]]:
    """The rows of ``section`` ("vg", "pv", "lv") across every report in the output."""
    return report_sections(stdout, (section,), command)[section]


def report_sections(stdout: str, sections: Sequence[str], command: str = "lvm") -> dict[str, list[dict[str, str]]]:
    """The rows of each of ``sections`` across every report in the output, from one JSON parse (a
    ``fullreport`` of 1000 LVs is about a megabyte: parsing it once per section tripled the work)."""
    try:
        document: Any = json.loads(stdout)
    except json.JSONDecodeError as exc:
        raise ReportError(
            f"{command} did not print a JSON report ({exc.msg} at line {exc.lineno} column {exc.colno}); "
            f"output starts with {stdout[:200]!r}"
        ) from None
    reports = document.get("report") if isinstance(document, dict) else None
    if not isinstance(reports, list):
        raise ReportError(f"{command} printed JSON without a 'report' list: {stdout[:200]!r}")
    rows: dict[str, list[dict[str, str]]] = {section: [] for section in sections}
    for report in reports:
        for section in sections:
            entries = report.get(section, []) if isinstance(report, dict) else None
            if not isinstance(entries, list):
                raise ReportError(f"{command} report section {section!r} is not a list: {stdout[:200]!r}")
            for row in entries:
                if not isinstance(row, dict) or not all(isinstance(v, str) for v in row.values()):
                    raise ReportError(f"{command} report row is not a map of strings: {row!r}")
                rows[section].append(row)
    return rows


def _field(row: dict[str, str], name: str) -> str:
    try:
        return row[name]
    except KeyError:
        raise ReportError(f"lvm2 report row lacks field {name!r}: {row!r}") from None


def _int(row: dict[str, str], name: str) -> int:
    text = _field(row, name)
    try:
        return int(text)
    except ValueError:
        raise ReportError(f"lvm2 report field {name}={text!r} is not a whole number of bytes") from None


def _optional_int(row: dict[str, str], name: str) -> int | None:
    text = row.get(name, "")
    if text in ("", "-1"):  # -1: kernel major/minor of an inactive LV
        return None
    return _int(row, name)


def _optional_float(row: dict[str, str], name: str) -> float | None:
    text = row.get(name, "")
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise ReportError(f"lvm2 report field {name}={text!r} is not a number") from None


class Shared(dict[str, str]):
    """One string object for each value that a report's rows repeat (VG name, lv_attr, pool, layout,
    tags): the view keeps every LV of a report, so 1000 LVs held 1000 copies of each. Per parse, so
    that nothing outlives the reports that use it (``sys.intern`` grew the interpreter's table of
    interned strings past a resize, 1 to 2 MiB, to save less)."""

    def __missing__(self, key: str) -> str:
        self[key] = key
        return key


def _list(text: str, shared: Shared | None = None) -> tuple[str, ...]:
    items = (item for item in text.split(",") if item)
    return tuple(items) if shared is None else tuple(shared[item] for item in items)


def _time(text: str) -> datetime | None:
    if not text:
        return None
    if text.isdigit():
        return datetime.fromtimestamp(int(text), tz=UTC)
    try:
        return datetime.strptime(text, _LV_TIME_FORMAT)
    except ValueError:
        return None  # a custom report/time_format in lvm.conf; the time is informative only


def vg_from_row(row: dict[str, str]) -> VolumeGroup:
    return VolumeGroup(
        name=_field(row, "vg_name"),
        uuid=row.get("vg_uuid", ""),
        size_bytes=_int(row, "vg_size"),
        free_bytes=_int(row, "vg_free"),
        extent_size=_int(row, "vg_extent_size"),
        pv_count=_int(row, "pv_count"),
        lv_count=_optional_int(row, "lv_count") or 0,
        attr=_field(row, "vg_attr"),
        tags=_list(row.get("vg_tags", "")),
    )


def pv_from_row(row: dict[str, str]) -> PhysicalVolume:
    return PhysicalVolume(
        name=_field(row, "pv_name"),
        vg=row.get("vg_name", ""),
        size_bytes=_int(row, "pv_size"),
        free_bytes=_int(row, "pv_free"),
        attr=_field(row, "pv_attr"),
    )


def lv_from_row(row: dict[str, str], shared: Shared | None = None) -> LogicalVolume:
    """``shared``: the values already seen in this report, so that repeated ones are one object."""
    attr = _field(row, "lv_attr")
    if len(attr) < 10:
        raise ReportError(f"lv_attr {attr!r} of {row.get('lv_name')!r} is not lvm2's 10-character form")
    one = Shared() if shared is None else shared
    return LogicalVolume(
        vg=one[_field(row, "vg_name")],
        name=_field(row, "lv_name"),
        uuid=row.get("lv_uuid", ""),
        attr=one[attr],
        size_bytes=_int(row, "lv_size"),
        layout=_list(row.get("lv_layout", ""), one),
        tags=_list(row.get("lv_tags", ""), one),
        pool_lv=one[row.get("pool_lv", "")],
        origin=one[row.get("origin", "")],
        origin_size_bytes=_optional_int(row, "origin_size"),
        data_percent=_optional_float(row, "data_percent"),
        metadata_percent=_optional_float(row, "metadata_percent"),
        health_status=one[row.get("lv_health_status", "")],
        created=_time(row.get("lv_time", "")),
        kernel_major=_optional_int(row, "lv_kernel_major"),
        kernel_minor=_optional_int(row, "lv_kernel_minor"),
    )


def unique_lvs(lvs: Iterable[LogicalVolume]) -> list[LogicalVolume]:
    """One LV per name: should a per-segment field ever be asked for, repeated rows collapse."""
    seen: dict[tuple[str, str], LogicalVolume] = {}
    for lv in lvs:
        seen.setdefault((lv.vg, lv.name), lv)
    return list(seen.values())


def parse_vgs(stdout: str, command: str = "vgs") -> list[VolumeGroup]:
    return [vg_from_row(row) for row in report_rows(stdout, "vg", command)]


def parse_pvs(stdout: str, command: str = "pvs") -> list[PhysicalVolume]:
    return [pv_from_row(row) for row in report_rows(stdout, "pv", command)]


def parse_lvs(stdout: str, command: str = "lvs") -> list[LogicalVolume]:
    shared = Shared()
    return unique_lvs(lv_from_row(row, shared) for row in report_rows(stdout, "lv", command))


def parse_fullreport(
    stdout: str, command: str = "lvm fullreport"
) -> tuple[list[VolumeGroup], list[PhysicalVolume], list[LogicalVolume]]:
    """VGs, PVs and LVs of one ``lvm fullreport``, its JSON parsed once."""
    rows = report_sections(stdout, ("vg", "pv", "lv"), command)
    shared = Shared()
    return (
        [vg_from_row(row) for row in rows["vg"]],
        [pv_from_row(row) for row in rows["pv"]],
        unique_lvs(lv_from_row(row, shared) for row in rows["lv"]),
    )
