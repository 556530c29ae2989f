import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from lvm_fixtures import (
    LINEAR,
    LVS_JSON,
    PVS_JSON,
    RAID1,
    STRIPED,
    THICK_SNAP,
    THIN,
    THIN_SNAP,
    VGS_JSON,
    fullreport_json,
    lv_row,
    lvs_json,
)

from localcsi.core.health import volume_condition
from localcsi.core.model import LogicalVolume, snapshot_from_lv, thin_pools, volume_from_lv
from localcsi.core.params import LvmType
from localcsi.core.sizes import GiB
from localcsi.core.tags import Source, SourceKind
from localcsi.lvm.reports import ReportError, parse_fullreport, parse_lvs, parse_pvs, parse_vgs, report_rows

pytestmark = pytest.mark.unit


def test_vgs_report() -> None:
    vg0, ssd = parse_vgs(VGS_JSON)
    assert (vg0.name, vg0.size_bytes, vg0.free_bytes, vg0.extent_size) == (
        "vg0",
        21466447872,
        7474249728,
        4 * 2**20,
    )
    assert (vg0.pv_count, vg0.lv_count, vg0.writable, vg0.partial, vg0.tags) == (2, 9, True, False, ())
    assert ssd.name == "vg-ssd" and ssd.tags == ("fast", "localcsi.io")


def test_pvs_report_includes_orphans() -> None:
    pvs = parse_pvs(PVS_JSON)
    assert [(pv.name, pv.vg, pv.allocatable) for pv in pvs] == [
        ("/dev/loop0", "vg0", True),
        ("/dev/loop1", "vg0", True),
        ("/dev/loop2", "vg-ssd", True),
        ("/dev/loop3", "", False),
    ]
    assert pvs[1].free_bytes == 5364514816


def by_name() -> dict[str, object]:
    return {lv.name: lv for lv in parse_lvs(LVS_JSON)}


def test_lvs_report_fields() -> None:
    lvs = {lv.name: lv for lv in parse_lvs(LVS_JSON)}
    linear = lvs[LINEAR]
    assert (linear.vg, linear.size_bytes, linear.layout, linear.uuid) == (
        "vg0",
        GiB,
        ("linear",),
        "dHWJ1x-0001",
    )
    assert linear.is_cow_origin and linear.is_active and linear.is_open
    assert linear.created == datetime(2024, 5, 1, 10, 11, 12, tzinfo=UTC)
    assert (linear.kernel_major, linear.kernel_minor) == (254, 0)
    assert linear.data_percent is None and linear.origin_size_bytes is None
    assert lvs["root"].created == datetime(2023, 11, 2, 8, 0, tzinfo=timezone(timedelta(hours=1)))
    pool = lvs["localcsi-thinpool"]
    assert pool.is_thin_pool and (pool.data_percent, pool.metadata_percent) == (12.5, 10.84)
    thin_snap = lvs[THIN_SNAP]
    assert thin_snap.kernel_major is None and not thin_snap.is_active  # inactive: -1/-1
    assert lvs[RAID1].health_status == "partial" and lvs[RAID1].health_flag == "p"


def test_lvs_become_volumes_and_snapshots() -> None:
    lvs = parse_lvs(LVS_JSON)
    volumes = {v.name: v for lv in lvs if (v := volume_from_lv("node1", lv))}
    assert sorted(volumes) == ["pvc-1", "pvc-2", "pvc-3", "pvc-thin"]
    assert volumes["pvc-1"].requested_bytes == 1000000000 and volumes["pvc-1"].size_bytes == GiB
    assert volumes["pvc-1"].fs_type == "ext4"
    assert volumes["pvc-3"].access_type == "block"
    assert {name: v.lvm_type for name, v in volumes.items()} == {
        "pvc-1": LvmType.LINEAR,
        "pvc-2": LvmType.STRIPING,
        "pvc-3": LvmType.RAID1,
        "pvc-thin": LvmType.THIN,
    }
    assert volumes["pvc-thin"].thin_pool == "localcsi-thinpool"
    assert volumes["pvc-2"].id == f"node1/vg0/{STRIPED}"
    snapshots = {s.name: s for lv in lvs if (s := snapshot_from_lv("node1", lv))}
    thick, thin = snapshots["snap-1"], snapshots["thin-snap"]
    assert (thick.thin, thick.size_bytes, thick.source_volume_id) == (False, GiB, f"node1/vg0/{LINEAR}")
    assert (thin.thin, thin.size_bytes, thin.source_volume_id) == (True, 3 * GiB, f"node1/vg0/{THIN}")
    assert thick.id == f"node1/vg0/{THICK_SNAP}"


def test_thin_pool_accounting_from_a_report() -> None:
    (pool,) = thin_pools(parse_lvs(LVS_JSON))
    assert pool.size_bytes == 4 * GiB and pool.virtual_bytes == 6 * GiB


