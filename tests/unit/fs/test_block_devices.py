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


def diskstats_file(tmp_path: Path, text: bytes | str) -> Path:
    path = tmp_path / "diskstats"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


# As the kernel writes it: major and minor padded to 4 and 7 columns, then the name and 17 fields.
DISKSTATS = """\
   8       0 vda 9876 12 345678 100 4321 8 765432 200 0 300 300 0 0 0 0 0 0
 253       3 dm-3 5 1 80 3 7 2 24 9 0 12 12 0 0 0 0 0 0
 253      13 dm-13 50 1 800 3 70 2 240 9 0 12 12 0 0 0 0 0 0
"""


def test_io_counters_come_from_one_read_of_diskstats_in_bytes(tmp_path: Path) -> None:
    path = diskstats_file(tmp_path, DISKSTATS)
    wanted = [DeviceNumber(253, 13), DeviceNumber(253, 3), DeviceNumber(253, 1)]
    assert read_io_counters(wanted, path) == [
        IoCounters(50, 800 * 512, 70, 240 * 512),
        IoCounters(5, 80 * 512, 7, 24 * 512),
        None,  # not listed: gone
    ], "each device its own line: 253:3 is not 253:13's prefix"
    assert read_io_counters([], path) == []


def test_io_counters_without_a_readable_diskstats_are_none(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="localcsi.fs.block_devices"):
        assert read_io_counters([DeviceNumber(8, 0)], tmp_path / "missing") == [None]
    assert "cannot read" in caplog.text


@pytest.mark.parametrize(
    ("line", "counters"),
    [
        # an older kernel has 11 fields, a newer 17; tabs or spaces
        ("   8       0 vda 5 1 80 3 7 2 24 9 0 12 12\n", IoCounters(5, 80 * 512, 7, 24 * 512)),
        ("8\t0\tvda\t5\t1\t80\t3\t7\t2\t24", IoCounters(5, 80 * 512, 7, 24 * 512)),  # 7 fields, no newline
        ("8 0 vda 18446744073709551615 0 18446744073709551615 0 3 0 4 x y\n",  # past field 7 nothing is read
         IoCounters(2**64 - 1, (2**64 - 1) * 512, 3, 4 * 512)),
        ("8 0 vda 007 0 010 0 0 0 0\n", IoCounters(7, 10 * 512, 0, 0)),
    ],
)  # fmt: skip
def test_io_counters_are_read_from_any_spacing_and_width(tmp_path: Path, line: str, counters: IoCounters) -> None:
    assert read_io_counters([DeviceNumber(8, 0)], diskstats_file(tmp_path, line)) == [counters]


@pytest.mark.parametrize(
    "fields",
    [
        b"",
        b"5 1 80 3 7 2",  # six fields
        b"-5 1 80 3 7 2 24",  # int() would take a sign, an underscore or a non-ASCII digit: the kernel writes none
        b"+5 1 80 3 7 2 24",
        b"5 1 8_0 3 7 2 24",
        "5 1 80 3 7 2 \uff12\uff14".encode(),  # fullwidth digits
        b"5 1 80 3 7 2 0x18",
        b"5 1 80 3 \xff 2 24",
    ],
)
def test_io_counters_of_a_line_that_is_not_seven_decimal_fields_are_none(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, fields: bytes
) -> None:
    path = diskstats_file(tmp_path, b"   8       0 vda " + fields + b"\n 253 3 dm-3 5 1 80 3 7 2 24\n")
    with caplog.at_level("WARNING", logger="localcsi.fs.block_devices"):
        found = read_io_counters([DeviceNumber(8, 0), DeviceNumber(253, 3)], path)
    assert found == [None, IoCounters(5, 80 * 512, 7, 24 * 512)], "a bad line spoils no other"
    assert [record.getMessage().startswith(f"unexpected line in {path}") for record in caplog.records] == [True]
