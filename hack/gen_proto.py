#!/usr/bin/env python3
"""Regenerate (or check) the committed Python stubs for the .proto files in src/localcsi/csi.

    python hack/gen_proto.py           rewrite the stubs
    python hack/gen_proto.py --check   exit 1 if the committed stubs are stale

Known protos: csi.proto (the CSI spec) and pluginregistration.proto (the kubelet's plugin
registration API); each one present in the package directory gets its three stubs.

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
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIR = REPO_ROOT / "src" / "localcsi" / "csi"
PACKAGE = "localcsi.csi"

# Prepended to stubs that pyproject.toml does not exclude by name from ruff and mypy: generated code
# is neither linted, formatted nor type-checked (its .pyi is, and gets the _PYI_FIXES).
_LINT_PRAGMAS = "# ruff: noqa\n# fmt: off\n"
_MYPY_PRAGMA = "# mypy: ignore-errors\n"


@dataclass(frozen=True)
class ProtoStubs:
    """One .proto file in the package directory and the three stubs generated from it."""

    proto: str
    # False only for csi.proto: pyproject.toml excludes its stubs from ruff by path.
    lint_pragmas: bool = True

    @property
    def module(self) -> str:
        return self.proto.removesuffix(".proto") + "_pb2"

    @property
    def generated(self) -> tuple[str, str, str]:
        return (f"{self.module}.py", f"{self.module}.pyi", f"{self.module}_grpc.py")

    @property
    def bare_import(self) -> str:
        # grpc_tools emits a top-level import that only works with the output dir on sys.path.
        return f"import {self.module} as {self.module.replace('_', '__')}\n"

    @property
    def package_import(self) -> str:
        return f"from {PACKAGE} {self.bare_import}"


PROTOS = (ProtoStubs("csi.proto", lint_pragmas=False), ProtoStubs("pluginregistration.proto"))

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


def fix_grpc_import(grpc_module: Path, stubs: ProtoStubs) -> None:
    text = grpc_module.read_text(encoding="utf-8")
    if text.count(stubs.bare_import) != 1:
        raise GenerationError(f"expected exactly one {stubs.bare_import.strip()!r} in {grpc_module}")
    grpc_module.write_text(text.replace(stubs.bare_import, stubs.package_import), encoding="utf-8")


def fix_pyi(stub: Path) -> None:
    text = stub.read_text(encoding="utf-8")
    for pattern, replacement in _PYI_FIXES:
        text = pattern.sub(replacement, text)
    stub.write_text(text, encoding="utf-8")


def _prepend(path: Path, header: str) -> None:
    path.write_text(header + path.read_text(encoding="utf-8"), encoding="utf-8")


def generate(package_dir: Path, out_dir: Path, stubs: ProtoStubs) -> None:
    """Write the stubs for package_dir/<stubs.proto> into out_dir."""
    out = str(out_dir)
    run_protoc(package_dir, stubs.proto, [f"--python_out={out}", f"--pyi_out={out}", f"--grpc_python_out={out}"])
    messages, stub, grpc_module = (out_dir / name for name in stubs.generated)
    fix_grpc_import(grpc_module, stubs)
    fix_pyi(stub)
    if stubs.lint_pragmas:
        for path in (messages, stub):
            _prepend(path, _LINT_PRAGMAS)
        _prepend(grpc_module, _LINT_PRAGMAS + _MYPY_PRAGMA)


def protos_in(package_dir: Path) -> list[ProtoStubs]:
    """The known protos present in package_dir; at least one, or GenerationError."""
    present = [stubs for stubs in PROTOS if (package_dir / stubs.proto).is_file()]
    if not present:
        known = ", ".join(stubs.proto for stubs in PROTOS)
        raise GenerationError(f"{package_dir} holds none of {known}")
    return present


def _differs(a: Path, b: Path) -> bool:
    return not b.is_file() or a.read_bytes() != b.read_bytes()


def sync_stubs(package_dir: Path, *, write: bool) -> list[str]:
    """Names of the stubs in package_dir that differ from a fresh generation; rewrites them if write."""
    with tempfile.TemporaryDirectory(prefix="gen_proto-") as tmp:
        fresh = Path(tmp)
        changed: list[str] = []
        for stubs in protos_in(package_dir):
            generate(package_dir, fresh, stubs)
            changed += [name for name in stubs.generated if _differs(fresh / name, package_dir / name)]
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
        help="directory holding the .proto files and their stubs (default: %(default)s)",
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
    """Explain a staleness that comes from a different grpcio-tools rather than from a .proto."""
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
