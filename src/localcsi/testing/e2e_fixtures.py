"""pytest fixtures for the e2e tier: one environment per session, chosen by LOCALCSI_E2E.

- `vm` (the default): the node VM joined to the Go-built control plane, localcsi installed with helm.
- `kind`: a kind cluster made by the GitHub Actions workflow, with localcsi already installed by the
  same helm command; its part lives in the repository's e2e/ folder.

The e2e tier is required in CI: when a tool, qemu or the image build is missing, the fixture raises
(the tests error) rather than skipping.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from localcsi.testing.e2e_env import E2EEnvironment, ensure_thin_pool, storage_ready, storage_report
from localcsi.testing.install import load_project_script
from localcsi.testing.phases import Phases
from localcsi.testing.waiting import wait_for

ENVIRONMENTS = ("vm", "kind")
# How to stop the running VM environment early: set by the fixture, used after the last e2e test.
_STOP_EARLY = pytest.StashKey[Callable[[], None]]()


def _kind_environment() -> E2EEnvironment:
    module = load_project_script("e2e/kind_env.py")
    environment: E2EEnvironment = module.KindEnvironment.from_environment()
    return environment


@pytest.fixture(scope="session")
def e2e_env(pytestconfig: pytest.Config) -> Iterator[E2EEnvironment]:
    choice = os.environ.get("LOCALCSI_E2E", "vm")
    if choice not in ENVIRONMENTS:
        raise RuntimeError(f"LOCALCSI_E2E={choice!r}: expected one of {', '.join(ENVIRONMENTS)}")
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    phases = Phases(write=reporter.write_line, prefix="[e2e]") if reporter else Phases(prefix="[e2e]")
    if choice == "kind":
        environment = _kind_environment()
        _wait_for_storage(environment, phases)
        yield environment
        return
    from localcsi.testing.e2e_vm import VMEnvironment  # noqa: PLC0415 - only the vm choice needs qemu

    vm_environment = VMEnvironment(phases).start()
    pytestconfig.stash[_STOP_EARLY] = vm_environment.stop
    try:
        _wait_for_storage(vm_environment, phases)
        yield vm_environment
    finally:
        vm_environment.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Stop the VM environment right after the last e2e test, not at the session's end: in the `vm` tox
    env the same worker goes on with node modules, and an idle real node would still cost a core."""
    yield
    if item.get_closest_marker("e2e") and (nextitem is None or not nextitem.get_closest_marker("e2e")):
        stop = item.config.stash.get(_STOP_EARLY, None)
        if stop is not None:
            del item.config.stash[_STOP_EARLY]
            stop()


def _wait_for_storage(environment: E2EEnvironment, phases: Phases) -> None:
    # The provisioner polls GetCapacity every csiController.capacityPollInterval (10 s in the e2e release):
    # a VG or pool made just after a poll shows that much later.
    report = lambda: storage_report(environment)  # noqa: E731
    with phases.phase("VG from the init config"):
        wait_for("the init config's VG on every node", lambda: storage_ready(environment), 300, 2.0, report)
    with phases.phase("thin pool and its capacity published"):
        ensure_thin_pool(environment)
        ready = lambda: storage_ready(environment, "localcsi-lvm-thin")  # noqa: E731
        wait_for("a non-zero CSIStorageCapacity of the thin class on every node", ready, 300, 2.0, report)
