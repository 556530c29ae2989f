"""Paths and mount flags from requests are checked before any command sees them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from localcsi.core.errors import InvalidArgument
from localcsi.fs.paths import validate_mount_flags, validate_path

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/var/lib/kubelet/pods/1/volumes/kubernetes.io~csi/pvc-1/mount", None),
        ("/mnt/with space/and-ünïcode", None),
        ("/mnt/trailing/", "/mnt/trailing"),
    ],
)
def test_good_paths(path: str, expected: str | None) -> None:
    assert validate_path(path, "target_path") == (expected or path)


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("", "is required"),
        ("relative/path", "absolute"),
        ("-o/remount", "absolute"),
        ("/mnt/../etc", "'..'"),
        ("/mnt/..", "'..'"),
        ("/mnt/x\x00y", "control characters"),
        ("/mnt/x\ny", "control characters"),
        ("/mnt//x", "normalised"),
        ("/mnt/./x", "normalised"),
        ("/", "normalised"),
        ("/" + "a" * 5000, "longer than"),
    ],
)
def test_bad_paths(path: str, words: str) -> None:
    with pytest.raises(InvalidArgument, match="target_path") as raised:
        validate_path(path, "target_path")
    assert words in raised.value.message


@given(st.text(max_size=60))
def test_no_accepted_path_can_be_read_as_an_option_or_escape_upwards(path: str) -> None:
    try:
        accepted = validate_path(path, "path")
    except InvalidArgument:
        return
    assert accepted.startswith("/") and ".." not in accepted.split("/") and "\x00" not in accepted


def test_mount_flags_become_a_flat_list_of_options() -> None:
    flags = ["noatime", "nodev,nosuid", "context=system_u:object_r:container_file_t:s0", "uid=1000"]
    assert validate_mount_flags(flags) == (
        "noatime",
        "nodev",
        "nosuid",
        "context=system_u:object_r:container_file_t:s0",
        "uid=1000",
    )


@pytest.mark.parametrize(
    "flag",
    [
        "bind",
        "rbind",
        "remount",
        "move",
        "loop=/dev/loop0",
        "offset=512",
        "make-shared",
        "X-mount.mkdir",
        "x-systemd.automount",
        "helper=evil",
        "noatime;reboot",
        "a b",
        "$(id)",
        "noatime,",
        "",
        "`x`",
    ],
)
def test_mount_flags_that_are_refused(flag: str) -> None:
    with pytest.raises(InvalidArgument, match="mount"):
        validate_mount_flags([flag])
