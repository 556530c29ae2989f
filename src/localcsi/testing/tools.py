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

# The newest 1.31 patch whose every staging module is in the checksum database this machine reaches
# (sum.golang.org through the module proxy has no entry for some later ones, e.g. kube-aggregator v0.31.14).
KUBERNETES_VERSION = "v1.31.4"
# k8s.io/kubernetes requires its staging modules as v0.0.0 and replaces them with ./staging paths, which
# only work inside its own repository. Outside it, each is replaced with its own v0.X.Y release.
KUBERNETES_STAGING_MODULES = (
    "api",
    "apiextensions-apiserver",
    "apimachinery",
    "apiserver",
    "cli-runtime",
    "client-go",
    "cloud-provider",
    "cluster-bootstrap",
    "code-generator",
    "component-base",
    "component-helpers",
    "controller-manager",
    "cri-api",
    "cri-client",
    "csi-translation-lib",
    "dynamic-resource-allocation",
    "endpointslice",
    "kms",
    "kube-aggregator",
    "kube-controller-manager",
    "kube-proxy",
    "kube-scheduler",
    "kubectl",
    "kubelet",
    "metrics",
    "mount-utils",
    "pod-security-admission",
    "sample-apiserver",
    "sample-cli-plugin",
    "sample-controller",
)


def kubernetes_go_mod(version: str = KUBERNETES_VERSION) -> str:
    staging = "v0." + version.removeprefix("v1.")
    replaces = "\n".join(f"\tk8s.io/{name} => k8s.io/{name} {staging}" for name in KUBERNETES_STAGING_MODULES)
    header = f"module localcsi.io/tools/kubernetes\n\ngo 1.22.0\n\nrequire k8s.io/kubernetes {version}\n"
    return f"{header}\nreplace (\n{replaces}\n)\n"


def kubernetes_tool(name: str) -> Tool:
    return Tool(
        name=name,
        version=KUBERNETES_VERSION,
        recipe=ModuleBuild(package=f"k8s.io/kubernetes/cmd/{name}", go_mod=kubernetes_go_mod()),
        # Unstamped, the binaries report v0.0.0-master and clients log version-skew warnings.
        version_symbols=("k8s.io/component-base/version.gitVersion", "k8s.io/client-go/pkg/version.gitVersion"),
    )


KUBE_APISERVER = kubernetes_tool("kube-apiserver")
KUBE_SCHEDULER = kubernetes_tool("kube-scheduler")

ETCD_VERSION = "v3.5.17"
# etcd's own server/go.mod replaces its sibling modules with ../ paths, so `go install` refuses it.
ETCD = Tool(
    name="etcd",
    version=ETCD_VERSION,
    recipe=ModuleBuild(
        package="go.etcd.io/etcd/server/v3",
        go_mod=f"module localcsi.io/tools/etcd\n\ngo 1.22.0\n\nrequire go.etcd.io/etcd/server/v3 {ETCD_VERSION}\n",
    ),
    version_symbols=(),
)

TOOLS: dict[str, Tool] = {tool.name: tool for tool in (CSI_SANITY, ETCD, KUBE_APISERVER, KUBE_SCHEDULER)}


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
