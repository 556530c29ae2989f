"""The fs adapter's argv and its reading of exit statuses and messages, with faked processes."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from pytest_subprocess import FakeProcess

from localcsi.core.errors import FailedPrecondition, Internal, InvalidArgument
from localcsi.fs import commands
from localcsi.fs.adapter import LONG_TIMEOUT, Filesystems
from localcsi.fs.types import DeviceNumber, PathKind, Signature
from localcsi.lvm.runner import NSENTER_PREFIX, CommandResult, SubprocessRunner

pytestmark = pytest.mark.unit

DEVICE = "/dev/localcsi-vg/csi-aaaa"
TARGET = "/var/lib/kubelet/pods/p/volumes/kubernetes.io~csi/pv/mount"
STAT_DEVICE = ["stat", "-L", "-c", "%F|%t|%T|%s", DEVICE]
BLKID = ["blkid", "-p", "-o", "export", DEVICE]
FINDMNT = ["findmnt", "--json", "--list", "--output", "TARGET,SOURCE,FSTYPE,OPTIONS,MAJ:MIN", "--mountpoint", TARGET]


@pytest.fixture
def fs() -> Filesystems:
    return Filesystems(SubprocessRunner())


def test_probe_of_a_blank_device_is_none(fp: FakeProcess, fs: Filesystems) -> None:
    fp.register(STAT_DEVICE, stdout="block special file|fd|1|0\n")
    fp.register(BLKID, returncode=2)
    assert fs.probe(DEVICE) is None
    assert [list(call) for call in fp.calls] == [STAT_DEVICE, BLKID]


def test_probe_names_the_signature(fp: FakeProcess, fs: Filesystems) -> None:
    fp.register(STAT_DEVICE, stdout="block special file|fd|1|0\n")
    fp.register(BLKID, stdout=f"DEVNAME={DEVICE}\nTYPE=xfs\nUSAGE=filesystem\n")
    assert fs.probe(DEVICE) == Signature("xfs", "filesystem")


def test_an_ambivalent_probe_is_a_signature(fp: FakeProcess, fs: Filesystems) -> None:
    fp.register(STAT_DEVICE, stdout="block special file|fd|1|0\n")
    fp.register(BLKID, returncode=8)
    signature = fs.probe(DEVICE)
    assert signature is not None and not signature.is_filesystem


@pytest.mark.parametrize(
    ("stat", "words"),
    [
        ({"returncode": 1, "stderr": f"stat: cannot statx '{DEVICE}': No such file or directory\n"}, "missing"),
        ({"stdout": "regular file|0|0|10\n"}, "file"),
    ],
)
def test_probe_of_something_that_is_not_a_block_device_never_says_blank(
    fp: FakeProcess, fs: Filesystems, stat: dict[str, object], words: str
) -> None:
    fp.register(STAT_DEVICE, **stat)  # type: ignore[arg-type]
    with pytest.raises(FailedPrecondition, match=words):
        fs.probe(DEVICE)
    assert len(fp.calls) == 1, "blkid must not run: its 'nothing found' would read as a blank device"


@pytest.mark.parametrize(("returncode", "stderr"), [(2, "blkid: error: cannot open\n"), (4, "usage\n")])
def test_probe_failures_are_errors_not_blank(fp: FakeProcess, fs: Filesystems, returncode: int, stderr: str) -> None:
    fp.register(STAT_DEVICE, stdout="block special file|fd|1|0\n")
    fp.register(BLKID, returncode=returncode, stderr=stderr)
    with pytest.raises(Internal, match="blkid"):
        fs.probe(DEVICE)


def test_find_mount(fp: FakeProcess, fs: Filesystems) -> None:
    row = f'{{"target": "{TARGET}", "source": "/dev/mapper/x", "fstype": "xfs", "options": "ro", "maj:min": "253:4"}}'
    fp.register(FINDMNT, stdout='{"filesystems": [' + row + "]}")
    mount = fs.find_mount(TARGET)
    assert mount is not None and (mount.fs_type, mount.device, mount.read_only) == ("xfs", DeviceNumber(253, 4), True)
    fp.register(FINDMNT, returncode=1)
    assert fs.find_mount(TARGET) is None
    fp.register(FINDMNT, returncode=2, stderr="findmnt: bad usage\n")
    with pytest.raises(Internal):
        fs.find_mount(TARGET)


def test_path_info_of_a_missing_path_is_none_and_other_stat_errors_raise(fp: FakeProcess, fs: Filesystems) -> None:
    argv = ["stat", "-c", "%F|%t|%T|%s", TARGET]
    fp.register(argv, returncode=1, stderr=f"stat: cannot statx '{TARGET}': No such file or directory\n")
    assert fs.path_info(TARGET) is None
    fp.register(argv, returncode=1, stderr=f"stat: cannot statx '{TARGET}': Input/output error\n")
    with pytest.raises(Internal, match="Input/output error"):
        fs.path_info(TARGET)
    fp.register(argv, stdout="block special file|fd|2|0\n")
    info = fs.path_info(TARGET)
    assert info is not None and (info.kind, info.rdev) == (PathKind.BLOCK_DEVICE, DeviceNumber(253, 2))


def test_mount_argv(fp: FakeProcess, fs: Filesystems) -> None:
    fp.register(["mount", "-t", "ext4", "-o", "noatime,nodev", DEVICE, TARGET])
    fp.register(["mount", "-t", "xfs", DEVICE, TARGET])
    fp.register(["mount", "--bind", DEVICE, TARGET])
    fp.register(["mount", "-o", "remount,bind,ro", TARGET])
    fs.mount(DEVICE, TARGET, "ext4", ["noatime", "nodev"])
    fs.mount(DEVICE, TARGET, "xfs")
    fs.bind_mount(DEVICE, TARGET)
    fs.remount_read_only(TARGET)
    assert len(fp.calls) == 4


@pytest.mark.parametrize(
    ("call", "args"),
    [
        ("mount", (DEVICE, TARGET, "ext4", ["bind"])),
        ("mount", (DEVICE, "relative", "ext4")),
        ("mount", (DEVICE, TARGET, "vfat")),
        ("bind_mount", ("-o", TARGET)),
        ("make_filesystem", (DEVICE, "btrfs")),
        ("make_directory", ("/a/../b",)),
        ("resize", ("ext4", "dev", TARGET)),
    ],
)
def test_bad_arguments_never_reach_a_command(
    fp: FakeProcess, fs: Filesystems, call: str, args: Sequence[object]
) -> None:
    with pytest.raises(InvalidArgument):
        getattr(fs, call)(*args)
    assert len(fp.calls) == 0


def test_unmount(fp: FakeProcess, fs: Filesystems) -> None:
    argv = ["umount", TARGET]
    fp.register(argv)
    assert fs.unmount(TARGET) is True
    fp.register(argv, returncode=32, stderr=f"umount: {TARGET}: not mounted.\n")
    assert fs.unmount(TARGET) is False
    fp.register(argv, returncode=32, stderr=f"umount: {TARGET}: target is busy.\n")
    with pytest.raises(FailedPrecondition, match="busy"):
        fs.unmount(TARGET)
    fp.register(argv, returncode=32, stderr="umount: something else\n")
    with pytest.raises(Internal):
        fs.unmount(TARGET)


def test_removing_targets(fp: FakeProcess, fs: Filesystems) -> None:
    fp.register(["rmdir", TARGET])
    fp.register(
        ["rmdir", TARGET], returncode=1, stderr=f"rmdir: failed to remove '{TARGET}': No such file or directory\n"
    )
    fp.register(["rmdir", TARGET], returncode=1, stderr=f"rmdir: failed to remove '{TARGET}': Directory not empty\n")
    fp.register(["unlink", TARGET])
    fp.register(
        ["unlink", TARGET], returncode=1, stderr=f"unlink: cannot unlink '{TARGET}': No such file or directory\n"
    )
    fp.register(["unlink", TARGET], returncode=1, stderr=f"unlink: cannot unlink '{TARGET}': Is a directory\n")
    fs.remove_directory(TARGET)
    fs.remove_directory(TARGET)
    with pytest.raises(FailedPrecondition, match="not empty"):
        fs.remove_directory(TARGET)
    fs.remove_file(TARGET)
    fs.remove_file(TARGET)
    with pytest.raises(Internal, match="Is a directory"):
        fs.remove_file(TARGET)


def test_creating_targets_and_reading_sizes(fp: FakeProcess, fs: Filesystems) -> None:
    fp.register(["mkdir", "-p", TARGET])
    fp.register(["touch", TARGET])
    fp.register(["blockdev", "--getsize64", DEVICE], stdout="1073741824\n")
    fp.register(["stat", "-f", "-c", "%S %b %f %a %c %d", TARGET], stdout="4096 100 40 30 64 60\n")
    fs.make_directory(TARGET)
    fs.make_file(TARGET)
    assert fs.device_size(DEVICE) == 1024**3
    usage = fs.usage(TARGET)
    assert (usage.total_bytes, usage.used_bytes, usage.available_bytes, usage.used_inodes) == (
        409600,
        245760,
        122880,
        4,
    )


class RecordingRunner:
    def __init__(self) -> None:
        self.calls: list[tuple[tuple[str, ...], float | None]] = []

    def run(self, argv: Sequence[str], *, timeout: float | None = None) -> CommandResult:
        self.calls.append((tuple(argv), timeout))
        return CommandResult(tuple(argv), 0, "", "", 0.0)


def test_mkfs_and_resize_never_force_and_get_a_long_timeout() -> None:
    runner = RecordingRunner()
    fs = Filesystems(runner)
    fs.make_filesystem(DEVICE, "ext4")
    fs.make_filesystem(DEVICE, "xfs", ["-m", "reflink=1"])
    fs.resize("ext4", DEVICE, TARGET)
    fs.resize("xfs", DEVICE, TARGET)
    assert runner.calls == [
        (("mkfs.ext4", "-q", DEVICE), LONG_TIMEOUT),
        (("mkfs.xfs", "-q", "-m", "reflink=1", DEVICE), LONG_TIMEOUT),
        (("resize2fs", DEVICE), LONG_TIMEOUT),
        (("xfs_growfs", "-d", TARGET), LONG_TIMEOUT),
    ]


def test_with_nsenter_every_command_runs_in_pid_1s_namespaces(fp: FakeProcess) -> None:
    fs = Filesystems(SubprocessRunner(nsenter=True))
    fp.register([*NSENTER_PREFIX, "mount", "--bind", DEVICE, TARGET])
    fp.register([*NSENTER_PREFIX, *FINDMNT], returncode=1)
    fs.bind_mount(DEVICE, TARGET)
    assert fs.find_mount(TARGET) is None
    assert len(fp.calls) == 2


def test_commands_validate_paths_themselves() -> None:
    with pytest.raises(InvalidArgument):
        commands.umount_argv("mnt")
    with pytest.raises(InvalidArgument):
        commands.stat_argv("/x/../y")
