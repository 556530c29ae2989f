"""Builds the node VM image from Debian packages and caches it outside the repository.

Two cached stages, each keyed by a hash of what it is made from, so a changed recipe
rebuilds by itself:
- the debootstrap root file system (a tarball), keyed by the package list;
- the bootable image (root.img, vmlinuz, initrd.img), keyed by every recipe file.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from localcsi.testing.build_lock import build_lock
from localcsi.testing.phases import Phases

GUEST_FILES = ("packages.txt", "init", "agent.py", "lvm-settings.txt")
ROOT_IMAGE_SIZE = "3G"
SUITE = "bookworm"


def cache_root() -> Path:
    configured = os.environ.get("LOCALCSI_CACHE")
    base = Path(configured) if configured else Path.home() / ".cache" / "localcsi"
    return base


def _guest_file(name: str) -> bytes:
    return resources.files("localcsi.testing").joinpath("guest").joinpath(name).read_bytes()


def packages() -> list[str]:
    lines = _guest_file("packages.txt").decode().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()[:16]


def recipe_hash() -> str:
    builder = Path(__file__).read_bytes()
    return _digest(builder, *(_guest_file(name) for name in GUEST_FILES))


@dataclass(frozen=True)
class NodeImage:
    root: Path
    kernel: Path
    initrd: Path


def _run(argv: list[str], log: Path) -> None:
    with log.open("ab") as out:
        proc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{argv[0]} failed with exit code {proc.returncode}; log {log}:\n{tail}")


def _debootstrap(dest: Path, log: Path) -> None:
    argv = ["debootstrap", "--variant=minbase", f"--include={','.join(packages())}", SUITE, str(dest)]
    mirror = os.environ.get("LOCALCSI_DEBIAN_MIRROR")
    if mirror:
        argv.append(mirror)
    _run(argv, log)


def _rootfs_tarball(phases: Phases, work: Path) -> Path:
    tarball = cache_root() / "vm" / f"rootfs-{_digest(_guest_file('packages.txt'))}.tar"
    if tarball.exists():
        phases.note(f"rootfs cached at {tarball}")
        return tarball
    if shutil.which("debootstrap") is None:
        raise RuntimeError("debootstrap is not installed: apt-get install debootstrap")
    tarball.parent.mkdir(parents=True, exist_ok=True)
    rootfs = work / "rootfs"
    with phases.phase("debootstrap rootfs"):
        _debootstrap(rootfs, work / "debootstrap.log")
    with phases.phase("pack rootfs"):
        partial = tarball.with_suffix(".partial")
        _run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(partial), "."], work / "tar.log")
        partial.rename(tarball)
    shutil.rmtree(rootfs)
    return tarball


def apply_lvm_settings(conf: str, settings: dict[str, str]) -> str:
    """Set each key once, replacing its first (usually commented-out) line in lvm.conf."""
    for key, value in settings.items():
        pattern = re.compile(rf"^(\s*)#?\s*{re.escape(key)}\s*=.*$", re.MULTILINE)
        conf, count = pattern.subn(rf"\g<1>{key} = {value}", conf, count=1)
        if count == 0:
            raise RuntimeError(f"lvm.conf has no line for {key}: the recipe needs updating")
    return conf


def _lvm_settings() -> dict[str, str]:
    settings: dict[str, str] = {}
    for line in _guest_file("lvm-settings.txt").decode().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            settings[key.strip()] = value.strip()
    return settings


def _configure(rootfs: Path) -> None:
    init = rootfs / "sbin" / "localcsi-init"
    init.write_bytes(_guest_file("init"))
    init.chmod(0o755)
    agent = rootfs / "opt" / "localcsi" / "guest_agent.py"
    agent.parent.mkdir(parents=True, exist_ok=True)
    agent.write_bytes(_guest_file("agent.py"))
    lvm_conf = rootfs / "etc" / "lvm" / "lvm.conf"
    lvm_conf.write_text(apply_lvm_settings(lvm_conf.read_text(), _lvm_settings()))
    (rootfs / "etc" / "hostname").write_text("localcsi-node\n")


def _newest(boot: Path, prefix: str) -> Path:
    found = sorted(boot.glob(f"{prefix}-*"))
    if not found:
        raise RuntimeError(f"no {prefix} in {boot}: is linux-image-cloud-amd64 in packages.txt?")
    return found[-1]


def build_image(phases: Phases) -> NodeImage:
    final = cache_root() / "vm" / f"image-{recipe_hash()}"
    image = NodeImage(final / "root.img", final / "vmlinuz", final / "initrd.img")
    if image.root.exists():
        phases.note(f"image cached at {final}")
        return image
    with build_lock(cache_root() / "vm" / "build.lock"):
        if image.root.exists():  # another process built it while this one waited
            phases.note(f"image built by another process at {final}")
            return image
        _build(final, phases)
    return image


def _build(final: Path, phases: Phases) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=final.parent, prefix="build-") as tmp:
        work = Path(tmp)
        tarball = _rootfs_tarball(phases, work)
        staged = work / "image"
        staged.mkdir()
        rootfs = work / "rootfs"
        rootfs.mkdir(exist_ok=True)
        with phases.phase("configure rootfs"):
            _run(["tar", "-C", str(rootfs), "--numeric-owner", "-xf", str(tarball)], work / "tar.log")
            _configure(rootfs)
            shutil.copyfile(_newest(rootfs / "boot", "vmlinuz"), staged / "vmlinuz")
            shutil.copyfile(_newest(rootfs / "boot", "initrd.img"), staged / "initrd.img")
        with phases.phase("mke2fs root image"):
            mkfs = ["mke2fs", "-q", "-F", "-t", "ext4", "-L", "root", "-d", str(rootfs)]
            _run([*mkfs, str(staged / "root.img"), ROOT_IMAGE_SIZE], work / "mke2fs.log")
        staged.rename(final)
