"""The committed stubs must be exactly what hack/gen_proto.py produces from csi.proto."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from localcsi.csi import csi_pb2, csi_pb2_grpc

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[3]
GEN_PROTO = REPO_ROOT / "hack" / "gen_proto.py"
PACKAGE_DIR = REPO_ROOT / "src" / "localcsi" / "csi"
STUBS = ("csi_pb2.py", "csi_pb2.pyi", "csi_pb2_grpc.py")


def gen_proto(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(GEN_PROTO), *args], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    """csi.proto plus stubs freshly generated from it, independent of the committed stubs."""
    shutil.copy2(PACKAGE_DIR / "csi.proto", tmp_path / "csi.proto")
    proc = gen_proto("--package-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    return tmp_path


def test_committed_stubs_are_fresh() -> None:
    proc = gen_proto("--check")
    assert proc.returncode == 0, f"stubs are stale or generation failed:\n{proc.stdout}{proc.stderr}"


def test_check_accepts_fresh_stubs(package_copy: Path) -> None:
    proc = gen_proto("--check", "--package-dir", str(package_copy))
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


def test_check_flags_a_hand_edited_stub(package_copy: Path) -> None:
    stub = package_copy / "csi_pb2_grpc.py"
    stub.write_text(stub.read_text() + "# hand edit\n")

    proc = gen_proto("--check", "--package-dir", str(package_copy))

    assert proc.returncode == 1
    assert proc.stderr.splitlines()[0] == f"stale: {stub}"
    assert stub.read_text().endswith("# hand edit\n"), "--check must not rewrite anything"


def test_check_flags_a_proto_edit(package_copy: Path) -> None:
    proto = package_copy / "csi.proto"
    proto.write_text(proto.read_text().replace("message ProbeRequest {}", "message ProbeRequest { bool x = 1; }", 1))

    proc = gen_proto("--check", "--package-dir", str(package_copy))

    assert proc.returncode == 1
    stale = {line.removeprefix("stale: ") for line in proc.stderr.splitlines() if line.startswith("stale: ")}
    assert stale == {str(package_copy / "csi_pb2.py"), str(package_copy / "csi_pb2.pyi")}


def test_regeneration_repairs_stale_stubs(package_copy: Path) -> None:
    good = {name: (package_copy / name).read_bytes() for name in STUBS}
    (package_copy / "csi_pb2.pyi").write_text("")
    (package_copy / "csi_pb2_grpc.py").unlink()

    proc = gen_proto("--package-dir", str(package_copy))

    assert proc.returncode == 0
    assert proc.stdout.splitlines() == [
        f"wrote {package_copy / 'csi_pb2.pyi'}",
        f"wrote {package_copy / 'csi_pb2_grpc.py'}",
    ]
    assert {name: (package_copy / name).read_bytes() for name in STUBS} == good


def test_broken_proto_is_an_error_not_a_stale_report(package_copy: Path) -> None:
    (package_copy / "csi.proto").write_text("syntax = 'proto3'; message {")

    proc = gen_proto("--check", "--package-dir", str(package_copy))

    assert proc.returncode == 2
    assert "grpc_tools.protoc" in proc.stderr


def test_grpc_stub_imports_its_messages_from_the_package() -> None:
    source = (PACKAGE_DIR / "csi_pb2_grpc.py").read_text()
    assert "from localcsi.csi import csi_pb2 as csi__pb2\n" in source
    assert "\nimport csi_pb2" not in source
    assert vars(csi_pb2_grpc)["csi__pb2"] is csi_pb2


def test_stubs_accept_dicts_for_message_fields() -> None:
    """Also type-checked: the patched .pyi must accept a mapping where a message is expected."""
    request = csi_pb2.CreateVolumeRequest(
        name="pvc-1",
        volume_content_source={"snapshot": {"snapshot_id": "snap-1"}},
        secrets={"user": "u"},
    )
    decoded = csi_pb2.CreateVolumeRequest.FromString(request.SerializeToString())
    assert decoded.volume_content_source.snapshot.snapshot_id == "snap-1"
    assert decoded.volume_content_source.WhichOneof("type") == "snapshot"
