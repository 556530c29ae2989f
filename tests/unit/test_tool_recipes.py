"""The tool registry's recipes: pinned versions, image names, generated go.mod files, the pause build;
and the VolumeSnapshot CRDs read from the real Go module cache (downloaded there when absent)."""

from __future__ import annotations

import pytest
import yaml

from localcsi.testing.snapshot_crds import snapshot_crd_paths
from localcsi.testing.tools import (
    CSI_PROVISIONER,
    CSI_RESIZER,
    CSI_SNAPSHOTTER,
    HELM,
    KUBE_APISERVER,
    PAUSE,
    PAUSE_IMAGE,
    SIDECAR_IMAGES,
    SNAPSHOT_CONTROLLER,
    TOOLS,
    CBuild,
    ModuleBuild,
    Tool,
    go_mod,
    kubernetes_go_mod,
)

pytestmark = pytest.mark.unit


def test_snapshot_crds_are_the_three_volume_snapshot_kinds_of_the_pinned_client_module() -> None:
    documents = [yaml.safe_load(path.read_text()) for path in snapshot_crd_paths()]
    assert [doc["kind"] for doc in documents] == ["CustomResourceDefinition"] * 3
    assert [doc["metadata"]["name"] for doc in documents] == [
        "volumesnapshotclasses.snapshot.storage.k8s.io",
        "volumesnapshotcontents.snapshot.storage.k8s.io",
        "volumesnapshots.snapshot.storage.k8s.io",
    ]
    assert "/external-snapshotter/client/v8@v8.2.0/config/crd/" in str(snapshot_crd_paths()[0])


# ------------------------------------------------------------------ registry and cache paths


def test_registry_pins_each_tool_and_names_the_images_after_the_versions() -> None:
    assert {name: tool.version for name, tool in TOOLS.items()} == {
        "csi-sanity": "v5.5.0",
        "etcd": "v3.5.24",
        "kube-apiserver": "v1.34.2",
        "kube-scheduler": "v1.34.2",
        "kubelet": "v1.34.2",
        "kube-controller-manager": "v1.34.2",
        "csi-provisioner": "v6.3.0",
        "csi-resizer": "v2.2.0",
        "csi-snapshotter": "v8.2.0",
        "snapshot-controller": "v8.2.0",
        "helm": "v3.19.0",
        "pause": "3.10.1",
    }
    assert SIDECAR_IMAGES == {
        "csi-provisioner": "registry.k8s.io/sig-storage/csi-provisioner:v6.3.0",
        "csi-resizer": "registry.k8s.io/sig-storage/csi-resizer:v2.2.0",
        "csi-snapshotter": "registry.k8s.io/sig-storage/csi-snapshotter:v8.2.0",
        "snapshot-controller": "registry.k8s.io/sig-storage/snapshot-controller:v8.2.0",
    }
    assert PAUSE_IMAGE == "registry.k8s.io/pause:3.10.1"


def test_binaries_for_images_and_the_node_vm_are_static_and_stamped() -> None:
    static = {name for name, tool in TOOLS.items() if tool.static}
    kubernetes = {"kube-apiserver", "kube-scheduler", "kubelet", "kube-controller-manager"}
    assert static == {*kubernetes, *SIDECAR_IMAGES, "helm"}, "the Kubernetes binaries share one cgo-free compile"
    assert all(TOOLS[name].version_symbols == ("main.version",) for name in SIDECAR_IMAGES)
    assert HELM.version_symbols == ("helm.sh/helm/v3/internal/version.version",)
    assert TOOLS["kubelet"].version_symbols == KUBE_APISERVER.version_symbols


def test_go_mod_writes_one_require_as_a_line_and_several_as_a_block() -> None:
    assert go_mod("m", "1.22", [("a.io/x", "v1.0.0")]) == "module m\n\ngo 1.22\n\nrequire a.io/x v1.0.0\n"
    assert go_mod("m", "1.22", [("a.io/x", "v1"), ("b.io/y", "v2")], ["c.io/z => c.io/z v3"]) == (
        "module m\n\ngo 1.22\n\nrequire (\n\ta.io/x v1\n\tb.io/y v2\n)\n\nreplace (\n\tc.io/z => c.io/z v3\n)\n"
    )
    assert kubernetes_go_mod().startswith(
        "module localcsi.io/tools/kubernetes\n\ngo 1.24.0\n\nrequire k8s.io/kubernetes v1.34.2\n\nreplace (\n"
        "\tk8s.io/api => k8s.io/api v0.34.2\n"
    )
    assert "\tk8s.io/externaljwt => k8s.io/externaljwt v0.34.2\n" in kubernetes_go_mod()


def module_recipe(tool: Tool) -> ModuleBuild:
    assert isinstance(tool.recipe, ModuleBuild)
    return tool.recipe


def test_sidecars_build_their_command_in_a_wrapper_module_of_the_pinned_release() -> None:
    provisioner = "github.com/kubernetes-csi/external-provisioner/v6"
    assert module_recipe(CSI_PROVISIONER).package == f"{provisioner}/cmd/csi-provisioner"
    # It requires k8s.io/kubernetes, whose staging modules (v0.0.0 there) need their releases.
    staging = module_recipe(CSI_PROVISIONER).go_mod.partition("\nreplace (\n")[2]
    assert staging.startswith("\tk8s.io/api => k8s.io/api v0.36.1\n")
    assert module_recipe(CSI_PROVISIONER).go_mod == (
        f"module localcsi.io/tools/csi-provisioner\n\ngo 1.26.0\n\nrequire {provisioner} v6.3.0\n\nreplace (\n{staging}"
    )
    # The others in the provisioner's module graph, so that Go's build cache shares its compiled packages.
    snapshotter_module = "github.com/kubernetes-csi/external-snapshotter/v8"
    for tool in (CSI_SNAPSHOTTER, SNAPSHOT_CONTROLLER):
        assert module_recipe(tool).package == f"{snapshotter_module}/cmd/{tool.name}"
        assert module_recipe(tool).go_mod == (
            f"module localcsi.io/tools/{tool.name}\n\ngo 1.26.0\n\nrequire (\n"
            f"\t{snapshotter_module} v8.2.0\n\tgithub.com/kubernetes-csi/external-snapshotter/client/v8 v8.2.0\n"
            f"\t{provisioner} v6.3.0\n)\n\nreplace (\n{staging}"
        )
    assert module_recipe(CSI_RESIZER).package == "github.com/kubernetes-csi/external-resizer/v2/cmd/csi-resizer"
    assert module_recipe(CSI_RESIZER).go_mod == (
        "module localcsi.io/tools/csi-resizer\n\ngo 1.26.0\n\nrequire (\n"
        f"\tgithub.com/kubernetes-csi/external-resizer/v2 v2.2.0\n\t{provisioner} v6.3.0\n)\n\nreplace (\n{staging}"
    )


def test_pause_is_upstreams_static_c_build_of_the_kubernetes_module_source() -> None:
    assert PAUSE.recipe == CBuild(
        module="k8s.io/kubernetes",
        module_version="v1.34.2",
        source="build/pause/linux/pause.c",
        flags=("-Os", "-Wall", "-Werror", "-static", "-s", "-DVERSION=v3.10.1-v1.34.2"),
    )
