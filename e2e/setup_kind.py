#!/usr/bin/env python3
"""Make the kind cluster the e2e tests run on, on GitHub Actions (Docker, kind, helm and kubectl there).

    python e2e/setup_kind.py   # then: LOCALCSI_E2E=kind KUBECONFIG=... pytest -m e2e tests/e2e

1. a loop device on the runner backed by a sparse file (the node's blank disk);
2. the kind cluster, its node given lvm2, xfsprogs and thin-provisioning-tools;
3. the localcsi image built from images/localcsi/Containerfile with docker and loaded with `kind load`
   (the sidecars are pulled from registry.k8s.io at the versions the chart names), and the same for
   the IO-limit test's fio image (images/fio/Containerfile, no build context);
4. the upstream VolumeSnapshot CRDs (the module source of the pinned external-snapshotter), then
   `helm install` with the same values the node VM's release gets (`write_helm_values`).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from localcsi.testing.e2e_env import CHART, NAMESPACE, RELEASE, write_helm_values  # noqa: E402
from localcsi.testing.images import (  # noqa: E402
    FIO_CONTAINERFILE,
    FIO_IMAGE,
    LOCALCSI_CONTAINERFILE,
    LOCALCSI_IMAGE,
    SITE_ARCHIVE,
)
from localcsi.testing.install import build_site_tarball  # noqa: E402
from localcsi.testing.snapshot_crds import snapshot_crd_paths  # noqa: E402

CLUSTER = "localcsi-e2e"
NODE = f"{CLUSTER}-control-plane"
DISK_FILE = ROOT / "build" / "e2e-disk.img"
DISK_GIB = 6
NODE_PACKAGES = ("lvm2", "thin-provisioning-tools", "xfsprogs")


def run(*argv: str) -> str:
    print("+", " ".join(argv), flush=True)
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip()


def main() -> int:
    DISK_FILE.parent.mkdir(parents=True, exist_ok=True)
    with DISK_FILE.open("wb") as disk:
        disk.truncate(DISK_GIB * 1024**3)
    device = run("sudo", "losetup", "--find", "--show", str(DISK_FILE))
    run(
        "kind",
        "create",
        "cluster",
        "--name",
        CLUSTER,
        "--config",
        str(ROOT / "e2e" / "kind-config.yaml"),
        "--wait",
        "120s",
    )
    run("docker", "exec", NODE, "apt-get", "update", "-q")
    run("docker", "exec", NODE, "apt-get", "install", "-y", "-q", "--no-install-recommends", *NODE_PACKAGES)
    context = ROOT / "build" / "image-context"
    context.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copyfile(build_site_tarball(Path(tmp)), context / SITE_ARCHIVE)
    run("docker", "build", "-t", LOCALCSI_IMAGE, "-f", str(ROOT / LOCALCSI_CONTAINERFILE), str(context))
    run("kind", "load", "docker-image", "--name", CLUSTER, LOCALCSI_IMAGE)
    with tempfile.TemporaryDirectory() as empty_context:
        run("docker", "build", "-t", FIO_IMAGE, "-f", str(ROOT / FIO_CONTAINERFILE), empty_context)
    run("kind", "load", "docker-image", "--name", CLUSTER, FIO_IMAGE)
    for crd in snapshot_crd_paths():
        run("kubectl", "apply", "-f", str(crd))
    run("helm", "install", RELEASE, str(ROOT / CHART), "--namespace", NAMESPACE, "--create-namespace",
        "--values", str(write_helm_values(device, ROOT / "build" / "e2e-values.yaml")),
        "--wait", "--timeout", "5m")  # fmt: skip
    print(f"kind cluster {CLUSTER} ready; its disk is {device}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
