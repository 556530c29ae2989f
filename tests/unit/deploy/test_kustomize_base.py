"""deploy/ as a kustomize base: its files are `helm template` of the chart, written by deploy/generate.py,
and kustomize builds from them exactly the objects helm renders."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from localcsi.testing.install import load_project_script
from localcsi.testing.tools import TOOLS, tool_path

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
Object = dict[str, Any]
Key = tuple[str, str, str]


GENERATE = load_project_script("deploy/generate.py")


def by_key(text: str) -> dict[Key, Object]:
    objects: dict[Key, Object] = {}
    for doc in yaml.safe_load_all(text):
        if doc:
            key = (doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"])
            assert key not in objects, f"{key} twice"
            objects[key] = doc
    return objects


def kustomize_build(directory: Path) -> str:
    """`kustomize build`: the pinned kustomize when the tool registry has one, else kubectl's."""
    if "kustomize" in TOOLS:
        argv = [str(tool_path("kustomize")), "build", str(directory)]
    else:
        kubectl = shutil.which("kubectl")
        assert kubectl, "kubectl (for `kubectl kustomize`) is not on PATH"
        argv = [kubectl, "kustomize", str(directory)]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_generated_files_are_fresh() -> None:
    stale = GENERATE.stale()
    assert not stale, f"deploy/ is out of date with the chart: run `python3 deploy/generate.py` ({stale})"


def test_kustomize_builds_the_objects_helm_renders() -> None:
    helm = by_key(GENERATE.template(GENERATE.BASE_VALUES))
    kustomize = by_key(kustomize_build(DEPLOY))
    assert sorted(kustomize) == sorted(helm)
    for key, doc in helm.items():
        assert kustomize[key] == doc, key


def test_a_helm_install_with_defaults_is_the_base_without_its_namespace() -> None:
    base = by_key(kustomize_build(DEPLOY))
    install = by_key(GENERATE.template(()))
    assert {key for key in base if key[0] == "Namespace"} == {("Namespace", "", "localcsi-system")}
    assert {key: doc for key, doc in base.items() if key[0] != "Namespace"} == install


def test_the_cluster_tier_finds_crds_and_rbac_where_it_looks() -> None:
    """localcsi.testing.cluster installs deploy/crds/*.yaml and applies deploy/rbac/*.yaml."""
    crds = by_key("".join(path.read_text() for path in sorted((DEPLOY / "crds").glob("*.yaml"))))
    assert {kind for kind, _, _ in crds} == {"CustomResourceDefinition"} and len(crds) == 3
    rbac = by_key("".join(path.read_text() for path in sorted((DEPLOY / "rbac").glob("*.yaml"))))
    assert ("Namespace", "", "localcsi-system") in rbac
    assert {kind for kind, _, _ in rbac} == {
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
    }


def test_every_file_of_the_generated_folders_says_it_is_generated() -> None:
    for folder in GENERATE.GENERATED_DIRS:
        for path in sorted((DEPLOY / folder).iterdir()):
            assert path.suffix == ".yaml" and path.read_text().startswith(GENERATE.HEADER), path
    hand_written = {path.relative_to(DEPLOY).parts[0] for path in DEPLOY.rglob("*.yaml")} - set(GENERATE.GENERATED_DIRS)
    assert hand_written == {"helm", "scheduler", "kustomization.yaml", "prometheus"}
    # deploy/prometheus: the rules, a generated copy of the chart's, and their promtool unit tests.
    assert sorted(path.name for path in (DEPLOY / "prometheus").iterdir()) == [
        "localcsi-rules.test.yaml",
        "localcsi-rules.yaml",
    ]
    for source, copy in GENERATE.COPIES.items():
        header = GENERATE.copy_header(source) if copy.endswith(".yaml") else ""
        assert (DEPLOY / copy).read_text() == header + (DEPLOY / "helm" / "localcsi" / source).read_text(), copy
