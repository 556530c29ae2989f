"""The Go-built tools: the real csi-sanity binary, then the registry and hack/tools/build.py on a temp cache.

The first two tests need csi-sanity built into the real cache (CI runs `python hack/tools/build.py all`
before the tests); when it is missing they fail with the command that builds it. The others use a
temporary LOCALCSI_CACHE and a fake `go` (and `gcc`) on PATH that records how it was called. The
recipes themselves are checked in test_tool_recipes.py.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from localcsi.testing.snapshot_crds import snapshot_crd_paths
from localcsi.testing.tools import (
    CSI_SANITY,
    KUBERNETES_VERSION,
    PAUSE,
    PAUSE_VERSION,
    TOOLS,
    GoModuleError,
    ModuleBuild,
    Tool,
    ToolNotBuiltError,
    UnknownToolError,
    go_module_dir,
    tool_path,
)

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "hack" / "tools" / "build.py"
CSI_TEST_MODULE = "github.com/kubernetes-csi/csi-test/v5"
# The go.sum hash of the v5.5.0 release; a different archive behind the same version must not pass.
CSI_TEST_SUM = "h1:21NYP33XXfzsAGwFuFHJUIf60hY08B4ANLj819++f98="


# ------------------------------------------------------------------ the real binary


def test_built_csi_sanity_reports_the_pinned_version() -> None:
    result = subprocess.run(
        [str(tool_path("csi-sanity")), "-version"], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Version = v5.5.0\n"


def test_built_csi_sanity_is_compiled_from_the_csi_test_release() -> None:
    """The -version string is stamped at link time; the module build info shows what was compiled."""
    go = shutil.which("go")
    assert go is not None, "go is not on PATH; it is needed to read the binary's build info"
    info = subprocess.run(
        [go, "version", "-m", str(tool_path("csi-sanity"))], capture_output=True, text=True, check=True
    ).stdout
    assert f"\tpath\t{CSI_TEST_MODULE}/cmd/csi-sanity\n" in info
    assert f"\tmod\t{CSI_TEST_MODULE}\tv5.5.0\t{CSI_TEST_SUM}\n" in info
    assert "\tbuild\t-trimpath=true\n" in info


# ------------------------------------------------------------------ registry and cache paths


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("LOCALCSI_CACHE", str(root))
    return root


def place_fake_binary(path: Path, mode: int = 0o755, recipe: str | None = None) -> None:
    """A binary as build.py leaves it: with csi-sanity's recipe beside it, unless told another."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\necho fake\n")
    path.chmod(mode)
    (path.parent / "recipe.json").write_text(CSI_SANITY.recipe_text if recipe is None else recipe)


def test_a_binary_built_from_another_recipe_is_not_a_built_tool(cache: Path) -> None:
    place_fake_binary(CSI_SANITY.binary, recipe=CSI_SANITY.recipe_text.replace("v5.5.0", "v5.4.0"))
    with pytest.raises(ToolNotBuiltError, match="older recipe"):
        tool_path("csi-sanity")
    CSI_SANITY.recipe_file.unlink()
    with pytest.raises(ToolNotBuiltError):  # a binary from before recipes were recorded
        tool_path("csi-sanity")


def test_missing_tool_error_names_the_build_command_and_path(cache: Path) -> None:
    with pytest.raises(ToolNotBuiltError) as raised:
        tool_path("csi-sanity")
    message = str(raised.value)
    assert "python hack/tools/build.py csi-sanity" in message
    assert str(cache / "tools" / "csi-sanity-v5.5.0" / "bin" / "csi-sanity") in message


def test_tool_path_is_the_binary_in_the_versioned_cache_directory(cache: Path) -> None:
    binary = cache / "tools" / "csi-sanity-v5.5.0" / "bin" / "csi-sanity"
    place_fake_binary(binary)
    assert tool_path("csi-sanity") == binary


def test_a_file_that_is_not_executable_is_not_a_built_tool(cache: Path) -> None:
    place_fake_binary(CSI_SANITY.binary, mode=0o644)
    with pytest.raises(ToolNotBuiltError):
        tool_path("csi-sanity")


