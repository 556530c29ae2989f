"""Container images for a node's containerd: localcsi, the CSI sidecars, pause and the tests' fio, built
without a registry.

There is no Docker engine and no registry here, so buildah builds the Containerfiles of `images/` as
root, with the vfs storage driver and chroot isolation, into its own storage under the cache. Each
image is exported as a docker-archive tarball into `<cache>/images/`, named by a hash of everything
it is made from, so a warm run builds nothing and a changed input rebuilds by itself. `ctr images
import` loads such a tarball into a containerd (`load_into_containerd`). The localcsi and fio images
are built on a local image of a `debootstrap --variant=minbase` root file system instead of the
`debian:bookworm-slim` that `docker build` pulls on GitHub Actions. See docs/images.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from localcsi import __version__
from localcsi.testing.build_lock import build_lock
from localcsi.testing.image import SUITE, cache_root
from localcsi.testing.install import project_root, site_tarball
from localcsi.testing.phases import Phases
from localcsi.testing.tools import PAUSE_IMAGE, SIDECAR_IMAGES, tool_path

LOCALCSI_IMAGE = f"ghcr.io/localcsi/localcsi:{__version__}"
LOCALCSI_CONTAINERFILE = "images/localcsi/Containerfile"
STATIC_CONTAINERFILE = "images/static/Containerfile"
# The e2e IO-limit tests' workload: Debian's fio on the same base. Never pulled: loaded like the others.
FIO_IMAGE = f"localhost/localcsi-fio:{SUITE}"
FIO_CONTAINERFILE = "images/fio/Containerfile"
SITE_ARCHIVE = "site.tar.gz"  # the one file of the localcsi build context
PAUSE = "pause"
CONTAINERD_NAMESPACE = "k8s.io"  # the CRI plugin's namespace: images there are the kubelet's

# The base of the localcsi image: a minbase root file system, what debian:bookworm-slim is made of.
# Packages debootstrap adds (--include); the Containerfile installs the image's own with apt-get.
BASE_PACKAGES: tuple[str, ...] = ()
# Left out of the base: package lists and caches that the Containerfile's apt-get fetches again.
BASE_EXCLUDES = ("./var/lib/apt/lists/*_*", "./var/cache/apt/*.bin", "./var/cache/apt/archives/*.deb")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ImageBuildError(RuntimeError):
    pass


def images_dir() -> Path:
    return cache_root() / "images"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def image_key(containerfile: bytes, build_args: Mapping[str, str], inputs: Mapping[str, str]) -> str:
    """16 hex digits naming one build: the Containerfile, its build arguments and the digests of its inputs."""
    canonical = json.dumps(
        {"containerfile": _sha256(containerfile), "build_args": dict(build_args), "inputs": dict(inputs)},
        sort_keys=True,
    )
    return _sha256(canonical.encode())[:16]


def source_files(root: Path) -> list[Path]:
    """What the project's wheel is built from: pyproject.toml and the package tree, without bytecode."""
    package = root / "src" / "localcsi"
    tree = (p for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")
    return [root / "pyproject.toml", *sorted(tree)]


def source_digest(root: Path) -> str:
    """Stands for the site tarball's contents, which are not byte-for-byte reproducible (timestamps)."""
    h = hashlib.sha256()
    for path in source_files(root):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def builder_digest() -> str:
    """This module's source: how images are built is part of every image's key."""
    return file_digest(Path(__file__))


def base_key() -> str:
    recipe = {"suite": SUITE, "variant": "minbase", "packages": list(BASE_PACKAGES), "excludes": list(BASE_EXCLUDES)}
    return _sha256(json.dumps(recipe, sort_keys=True).encode())[:16]


def base_ref() -> str:
    return f"localhost/localcsi-base:{SUITE}-{base_key()}"


@dataclass(frozen=True)
class ImageSpec:
    """One image to build: `name` names its archive and log. A static image carries `binary`; any other
    is built on the base image, with the project's site tarball as its context when `site` is set."""

    name: str
    ref: str
    containerfile: Path
    build_args: tuple[tuple[str, str], ...]
    inputs: tuple[tuple[str, str], ...]
    binary: Path | None = None
    site: bool = False

    @property
    def key(self) -> str:
        return image_key(self.containerfile.read_bytes(), dict(self.build_args), dict(self.inputs))

    def archive(self, directory: Path) -> Path:
        return directory / f"{self.name}-{self.key}.tar"


def localcsi_spec(root: Path) -> ImageSpec:
    return ImageSpec(
        name="localcsi",
        ref=LOCALCSI_IMAGE,
        containerfile=root / LOCALCSI_CONTAINERFILE,
        build_args=(("BASE", base_ref()),),
        inputs=(("site", source_digest(root)), ("builder", builder_digest())),
        site=True,
    )


def fio_spec(root: Path) -> ImageSpec:
    return ImageSpec(
        name="fio",
        ref=FIO_IMAGE,
        containerfile=root / FIO_CONTAINERFILE,
        build_args=(("BASE", base_ref()),),
        inputs=(("builder", builder_digest()),),
    )


def static_spec(root: Path, name: str, ref: str, binary: Path) -> ImageSpec:
    return ImageSpec(
        name=name,
        ref=ref,
        containerfile=root / STATIC_CONTAINERFILE,
        build_args=(("BINARY", name),),
        inputs=(("binary", file_digest(binary)), ("builder", builder_digest())),
        binary=binary,
    )


def static_images() -> dict[str, str]:
    """Tool name -> image ref of every image that is one static binary."""
    return {**SIDECAR_IMAGES, PAUSE: PAUSE_IMAGE}


def image_specs(root: Path | None = None) -> list[ImageSpec]:
    """localcsi, each static image, then fio; raises ToolNotBuiltError for a Go tool not built yet."""
    root = root or project_root()
    statics = [static_spec(root, name, ref, tool_path(name)) for name, ref in static_images().items()]
    return [localcsi_spec(root), *statics, fio_spec(root)]


def is_static_executable(path: Path) -> bool:
    """An ELF executable with no program interpreter (PT_INTERP): it runs on an empty file system."""
    with path.open("rb") as handle:
        header = handle.read(64)
        if header[:6] != b"\x7fELF\x02\x01":  # 64-bit, little-endian
            return False
        phoff = int.from_bytes(header[0x20:0x28], "little")
        phentsize = int.from_bytes(header[0x36:0x38], "little")
        phnum = int.from_bytes(header[0x38:0x3A], "little")
        handle.seek(phoff)
        table = handle.read(phentsize * phnum)
    pt_interp = 3
    types = (int.from_bytes(table[i * phentsize : i * phentsize + 4], "little") for i in range(phnum))
    return pt_interp not in types


@dataclass(frozen=True)
class Buildah:
    """argv lists for buildah with its storage (vfs) under `storage`: no daemon, no registry."""

    storage: Path

    def argv(self, *args: str) -> list[str]:
        root, runroot = self.storage / "root", self.storage / "runroot"
        return ["buildah", "--root", str(root), "--runroot", str(runroot), "--storage-driver", "vfs", *args]

    def build(self, containerfile: Path, context: Path, ref: str, build_args: Iterable[tuple[str, str]]) -> list[str]:
        flags = [flag for name, value in build_args for flag in ("--build-arg", f"{name}={value}")]
        # --pull takes an optional value: `--pull never` would read as `--pull` and a context "never".
        common = ["--isolation", "chroot", "--pull=never", "--file", str(containerfile), "--tag", ref]
        return self.argv("build", *common, *flags, str(context))

    def push_archive(self, ref: str, archive: Path) -> list[str]:
        if ":" in str(archive):
            raise ImageBuildError(f"{archive}: a docker-archive path cannot hold ':'")
        return self.argv("push", "--quiet", ref, f"docker-archive:{archive}:{ref}")

    def has_image(self, ref: str) -> list[str]:
        return self.argv("inspect", "--type", "image", ref)


def containerd_import_argv(
    archive: str, namespace: str = CONTAINERD_NAMESPACE, address: str | None = None
) -> list[str]:
    where = ["--address", address] if address else []
    return ["ctr", *where, "-n", namespace, "images", "import", "--all-platforms", archive]


def load_into_containerd(
    run: Callable[[list[str]], object],
    archives: Iterable[str],
    namespace: str = CONTAINERD_NAMESPACE,
    address: str | None = None,
) -> None:
    """Import each docker-archive through `run` (on the host, in a VM, ...); paths are where `run` runs."""
    for archive in archives:
        run(containerd_import_argv(archive, namespace, address))


@dataclass(frozen=True)
class BuiltImage:
    ref: str
    archive: Path
    seconds: float | None  # None: the archive was cached


def _run(argv: list[str], log: Path) -> str:
    """Run with stderr (and stdout, when it is not wanted) in `log`; returns stdout."""
    with log.open("ab") as out:
        out.write(f"$ {shlex.join(argv)}\n".encode())
        out.flush()
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=out, check=False)
        out.write(proc.stdout)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise ImageBuildError(f"`{shlex.join(argv)}` failed with exit code {proc.returncode}; log {log}:\n{tail}")
    return proc.stdout.decode()


