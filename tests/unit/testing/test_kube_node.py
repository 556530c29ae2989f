from __future__ import annotations

import ipaddress

from localcsi.testing.kube_node import POD_SUBNET, cni_config, containerd_config, kubelet_config


def test_kubelet_and_containerd_agree_on_cgroupfs() -> None:
    assert kubelet_config()["cgroupDriver"] == "cgroupfs"
    assert "SystemdCgroup = false" in containerd_config("registry.k8s.io/pause:3.10")


def test_containerd_uses_the_given_sandbox_image_and_debian_cni_dir() -> None:
    config = containerd_config("example/pause:1")
    assert 'sandbox_image = "example/pause:1"' in config
    assert 'bin_dir = "/usr/lib/cni"' in config


def test_kubelet_accepts_only_client_certificates() -> None:
    authentication = kubelet_config()["authentication"]
    assert authentication["anonymous"] == {"enabled": False}
    assert authentication["x509"]["clientCAFile"].endswith("/ca.crt")


def test_pods_get_addresses_from_the_pod_subnet_and_are_masqueraded() -> None:
    bridge = cni_config()["plugins"][0]
    assert bridge["ipMasq"] is True
    [[subnet]] = bridge["ipam"]["ranges"]
    assert ipaddress.ip_network(subnet["subnet"]) == ipaddress.ip_network(POD_SUBNET)


def test_the_test_node_evicts_nothing_so_the_kubelet_gathers_no_eviction_stats() -> None:
    config = kubelet_config()
    assert config["evictionHard"] == {}, "an empty map, not absent: absent means the kubelet's defaults"
    assert config["localStorageCapacityIsolation"] is False


def test_a_running_pods_volume_is_grown_within_ten_seconds_of_its_resize() -> None:
    assert kubelet_config()["syncFrequency"] == "10s"
