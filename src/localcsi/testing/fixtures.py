"""pytest fixtures for the node tier: `node_vm` boots the node VM once per test module.

The node tier is required in CI: when qemu or the image build is missing, these fixtures
raise (the test errors) rather than skip.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from localcsi.testing.guest_plugin import PLUGIN_TCP_PORT, GuestPlugin
from localcsi.testing.install import install_project, site_disk
from localcsi.testing.phases import Phases
from localcsi.testing.vm import NodeVM
from localcsi.testing.vm_config import VMConfig


@pytest.fixture(scope="session")
def vm_phases(pytestconfig: pytest.Config) -> Phases:
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return Phases()
    return Phases(write=reporter.write_line)


@pytest.fixture(scope="module")
def vm_config() -> VMConfig:
    """Override in a test module to change disks, memory or port forwards."""
    return VMConfig(disks_gib=[6, 6], port_forwards={PLUGIN_TCP_PORT: 0})


@pytest.fixture(scope="module")
def node_vm(request: pytest.FixtureRequest, vm_config: VMConfig, vm_phases: Phases) -> Iterator[NodeVM]:
    if "installed_vm" in request.fixturenames and vm_config.site_disk is None:
        vm_config = dataclasses.replace(vm_config, site_disk=site_disk())
    vm = NodeVM(vm_config, vm_phases)
    try:
        vm.start()
        yield vm
    finally:
        vm.stop()


@pytest.fixture(scope="module")
def installed_vm(node_vm: NodeVM) -> NodeVM:
    """The node VM with this project's wheel and dependencies installed (`localcsi` on PATH)."""
    install_project(node_vm)
    return node_vm


THICK_VG = "localcsi-thick"
THIN_VG = "localcsi-thin"
THIN_POOL = "pool0"
THICK = {"vgName": THICK_VG}
THIN = {"vgName": THIN_VG, "lvmType": "thin", "thinPool": THIN_POOL}


@pytest.fixture(scope="module")
def csi_plugin(installed_vm: NodeVM) -> Iterator[GuestPlugin]:
    """`localcsi plugin` (standalone) in the VM with a thick VG on the first data disk and a thin
    pool on the second, reachable from the host over a forwarded tcp port."""
    vm = installed_vm
    thick_disk, thin_disk = vm.data_disks()[:2]
    vm.check(["vgcreate", "-y", THICK_VG, thick_disk])
    vm.check(["vgcreate", "-y", THIN_VG, thin_disk])
    pool_size = f"{vm.config.disks_gib[1] - 1}g"
    vm.check(["lvcreate", "-y", "--type", "thin-pool", "-L", pool_size, "-n", THIN_POOL, THIN_VG])
    plugin = GuestPlugin(vm).start()
    try:
        yield plugin
    finally:
        if plugin.pid is not None:
            plugin.stop()
