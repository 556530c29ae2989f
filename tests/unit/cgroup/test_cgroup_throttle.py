"""The cgroup adapter's file logic over a fake cgroup root of plain files (the kernel's side is the VM's)."""

from pathlib import Path

import pytest

from localcsi.cgroup import throttle as throttle_module
from localcsi.cgroup.throttle import V1_FILES, CgroupError, Cgroups, CgroupVersion, PodCgroup
from localcsi.core.iolimits import Throttle

pytestmark = pytest.mark.unit

UID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
ESCAPED = UID.replace("-", "_")
MIB = 1024**2


def v2_root(tmp_path: Path, controllers: str = "cpuset cpu io memory pids") -> Path:
    (tmp_path / "cgroup.controllers").write_text(controllers + "\n")
    return tmp_path


def v1_root(tmp_path: Path) -> Path:
    (tmp_path / "blkio").mkdir()
    (tmp_path / "memory").mkdir()
    return tmp_path


def make_dir(base: Path, relative: str) -> Path:
    path = base / relative
    path.mkdir(parents=True)
    return path


def v1_files(directory: Path) -> None:
    for name in V1_FILES.values():
        (directory / name).write_text("")


# -- version and find_pod -------------------------------------------------------------------------


def test_cgroup_controllers_at_the_root_is_v2(tmp_path: Path) -> None:
    (tmp_path / "blkio").mkdir()  # even with a blkio directory next to it
    v2_root(tmp_path)
    assert Cgroups(str(tmp_path)).version() is CgroupVersion.V2


def test_a_blkio_hierarchy_is_v1(tmp_path: Path) -> None:
    assert Cgroups(str(v1_root(tmp_path))).version() is CgroupVersion.V1


def test_neither_is_no_cgroups(tmp_path: Path) -> None:
    (tmp_path / "blkio").write_text("")  # a file, not a hierarchy
    assert Cgroups(str(tmp_path)).version() is None
    assert Cgroups(str(tmp_path / "missing")).version() is None
    assert Cgroups(str(tmp_path)).find_pod(UID) is None


@pytest.mark.parametrize(
    "relative",
    [
        f"kubepods/pod{UID}",
        f"kubepods/burstable/pod{UID}",
        f"kubepods/besteffort/pod{UID}",
        f"kubepods.slice/kubepods-pod{ESCAPED}.slice",
        f"kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{ESCAPED}.slice",
        f"kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{ESCAPED}.slice",
    ],
)
def test_find_pod_in_the_default_layouts_v2(tmp_path: Path, relative: str) -> None:
    root = v2_root(tmp_path)
    make_dir(root, relative)
    assert Cgroups(str(root)).find_pod(UID) == PodCgroup(UID, CgroupVersion.V2, root / relative)


@pytest.mark.parametrize(
    "relative",
    [f"kubepods/burstable/pod{UID}", f"kubepods.slice/kubepods-pod{ESCAPED}.slice"],
)
def test_find_pod_in_the_default_layouts_v1_is_in_the_blkio_hierarchy(tmp_path: Path, relative: str) -> None:
    root = v1_root(tmp_path)
    make_dir(root / "memory", relative)  # another controller's copy must not be taken
    make_dir(root / "blkio", relative)
    assert Cgroups(str(root)).find_pod(UID) == PodCgroup(UID, CgroupVersion.V1, root / "blkio" / relative)


def test_find_pod_v1_ignores_a_pod_only_in_other_hierarchies(tmp_path: Path) -> None:
    root = v1_root(tmp_path)
    make_dir(root / "memory", f"kubepods/pod{UID}")
    assert Cgroups(str(root)).find_pod(UID) is None


@pytest.mark.parametrize(
    "relative",
    [
        f"kubelet.slice/kubepods/burstable/pod{UID}",
        f"custom/kubepods/pod{UID}",
        f"kubelet.slice/kubelet-kubepods.slice/kubepods-besteffort-pod{ESCAPED}.slice",
    ],
)
def test_find_pod_under_a_custom_cgroup_root(tmp_path: Path, relative: str) -> None:
    root = v2_root(tmp_path)
    make_dir(root, "system.slice/sshd.service")
    make_dir(root, "kubelet.slice/kubepods/burstable/podffffffff-4b5a-6978-8796-a5b4c3d2e1f0")
    make_dir(root, relative)
    assert Cgroups(str(root)).find_pod(UID) == PodCgroup(UID, CgroupVersion.V2, root / relative)


def test_find_pod_under_a_custom_cgroup_root_v1(tmp_path: Path) -> None:
    root = v1_root(tmp_path)
    make_dir(root / "blkio", f"kubelet.slice/kubepods/burstable/pod{UID}")
    found = Cgroups(str(root)).find_pod(UID)
    assert found == PodCgroup(UID, CgroupVersion.V1, root / "blkio" / f"kubelet.slice/kubepods/burstable/pod{UID}")