def test_default_cache_is_under_the_home_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOCALCSI_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    expected = tmp_path / ".cache" / "localcsi" / "tools" / "csi-sanity-v5.5.0" / "bin" / "csi-sanity"
    assert CSI_SANITY.binary == expected


def test_unknown_tool_error_lists_the_known_tools() -> None:
    with pytest.raises(UnknownToolError, match=r"known tools: .*csi-sanity"):
        tool_path("csi-insanity")


# ------------------------------------------------------------------ hack/tools/build.py

# Also installed as `gcc`; as `go mod download -json`, it answers with a directory under FAKE_GO_MODULES.
FAKE_GO = """\
import json, os, sys
from pathlib import Path

argv = sys.argv[1:]
recorded = ("GOBIN", "GOFLAGS", "GOWORK", "CGO_ENABLED")
call = {"program": Path(sys.argv[0]).name, "argv": argv, "cwd": os.getcwd(), **{k: os.environ.get(k) for k in recorded}}
with open(os.environ["FAKE_GO_RECORD"], "a") as record:
    record.write(json.dumps(call) + "\\n")
if argv[:2] == ["mod", "download"]:
    module = argv[-1]
    if os.environ.get("FAKE_GO_FAIL"):
        print(json.dumps({"Path": module, "Error": "fake go: 404 Not Found"}))
        sys.exit(1)
    print(json.dumps({"Path": module, "Dir": os.path.join(os.environ["FAKE_GO_MODULES"], module)}))
    sys.exit(0)
print("fake go: compiling", *argv)
if os.environ.get("FAKE_GO_FAIL"):
    print("fake go: cannot find module providing package", file=sys.stderr)
    sys.exit(1)
if argv[0] == "build" or call["program"] == "gcc":
    out = Path(argv[argv.index("-o") + 1])
else:
    out = Path(os.environ["GOBIN"]) / argv[-1].split("@")[0].rsplit("/", 1)[-1]
out.write_text("#!/bin/sh\\necho fake\\n")
out.chmod(0o755)
"""


@dataclass(frozen=True)
class FakeGo:
    record: Path
    bin_dir: Path
    modules: Path

    def calls(self) -> list[dict[str, Any]]:
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines()]

    def install_gcc(self) -> None:
        (self.bin_dir / "gcc").symlink_to(self.bin_dir / "go")

    def module_file(self, module_at_version: str, path: str) -> Path:
        file = self.modules / module_at_version / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text("int main(void) { return 0; }\n")
        return file


