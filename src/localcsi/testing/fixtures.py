"""pytest fixtures for the node tier: `node_vm` boots the node VM once per test module.

The node tier is required in CI: when qemu or the image build is missing, these fixtures
raise (the test errors) rather than skip.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from localcsi.testing.install import install_project
from localcsi.testing.phases import Phases
from localcsi.testing.vm import NodeVM, VMConfig


@pytest.fixture(scope="session")
def vm_phases(pytestconfig: pytest.Config) -> Phases:
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return Phases()
    return Phases(write=reporter.write_line)


@pytest.fixture(scope="module")
def vm_config() -> VMConfig:
    """Override in a test module to change disks, memory or port forwards."""
    return VMConfig()


@pytest.fixture(scope="module")
def node_vm(vm_config: VMConfig, vm_phases: Phases) -> Iterator[NodeVM]:
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