def test_the_search_is_bounded(tmp_path: Path) -> None:
    root = v2_root(tmp_path)
    make_dir(root, f"a/b/c/d/pod{UID}")  # five levels down: beyond --cgroup-root/kubepods/<qos>/pod
    assert Cgroups(str(root)).find_pod(UID) is None


def test_no_pod_is_none(tmp_path: Path) -> None:
    root = v2_root(tmp_path)
    make_dir(root, "kubepods/burstable/pod11111111-2222-3333-4444-555555555555")
    (root / "kubepods" / f"pod{UID}").write_text("")  # a file of that name is no cgroup
    assert Cgroups(str(root)).find_pod(UID) is None


def test_a_symlinked_directory_is_not_searched(tmp_path: Path) -> None:
    root = v2_root(make_dir(tmp_path, "root"))
    elsewhere = make_dir(tmp_path, f"elsewhere/kubepods/pod{UID}").parent.parent
    (root / "link").symlink_to(elsewhere, target_is_directory=True)
    assert Cgroups(str(root)).find_pod(UID) is None


# -- cgroup v2 ------------------------------------------------------------------------------------


def v2_pod(tmp_path: Path, relative: str = f"kubepods/burstable/pod{UID}") -> tuple[Cgroups, PodCgroup]:
    """A v2 hierarchy where the io controller is already delegated down to the pod."""
    root = v2_root(tmp_path)
    path = make_dir(root, relative)
    (root / "cgroup.subtree_control").write_text("cpu io memory\n")
    for parent in path.relative_to(root).parents[:-1]:
        (root / parent / "cgroup.subtree_control").write_text("io memory\n")
    (path / "io.max").write_text("")
    return Cgroups(str(root)), PodCgroup(UID, CgroupVersion.V2, path)


def test_v2_apply_writes_one_io_max_line(tmp_path: Path) -> None:
    cgroups, pod = v2_pod(tmp_path)
    cgroups.apply(pod, 253, 7, Throttle(read_bps=MIB, write_iops=100))
    assert (pod.path / "io.max").read_text() == f"253:7 rbps={MIB} wbps=max riops=max wiops=100\n"


def test_v2_lifting_writes_max_everywhere(tmp_path: Path) -> None:
    cgroups, pod = v2_pod(tmp_path)
    cgroups.apply(pod, 8, 16, Throttle())
    assert (pod.path / "io.max").read_text() == "8:16 rbps=max wbps=max riops=max wiops=max\n"


def test_v2_read_parses_the_devices_line(tmp_path: Path) -> None:
    cgroups, pod = v2_pod(tmp_path)
    (pod.path / "io.max").write_text(
        f"8:0 rbps=5 wbps=6 riops=7 wiops=8\n253:7 rbps={MIB} wbps=max riops=max wiops=100\n"
    )
    assert cgroups.read(pod, 253, 7) == Throttle(read_bps=MIB, write_iops=100)
    assert cgroups.read(pod, 8, 0) == Throttle(5, 6, 7, 8)
    assert cgroups.read(pod, 253, 70) == Throttle()  # no line: unlimited


def test_v2_read_of_what_apply_wrote_round_trips(tmp_path: Path) -> None:
    cgroups, pod = v2_pod(tmp_path)
    throttle = Throttle(read_bps=3 * MIB, write_bps=MIB, read_iops=50, write_iops=60)
    cgroups.apply(pod, 253, 1, throttle)
    assert cgroups.read(pod, 253, 1) == throttle


def test_v2_apply_to_a_vanished_pod_is_a_cgroup_error(tmp_path: Path) -> None:
    cgroups, pod = v2_pod(tmp_path)
    (pod.path / "io.max").unlink()
    pod.path.rmdir()
    with pytest.raises(CgroupError):
        cgroups.apply(pod, 253, 1, Throttle(read_bps=MIB))


def test_v2_read_where_io_is_not_delegated_yet_is_unlimited(tmp_path: Path) -> None:
    cgroups, pod = v2_pod(tmp_path)
    (pod.path / "io.max").unlink()
    assert cgroups.read(pod, 253, 1) == Throttle()


def test_v2_an_unreadable_io_max_is_a_cgroup_error(tmp_path: Path) -> None:
    cgroups, pod = v2_pod(tmp_path)
    (pod.path / "io.max").unlink()
    (pod.path / "io.max").mkdir()
    with pytest.raises(CgroupError, match=r"io\.max"):
        cgroups.read(pod, 253, 1)