@pytest.fixture
def empty_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PATH with nothing on it: no go."""
    bin_dir = tmp_path / "empty-bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    return bin_dir


@pytest.fixture
def fake_go(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeGo:
    bin_dir = tmp_path / "fake-go-bin"
    bin_dir.mkdir()
    go = bin_dir / "go"
    go.write_text(f"#!{sys.executable}\n{FAKE_GO}")
    go.chmod(0o755)
    record = tmp_path / "go-calls.jsonl"
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("FAKE_GO_RECORD", str(record))
    monkeypatch.setenv("FAKE_GO_MODULES", str(tmp_path / "modules"))
    monkeypatch.delenv("CGO_ENABLED", raising=False)
    return FakeGo(record, bin_dir, tmp_path / "modules")


def run_build_script(*args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, str(BUILD_SCRIPT), *args]
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)


def csi_sanity_report(outcome: str) -> str:
    """The one line build.py prints for csi-sanity, as a regular expression."""
    return rf"\[tools\] csi-sanity v5\.5\.0: {outcome} \(\d+\.\ds\) {re.escape(str(CSI_SANITY.binary))}\n"


def leftovers(tool: Tool) -> list[str]:
    return sorted(p.name for p in tool.directory.glob("bin.partial-*"))


def test_cached_tool_is_not_rebuilt_and_go_is_not_needed(cache: Path, empty_path: Path) -> None:
    place_fake_binary(CSI_SANITY.binary)
    result = run_build_script("csi-sanity")
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(csi_sanity_report("cached"), result.stdout)


def test_building_without_go_on_path_says_so(cache: Path, empty_path: Path) -> None:
    result = run_build_script("csi-sanity")
    assert result.returncode == 1
    assert "go is not on PATH" in result.stderr


def test_build_runs_go_install_of_the_pinned_version_into_the_cache(cache: Path, fake_go: FakeGo) -> None:
    result = run_build_script("csi-sanity")

    assert result.returncode == 0, result.stderr
    assert re.fullmatch(csi_sanity_report("built"), result.stdout)
    [call] = fake_go.calls()
    assert call["argv"] == [
        "install",
        "-ldflags=-s -w -X main.VERSION=v5.5.0",
        "github.com/kubernetes-csi/csi-test/v5/cmd/csi-sanity@v5.5.0",
    ]
    assert (call["GOFLAGS"], call["GOWORK"]) == ("-trimpath", "off")
    staging = Path(call["GOBIN"])
    assert staging.parent == CSI_SANITY.directory
    assert staging.name.startswith("bin.partial-")
    assert tool_path("csi-sanity") == CSI_SANITY.binary
    assert (CSI_SANITY.binary.parent.stat().st_mode & 0o777) == 0o755
    assert leftovers(CSI_SANITY) == []
    assert "fake go: compiling install" in (CSI_SANITY.directory / "build.log").read_text()


def test_failed_build_prints_the_log_tail_and_caches_nothing(
    cache: Path, fake_go: FakeGo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_GO_FAIL", "1")
    result = run_build_script("csi-sanity")

    assert result.returncode == 1
    assert "csi-sanity v5.5.0: FAILED" in result.stderr
    assert str(CSI_SANITY.directory / "build.log") in result.stderr
    assert "fake go: cannot find module providing package" in result.stderr
    assert result.stdout == ""
    with pytest.raises(ToolNotBuiltError):
        tool_path("csi-sanity")
    assert leftovers(CSI_SANITY) == []


def test_all_builds_every_registered_tool_once(cache: Path, fake_go: FakeGo) -> None:
    fake_go.install_gcc()
    fake_go.module_file(f"k8s.io/kubernetes@{KUBERNETES_VERSION}", "build/pause/linux/pause.c")
    result = run_build_script("all", "csi-sanity")

    assert result.returncode == 0, result.stderr
    compiles = [call for call in fake_go.calls() if call["argv"][:2] != ["mod", "download"]]
    assert len(compiles) == len(TOOLS)
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == [f"[tools] {t.name} {t.version}" for t in TOOLS.values()]
    assert all(": built (" in line for line in lines)


def test_rebuild_builds_a_cached_tool_again(cache: Path, fake_go: FakeGo) -> None:
    place_fake_binary(CSI_SANITY.binary)
    result = run_build_script("--rebuild", "csi-sanity")
    assert result.returncode == 0, result.stderr
    assert ": built (" in result.stdout
    assert len(fake_go.calls()) == 1


def test_a_tool_whose_recipe_changed_is_built_again(cache: Path, fake_go: FakeGo) -> None:
    place_fake_binary(CSI_SANITY.binary, recipe="{}\n")
    result = run_build_script("csi-sanity")
    assert result.returncode == 0, result.stderr
    assert ": built (" in result.stdout
    assert CSI_SANITY.recipe_file.read_text() == CSI_SANITY.recipe_text
    assert run_build_script("csi-sanity").stdout.count(": cached (") == 1


def test_unknown_tool_name_exits_with_usage_error(cache: Path, empty_path: Path) -> None:
    result = run_build_script("csi-insanity")
    assert result.returncode == 2
    assert "unknown tool 'csi-insanity'" in result.stderr


@pytest.fixture
def build_script(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """hack/tools/build.py imported in-process (it prepends src/ to sys.path: restored afterwards)."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    spec = importlib.util.spec_from_file_location("localcsi_tools_build", BUILD_SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_module_build_writes_the_go_mod_and_builds_the_package_in_it(
    cache: Path, fake_go: FakeGo, build_script: ModuleType
) -> None:
    go_mod = "module localcsi.test/tools\n\ngo 1.22\n\nrequire example.com/hello v1.2.3\n"
    tool = Tool(
        name="hello",
        version="v1.2.3",
        recipe=ModuleBuild(package="example.com/hello/cmd/hello", go_mod=go_mod),
        version_symbols=("main.version", "example.com/hello/pkg.Version"),
    )

    assert build_script.build_tool(tool) == "built"

    module_dir = tool.directory / "module"
    assert (module_dir / "go.mod").read_text() == go_mod
    [call] = fake_go.calls()
    staging = Path(call["argv"][4]).parent
    assert call["argv"] == [
        "build",
        "-mod=mod",
        "-ldflags=-s -w -X main.version=v1.2.3 -X example.com/hello/pkg.Version=v1.2.3",
        "-o",
        str(staging / "hello"),
        "example.com/hello/cmd/hello",
    ]
    assert staging.parent == tool.directory
    assert Path(call["cwd"]) == module_dir
    assert (call["GOFLAGS"], call["GOWORK"]) == ("-trimpath", "off")
    assert os.access(tool.binary, os.X_OK)
    assert build_script.build_tool(tool) == "cached"
    assert len(fake_go.calls()) == 1


