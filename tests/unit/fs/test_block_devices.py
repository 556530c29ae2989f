"""Parsing lsblk and findmnt output, sysfs media types and IO counters (samples as lsblk and findmnt 2.38 print them,
trimmed from the node VM)."""

from __future__ import annotations

from pathlib import Path

import pytest

from localcsi.core.errors import Internal
from localcsi.core.nodestorage import MediaType
from localcsi.fs.block_devices import (
    IoCounters,
    lsblk_argv,
    parse_findmnt,
    parse_lsblk,
    read_io_counters,
    read_rotational,
)
from localcsi.fs.types import DeviceNumber

pytestmark = pytest.mark.unit

MiB = 1024**2


# vda: root disk; vdb: two partitions, vdb1 a PV with an LV on it; vdc: blank, read-only; sr0: a CD drive.
# findmnt: the root, /proc (not a block device) and a bind of vdc's /data. The agent's tests use them too.
DATA = Path(__file__).parent / "data"
LSBLK = (DATA / "lsblk-2.38.json").read_text()
FINDMNT = (DATA / "findmnt-2.38.json").read_text()


def test_lsblk_columns_are_the_ones_lsblk_2_38_knows() -> None:
    assert lsblk_argv() == [
        "lsblk",
        "--json",
        "--bytes",
        "--output",
        "NAME,KNAME,PATH,SIZE,RO,TYPE,ROTA,FSTYPE,MOUNTPOINT,PKNAME",
    ]


def test_lsblk_tree_gives_disks_partitions_holders_and_mounts() -> None:
    devices = {d.name: d for d in parse_lsblk(LSBLK, {})}
    assert sorted(devices) == ["vda", "vdb", "vdb1", "vdb2", "vdc"]  # no rom, no device-mapper
    vdb, vdb1, vdb2 = devices["vdb"], devices["vdb1"], devices["vdb2"]
    assert vdb.partitions == ("vdb1", "vdb2") and vdb.holders == () and vdb.in_use
    assert (vdb1.type, vdb1.parent, vdb1.holders, vdb1.size_bytes) == ("part", "vdb", ("dm-0",), 500 * MiB)
    assert vdb2.mountpoint == "[SWAP]" and devices["vda"].mountpoint == "/"
    vdc = devices["vdc"]
    assert (vdc.read_only, vdc.media_type, vdc.fstype, vdc.path) == (True, MediaType.SSD, "ext4", "/dev/vdc")


def test_sysfs_rotational_wins_and_partitions_follow_their_disk() -> None:
    devices = {d.name: d for d in parse_lsblk(LSBLK, {"vdb": False, "vdc": True})}
    assert devices["vdb"].media_type is MediaType.SSD and devices["vdb1"].media_type is MediaType.SSD
    assert devices["vdc"].media_type is MediaType.HDD and devices["vda"].media_type is MediaType.HDD


def test_read_rotational_reads_queue_files(tmp_path: Path) -> None:
    for name, flag in (("vda", "1\n"), ("nvme0n1", "0\n")):
        (tmp_path / name / "queue").mkdir(parents=True)
        (tmp_path / name / "queue" / "rotational").write_text(flag)
    (tmp_path / "zram0").mkdir()  # no queue directory
    assert read_rotational(tmp_path) == {"vda": True, "nvme0n1": False}
    assert read_rotational(tmp_path / "missing") == {}


def test_findmnt_keeps_block_device_mounts_and_sees_binds() -> None:
    mounts = {m.path: m for m in parse_findmnt(FINDMNT)}
    assert sorted(mounts) == ["/", "/srv/data"]
    root, data = mounts["/"], mounts["/srv/data"]
    assert (root.device, root.total_bytes, root.available_bytes, root.is_bind, root.read_only) == (
        "/dev/vda", 3094126592, 2213326848, False, False,
    )  # fmt: skip
    assert (data.device, data.is_bind, data.read_only) == ("/dev/vdc", True, True)


@pytest.mark.parametrize(
    ("parse", "text"),
    [
        (lambda t: parse_lsblk(t, {}), "lsblk: command not found"),
        (lambda t: parse_lsblk(t, {}), '{"blockdevices": [{"kname": "vda", "type": "disk", "size": "big"}]}'),
        (parse_findmnt, "[]"),
    ],
)
def test_malformed_output_is_an_error_naming_the_command(parse, text: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Internal) as raised:
        parse(text)
    assert ("lsblk" if "blockdevices" in text or "lsblk" in text else "findmnt") in str(raised.value)


def test_io_counters_come_from_the_devices_stat_file_in_bytes(tmp_path: Path) -> None:
    (tmp_path / "253:3").mkdir()
    (tmp_path / "253:3" / "stat").write_text("5 1 80 3 7 2 24 9 0 12 12 0 0 0 0 0 0\n")
    assert read_io_counters(DeviceNumber(253, 3), tmp_path) == IoCounters(5, 80 * 512, 7, 24 * 512)


def test_io_counters_of_a_missing_or_garbled_device_are_none(tmp_path: Path) -> None:
    assert read_io_counters(DeviceNumber(253, 4), tmp_path) is None
    (tmp_path / "253:5").mkdir()
    (tmp_path / "253:5" / "stat").write_text("5 1 x\n")
    assert read_io_counters(DeviceNumber(253, 5), tmp_path) is None


@pytest.mark.parametrize(
    ("stat", "counters"),
    [
        # the kernel pads each field to 8 columns; an older kernel has 11 fields, a newer 17
        ("       5        1       80        3        7        2       24        9\n",
         IoCounters(5, 80 * 512, 7, 24 * 512)),
        ("5\t1\t80\t3\t7\t2\t24", IoCounters(5, 80 * 512, 7, 24 * 512)),  # 7 fields, no newline
        ("18446744073709551615 0 18446744073709551615 0 3 0 4 x y\n",  # past field 7 nothing is read
         IoCounters(2**64 - 1, (2**64 - 1) * 512, 3, 4 * 512)),
        ("007 0 010 0 0 0 0\n", IoCounters(7, 10 * 512, 0, 0)),
    ],
)  # fmt: skip
def test_io_counters_are_read_from_any_spacing_and_width(tmp_path: Path, stat: str, counters: IoCounters) -> None:
    (tmp_path / "8:0").mkdir()
    (tmp_path / "8:0" / "stat").write_text(stat)
    assert read_io_counters(DeviceNumber(8, 0), tmp_path) == counters


@pytest.mark.parametrize(
    "stat",
    [
        b"",
        b"5 1 80 3 7 2\n",  # six fields
        b"-5 1 80 3 7 2 24\n",  # int() would take a sign, an underscore or a non-ASCII digit: the kernel writes none
        b"+5 1 80 3 7 2 24\n",
        b"5 1 8_0 3 7 2 24\n",
        "5 1 80 3 7 2 \uff12\uff14\n".encode(),  # fullwidth digits
        b"5 1 80 3 7 2 0x18\n",
        b"5 1 80 3 \xff 2 24\n",
    ],
)
def test_io_counters_of_a_stat_file_that_is_not_seven_decimal_fields_are_none(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, stat: bytes
) -> None:
    (tmp_path / "8:0").mkdir()
    (tmp_path / "8:0" / "stat").write_bytes(stat)
    with caplog.at_level("WARNING", logger="localcsi.fs.block_devices"):
        assert read_io_counters(DeviceNumber(8, 0), tmp_path) is None
    assert [record.getMessage().startswith(f"unexpected {tmp_path}/8:0/stat") for record in caplog.records] == [True]
