"""The images buildah makes here load into a real containerd and run: localcsi, the CSI sidecars, pause.

A throwaway containerd on the host (its own root, state, socket and runc root in a temporary directory;
CRI plugin off) imports each docker-archive with `ctr images import`, as the node VM's will, and
`ctr run` starts the images. Root is needed (buildah, containerd, runc); a missing tool fails the test.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from itertools import count
from pathlib import Path

import pytest

from localcsi import __version__
from localcsi.testing.images import (
    FIO_IMAGE,
    LOCALCSI_IMAGE,
    PAUSE,
    image_archives,
    load_into_containerd,
    static_images,
)
from localcsi.testing.phases import Phases
from localcsi.testing.tools import PAUSE_IMAGE, PAUSE_VERSION, SIDECAR_IMAGES

LOCALCSI_ENTRYPOINT = ["/usr/bin/python3", "-m", "localcsi"]
SHIM_STATE = Path("/run/containerd")
CONFIG = """version = 2
root = "{tmp}/root"
state = "{tmp}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{tmp}/containerd.sock"

[plugins."io.containerd.internal.v1.opt"]
  path = "{tmp}/opt"
"""


class HostContainerd:
    """containerd started for this module only; `ctr` talks to it through its own socket."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.address = str(tmp / "containerd.sock")
        self._ids = count()

    def ctr(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        argv = ["ctr", "--address", self.address, "-n", "k8s.io", *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)

    def check(self, argv: list[str]) -> str:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
        assert proc.returncode == 0, f"{argv} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout

    def run_flags(self) -> list[str]:
        return ["--runc-root", str(self.tmp / "runc"), "--fifo-dir", str(self.tmp / "fifo")]

    def run(self, ref: str, *command: str) -> subprocess.CompletedProcess[str]:
        """`ctr run --rm`: with no command, the image's entrypoint and cmd."""
        return self.ctr("run", "--rm", *self.run_flags(), ref, f"t{next(self._ids)}", *command)


@pytest.fixture(scope="module")
def archives() -> dict[str, Path]:
    phases = Phases(prefix="[images]")
    start = time.monotonic()
    built = image_archives(phases)
    phases.note(f"image_archives: {time.monotonic() - start:.1f}s")
    return built


@pytest.fixture(scope="module")
def containerd() -> Iterator[HostContainerd]:
    for tool in ("containerd", "ctr", "runc"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is not installed: apt-get install containerd")
    # The shims' sockets go to /run/containerd/s whatever the configuration says (containerd 1.6).
    shim_dirs = [path for path in (SHIM_STATE, SHIM_STATE / "s") if not path.exists()]
    tmp = Path(tempfile.mkdtemp(prefix="localcsi-containerd-"))
    (tmp / "config.toml").write_text(CONFIG.format(tmp=tmp))
    log = (tmp / "containerd.log").open("wb")
    daemon = subprocess.Popen(["containerd", "--config", str(tmp / "config.toml")], stdout=log, stderr=log)
    host = HostContainerd(tmp)
    try:
        deadline = time.monotonic() + 30
        while host.ctr("version", timeout=10).returncode != 0:
            assert daemon.poll() is None, f"containerd exited: {(tmp / 'containerd.log').read_text()[-2000:]}"
            assert time.monotonic() < deadline, "containerd did not answer within 30s"
            time.sleep(0.2)
        yield host
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)
        for path in reversed(shim_dirs):  # only what this fixture made, and only when empty
            with contextlib.suppress(OSError):
                path.rmdir()


@pytest.fixture(scope="module")
def imported(archives: dict[str, Path], containerd: HostContainerd) -> HostContainerd:
    start = time.monotonic()
    load_into_containerd(containerd.check, [str(path) for path in archives.values()], address=containerd.address)
    Phases(prefix="[images]").note(f"ctr images import of {len(archives)} archives: {time.monotonic() - start:.1f}s")
    return containerd


def archive_config(archive: Path) -> tuple[list[str], dict[str, object]]:
    """The archive's RepoTags and its image config, as `docker save` writes them."""
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        [entry] = manifest
        config = json.load(tar.extractfile(entry["Config"]))  # type: ignore[arg-type]
    return entry["RepoTags"], config["config"]


def test_every_image_has_an_archive_named_and_started_as_the_kubelet_expects(archives: dict[str, Path]) -> None:
    assert set(archives) == {LOCALCSI_IMAGE, *SIDECAR_IMAGES.values(), PAUSE_IMAGE, FIO_IMAGE}
    entrypoints = {LOCALCSI_IMAGE: LOCALCSI_ENTRYPOINT, FIO_IMAGE: ["/usr/bin/fio"]} | {
        ref: [f"/{name}"] for name, ref in static_images().items()
    }
    for ref, archive in archives.items():
        tags, config = archive_config(archive)
        assert tags == [ref]
        assert config["Entrypoint"] == entrypoints[ref], ref
        print(f"{ref}: {archive} {archive.stat().st_size / 2**20:.1f} MiB")


def test_containerd_lists_every_imported_image(imported: HostContainerd, archives: dict[str, Path]) -> None:
    listed = imported.ctr("images", "ls", "--quiet")
    assert listed.returncode == 0, listed.stderr
    assert set(archives) <= set(listed.stdout.split())


def test_the_localcsi_image_runs_localcsi_and_prints_its_help_by_default(imported: HostContainerd) -> None:
    result = imported.run(LOCALCSI_IMAGE)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: localcsi")
    for command in ("plugin", "agent", "controller", "extender", "status"):
        assert command in result.stdout


def test_the_fio_image_runs_debians_fio(imported: HostContainerd) -> None:
    result = imported.run(FIO_IMAGE)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("fio-3."), result.stdout


def test_the_localcsi_image_reports_the_project_version(imported: HostContainerd) -> None:
    result = imported.run(LOCALCSI_IMAGE, *LOCALCSI_ENTRYPOINT, "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"localcsi {__version__}"


def test_the_localcsi_image_has_the_storage_tools(imported: HostContainerd) -> None:
    tools = [
        *("lvm", "lvcreate", "dmsetup", "thin_check", "mkfs.ext4", "resize2fs", "mkfs.xfs", "xfs_growfs"),
        *("blkid", "lsblk", "findmnt", "blockdev", "blkdiscard", "wipefs", "mount", "umount", "nsenter", "modprobe"),
    ]
    result = imported.run(LOCALCSI_IMAGE, "/usr/bin/which", *tools)
    assert result.returncode == 0, f"missing from the image: {result.stdout}\n{result.stderr}"
    # the components' own client needs urllib3; the official kubernetes client is a test dependency only
    imports = (
        "import importlib.util, grpc, numpy, urllib3, yaml, prometheus_client; import localcsi.plugin.main; "
        "assert importlib.util.find_spec('kubernetes') is None"
    )
    result = imported.run(LOCALCSI_IMAGE, "/usr/bin/python3", "-c", imports)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", sorted(SIDECAR_IMAGES))
def test_each_sidecar_image_runs_its_binary(imported: HostContainerd, name: str) -> None:
    ref = SIDECAR_IMAGES[name]
    result = imported.run(ref, f"/{name}", "--version")
    assert result.returncode == 0, result.stderr
    assert ref.rsplit(":", 1)[1] in result.stdout + result.stderr


def test_the_pause_image_runs_until_signalled(imported: HostContainerd) -> None:
    result = imported.run(PAUSE_IMAGE, f"/{PAUSE}", "-v")
    assert result.returncode == 0, result.stderr
    assert f"v{PAUSE_VERSION}" in result.stdout + result.stderr
    started = imported.ctr("run", "--detach", *imported.run_flags(), PAUSE_IMAGE, "sandbox")
    assert started.returncode == 0, started.stderr
    try:
        assert "RUNNING" in imported.ctr("tasks", "ls").stdout
        assert imported.ctr("tasks", "kill", "sandbox").returncode == 0  # SIGTERM: pause exits
        deadline = time.monotonic() + 10
        while "RUNNING" in imported.ctr("tasks", "ls").stdout:
            assert time.monotonic() < deadline, "pause did not exit on SIGTERM"
            time.sleep(0.1)
    finally:
        imported.ctr("tasks", "rm", "--force", "sandbox")
        imported.ctr("containers", "rm", "sandbox")