def _require_tools() -> None:
    if os.geteuid() != 0:
        raise ImageBuildError("building images needs root (buildah --isolation chroot, debootstrap)")
    for tool, package in (("buildah", "buildah"), ("debootstrap", "debootstrap")):
        if shutil.which(tool) is None:
            raise ImageBuildError(f"{tool} is not installed: apt-get install {package}")


def _base_tarball(phases: Phases, work: Path, log: Path) -> Path:
    tarball = images_dir() / "base" / f"rootfs-{base_key()}.tar"
    if tarball.exists():
        return tarball
    tarball.parent.mkdir(parents=True, exist_ok=True)
    rootfs = work / "rootfs"
    argv = ["debootstrap", "--variant=minbase"]
    argv += [f"--include={','.join(BASE_PACKAGES)}"] if BASE_PACKAGES else []
    argv += [SUITE, str(rootfs)]
    mirror = os.environ.get("LOCALCSI_DEBIAN_MIRROR")
    argv += [mirror] if mirror else []
    with phases.phase("debootstrap base rootfs"):
        _run(argv, log)
    with phases.phase("pack base rootfs"):
        partial = tarball.with_suffix(".partial")
        excludes = [f"--exclude={pattern}" for pattern in BASE_EXCLUDES]
        _run(["tar", "-C", str(rootfs), "--numeric-owner", *excludes, "-cf", str(partial), "."], log)
        partial.rename(tarball)
    shutil.rmtree(rootfs)
    return tarball


