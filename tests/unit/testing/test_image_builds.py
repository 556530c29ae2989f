"""The image builder's pure parts: cache keys, argv lists, the Containerfiles' shape, and the cache logic
(warm runs build nothing; an interrupted build never looks cached) with a fake `buildah` on PATH.

The real builds, and the images running in a real containerd, are in tests/node/testing/test_images.py.
"""

from __future__ import annotations

import json
import re
import struct
import sys
import tomllib
from pathlib import Path

import pytest

from localcsi.testing import images
from localcsi.testing.images import (
    FIO_IMAGE,
    LOCALCSI_IMAGE,
    Buildah,
    ImageBuildError,
    ImageSpec,
    base_ref,
    build_images,
    containerd_import_argv,
    fio_spec,
    image_key,
    is_static_executable,
    load_into_containerd,
    localcsi_spec,
    source_digest,
    static_images,
    static_spec,
)
from localcsi.testing.tools import PAUSE_IMAGE, SIDECAR_IMAGES

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[3]
PT_LOAD, PT_INTERP = 1, 3


def elf(*segment_types: int) -> bytes:
    """A 64-bit little-endian ELF header and a program header table of the given segment types."""
    phoff, phentsize = 64, 56
    header = b"\x7fELF\x02\x01\x01" + bytes(9)
    header += struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, 0, phoff, 0, 0, 64, phentsize, len(segment_types), 0, 0, 0)
    table = b"".join(struct.pack("<II", kind, 0) + bytes(phentsize - 8) for kind in segment_types)
    return header + table


def fake_project(root: Path) -> Path:
    (root / "src" / "localcsi" / "sub").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'localcsi'\n")
    (root / "src" / "localcsi" / "__init__.py").write_text("")
    (root / "src" / "localcsi" / "sub" / "mod.py").write_text("x = 1\n")
    (root / "images" / "localcsi").mkdir(parents=True)
    (root / "images" / "localcsi" / "Containerfile").write_text("FROM ${BASE}\n")
    (root / "images" / "static").mkdir(parents=True)
    (root / "images" / "static" / "Containerfile").write_text("FROM scratch\n")
    return root


# ------------------------------------------------------------------ keys


def test_an_image_key_changes_with_each_input_and_not_with_their_order() -> None:
    key = image_key(b"FROM scratch\n", {"A": "1", "B": "2"}, {"binary": "aa", "builder": "bb"})
    assert re.fullmatch(r"[0-9a-f]{16}", key)
    assert key == image_key(b"FROM scratch\n", {"B": "2", "A": "1"}, {"builder": "bb", "binary": "aa"})
    assert key != image_key(b"FROM scratch \n", {"A": "1", "B": "2"}, {"binary": "aa", "builder": "bb"})
    assert key != image_key(b"FROM scratch\n", {"A": "1", "B": "3"}, {"binary": "aa", "builder": "bb"})
    assert key != image_key(b"FROM scratch\n", {"A": "1", "B": "2"}, {"binary": "ab", "builder": "bb"})
    assert key != image_key(b"FROM scratch\n", {"A": "1"}, {"binary": "aa", "builder": "bb"})


def test_the_source_digest_follows_the_package_sources_and_ignores_bytecode(tmp_path: Path) -> None:
    root = fake_project(tmp_path)
    first = source_digest(root)
    cache = root / "src" / "localcsi" / "__pycache__"
    cache.mkdir()
    (cache / "mod.cpython-311.pyc").write_bytes(b"\0")
    (root / "src" / "localcsi" / "sub" / "mod.pyc").write_bytes(b"\0")
    (root / "README.md").write_text("not in the key")
    assert source_digest(root) == first
    module = root / "src" / "localcsi" / "sub" / "mod.py"
    module.write_text("x = 2\n")
    changed = source_digest(root)
    assert changed != first
    module.rename(module.with_name("other.py"))  # same content, another name
    assert source_digest(root) not in (first, changed)
    (root / "pyproject.toml").write_text("[project]\nname = 'localcsi'\nversion = '2'\n")
    assert source_digest(root) not in (first, changed)


