import hashlib
import re

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from localcsi.core.errors import InvalidArgument
from localcsi.core.names import (
    snapshot_lv_name,
    validate_csi_name,
    validate_lv_name,
    validate_node_id,
    validate_thin_pool_name,
    validate_vg_name,
    volume_lv_name,
)

pytestmark = pytest.mark.unit

csi_names = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=128)
LVM_SAFE = re.compile(r"[A-Za-z0-9+_.][A-Za-z0-9+_.-]*")


def test_volume_lv_name_is_csi_prefix_and_32_hex_digits_of_sha256() -> None:
    assert volume_lv_name("pvc-1") == "csi-" + hashlib.sha256(b"pvc-1").hexdigest()[:32]
    assert snapshot_lv_name("pvc-1") == "snap-" + hashlib.sha256(b"pvc-1").hexdigest()[:32]


@given(csi_names)
def test_derived_names_are_deterministic_valid_lv_names(name: str) -> None:
    for derive in (volume_lv_name, snapshot_lv_name):
        lv = derive(name)
        assert lv == derive(name)
        assert validate_lv_name(lv) == lv
        assert len(lv) <= 37


@given(csi_names, csi_names)
def test_different_csi_names_get_different_lv_names(a: str, b: str) -> None:
    assume(a != b)
    assert volume_lv_name(a) != volume_lv_name(b)


@given(csi_names)
def test_volume_and_snapshot_names_never_collide(name: str) -> None:
    assert volume_lv_name(name) != snapshot_lv_name(name)
    assert snapshot_lv_name(name).startswith("snap-")


@pytest.mark.parametrize("name", ["", "x" * 129, "bad\ud800surrogate"])
def test_invalid_csi_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidArgument, match="name"):
        volume_lv_name(name)


def test_csi_names_may_hold_any_unicode_and_shell_metacharacters() -> None:
    name = "données; rm -rf / $(reboot) `id` ✓"
    assert validate_csi_name(name) == name
    assert LVM_SAFE.fullmatch(volume_lv_name(name))


@pytest.mark.parametrize("name", ["vg0", "vg-data", "a.b+c_d", "x" * 127, "vg_tmeta"])
def test_valid_vg_names(name: str) -> None:
    assert validate_vg_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "-vg", ".", "..", "vg 0", "vg;reboot", "$(id)", "vg/0", "vé", "x" * 128, "vg\n", "vg`id`"],
)
def test_invalid_vg_names(name: str) -> None:
    with pytest.raises(InvalidArgument, match="volume group name"):
        validate_vg_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "snapshot",
        "snapshot0",
        "pvmove1",
        "a_mlog",
        "a_mimage_0",
        "a_rimage_1",
        "x_tdata",
        "x_tmeta",
        "v_vorigin",
    ],
)
def test_lvm2_reserved_lv_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidArgument, match="reserves"):
        validate_lv_name(name)


def test_reserved_words_are_fine_for_vgs_and_inside_lv_names() -> None:
    assert validate_vg_name("snapshot") == "snapshot"
    assert validate_lv_name("my-snapshot") == "my-snapshot"


def test_thin_pool_names_follow_lv_rules() -> None:
    assert validate_thin_pool_name("localcsi-thinpool") == "localcsi-thinpool"
    with pytest.raises(InvalidArgument, match="thin pool name"):
        validate_thin_pool_name("pool_tmeta")


@given(st.text(max_size=140))
def test_whatever_passes_validation_is_safe_on_a_command_line(text: str) -> None:
    try:
        validate_lv_name(text)
    except InvalidArgument:
        return
    assert LVM_SAFE.fullmatch(text)
    assert len(text) <= 127 and text not in (".", "..")


@pytest.mark.parametrize("node", ["node-1", "ip-10-0-0-1.ec2.internal", "n"])
def test_valid_node_ids(node: str) -> None:
    assert validate_node_id(node) == node


@pytest.mark.parametrize("node", ["", "-node", "node/1", "node 1", "x" * 254, ".node"])
def test_invalid_node_ids(node: str) -> None:
    with pytest.raises(InvalidArgument, match="node id"):
        validate_node_id(node)