def _ensure_base(buildah: Buildah, phases: Phases, work: Path, log: Path) -> str:
    """The base image in buildah's storage, made from the cached rootfs tarball when missing."""
    ref = base_ref()
    present = subprocess.run(buildah.has_image(ref), capture_output=True, check=False)
    if present.returncode == 0:
        return ref
    tarball = _base_tarball(phases, work, log)
    with phases.phase(f"import base {ref}"):
        container = _run(buildah.argv("from", "--quiet", "scratch"), log).strip()
        _run(buildah.argv("add", "--quiet", container, str(tarball), "/"), log)
        config = ["config", "--env", f"PATH={DEFAULT_PATH}", "--cmd", '["bash"]', container]
        _run(buildah.argv(*config), log)
        _run(buildah.argv("commit", "--quiet", "--rm", container, ref), log)
    return ref


def _link_or_copy(source: Path, dest: Path) -> None:
    try:
        os.link(source, dest)
    except OSError:
        shutil.copy2(source, dest)


def _prune_stale_archives(name: str, keep: Path) -> None:
    """Archives of earlier inputs of the same image: each source edit makes a new localcsi archive."""
    pattern = re.compile(rf"{re.escape(name)}-[0-9a-f]{{16}}\.tar(\.partial)?")
    for path in keep.parent.iterdir():
        if path != keep and pattern.fullmatch(path.name):
            path.unlink(missing_ok=True)


def _build(spec: ImageSpec, archive: Path, buildah: Buildah, phases: Phases, work: Path) -> None:
    log = images_dir() / "logs" / f"{spec.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_bytes(b"")
    context = work / spec.name
    context.mkdir()
    if spec.binary is not None:
        if not is_static_executable(spec.binary):
            raise ImageBuildError(f"{spec.binary} is not a static executable: it cannot run on an empty image")
        _link_or_copy(spec.binary, context / spec.name)
    else:
        _ensure_base(buildah, phases, work, log)
    if spec.site:
        with phases.phase("site tarball"):
            (context / SITE_ARCHIVE).write_bytes(site_tarball())
    with phases.phase(f"buildah build {spec.name}"):
        _run(buildah.build(spec.containerfile, context, spec.ref, spec.build_args), log)
    partial = archive.with_name(archive.name + ".partial")
    partial.unlink(missing_ok=True)
    with phases.phase(f"export {archive.name}"):
        _run(buildah.push_archive(spec.ref, partial), log)
    partial.rename(archive)
    _prune_stale_archives(spec.name, archive)
    # The archive is the product: drop the image and the stages' untagged images (vfs copies every layer).
    _run(buildah.argv("rmi", spec.ref), log)
    _run(buildah.argv("rmi", "--prune"), log)


def build_images(phases: Phases | None = None, rebuild: bool = False) -> list[BuiltImage]:
    """Every image's archive, building those that are missing (all of them with `rebuild`)."""
    phases = phases or Phases(prefix="[images]")
    directory = images_dir()
    planned = [(spec, spec.archive(directory)) for spec in image_specs()]
    if not rebuild and all(archive.exists() for _, archive in planned):
        return [BuiltImage(spec.ref, archive, None) for spec, archive in planned]
    _require_tools()
    buildah = Buildah(cache_root() / "buildah")
    built: list[BuiltImage] = []
    with build_lock(directory / "build.lock"), tempfile.TemporaryDirectory(dir=directory, prefix="build-") as tmp:
        # Working containers of an interrupted build: nobody else uses this storage while the lock is held.
        _run(buildah.argv("rm", "--all"), directory / "buildah.log")
        for spec, archive in planned:
            if archive.exists() and not rebuild:
                built.append(BuiltImage(spec.ref, archive, None))
                continue
            start = time.monotonic()
            _build(spec, archive, buildah, phases, Path(tmp))
            built.append(BuiltImage(spec.ref, archive, time.monotonic() - start))
    return built


def image_archives(phases: Phases | None = None) -> dict[str, Path]:
    """Image ref -> docker-archive tarball of localcsi, the CSI sidecars, pause and fio; builds what is missing."""
    return {image.ref: image.archive for image in build_images(phases)}
