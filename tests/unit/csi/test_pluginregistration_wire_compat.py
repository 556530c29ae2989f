"""Our pluginregistration.proto must describe the same wire protocol as the kubelet's api.proto.

The reference is k8s.io/kubelet@v0.31.4's pkg/apis/pluginregistration/v1/api.proto, fetched
through the Go module proxy (`go mod download`, checked against the Go checksum database and the
pinned hashes below). Upstream imports gogo.proto for Go-only file options, so gogo/protobuf is
fetched the same way to compile it. The comparator is the one that proves csi.proto
(test_wire_compat.py, whose mutation tests show it catches each kind of difference).
"""

from __future__ import annotations

import json
import shutil
import sys
from importlib import resources
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2 as pb
from test_wire_compat import _drop_json_names, _run, summarize, wire_diff

from localcsi.csi import pluginregistration_pb2

pytestmark = pytest.mark.unit

KUBELET_MODULE = "k8s.io/kubelet"
KUBELET_VERSION = "v0.31.4"
KUBELET_SUM = "h1:6TokbMv+HnFG7Oe9tVS/J0VPGdC4GnsQZXuZoo7Ixi8="
UPSTREAM_PROTO = Path("pkg/apis/pluginregistration/v1/api.proto")
# The gogo/protobuf release k8s.io/kubelet@v0.31.4's go.mod requires, with its go.sum hash.
GOGO_MODULE = "github.com/gogo/protobuf"
GOGO_VERSION = "v1.3.2"
GOGO_SUM = "h1:Ov1cvc58UF3b5XjBnZv7+opcTcQFZebYjWzi34vdm4Q="
GOGO_IMPORT = "github.com/gogo/protobuf/gogoproto/gogo.proto"

OUR_PROTO_DIR = Path(__file__).resolve().parents[3] / "src" / "localcsi" / "csi"
OUR_PROTO = "pluginregistration.proto"


def compile_proto(proto_dir: Path, proto_name: str, out: Path, *includes: Path) -> pb.FileDescriptorProto:
    well_known = Path(str(resources.files("grpc_tools") / "_proto"))
    paths = [f"--proto_path={path}" for path in (proto_dir, *includes, well_known)]
    _run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            *paths,
            "--include_imports",
            f"--descriptor_set_out={out}",
            proto_name,
        ],
        out.parent,
    )
    files = [f for f in pb.FileDescriptorSet.FromString(out.read_bytes()).file if f.name == proto_name]
    assert len(files) == 1, f"{out} holds {len(files)} descriptors named {proto_name}"
    return files[0]


def download(module: str, version: str, expected_sum: str, work: Path) -> Path:
    info = json.loads(_run(["go", "mod", "download", "-json", f"{module}@{version}"], work))
    assert info.get("Sum") == expected_sum, f"unexpected module checksum: {info}"
    return Path(info["Dir"])


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> pb.FileDescriptorProto:
    """The kubelet's api.proto, minus its dependency on gogo.proto (used only by Go file options)."""
    if shutil.which("go") is None:
        pytest.fail(f"`go` is not on PATH; this test needs it to download {KUBELET_MODULE}@{KUBELET_VERSION}")
    work = tmp_path_factory.mktemp("upstream")
    _run(["go", "mod", "init", "wirecompat"], work)
    kubelet = download(KUBELET_MODULE, KUBELET_VERSION, KUBELET_SUM, work)
    gogo = download(GOGO_MODULE, GOGO_VERSION, GOGO_SUM, work)
    # The import names the module path without its @version: lay the file out under that path.
    include = work / "include"
    (include / GOGO_IMPORT).parent.mkdir(parents=True)
    shutil.copyfile(gogo / "gogoproto" / "gogo.proto", include / GOGO_IMPORT)
    proto = kubelet / UPSTREAM_PROTO
    descriptor = compile_proto(proto.parent, proto.name, work / "upstream.pb", include)
    # Any gogoproto option on a message, field or service would still show up in the comparison.
    assert list(descriptor.dependency) == [GOGO_IMPORT], descriptor.dependency
    descriptor.ClearField("dependency")
    return descriptor


@pytest.fixture(scope="module")
def ours(tmp_path_factory: pytest.TempPathFactory) -> pb.FileDescriptorProto:
    return compile_proto(OUR_PROTO_DIR, OUR_PROTO, tmp_path_factory.mktemp("ours") / "ours.pb")


def _fail_on(lines: list[str], what: str) -> None:
    if lines:
        reference = f"{KUBELET_MODULE}@{KUBELET_VERSION}/{UPSTREAM_PROTO}"
        pytest.fail(f"{what}: {len(lines)} difference(s) from {reference}:\n" + "\n".join(lines), pytrace=False)


def test_proto_matches_upstream(ours: pb.FileDescriptorProto, upstream: pb.FileDescriptorProto) -> None:
    summary = summarize(upstream)
    assert "method pluginregistration.Registration.NotifyRegistrationStatus" in summary, "reference looks empty"
    assert summary["field pluginregistration.RegistrationStatus.plugin_registered"]["number"] == "1"
    _fail_on(wire_diff(ours, upstream), str(OUR_PROTO_DIR / OUR_PROTO))


def test_imported_stubs_match_upstream(upstream: pb.FileDescriptorProto) -> None:
    """The descriptor baked into the committed pluginregistration_pb2.py, i.e. what the plugin speaks."""
    embedded = pb.FileDescriptorProto.FromString(pluginregistration_pb2.DESCRIPTOR.serialized_pb)
    reference = pb.FileDescriptorProto()
    reference.CopyFrom(upstream)
    _drop_json_names(reference)  # the Python generator does not embed them
    _fail_on(wire_diff(embedded, reference), "localcsi.csi.pluginregistration_pb2")


def test_comparator_sees_a_renumbered_field(ours: pb.FileDescriptorProto) -> None:
    mutant = pb.FileDescriptorProto()
    mutant.CopyFrom(ours)
    message = next(m for m in mutant.message_type if m.name == "PluginInfo")
    next(f for f in message.field if f.name == "endpoint").number = 5
    assert wire_diff(mutant, ours) == ["field pluginregistration.PluginInfo.endpoint: number: ours='5' upstream='3'"]