def test_the_localcsi_archive_is_named_by_its_inputs(tmp_path: Path) -> None:
    root = fake_project(tmp_path)
    spec = localcsi_spec(root)
    assert spec.ref == LOCALCSI_IMAGE
    assert dict(spec.build_args) == {"BASE": base_ref()}
    archive = spec.archive(tmp_path / "cache")
    assert re.fullmatch(r"localcsi-[0-9a-f]{16}\.tar", archive.name)
    assert archive.parent == tmp_path / "cache"
    (root / "src" / "localcsi" / "sub" / "mod.py").write_text("x = 2\n")
    assert localcsi_spec(root).archive(tmp_path / "cache") != archive
    (root / "images" / "localcsi" / "Containerfile").write_text("FROM ${BASE}\nRUN true\n")
    assert spec.archive(tmp_path / "cache") != archive  # the Containerfile is read when the key is asked for


def test_the_fio_image_is_built_on_the_base_without_the_project(tmp_path: Path) -> None:
    root = fake_project(tmp_path)
    (root / "images" / "fio").mkdir()
    (root / "images" / "fio" / "Containerfile").write_text("FROM ${BASE}\n")
    spec = fio_spec(root)
    assert (spec.ref, spec.site, spec.binary) == (FIO_IMAGE, False, None)
    assert dict(spec.build_args) == {"BASE": base_ref()}
    assert localcsi_spec(root).site
    key = spec.key
    (root / "src" / "localcsi" / "sub" / "mod.py").write_text("x = 2\n")
    assert fio_spec(root).key == key  # a source edit rebuilds the localcsi image only
    assert re.fullmatch(r"localhost/localcsi-fio:bookworm", FIO_IMAGE)


def test_a_static_archive_is_named_by_its_binary(tmp_path: Path) -> None:
    root = fake_project(tmp_path)
    binary = tmp_path / "csi-provisioner"
    binary.write_bytes(elf(PT_LOAD))
    spec = static_spec(root, "csi-provisioner", "example.org/csi-provisioner:v1", binary)
    assert dict(spec.build_args) == {"BINARY": "csi-provisioner"}
    assert spec.archive(tmp_path).name.startswith("csi-provisioner-")
    key = spec.key
    binary.write_bytes(elf(PT_LOAD, PT_LOAD))
    assert static_spec(root, "csi-provisioner", "example.org/csi-provisioner:v1", binary).key != key


def test_the_base_image_is_a_local_name_that_no_registry_serves() -> None:
    assert re.fullmatch(r"localhost/localcsi-base:bookworm-[0-9a-f]{16}", base_ref())


def test_the_localcsi_image_is_tagged_with_the_project_version() -> None:
    version = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert f"ghcr.io/localcsi/localcsi:{version}" == LOCALCSI_IMAGE


def test_the_static_images_are_the_sidecars_and_pause() -> None:
    assert static_images() == {**SIDECAR_IMAGES, "pause": PAUSE_IMAGE}
    assert set(SIDECAR_IMAGES) == {"csi-provisioner", "csi-resizer", "csi-snapshotter", "snapshot-controller"}


# ------------------------------------------------------------------ Containerfiles


def test_the_static_containerfile_has_an_entrypoint_stage_for_every_static_image() -> None:
    text = (REPO_ROOT / images.STATIC_CONTAINERFILE).read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    stages = {
        lines[i].removeprefix("FROM scratch AS "): lines[i + 1]
        for i in range(len(lines))
        if lines[i].startswith("FROM scratch AS ")
    }
    assert stages == {name: f'ENTRYPOINT ["/{name}"]' for name in static_images()}
    assert lines[0] == "ARG BINARY"
    assert lines[-3:] == ["FROM ${BINARY}", "ARG BINARY", "COPY ${BINARY} /${BINARY}"]


def test_the_localcsi_containerfile_defaults_to_the_slim_base_and_runs_the_module() -> None:
    text = (REPO_ROOT / images.LOCALCSI_CONTAINERFILE).read_text()
    assert "ARG BASE=debian:bookworm-slim\nFROM ${BASE}\n" in text
    assert "ADD site.tar.gz /opt/localcsi/site/\n" in text
    assert "ENV PYTHONPATH=/opt/localcsi/site\n" in text
    assert 'ENTRYPOINT ["/usr/bin/python3", "-m", "localcsi"]\n' in text
    assert "--no-install-recommends" in text
    assert "rm -rf /var/lib/apt/lists/*" in text


