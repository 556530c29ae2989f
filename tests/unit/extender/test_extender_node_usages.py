import pytest

from localcsi.core.scheduling import Usage
from localcsi.core.sizes import GiB
from localcsi.extender.node_usages import NodeUsages

pytestmark = pytest.mark.unit


def test_a_volume_seen_through_several_sources_counts_once_as_the_best_of_them() -> None:
    index = NodeUsages()
    pending = Usage("csi-a", 10 * GiB)  # its PVC's selected-node: VG not chosen yet
    placed = Usage("csi-a", 10 * GiB, "vg0")  # its LogicalVolume
    assert index.replace("pvc/a", None, ("n1", (pending,))) == [("n1", None, pending)]
    assert index.replace("llv/a", None, ("n1", (placed,))) == [("n1", pending, placed)]
    assert index.replace("pv/a", None, ("n1", (placed,))) == []  # counted as before
    assert index.replace("pvc/a", ("n1", (pending,)), None) == []
    assert index.usages("n1") == [placed]
    index.replace("llv/a", ("n1", (placed,)), None)
    assert index.replace("pv/a", ("n1", (placed,)), None) == [("n1", placed, None)]
    assert index.usages("n1") == []


def test_a_source_that_moves_changes_both_nodes() -> None:
    index = NodeUsages()
    first, second = Usage("csi-a", GiB, "vg0"), Usage("csi-b", 2 * GiB, "vg0")
    index.replace("pod/x", None, ("n1", (first, second)))
    changes = index.replace("pod/x", ("n1", (first, second)), ("n2", (first,)))
    assert changes == [("n1", first, None), ("n1", second, None), ("n2", None, first)]
    assert (index.usages("n1"), index.usages("n2")) == ([], [first])


@pytest.mark.parametrize("reverse", [False, True])
def test_a_source_naming_one_volume_twice_counts_it_once_as_the_larger_and_leaves_cleanly(reverse: bool) -> None:
    index = NodeUsages()
    small, large = Usage("csi-a", GiB, "vg0"), Usage("csi-a", 2 * GiB, "vg0")
    usages = (large, small) if reverse else (small, large)
    assert index.replace("pod/x", None, ("n1", usages)) == [("n1", None, large)]
    assert index.usages("n1") == [large]
    assert index.replace("pod/x", ("n1", usages), None) == [("n1", large, None)]
    assert index.usages("n1") == []
