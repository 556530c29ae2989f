"""Installs the project's wheel and its dependency wheels into the node VM.

The guest has Python 3.11 like the host (same ABI, same glibc), so the wheels are unpacked
on the host with `pip install --target` and shipped in as one tarball: no pip, no network
and no compiler needed in the guest.
"""

from __future__ import annotations

import atexit
import functools
import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from types import ModuleType

from localcsi.testing.build_lock import build_lock
from localcsi.testing.files_disk import make_tree_disk
from localcsi.testing.image import cache_root
from localcsi.testing.phases import Phases
from localcsi.testing.vm import SITE_MOUNT, NodeVM

GUEST_SITE = SITE_MOUNT
GUEST_LAUNCHER = "/usr/local/bin/localcsi"
GUEST_TARBALL = "/opt/localcsi/site.tar.gz"
LAUNCHER = f"""#!/bin/sh
PYTHONPATH={GUEST_SITE} exec /usr/bin/python3 -m localcsi "$@"
"""


def project_root() -> Path:
    configured = os.environ.get("LOCALCSI_PROJECT_ROOT")
    candidates = [Path(configured)] if configured else []
    candidates += [Path.cwd(), *Path(__file__).resolve().parents]
    for candidate in candidates:
        if (candidate / "pyproject.toml").is_file() and (candidate / "src" / "localcsi").is_dir():
            return candidate
    raise RuntimeError("cannot find the localcsi source tree: set LOCALCSI_PROJECT_ROOT")


def load_project_script(relative_path: str) -> ModuleType:
    """A Python file of the source tree that is not in the package (deploy/generate.py, e2e/kind_env.py),
    loaded as a module by its path."""
    path = project_root() / relative_path
    spec = importlib.util.spec_from_file_location(path.stem.replace("-", "_"), path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path} as a module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pip(*args: str) -> None:
    argv = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{proc.stderr[-3000:]}")


def build_site(dest: Path, extra_requirements: tuple[str, ...] = ()) -> Path:
    """Wheels for the project plus its runtime dependencies, unpacked into one site directory."""
    wheels = dest / "wheels"
    site = dest / "site"
    _pip("wheel", "--wheel-dir", str(wheels), str(project_root()), *extra_requirements)
    _pip("install", "--no-deps", "--no-index", "--target", str(site), *map(str, wheels.glob("*.whl")))
    return site


def build_site_tarball(dest: Path, extra_requirements: tuple[str, ...] = ()) -> Path:
    """build_site's directory packed as one tarball."""
    site = build_site(dest, extra_requirements)
    tarball = dest / "site.tar.gz"
    with tarfile.open(tarball, "w:gz", compresslevel=1) as tar:
        tar.add(site, arcname=".")
    return tarball


@functools.cache
def site_tarball() -> bytes:
    """Built once per process: the source tree does not change during a test session. One process
    at a time: setuptools builds in the tree's own ``build/`` directory."""
    with build_lock(cache_root() / "wheel-build.lock"), tempfile.TemporaryDirectory(prefix="localcsi-wheels-") as tmp:
        return build_site_tarball(Path(tmp)).read_bytes()


@functools.cache
def site_disk() -> Path:
    """build_site's directory as a read-only disk image for VMConfig(site_disk=...): built once per
    process, removed at its exit. Copying the 170 MiB site into each VM through the guest agent and
    unpacking it there took about 26 s per VM under TCG; the guest mounts this disk in a moment."""
    workdir = Path(tempfile.mkdtemp(prefix="localcsi-site-"))
    atexit.register(shutil.rmtree, workdir, ignore_errors=True)
    with build_lock(cache_root() / "wheel-build.lock"):
        site = build_site(workdir / "build")
    # The guest cannot write __pycache__ on a read-only disk: compiled here, for the guest's 3.11, with
    # hashes unchecked (the files never change), or every `localcsi` in the guest would compile anew.
    _compile(site)
    image = make_tree_disk(workdir / "site.img", site, label="site")
    shutil.rmtree(workdir / "build", ignore_errors=True)
    return image


def _compile(site: Path) -> None:
    argv = [sys.executable, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", str(site)]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"compileall failed ({proc.returncode}): {(proc.stdout + proc.stderr)[-2000:]}")


def install_project(vm: NodeVM, phases: Phases | None = None) -> None:
    """Put the project and its dependencies into the guest; `localcsi` then runs there. A VM booted with
    VMConfig(site_disk=site_disk()) has them mounted already: only the launcher is written."""
    phases = phases or vm.phases
    if vm.config.site_disk is not None:
        with phases.phase("launcher over the site disk"):
            vm.check(["test", "-f", f"{GUEST_SITE}/localcsi/__init__.py"])
            vm.guest.put(GUEST_LAUNCHER, LAUNCHER.encode(), mode=0o755)
        return
    with phases.phase("build wheels"):
        tarball = site_tarball()
    with phases.phase("install wheels in guest"):
        vm.check(["rm", "-rf", GUEST_SITE])
        vm.guest.put(GUEST_TARBALL, tarball)
        vm.check(["mkdir", "-p", GUEST_SITE])
        vm.check(["tar", "-xzf", GUEST_TARBALL, "-C", GUEST_SITE])
        vm.check(["rm", "-f", GUEST_TARBALL])
        vm.guest.put(GUEST_LAUNCHER, LAUNCHER.encode(), mode=0o755)