def test_the_fio_containerfile_installs_debians_fio_on_the_slim_base() -> None:
    text = (REPO_ROOT / images.FIO_CONTAINERFILE).read_text()
    assert "ARG BASE=debian:bookworm-slim\nFROM ${BASE}\n" in text
    assert "apt-get install -y --no-install-recommends fio" in text
    assert 'ENTRYPOINT ["/usr/bin/fio"]\n' in text
    assert "ADD" not in text


# ------------------------------------------------------------------ argv lists


def test_buildah_keeps_its_storage_under_the_given_directory_and_never_pulls(tmp_path: Path) -> None:
    buildah = Buildah(tmp_path / "buildah")
    storage = ["--root", f"{tmp_path}/buildah/root", "--runroot", f"{tmp_path}/buildah/runroot"]
    assert buildah.argv("images") == ["buildah", *storage, "--storage-driver", "vfs", "images"]
    argv = buildah.build(Path("/r/Containerfile"), Path("/ctx"), "example.org/a:1", [("BASE", "b"), ("X", "y=z")])
    assert argv == [
        *("buildah", *storage, "--storage-driver", "vfs", "build"),
        *("--isolation", "chroot", "--pull=never", "--file", "/r/Containerfile", "--tag", "example.org/a:1"),
        *("--build-arg", "BASE=b", "--build-arg", "X=y=z", "/ctx"),
    ]
    push = buildah.push_archive("example.org/a:1", Path("/cache/a.tar.partial"))
    assert push[-3:] == ["--quiet", "example.org/a:1", "docker-archive:/cache/a.tar.partial:example.org/a:1"]
    with pytest.raises(ImageBuildError, match="cannot hold ':'"):
        buildah.push_archive("example.org/a:1", Path("/ca:che/a.tar"))


def test_archives_load_into_the_kubelets_namespace_one_ctr_call_each() -> None:
    assert containerd_import_argv("/var/lib/images/a.tar") == [
        *("ctr", "-n", "k8s.io", "images", "import", "--all-platforms", "/var/lib/images/a.tar"),
    ]
    assert containerd_import_argv("/a.tar", "other", "/run/c.sock")[:5] == [
        *("ctr", "--address", "/run/c.sock", "-n", "other"),
    ]
    calls: list[list[str]] = []
    load_into_containerd(calls.append, ["/x/a.tar", "/x/b.tar"])
    assert calls == [containerd_import_argv("/x/a.tar"), containerd_import_argv("/x/b.tar")]


def test_only_an_elf_without_an_interpreter_counts_as_static(tmp_path: Path) -> None:
    static, dynamic, script = tmp_path / "static", tmp_path / "dynamic", tmp_path / "script"
    static.write_bytes(elf(PT_LOAD, PT_LOAD))
    dynamic.write_bytes(elf(PT_LOAD, PT_INTERP, PT_LOAD))
    script.write_bytes(b"#!/bin/sh\necho hi\n" + bytes(64))
    assert is_static_executable(static)
    assert not is_static_executable(dynamic)
    assert not is_static_executable(script)
    assert not is_static_executable(Path(sys.executable).resolve())  # this Python links libc dynamically


# ------------------------------------------------------------------ the cache, with a fake buildah

FAKE_BUILDAH = """#!{python}
import json, os, sys
with open(os.environ["FAKE_BUILDAH_CALLS"], "a") as calls:
    calls.write(json.dumps(sys.argv[1:]) + "\\n")
if "push" in sys.argv:
    target = sys.argv[-1].removeprefix("docker-archive:").rsplit(":", 2)[0]
    with open(target, "w") as archive:
        archive.write("half an archive")
    if os.environ.get("FAKE_BUILDAH_FAIL") == "push":
        sys.exit(125)
"""


