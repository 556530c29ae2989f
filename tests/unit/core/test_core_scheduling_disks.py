import pytest
from scheduling_factories import device, disk, disk_cap

from localcsi.core.params import MediaType, VolumeType
from localcsi.core.scheduling import PodDemand, VolumeRequest
from localcsi.core.scheduling_charges import Charge, Held, assignment
from localcsi.core.scheduling_disks import match_disks
from localcsi.core.scheduling_fit import fit
from localcsi.core.sizes import GiB

pytestmark = pytest.mark.unit


def test_device_volumes_need_one_disk_each_big_enough_and_of_the_media_asked() -> None:
    node = disk_cap(disk("/dev/sdb", 100, MediaType.HDD), disk("/dev/sdc", 200, MediaType.SSD))
    result = fit(PodDemand((device("a", 150, MediaType.SSD), device("b", 50))), node)
    assert {c.key: c.disk for c in result.charges} == {"key-a": "/dev/sdc", "key-b": "/dev/sdb"}
    refused = fit(PodDemand((device("a", 50, MediaType.SSD), device("b", 50, MediaType.SSD))), node)
    assert refused.reason == ("localcsi: no free ssd disk of at least 50 GiB for PVC ns/b (2 exclusive volumes in all)")


def test_device_matching_finds_an_assignment_a_greedy_pick_would_miss() -> None:
    # the small unconstrained volume must not take the only ssd
    node = disk_cap(disk("/dev/ssd", 100, MediaType.SSD), disk("/dev/hdd", 500, MediaType.HDD))
    result = fit(PodDemand((device("any", 10), device("fast", 50, MediaType.SSD))), node)
    assert {c.key: c.disk for c in result.charges} == {"key-any": "/dev/hdd", "key-fast": "/dev/ssd"}


def test_held_disks_are_not_offered_again() -> None:
    node = disk_cap(disk("/dev/sdb", 100))
    other = Held()
    other.add(assignment([Charge("other", disk="/dev/sdb")]))
    result = fit(PodDemand((device("a", 10),)), node, other)
    assert result.reason is not None
    assert result.reason.endswith("while space is held for other pods being scheduled; retry follows")


def test_mount_points_are_a_separate_pool_from_devices() -> None:
    node = disk_cap(disk("/mnt/a", 100, kind=VolumeType.MOUNTPOINT))
    mount = VolumeRequest("m", "PVC ns/m", GiB, VolumeType.MOUNTPOINT)
    assert fit(PodDemand((mount,)), node).ok
    assert fit(PodDemand((device("d", 1),)), node).reason == ("localcsi: no free disk of at least 1 GiB for PVC ns/d")


def test_matching_moves_an_earlier_volume_to_make_room_for_a_later_one() -> None:
    # "any" fits both disks and takes the first; "big" fits only that one, so "any" must move
    disks = [disk("/dev/big", 500), disk("/dev/small", 100)]
    assert match_disks([device("any", 50), device("big", 400)], disks) == [1, 0]


def test_matching_names_the_first_volume_left_without_a_disk() -> None:
    disks = [disk("/dev/sdb", 100), disk("/dev/sdc", 100)]
    requests = [device("a", 10), device("b", 200), device("c", 10)]
    assert match_disks(requests, disks) == 1
    assert match_disks([device("a", 10), device("b", 10), device("c", 10)], disks) == 2
    assert match_disks([], disks) == []
