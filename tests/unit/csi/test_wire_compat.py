"""Our csi.proto must describe exactly the same wire protocol as the official CSI v1.12.0 proto.

The reference is fetched through the Go module proxy (`go mod download`), which checks it
against the public Go checksum database; both files are compiled to descriptors with
grpc_tools' protoc and compared element by element.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2 as pb
from google.protobuf.message import Message
from google.protobuf.unknown_fields import UnknownFieldSet

from localcsi.csi import csi_pb2

pytestmark = pytest.mark.unit

SPEC_MODULE = "github.com/container-storage-interface/spec"
SPEC_VERSION = "v1.12.0"
# The go.sum hash of that release; a different archive behind the same version must not pass.
SPEC_SUM = "h1:zrFOEqpR5AghNaaDG4qyedwPBqU2fU0dWjLQMP/azK0="
PROTO_NAME = "csi.proto"
OUR_PROTO_DIR = Path(__file__).resolve().parents[3] / "src" / "localcsi" / "csi"

# "<kind> <full name>" -> attribute -> rendered value
Summary = dict[str, dict[str, str]]
Field = pb.FieldDescriptorProto


# --------------------------------------------------------------- comparator


def _options(options: Message) -> str:
    """Set options, keyed by field number for extensions whether or not they were parsed as known."""
    items: list[str] = []
    for fd, value in options.ListFields():
        key = f"[{fd.number}]" if fd.is_extension else fd.name
        items.append(f"{key}={int(value) if isinstance(value, bool) else value}")
    unknown = UnknownFieldSet(options)
    items.extend(f"[{unknown[i].field_number}]={unknown[i].data}" for i in range(len(unknown)))
    return ",".join(sorted(items))


def _field(field: Field, oneofs: list[str]) -> dict[str, str]:
    return {
        "number": str(field.number),
        "label": Field.Label.Name(field.label),
        "type": Field.Type.Name(field.type),
        "type_name": field.type_name,
        "extendee": field.extendee,
        "oneof": oneofs[field.oneof_index] if field.HasField("oneof_index") else "",
        "proto3_optional": str(field.proto3_optional),
        "json_name": field.json_name,
        "default_value": field.default_value,
        "options": _options(field.options),
    }


def _add_enum(out: Summary, scope: str, enum: pb.EnumDescriptorProto) -> None:
    name = f"{scope}.{enum.name}"
    out[f"enum {name}"] = {
        "reserved": ",".join([f"{r.start}-{r.end}" for r in enum.reserved_range] + list(enum.reserved_name)),
        "options": _options(enum.options),
    }
    for value in enum.value:
        entry = {"number": str(value.number), "options": _options(value.options)}
        out[f"enum_value {name}.{value.name}"] = entry


def _add_message(out: Summary, scope: str, msg: pb.DescriptorProto) -> None:
    name = f"{scope}.{msg.name}"
    oneofs = [oneof.name for oneof in msg.oneof_decl]
    out[f"message {name}"] = {
        "oneofs": ",".join(oneofs),
        "reserved": ",".join([f"{r.start}-{r.end}" for r in msg.reserved_range] + list(msg.reserved_name)),
        "extension_ranges": ",".join(f"{r.start}-{r.end}" for r in msg.extension_range),
        "options": _options(msg.options),  # map entries show up here as map_entry=1
    }
    for field in msg.field:
        out[f"field {name}.{field.name}"] = _field(field, oneofs)
    for ext in msg.extension:
        out[f"extension {name}.{ext.name}"] = _field(ext, [])
    for nested in msg.nested_type:
        _add_message(out, name, nested)
    for enum in msg.enum_type:
        _add_enum(out, name, enum)


def summarize(file: pb.FileDescriptorProto) -> Summary:
    """Flatten everything that defines the wire protocol into comparable entries.

    File-level options (go_package and friends) are left out: they only steer code generators.
    """
    pkg = file.package
    out: Summary = {"file": {"package": pkg, "syntax": file.syntax, "dependencies": ",".join(sorted(file.dependency))}}
    for service in file.service:
        out[f"service {pkg}.{service.name}"] = {"options": _options(service.options)}
        for method in service.method:
            out[f"method {pkg}.{service.name}.{method.name}"] = {
                "input_type": method.input_type,
                "output_type": method.output_type,
                "client_streaming": str(method.client_streaming),
                "server_streaming": str(method.server_streaming),
                "options": _options(method.options),
            }
    for msg in file.message_type:
        _add_message(out, pkg, msg)
    for enum in file.enum_type:
        _add_enum(out, pkg, enum)
    for ext in file.extension:
        out[f"extension {pkg}.{ext.name}"] = _field(ext, [])
    return out


def wire_diff(ours: pb.FileDescriptorProto, upstream: pb.FileDescriptorProto) -> list[str]:
    """One line per difference; empty when the two files define the same protocol."""
    a, b = summarize(ours), summarize(upstream)
    lines: list[str] = []
    for key in sorted(a.keys() | b.keys()):
        if key not in a:
            lines.append(f"{key}: missing from ours")
        elif key not in b:
            lines.append(f"{key}: not in upstream")
        else:
            for attr in sorted(a[key].keys() | b[key].keys()):
                if a[key].get(attr) != b[key].get(attr):
                    lines.append(f"{key}: {attr}: ours={a[key].get(attr)!r} upstream={b[key].get(attr)!r}")
    return lines


# ------------------------------------------------------------ proto sources


def _run(cmd: list[str], cwd: Path) -> str:
    """Run cmd, failing the test (never skipping) with its full output if it does not succeed."""
    shown = " ".join(cmd)
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.fail(f"`{shown}` (in {cwd}) could not run: {exc}", pytrace=False)
    if proc.returncode != 0:
        pytest.fail(
            f"`{shown}` (in {cwd}) exited {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}",
            pytrace=False,
        )
    return proc.stdout


def compile_proto(proto_dir: Path, out: Path) -> pb.FileDescriptorProto:
    include = Path(str(resources.files("grpc_tools") / "_proto"))
    _run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"--proto_path={proto_dir}",
            f"--proto_path={include}",
            "--include_imports",
            f"--descriptor_set_out={out}",
            PROTO_NAME,
        ],
        out.parent,
    )
    files = [f for f in pb.FileDescriptorSet.FromString(out.read_bytes()).file if f.name == PROTO_NAME]
    assert len(files) == 1, f"{out} holds {len(files)} descriptors named {PROTO_NAME}"
    return files[0]


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> pb.FileDescriptorProto:
    """The official proto, via the Go module proxy (the module cache is reused if warm)."""
    if shutil.which("go") is None:
        pytest.fail(
            f"`go` is not on PATH; this test needs it to run `go mod download -json {SPEC_MODULE}@{SPEC_VERSION}`",
            pytrace=False,
        )
    work = tmp_path_factory.mktemp("upstream")
    _run(["go", "mod", "init", "wirecompat"], work)
    info = json.loads(_run(["go", "mod", "download", "-json", f"{SPEC_MODULE}@{SPEC_VERSION}"], work))
    assert info.get("Sum") == SPEC_SUM, f"unexpected module checksum: {info}"
    return compile_proto(Path(info["Dir"]), work / "upstream.pb")


@pytest.fixture(scope="module")
def ours(tmp_path_factory: pytest.TempPathFactory) -> pb.FileDescriptorProto:
    return compile_proto(OUR_PROTO_DIR, tmp_path_factory.mktemp("ours") / "ours.pb")


def _fail_on(lines: list[str], what: str) -> None:
    if lines:
        message = f"{what}: {len(lines)} difference(s) from CSI {SPEC_VERSION}:\n" + "\n".join(lines)
        pytest.fail(message, pytrace=False)


# -------------------------------------------------------------------- tests


def test_proto_matches_upstream(ours: pb.FileDescriptorProto, upstream: pb.FileDescriptorProto) -> None:
    assert "service csi.v1.Node" in summarize(upstream), "reference descriptor looks empty"
    _fail_on(wire_diff(ours, upstream), str(OUR_PROTO_DIR / PROTO_NAME))


def test_imported_stubs_match_upstream(upstream: pb.FileDescriptorProto) -> None:
    """The descriptor baked into the committed csi_pb2.py, i.e. what the driver really speaks."""
    embedded = pb.FileDescriptorProto.FromString(csi_pb2.DESCRIPTOR.serialized_pb)
    reference = pb.FileDescriptorProto()
    reference.CopyFrom(upstream)
    _drop_json_names(reference)  # the Python generator does not embed them
    _fail_on(wire_diff(embedded, reference), "localcsi.csi.csi_pb2")


def _drop_json_names(file: pb.FileDescriptorProto) -> None:
    def visit(msg: pb.DescriptorProto) -> None:
        for field in [*msg.field, *msg.extension]:
            field.ClearField("json_name")
        for nested in msg.nested_type:
            visit(nested)

    for msg in file.message_type:
        visit(msg)
    for ext in file.extension:
        ext.ClearField("json_name")


# ---------------------------------------------------- the comparator can fail


def _message(file: pb.FileDescriptorProto, name: str) -> pb.DescriptorProto:
    return next(m for m in file.message_type if m.name == name)


def _field_of(file: pb.FileDescriptorProto, msg: str, field: str) -> Field:
    return next(f for f in _message(file, msg).field if f.name == field)


def _renumber_field(file: pb.FileDescriptorProto) -> None:
    _field_of(file, "CreateVolumeRequest", "name").number = 99


def _unstream_method(file: pb.FileDescriptorProto) -> None:
    service = next(s for s in file.service if s.name == "SnapshotMetadata")
    next(m for m in service.method if m.name == "GetMetadataDelta").server_streaming = False


def _drop_secret_option(file: pb.FileDescriptorProto) -> None:
    _field_of(file, "DeleteVolumeRequest", "secrets").ClearField("options")


def _renumber_enum_value(file: pb.FileDescriptorProto) -> None:
    next(v for v in file.enum_type[0].value if v.name == "FIXED_LENGTH").number = 7


def _remove_field(file: pb.FileDescriptorProto) -> None:
    fields = _message(file, "Snapshot").field
    fields.remove(next(f for f in fields if f.name == "group_snapshot_id"))


def _renumber_extension(file: pb.FileDescriptorProto) -> None:
    next(e for e in file.extension if e.name == "csi_secret").number = 1061


_MUTATIONS = [
    (_renumber_field, "field csi.v1.CreateVolumeRequest.name: number: ours='99' upstream='1'"),
    (
        _unstream_method,
        "method csi.v1.SnapshotMetadata.GetMetadataDelta: server_streaming: ours='False' upstream='True'",
    ),
    (_drop_secret_option, "field csi.v1.DeleteVolumeRequest.secrets: options: ours='' upstream='[1059]=1'"),
    (_renumber_enum_value, "enum_value csi.v1.BlockMetadataType.FIXED_LENGTH: number: ours='7' upstream='1'"),
    (_remove_field, "field csi.v1.Snapshot.group_snapshot_id: missing from ours"),
    (_renumber_extension, "extension csi.v1.csi_secret: number: ours='1061' upstream='1059'"),
]


@pytest.mark.parametrize(("mutate", "expected"), [pytest.param(m, e, id=m.__name__.lstrip("_")) for m, e in _MUTATIONS])
def test_comparator_reports_exactly_the_mutation(
    ours: pb.FileDescriptorProto,
    mutate: Callable[[pb.FileDescriptorProto], None],
    expected: str,
) -> None:
    # The unmutated descriptor stands in for upstream, so this only depends on the comparator,
    # not on whether csi.proto currently matches the spec.
    mutant = pb.FileDescriptorProto()
    mutant.CopyFrom(ours)
    mutate(mutant)
    assert wire_diff(ours, ours) == []
    assert wire_diff(mutant, ours) == [expected]