def test_static_tools_are_built_without_cgo(cache: Path, fake_go: FakeGo, build_script: ModuleType) -> None:
    build_script.build_tool(TOOLS["csi-sanity"])
    build_script.build_tool(TOOLS["helm"])
    build_script.build_tool(TOOLS["csi-resizer"])
    assert [call["CGO_ENABLED"] for call in fake_go.calls()] == [None, "0", "0"]


def test_c_build_compiles_the_source_from_the_go_module_cache(
    cache: Path, fake_go: FakeGo, build_script: ModuleType
) -> None:
    fake_go.install_gcc()
    source = fake_go.module_file(f"k8s.io/kubernetes@{KUBERNETES_VERSION}", "build/pause/linux/pause.c")

    assert build_script.build_tool(PAUSE) == "built"

    download, gcc = fake_go.calls()
    assert download["argv"] == ["mod", "download", "-json", f"k8s.io/kubernetes@{KUBERNETES_VERSION}"]
    assert download["GOWORK"] == "off"
    staging = Path(gcc["argv"][-2]).parent
    assert gcc["program"] == "gcc"
    assert gcc["argv"] == [
        *("-Os", "-Wall", "-Werror", "-static", "-s", f"-DVERSION=v{PAUSE_VERSION}-{KUBERNETES_VERSION}"),
        *("-o", str(staging / "pause"), str(source)),
    ]
    assert staging.parent == PAUSE.directory
    assert tool_path("pause") == PAUSE.binary
    assert "$ gcc -Os" in (PAUSE.directory / "build.log").read_text()


def test_c_build_without_the_source_in_the_module_says_so(cache: Path, fake_go: FakeGo) -> None:
    fake_go.install_gcc()
    result = run_build_script("pause")
    assert result.returncode == 1
    assert f"k8s.io/kubernetes@{KUBERNETES_VERSION} has no build/pause/linux/pause.c" in result.stderr
    assert leftovers(PAUSE) == []


def test_c_build_needs_gcc_on_path(cache: Path, fake_go: FakeGo) -> None:
    result = run_build_script("pause")
    assert result.returncode == 1
    assert "gcc is not on PATH" in result.stderr
    assert fake_go.calls() == []


def test_go_module_dir_reports_go_s_download_error(fake_go: FakeGo, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_GO_FAIL", "1")
    with pytest.raises(GoModuleError, match=r"go mod download example\.com/m@v1\.0\.0` failed: fake go: 404"):
        go_module_dir("example.com/m", "v1.0.0")


def test_snapshot_crd_paths_are_the_snapshot_group_files_only(fake_go: FakeGo) -> None:
    module = "github.com/kubernetes-csi/external-snapshotter/client/v8@v8.2.0"
    for kind in ("volumesnapshots", "volumesnapshotclasses", "volumesnapshotcontents"):
        fake_go.module_file(module, f"config/crd/snapshot.storage.k8s.io_{kind}.yaml")
    fake_go.module_file(module, "config/crd/groupsnapshot.storage.k8s.io_volumegroupsnapshots.yaml")
    fake_go.module_file(module, "config/crd/kustomization.yaml")

    assert [path.name for path in snapshot_crd_paths()] == [
        "snapshot.storage.k8s.io_volumesnapshotclasses.yaml",
        "snapshot.storage.k8s.io_volumesnapshotcontents.yaml",
        "snapshot.storage.k8s.io_volumesnapshots.yaml",
    ]
