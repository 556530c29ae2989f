"""Parsing lsblk and findmnt output, and sysfs media types (samples as lsblk and findmnt 2.38 print them,
trimmed from the node VM)."""

from __future__ import annotations

from pathlib import Path

import pytest

from localcsi.core.errors import Internal
from localcsi.core.nodestorage import MediaType
from localcsi.fs.block_devices import lsblk_argv, parse_findmnt, parse_lsblk, read_rotational

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
