"""Go-built tools the tests run: their pinned versions, build recipes and cached binaries.

This registry is the one place that pins a tool's version. `hack/tools/build.py` builds a tool
into `<cache>/tools/<name>-<version>/bin/<name>`; tests find it with `tool_path(name)`.

Adding a tool is one `Tool` in `TOOLS`:
- `GoInstall` when the tool's own go.mod builds it as is (`go install <package>@<version>`);
- `ModuleBuild` when it needs a go.mod of ours, e.g. k8s.io/kubernetes, whose go.mod requires its
  staging modules as v0.0.0: the generated go.mod requires it and replaces each `k8s.io/*` staging
  module with the matching v0.X.Y release.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from localcsi.testing.image import cache_root

BUILD_SCRIPT = "hack/tools/build.py"


@dataclass(frozen=True)
class GoInstall:
    """`go install <package>@<version>`."""

    package: str


@dataclass(frozen=True)
class ModuleBuild:
    """`go build -mod=mod -o <binary> <package>` inside a module whose go.mod is `go_mod`."""

    package: str
    go_mod: str


Recipe = GoInstall | ModuleBuild


@dataclass(frozen=True)
class Tool:
    name: str
    version: str
    recipe: Recipe
    # Go string variables set to `version` at link time (`-ldflags=-X <symbol>=<version>`).
    version_symbols: tuple[str, ...] = ()

    @property
    def directory(self) -> Path:
        return cache_root() / "tools" / f"{self.name}-{self.version}"

    @property
    def binary(self) -> Path:
        return self.directory / "bin" / self.name

    @property
    def build_command(self) -> str:
        return f"python {BUILD_SCRIPT} {self.name}"


CSI_SANITY = Tool(
    name="csi-sanity",
    version="v5.5.0",
    recipe=GoInstall("github.com/kubernetes-csi/csi-test/v5/cmd/csi-sanity"),
    # Unstamped, `csi-sanity -version` prints "Version = (dev)": upstream's Makefiles set other symbols.
    version_symbols=("main.VERSION",),
)

TOOLS: dict[str, Tool] = {tool.name: tool for tool in (CSI_SANITY,)}


class UnknownToolError(LookupError):
    pass


class ToolNotBuiltError(FileNotFoundError):
    pass


def find_tool(name: str) -> Tool:
    try:
        return TOOLS[name]
    except KeyError:
        raise UnknownToolError(f"unknown tool {name!r}; known tools: {', '.join(sorted(TOOLS))}") from None


def is_built(tool: Tool) -> bool:
    return tool.binary.is_file() and os.access(tool.binary, os.X_OK)


def tool_path(name: str) -> Path:
    """The cached binary of the pinned version; raises ToolNotBuiltError naming the build command."""
    tool = find_tool(name)
    if not is_built(tool):
        raise ToolNotBuiltError(
            f"{tool.name} {tool.version} is not built (no executable {tool.binary}); "
            f"build it from the repository root with: {tool.build_command}"
        )
    return tool.binary