def test_v2_an_unwritable_io_max_is_a_cgroup_error(tmp_path: Path) -> None:
    cgroups, pod = v2_pod(tmp_path)
    (pod.path / "io.max").unlink()
    (pod.path / "io.max").mkdir()  # exists, so the io controller counts as delegated, but cannot be written
    with pytest.raises(CgroupError, match=r"253:1 rbps="):
        cgroups.apply(pod, 253, 1, Throttle(read_bps=MIB))


def test_negative_device_numbers_are_refused(tmp_path: Path) -> None:
    cgroups, pod = v2_pod(tmp_path)
    with pytest.raises(CgroupError, match="not a device number"):
        cgroups.apply(pod, -1, 0, Throttle(read_bps=MIB))
    assert (pod.path / "io.max").read_text() == ""


def test_v2_enables_io_in_every_ancestor_lacking_it(tmp_path: Path) -> None:
    root = v2_root(tmp_path)
    pod_path = make_dir(root, f"kubepods/burstable/pod{UID}")
    (root / "cgroup.subtree_control").write_text("cpu memory\n")
    (root / "kubepods" / "cgroup.subtree_control").write_text("cpu io memory\n")
    (root / "kubepods" / "burstable" / "cgroup.subtree_control").write_text("\n")
    (pod_path / "cgroup.subtree_control").write_text("\n")  # the pod's own: not the kubelet's to delegate
    assert Cgroups(str(root)).read(PodCgroup(UID, CgroupVersion.V2, pod_path), 253, 2) == Throttle()
    Cgroups(str(root)).apply(PodCgroup(UID, CgroupVersion.V2, pod_path), 253, 2, Throttle(write_bps=MIB))
    assert (root / "cgroup.subtree_control").read_text() == "+io\n"
    assert (root / "kubepods" / "cgroup.subtree_control").read_text() == "cpu io memory\n"  # had it: untouched
    assert (root / "kubepods" / "burstable" / "cgroup.subtree_control").read_text() == "+io\n"
    assert (pod_path / "cgroup.subtree_control").read_text() == "\n"
    assert (pod_path / "io.max").read_text() == f"253:2 rbps=max wbps={MIB} riops=max wiops=max\n"


def test_v2_io_already_offered_to_the_pod_touches_no_ancestor(tmp_path: Path) -> None:
    root = v2_root(tmp_path)
    pod_path = make_dir(root, f"kubepods/pod{UID}")
    (pod_path / "io.max").write_text("")
    # no cgroup.subtree_control anywhere: reading one would fail
    Cgroups(str(root)).apply(PodCgroup(UID, CgroupVersion.V2, pod_path), 253, 2, Throttle(write_bps=MIB))
    assert not (root / "cgroup.subtree_control").exists()
    assert (pod_path / "io.max").read_text().startswith("253:2 ")


def test_v2_without_an_io_controller_is_a_cgroup_error(tmp_path: Path) -> None:
    root = v2_root(tmp_path, controllers="cpuset cpu memory pids")
    pod_path = make_dir(root, f"kubepods/pod{UID}")
    (root / "cgroup.subtree_control").write_text("cpu memory\n")
    (root / "kubepods" / "cgroup.subtree_control").write_text("cpu memory\n")
    with pytest.raises(CgroupError, match="no io controller"):
        Cgroups(str(root)).apply(PodCgroup(UID, CgroupVersion.V2, pod_path), 253, 2, Throttle(write_bps=MIB))
    assert (root / "cgroup.subtree_control").read_text() == "cpu memory\n"
    assert not (pod_path / "io.max").exists()


def test_v2_an_unwritable_subtree_control_is_a_cgroup_error(tmp_path: Path) -> None:
    root = v2_root(tmp_path)
    pod_path = make_dir(root, f"kubepods/pod{UID}")
    (root / "cgroup.subtree_control").write_text("cpu io\n")
    make_dir(root, "kubepods/cgroup.subtree_control")  # unreadable as a file
    with pytest.raises(CgroupError, match="subtree_control"):
        Cgroups(str(root)).apply(PodCgroup(UID, CgroupVersion.V2, pod_path), 253, 2, Throttle(write_bps=MIB))


# -- cgroup v1 ------------------------------------------------------------------------------------


def v1_pod(tmp_path: Path, containers: tuple[str, ...] = ("ctr-a", "ctr-b")) -> tuple[Cgroups, PodCgroup]:
    root = v1_root(tmp_path)
    path = make_dir(root / "blkio", f"kubepods/burstable/pod{UID}")
    v1_files(path)
    for container in containers:
        v1_files(make_dir(path, container))
    return Cgroups(str(root)), PodCgroup(UID, CgroupVersion.V1, path)


