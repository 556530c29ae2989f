import pytest
from hypothesis import given
from hypothesis import strategies as st

from localcsi.core.errors import FailedPrecondition, InvalidArgument, NotFound
from localcsi.core.ids import LvRef, make_ref, parse_snapshot_id, parse_volume_id
from localcsi.core.names import snapshot_lv_name, volume_lv_name

pytestmark = pytest.mark.unit

nodes = st.from_regex(r"[a-z0-9][a-z0-9.-]{0,30}", fullmatch=True)
vgs = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,30}", fullmatch=True).filter(lambda v: v not in (".", ".."))
csi_names = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=128)


@given(nodes, vgs, csi_names)
def test_volume_ids_round_trip(node: str, vg: str, name: str) -> None:
    ref = make_ref(node, vg, volume_lv_name(name))
    assert str(ref) == f"{node}/{vg}/{volume_lv_name(name)}"
    assert parse_volume_id(str(ref)) == ref
    assert ref.is_volume and not ref.is_snapshot


@given(nodes, vgs, csi_names)
def test_snapshot_ids_round_trip_and_are_not_volume_ids(node: str, vg: str, name: str) -> None:
    ref = make_ref(node, vg, snapshot_lv_name(name))
    assert parse_snapshot_id(str(ref)) == ref
    with pytest.raises(NotFound):
        parse_volume_id(str(ref))


@pytest.mark.parametrize(
    "text",
    [
        "some-vol-id",
        "node/vg",
        "node/vg/csi-x/extra",
        "node/vg/lvol0",
        "node/vg;reboot/csi-0",
        "node/-vg/csi-0",
        "/vg/csi-0",
        "node//csi-0",
        "no de/vg/csi-0",
        "node/vg/csi-0_tmeta",
    ],
)
def test_malformed_volume_ids_do_not_exist(text: str) -> None:
    with pytest.raises(NotFound, match="not an id this driver issued"):
        parse_volume_id(text)


def test_empty_ids_are_invalid_arguments() -> None:
    with pytest.raises(InvalidArgument, match="required"):
        parse_volume_id("")
    with pytest.raises(InvalidArgument, match="required"):
        parse_snapshot_id("")


def test_ids_longer_than_the_csi_limit_are_refused_before_creation() -> None:
    with pytest.raises(FailedPrecondition, match="128 bytes"):
        make_ref("n" * 60, "v" * 60, volume_lv_name("x"))


def test_make_ref_validates_every_part() -> None:
    with pytest.raises(InvalidArgument):
        make_ref("node", "vg", "snapshot0")
    with pytest.raises(InvalidArgument):
        make_ref("node/x", "vg", "csi-0")


def test_refs_sort_by_node_then_vg_then_lv() -> None:
    refs = [LvRef("b", "a", "a"), LvRef("a", "b", "a"), LvRef("a", "a", "b")]
    assert sorted(refs) == [LvRef("a", "a", "b"), LvRef("a", "b", "a"), LvRef("b", "a", "a")]