def test_health_of_a_reported_raid_with_a_missing_leg() -> None:
    lvs = {lv.name: lv for lv in parse_lvs(LVS_JSON)}
    assert volume_condition(lvs[RAID1]).abnormal
    assert not volume_condition(lvs[THIN], lvs["localcsi-thinpool"]).abnormal


def test_tags_list_is_split_on_commas() -> None:
    (lv,) = parse_lvs(lvs_json(lv_row("a", lv_tags="x,localcsi.io/source=volume:n/vg/csi-1")))
    assert lv.tags == ("x", "localcsi.io/source=volume:n/vg/csi-1")
    assert Source(SourceKind.VOLUME, "n/vg/csi-1") == Source(SourceKind.VOLUME, "n/vg/csi-1")


def shared_values(lv: LogicalVolume) -> list[str]:
    return [lv.vg, lv.attr, lv.pool_lv, lv.origin, lv.health_status, *lv.layout, *lv.tags]


def test_values_repeated_across_a_reports_lvs_are_one_string_each() -> None:
    """The view keeps every LV of a report of 1000: the VG name, lv_attr, pool, layout and tags they
    share are one object each, not one per LV."""
    tags = "localcsi.io,localcsi.io/kind=volume"
    rows = [lv_row(name, attr="Vwi-a-tz--", pool_lv="pool0", lv_tags=tags) for name in ("a", "b", "c")]
    for lvs in (parse_lvs(lvs_json(*rows)), parse_fullreport(fullreport_json())[2]):
        values = [value for lv in lvs for value in shared_values(lv)]
        assert len({id(value) for value in values}) == len(set(values)), "one object per distinct value"
    (alone,) = parse_lvs(lvs_json(rows[0]))
    assert alone == parse_lvs(lvs_json(*rows))[0], "the same LV whether or not others share its values"


def test_repeated_rows_for_one_lv_collapse() -> None:
    assert len(parse_lvs(lvs_json(lv_row("a"), lv_row("a"), lv_row("a", vg="vg1")))) == 2


def test_the_command_log_section_is_ignored() -> None:
    document = json.loads(lvs_json(lv_row("a")))
    document["log"] = [{"log_seq_num": "1", "log_type": "status", "log_message": ""}]
    assert [lv.name for lv in parse_lvs(json.dumps(document))] == ["a"]


def test_epoch_and_unknown_time_formats() -> None:
    (epoch,) = parse_lvs(lvs_json(lv_row("a", lv_time="1714558272")))
    assert epoch.created == datetime(2024, 5, 1, 10, 11, 12, tzinfo=UTC)
    (custom,) = parse_lvs(lvs_json(lv_row("a", lv_time="Wed May  1 10:11:12 2024")))
    assert custom.created is None


def test_an_empty_report_has_no_rows() -> None:
    assert parse_vgs('{"report": [{"vg": []}]}') == []


@pytest.mark.parametrize(
    ("stdout", "message"),
    [
        ("", "did not print a JSON report"),
        ("  WARNING: something\n{", "did not print a JSON report"),
        ('{"report": [{"lv": [', "did not print a JSON report"),
        ("[]", "without a 'report' list"),
        ('{"reports": []}', "without a 'report' list"),
        ('{"report": [{"lv": {}}]}', "not a list"),
        ('{"report": [{"lv": [["a"]]}]}', "not a map of strings"),
        ('{"report": [{"lv": [{"lv_name": 1}]}]}', "not a map of strings"),
    ],
)
def test_malformed_output_is_a_clear_error(stdout: str, message: str) -> None:
    with pytest.raises(ReportError, match=message) as raised:
        report_rows(stdout, "lv", "lvs")
    assert raised.value.code == "INTERNAL"


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (lv_row("a", lv_size="1.5G"), r"lv_size='1.5G' is not a whole number"),
        (lv_row("a", data_percent="lots"), "data_percent='lots' is not a number"),
        (lv_row("a", lv_attr="-wi"), "10-character"),
        ({k: v for k, v in lv_row("a").items() if k != "lv_attr"}, "lacks field 'lv_attr'"),
    ],
)
def test_bad_fields_are_clear_errors(row: dict[str, str], message: str) -> None:
    with pytest.raises(ReportError, match=message):
        parse_lvs(lvs_json(row))


def test_a_fullreport_is_parsed_once_into_the_same_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    stdout = fullreport_json()
    expected = (parse_vgs(stdout), parse_pvs(stdout), parse_lvs(stdout))
    loads = json.loads
    calls: list[int] = []

    def counting_loads(text: str) -> object:
        calls.append(len(text))
        return loads(text)

    monkeypatch.setattr("localcsi.lvm.reports.json.loads", counting_loads)
    assert parse_fullreport(stdout) == expected
    assert calls == [len(stdout)]
    assert expected[0] and expected[1] and expected[2]  # the fixture has rows of each kind
