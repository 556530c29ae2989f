"""pytest fixtures for the cluster tier: one real etcd + kube-apiserver per session.

The cluster tier is required in CI: when the Go-built binaries are missing the fixture raises with
the build command (the test errors) rather than skipping.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from localcsi.testing.cluster import KubeCluster
from localcsi.testing.phases import Phases


@pytest.fixture(scope="session")
def kube_cluster(pytestconfig: pytest.Config) -> Iterator[KubeCluster]:
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    phases = Phases(write=reporter.write_line, prefix="[cluster]") if reporter else Phases(prefix="[cluster]")
    with KubeCluster(phases) as cluster:
        yield cluster