def test_v1_apply_writes_the_pod_and_every_container(tmp_path: Path) -> None:
    cgroups, pod = v1_pod(tmp_path)
    cgroups.apply(pod, 253, 4, Throttle(read_bps=MIB, write_iops=100))
    expected = {  # a direction with no rule and no limit wanted is left alone
        "blkio.throttle.read_bps_device": f"253:4 {MIB}\n",
        "blkio.throttle.write_bps_device": "",
        "blkio.throttle.read_iops_device": "",
        "blkio.throttle.write_iops_device": "253:4 100\n",
    }
    for directory in (pod.path, pod.path / "ctr-a", pod.path / "ctr-b"):
        assert {name: (directory / name).read_text() for name in expected} == expected


def test_v1_apply_reaches_nested_cgroups(tmp_path: Path) -> None:
    cgroups, pod = v1_pod(tmp_path, containers=())
    nested = make_dir(pod.path, "ctr-a/inner")
    v1_files(pod.path / "ctr-a")
    v1_files(nested)
    cgroups.apply(pod, 253, 4, Throttle(write_bps=MIB))
    assert (nested / "blkio.throttle.write_bps_device").read_text() == f"253:4 {MIB}\n"


def test_v1_lifting_writes_zero_everywhere(tmp_path: Path) -> None:
    cgroups, pod = v1_pod(tmp_path)
    cgroups.apply(pod, 253, 4, Throttle(read_bps=1, write_bps=2, read_iops=3, write_iops=4))
    cgroups.apply(pod, 253, 4, Throttle())
    for directory in (pod.path, pod.path / "ctr-a"):
        assert {(directory / name).read_text() for name in V1_FILES.values()} == {"253:4 0\n"}


def test_v1_read_parses_the_devices_lines(tmp_path: Path) -> None:
    cgroups, pod = v1_pod(tmp_path)
    (pod.path / "blkio.throttle.read_bps_device").write_text(f"8:0 999\n253:4 {MIB}\n")
    (pod.path / "blkio.throttle.write_bps_device").write_text("8:0 999\n")
    (pod.path / "blkio.throttle.read_iops_device").write_text("253:4 0\n")
    (pod.path / "blkio.throttle.write_iops_device").write_text("253:4 100\n253:40 7\n")
    assert cgroups.read(pod, 253, 4) == Throttle(read_bps=MIB, write_iops=100)
    assert cgroups.read(pod, 8, 0) == Throttle(read_bps=999, write_bps=999)
    assert cgroups.read(pod, 9, 9) == Throttle()


def test_v1_read_of_what_apply_wrote_round_trips(tmp_path: Path) -> None:
    cgroups, pod = v1_pod(tmp_path)
    throttle = Throttle(read_bps=3 * MIB, write_bps=MIB, read_iops=50, write_iops=60)
    cgroups.apply(pod, 253, 4, throttle)
    assert cgroups.read(pod, 253, 4) == throttle


def test_v1_a_vanished_pod_is_a_cgroup_error(tmp_path: Path) -> None:
    cgroups, pod = v1_pod(tmp_path, containers=())
    for name in V1_FILES.values():
        (pod.path / name).unlink()
    pod.path.rmdir()
    with pytest.raises(CgroupError, match="gone"):
        cgroups.apply(pod, 253, 4, Throttle(read_bps=MIB))
    with pytest.raises(CgroupError, match="read_bps_device"):
        cgroups.read(pod, 253, 4)


def test_v1_an_unwritable_file_is_a_cgroup_error(tmp_path: Path) -> None:
    cgroups, pod = v1_pod(tmp_path)
    target = pod.path / "ctr-b" / "blkio.throttle.write_iops_device"
    target.unlink()
    target.mkdir()
    with pytest.raises(CgroupError, match=r"write_iops_device failed"):
        cgroups.apply(pod, 253, 4, Throttle(write_iops=100))


def test_v1_an_unchanged_rule_is_never_rewritten(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each write restarts the kernel's throttle slice (and adds a carryover): a resync must not write."""
    cgroups, pod = v1_pod(tmp_path)
    cgroups.apply(pod, 253, 4, Throttle(write_bps=MIB))
    writes: list[tuple[str, str]] = []
    monkeypatch.setattr(throttle_module, "_write", lambda path, line: writes.append((path.name, line)))
    cgroups.apply(pod, 253, 4, Throttle(write_bps=MIB))
    assert writes == []
    make_dir(pod.path, "ctr-new")
    v1_files(pod.path / "ctr-new")
    cgroups.apply(pod, 253, 4, Throttle(write_bps=2 * MIB))
    assert sorted(writes) == [("blkio.throttle.write_bps_device", f"253:4 {2 * MIB}")] * 4
