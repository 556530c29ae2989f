#!/usr/bin/env python3
"""Regenerate (or check) the committed Python stubs for src/localcsi/csi/csi.proto.

    python hack/gen_proto.py           rewrite the stubs
    python hack/gen_proto.py --check   exit 1 if the committed stubs are stale

The output is byte-for-byte reproducible only with the grpcio-tools release that produced
the committed stubs (see GRPC_GENERATED_VERSION in csi_pb2_grpc.py); --check names it when
the installed release differs.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from importlib import metadata, resources
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIR = REPO_ROOT / "src" / "localcsi" / "csi"
PROTO_NAME = "csi.proto"
GENERATED = ("csi_pb2.py", "csi_pb2.pyi", "csi_pb2_grpc.py")

# grpc_tools emits a top-level import that only works with the output dir on sys.path.
_BARE_IMPORT = "import csi_pb2 as csi__pb2\n"
_PACKAGE_IMPORT = "from localcsi.csi import csi_pb2 as csi__pb2\n"

# protoc's --pyi_out output fails mypy --strict in two ways; patch the stub rather than relax mypy.
_PYI_FIXES = (
    # Module-level extension numbers come out as ClassVar, which is only legal inside a class.
    (re.compile(r"^(\w+_FIELD_NUMBER): _ClassVar\[int\]$", re.MULTILINE), r"\1: int"),
    # A message-typed argument may also be given as a dict, typed as a bare (generic) Mapping.
    (re.compile(r"\b_Mapping\]"), "_Mapping[str, object]]"),
)


_GENERATED_VERSION = re.compile(r"^GRPC_GENERATED_VERSION = '([^']+)'$", re.MULTILINE)


class GenerationError(RuntimeError):
    pass


def protobuf_include_dir() -> Path:
    """The well-known .proto files (descriptor, timestamp, ...) bundled with grpcio-tools."""
    return Path(str(resources.files("grpc_tools") / "_proto"))


def run_protoc(proto_dir: Path, proto_name: str, outputs: list[str]) -> None:
    """Run grpc_tools' protoc on proto_dir/proto_name; outputs are extra --*_out flags."""
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"--proto_path={proto_dir}",
        f"--proto_path={protobuf_include_dir()}",
        *outputs,
        proto_name,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise GenerationError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")


def fix_grpc_import(grpc_module: Path) -> None:
    text = grpc_module.read_text(encoding="utf-8")
    if text.count(_BARE_IMPORT) != 1:
        raise GenerationError(f"expected exactly one {_BARE_IMPORT.strip()!r} in {grpc_module}")
    grpc_module.write_text(text.replace(_BARE_IMPORT, _PACKAGE_IMPORT), encoding="utf-8")


def fix_pyi(stub: Path) -> None:
    text = stub.read_text(encoding="utf-8")
    for pattern, replacement in _PYI_FIXES:
        text = pattern.sub(replacement, text)
    stub.write_text(text, encoding="utf-8")


def generate(package_dir: Path, out_dir: Path) -> None:
    """Write the stubs for package_dir/csi.proto into out_dir."""
    out = str(out_dir)
    run_protoc(package_dir, PROTO_NAME, [f"--python_out={out}", f"--pyi_out={out}", f"--grpc_python_out={out}"])
    fix_grpc_import(out_dir / "csi_pb2_grpc.py")
    fix_pyi(out_dir / "csi_pb2.pyi")


def _differs(a: Path, b: Path) -> bool:
    return not b.is_file() or a.read_bytes() != b.read_bytes()


def sync_stubs(package_dir: Path, *, write: bool) -> list[str]:
    """Names of the stubs in package_dir that differ from a fresh generation; rewrites them if write."""
    with tempfile.TemporaryDirectory(prefix="gen_proto-") as tmp:
        fresh = Path(tmp)
        generate(package_dir, fresh)
        changed = [name for name in GENERATED if _differs(fresh / name, package_dir / name)]
        if write:
            for name in changed:
                (package_dir / name).write_bytes((fresh / name).read_bytes())
        return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only report stale stubs (exit 1)")
    parser.add_argument(
        "--package-dir",
        type=Path,
        default=PACKAGE_DIR,
        help=f"directory holding {PROTO_NAME} and its stubs (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    package_dir: Path = args.package_dir

    try:
        changed = sync_stubs(package_dir, write=not args.check)
    except GenerationError as exc:
        print(f"gen_proto: {exc}", file=sys.stderr)
        return 2
    if not args.check:
        for name in changed:
            print(f"wrote {package_dir / name}")
        return 0
    for name in changed:
        print(f"stale: {package_dir / name}", file=sys.stderr)
    if changed:
        print("regenerate with: python hack/gen_proto.py", file=sys.stderr)
        if hint := _version_hint(package_dir):
            print(hint, file=sys.stderr)
        return 1
    return 0


def _version_hint(package_dir: Path) -> str | None:
    """Explain a staleness that comes from a different grpcio-tools rather than from csi.proto."""
    grpc_module = package_dir / "csi_pb2_grpc.py"
    if not grpc_module.is_file():
        return None
    found = _GENERATED_VERSION.search(grpc_module.read_text(encoding="utf-8"))
    installed = metadata.version("grpcio-tools")
    if found is None or found.group(1) == installed:
        return None
    return f"note: the committed stubs come from grpcio-tools {found.group(1)}, but {installed} is installed"


if __name__ == "__main__":
    sys.exit(main())
