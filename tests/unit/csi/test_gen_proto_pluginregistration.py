"""hack/gen_proto.py for pluginregistration.proto: package imports, lint pragmas, one proto at a time."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from localcsi.csi import pluginregistration_pb2, pluginregistration_pb2_grpc

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[3]
GEN_PROTO = REPO_ROOT / "hack" / "gen_proto.py"
PACKAGE_DIR = REPO_ROOT / "src" / "localcsi" / "csi"
STUBS = ("pluginregistration_pb2.py", "pluginregistration_pb2.pyi", "pluginregistration_pb2_grpc.py")


def gen_proto(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(GEN_PROTO), *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_only_the_protos_present_are_generated(tmp_path: Path) -> None:
    shutil.copy2(PACKAGE_DIR / "pluginregistration.proto", tmp_path / "pluginregistration.proto")

    proc = gen_proto("--package-dir", str(tmp_path))

    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [f"wrote {tmp_path / name}" for name in STUBS]
    assert {name: (tmp_path / name).read_bytes() for name in STUBS} == {
        name: (PACKAGE_DIR / name).read_bytes() for name in STUBS
    }


def test_a_directory_without_known_protos_is_an_error(tmp_path: Path) -> None:
    proc = gen_proto("--check", "--package-dir", str(tmp_path))
    assert proc.returncode == 2
    assert "holds none of csi.proto, pluginregistration.proto" in proc.stderr


def test_grpc_stub_imports_its_messages_from_the_package() -> None:
    source = (PACKAGE_DIR / "pluginregistration_pb2_grpc.py").read_text()
    assert "from localcsi.csi import pluginregistration_pb2 as pluginregistration__pb2\n" in source
    assert "\nimport pluginregistration_pb2" not in source
    assert vars(pluginregistration_pb2_grpc)["pluginregistration__pb2"] is pluginregistration_pb2


def test_generated_code_is_kept_out_of_ruff_and_mypy() -> None:
    """pyproject.toml excludes only the csi stubs by name; these carry their own pragmas."""
    for name in STUBS:
        assert (PACKAGE_DIR / name).read_text().startswith("# ruff: noqa\n# fmt: off\n"), name
    assert "\n# mypy: ignore-errors\n" in (PACKAGE_DIR / "pluginregistration_pb2_grpc.py").read_text()
    assert "# mypy" not in (PACKAGE_DIR / "pluginregistration_pb2.pyi").read_text(), "the .pyi stays type-checked"


def test_methods_are_on_the_kubelet_path() -> None:
    """The kubelet calls /pluginregistration.Registration/<method>: the package has no .v1."""
    service = pluginregistration_pb2.DESCRIPTOR.services_by_name["Registration"]
    assert service.full_name == "pluginregistration.Registration"
    assert sorted(service.methods_by_name) == ["GetInfo", "NotifyRegistrationStatus"]