@pytest.fixture
def fake_buildah(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "buildah"
    script.write_text(FAKE_BUILDAH.format(python=sys.executable))
    script.chmod(0o755)
    calls = tmp_path / "calls.jsonl"
    monkeypatch.setenv("PATH", f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin")
    monkeypatch.setenv("FAKE_BUILDAH_CALLS", str(calls))
    monkeypatch.setenv("LOCALCSI_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(images, "_require_tools", lambda: None)
    root = fake_project(tmp_path / "project")
    specs = []
    for name in ("csi-resizer", "pause"):
        binary = tmp_path / name
        binary.write_bytes(elf(PT_LOAD))
        specs.append(static_spec(root, name, f"example.org/{name}:v1", binary))
    monkeypatch.setattr(images, "image_specs", lambda: specs)
    return calls


def subcommands(calls: Path) -> list[str]:
    if not calls.exists():
        return []
    argvs = [json.loads(line) for line in calls.read_text().splitlines()]
    return [argv[argv.index("vfs") + 1] for argv in argvs]


def test_a_cold_run_builds_exports_and_cleans_up_each_image_and_a_warm_run_calls_nothing(fake_buildah: Path) -> None:
    built = build_images()
    assert [image.ref for image in built] == ["example.org/csi-resizer:v1", "example.org/pause:v1"]
    assert all(image.seconds is not None and image.archive.read_text() == "half an archive" for image in built)
    assert subcommands(fake_buildah) == ["rm", *(["build", "push", "rmi", "rmi"] * 2)]
    assert not list(built[0].archive.parent.glob("*.partial"))
    assert not list(built[0].archive.parent.glob("build-*"))  # the work directory is gone
    fake_buildah.unlink()
    again = build_images()
    assert [(image.ref, image.archive, image.seconds) for image in again] == [(i.ref, i.archive, None) for i in built]
    assert subcommands(fake_buildah) == []


def test_rebuild_builds_every_image_again(fake_buildah: Path) -> None:
    build_images()
    fake_buildah.unlink()
    assert all(image.seconds is not None for image in build_images(rebuild=True))
    assert subcommands(fake_buildah).count("build") == 2


def test_an_interrupted_export_leaves_no_archive_and_the_next_run_builds_again(
    fake_buildah: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_BUILDAH_FAIL", "push")
    with pytest.raises(ImageBuildError, match="exit code 125"):
        build_images()
    cache = Path(images.images_dir())
    assert not list(cache.glob("*.tar"))
    assert len(list(cache.glob("*.tar.partial"))) == 1
    monkeypatch.delenv("FAKE_BUILDAH_FAIL")
    built = build_images()
    assert all(image.seconds is not None and image.archive.exists() for image in built)
    assert not list(cache.glob("*.partial"))


def test_a_dynamically_linked_binary_is_refused_before_buildah_runs(
    fake_buildah: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    binary = tmp_path / "snapshot-controller"
    binary.write_bytes(elf(PT_INTERP, PT_LOAD))
    spec: ImageSpec = static_spec(tmp_path / "project", "snapshot-controller", "example.org/s:v1", binary)
    monkeypatch.setattr(images, "image_specs", lambda: [spec])
    with pytest.raises(ImageBuildError, match="not a static executable"):
        build_images()
    assert subcommands(fake_buildah) == ["rm"]


def test_a_changed_input_replaces_the_archive_of_the_same_image_only(
    fake_buildah: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = {image.ref: image.archive for image in build_images()}
    binary = tmp_path / "pause"
    binary.write_bytes(elf(PT_LOAD, PT_LOAD))
    specs = [
        static_spec(tmp_path / "project", name, f"example.org/{name}:v1", tmp_path / name)
        for name in ("csi-resizer", "pause")
    ]
    monkeypatch.setattr(images, "image_specs", lambda: specs)
    second = {image.ref: image.archive for image in build_images()}
    assert second["example.org/csi-resizer:v1"] == first["example.org/csi-resizer:v1"]
    assert second["example.org/pause:v1"] != first["example.org/pause:v1"]
    assert sorted(path.name for path in Path(images.images_dir()).glob("*.tar")) == sorted(
        p.name for p in second.values()
    )
