"""Go-built tools the tests run: their pinned versions, build recipes and cached binaries.

This registry is the one place that pins a tool's version. `hack/tools/build.py` builds a tool
into `<cache>/tools/<name>-<version>/bin/<name>`; tests find it with `tool_path(name)`.

Adding a tool is one `Tool` in `TOOLS`:
- `GoInstall` when the tool's own go.mod builds it as is (`go install <package>@<version>`);
- `ModuleBuild` when it needs a go.mod of ours, e.g. k8s.io/kubernetes, whose go.mod requires its
  staging modules as v0.0.0: the generated go.mod requires it and replaces each `k8s.io/*` staging
  module with the matching v0.X.Y release;
- `CBuild` for a C program whose source ships inside a Go module (the kubelet's pause).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass
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


@dataclass(frozen=True)
class CBuild:
    """`gcc <flags> -o <binary> <source>`, `source` being a file inside the Go module `module`@`module_version`."""

    module: str
    module_version: str
    source: str
    flags: tuple[str, ...]


Recipe = GoInstall | ModuleBuild | CBuild


@dataclass(frozen=True)
class Tool:
    name: str
    version: str
    recipe: Recipe
    # Go string variables set to `version` at link time (`-ldflags=-X <symbol>=<version>`).
    version_symbols: tuple[str, ...] = ()
    # Built with CGO_ENABLED=0: a static binary that runs in a minimal image or any Linux VM.
    static: bool = False

    @property
    def directory(self) -> Path:
        return cache_root() / "tools" / f"{self.name}-{self.version}"

    @property
    def binary(self) -> Path:
        return self.directory / "bin" / self.name

    @property
    def recipe_file(self) -> Path:
        """Beside the binary, the ``recipe_text`` it was built from: a changed recipe (a wrapper go.mod, a
        flag) builds the tool again, where the version alone would keep the old binary."""
        return self.directory / "bin" / "recipe.json"

    @property
    def recipe_text(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, indent=1) + "\n"

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

# A 1.34 patch (VolumeAttributesClass is GA from 1.34) whose every staging module is in the checksum
# database this machine reaches: the module proxy has no k8s.io/sample-cli-plugin v0.34.0 nor v0.34.3, and
# neither it nor k8s.io/sample-controller v0.34.4. 1.34 is also the last minor whose kubelet starts on a
# cgroup v1 node without `failCgroupV1: false`.
KUBERNETES_VERSION = "v1.34.2"
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
    "externaljwt",
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


def go_mod(module: str, go: str, requires: Sequence[tuple[str, str]], replaces: Sequence[str] = ()) -> str:
    """A go.mod text: `requires` as (module path, version) pairs, `replaces` as `old => new version` lines."""
    if len(requires) == 1:
        require = "require {} {}\n".format(*requires[0])
    else:
        require = "require (\n" + "".join(f"\t{path} {version}\n" for path, version in requires) + ")\n"
    text = f"module {module}\n\ngo {go}\n\n{require}"
    if replaces:
        text += "\nreplace (\n" + "".join(f"\t{line}\n" for line in replaces) + ")\n"
    return text


def staging_replaces(staging_version: str) -> tuple[str, ...]:
    return tuple(f"k8s.io/{name} => k8s.io/{name} {staging_version}" for name in KUBERNETES_STAGING_MODULES)


def kubernetes_go_mod(version: str = KUBERNETES_VERSION) -> str:
    staging = "v0." + version.removeprefix("v1.")
    return go_mod("localcsi.io/tools/kubernetes", "1.24.0", [("k8s.io/kubernetes", version)], staging_replaces(staging))


def kubernetes_tool(name: str) -> Tool:
    return Tool(
        name=name,
        version=KUBERNETES_VERSION,
        recipe=ModuleBuild(package=f"k8s.io/kubernetes/cmd/{name}", go_mod=kubernetes_go_mod()),
        # Unstamped, the binaries report v0.0.0-master and clients log version-skew warnings.
        version_symbols=("k8s.io/component-base/version.gitVersion", "k8s.io/client-go/pkg/version.gitVersion"),
        # Every Kubernetes binary without cgo, so that they share one compile of the Kubernetes packages in
        # Go's build cache: cgo or not is part of each package's build key (net, os/user and all that
        # imports them). Upstream builds the control plane static too; kubelet it links with cgo, but
        # static it runs in the node VM whatever its libc.
        static=True,
    )


KUBE_APISERVER = kubernetes_tool("kube-apiserver")
KUBE_SCHEDULER = kubernetes_tool("kube-scheduler")
KUBELET = kubernetes_tool("kubelet")
KUBE_CONTROLLER_MANAGER = kubernetes_tool("kube-controller-manager")

# The pause binary of registry.k8s.io/pause:3.10.1, the TAG of build/pause/Makefile at KUBERNETES_VERSION.
PAUSE_VERSION = "3.10.1"
PAUSE_IMAGE = f"registry.k8s.io/pause:{PAUSE_VERSION}"
PAUSE = Tool(
    name="pause",
    version=PAUSE_VERSION,
    recipe=CBuild(
        module="k8s.io/kubernetes",
        module_version=KUBERNETES_VERSION,
        source="build/pause/linux/pause.c",
        # Upstream's CFLAGS, with the Kubernetes tag standing in for `git describe` (`pause -v` prints it),
        # and -s for the strip its Makefile runs afterwards.
        flags=("-Os", "-Wall", "-Werror", "-static", "-s", f"-DVERSION=v{PAUSE_VERSION}-{KUBERNETES_VERSION}"),
    ),
)

# The minimum external etcd that kubeadm 1.34 accepts (MinExternalEtcdVersion); its default is 3.6.5.
ETCD_VERSION = "v3.5.24"
# etcd's own server/go.mod replaces its sibling modules with ../ paths, so `go install` refuses it.
ETCD = Tool(
    name="etcd",
    version=ETCD_VERSION,
    recipe=ModuleBuild(
        package="go.etcd.io/etcd/server/v3",
        go_mod=go_mod("localcsi.io/tools/etcd", "1.24", [("go.etcd.io/etcd/server/v3", ETCD_VERSION)]),
    ),
    version_symbols=(),
)

# CSI sidecars. The provisioner's and the snapshotter's go.mod carry replace directives, so `go install`
# refuses them: each sidecar (the resizer too, for one recipe) is built in a wrapper module requiring its
# release. The provisioner v6 requires k8s.io/kubernetes v1.36.1, so its wrapper keeps upstream's replaces
# of the staging modules (v0.0.0 there) with their v0.36.1 releases, the versions its binary links anyway.
# None of the snapshotter's is needed: its `client/v8 => ./client` becomes a requirement of client/v8 at
# the same version, and its pins of k8s.io/api, apimachinery, client-go... to v0.31.0 give way to the
# provisioner's graph (below). The provisioner v6.3.0 and resizer v2.2.0 are the releases for Kubernetes 1.34+,
# where VolumeAttributesClass is GA (storage.k8s.io/v1); both link the v0.36.1 client libraries.
PROVISIONER_VERSION = "v6.3.0"
PROVISIONER_MODULE = "github.com/kubernetes-csi/external-provisioner/v6"
PROVISIONER_STAGING_VERSION = "v0.36.1"
RESIZER_VERSION = "v2.2.0"
RESIZER_MODULE = "github.com/kubernetes-csi/external-resizer/v2"
SNAPSHOTTER_VERSION = "v8.2.0"
SNAPSHOTTER_MODULE = "github.com/kubernetes-csi/external-snapshotter/v8"
# A module of its own (client/go.mod): the snapshotter requires it as v8.0.0 and replaces it with ./client.
SNAPSHOTTER_CLIENT_MODULE = "github.com/kubernetes-csi/external-snapshotter/client/v8"


def sidecar_tool(
    name: str,
    module: str,
    version: str,
    *,
    go: str,
    requires: Sequence[tuple[str, str]] = (),
    replaces: Sequence[str] = (),
) -> Tool:
    go_mod_text = go_mod(f"localcsi.io/tools/{name}", go, [(module, version), *requires], replaces)
    return Tool(
        name=name,
        version=version,
        recipe=ModuleBuild(package=f"{module}/cmd/{name}", go_mod=go_mod_text),
        version_symbols=("main.version",),
        static=True,
    )


CSI_PROVISIONER = sidecar_tool(
    "csi-provisioner",
    PROVISIONER_MODULE,
    PROVISIONER_VERSION,
    go="1.26.0",
    replaces=staging_replaces(PROVISIONER_STAGING_VERSION),
)
# The resizer is built in the provisioner's module graph: requiring the provisioner's module (never linked)
# lifts every module both link (golang.org/x/net, grpc, otel...) to the provisioner's version, so Go's build
# cache, which keys a package by its dependencies' builds, already holds what the resizer compiles. From an
# empty cache, right after the provisioner: 26 s instead of 144 s (docs/testing.md, "Go tools").
CSI_RESIZER = sidecar_tool(
    "csi-resizer",
    RESIZER_MODULE,
    RESIZER_VERSION,
    go="1.26.0",
    requires=((PROVISIONER_MODULE, PROVISIONER_VERSION),),
    replaces=staging_replaces(PROVISIONER_STAGING_VERSION),
)
# The snapshotter too: in the provisioner's graph it links the v0.36.1 client libraries instead of its own
# v0.31.3, and compiles in 18 s instead of 80 s after the provisioner.
SNAPSHOTTER_REQUIRES = ((SNAPSHOTTER_CLIENT_MODULE, SNAPSHOTTER_VERSION), (PROVISIONER_MODULE, PROVISIONER_VERSION))
CSI_SNAPSHOTTER = sidecar_tool(
    "csi-snapshotter",
    SNAPSHOTTER_MODULE,
    SNAPSHOTTER_VERSION,
    go="1.26.0",
    requires=SNAPSHOTTER_REQUIRES,
    replaces=staging_replaces(PROVISIONER_STAGING_VERSION),
)
SNAPSHOT_CONTROLLER = sidecar_tool(
    "snapshot-controller",
    SNAPSHOTTER_MODULE,
    SNAPSHOTTER_VERSION,
    go="1.26.0",
    requires=SNAPSHOTTER_REQUIRES,
    replaces=staging_replaces(PROVISIONER_STAGING_VERSION),
)

SIDECAR_IMAGES: dict[str, str] = {
    tool.name: f"registry.k8s.io/sig-storage/{tool.name}:{tool.version}"
    for tool in (CSI_PROVISIONER, CSI_RESIZER, CSI_SNAPSHOTTER, SNAPSHOT_CONTROLLER)
}

HELM_VERSION = "v3.19.0"
HELM = Tool(
    name="helm",
    version=HELM_VERSION,
    recipe=GoInstall("helm.sh/helm/v3/cmd/helm"),
    # Unstamped, `helm version` prints only the minor line compiled in ("v3.19").
    version_symbols=("helm.sh/helm/v3/internal/version.version",),
    static=True,
)

TOOLS: dict[str, Tool] = {
    tool.name: tool
    for tool in (
        CSI_SANITY,
        ETCD,
        KUBE_APISERVER,
        KUBE_SCHEDULER,
        KUBELET,
        KUBE_CONTROLLER_MANAGER,
        CSI_PROVISIONER,
        CSI_RESIZER,
        CSI_SNAPSHOTTER,
        SNAPSHOT_CONTROLLER,
        HELM,
        PAUSE,
    )
}


class UnknownToolError(LookupError):
    pass


class ToolNotBuiltError(FileNotFoundError):
    pass


class GoModuleError(RuntimeError):
    pass


def go_module_dir(module: str, version: str) -> Path:
    """The module's source in the Go module cache, downloaded first when absent (read-only files)."""
    argv = ["go", "mod", "download", "-json", f"{module}@{version}"]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, check=False, env={**os.environ, "GOWORK": "off"})
    except FileNotFoundError:
        raise GoModuleError(f"go is not on PATH: install Go to download {module}@{version}") from None
    # With -json, go reports a failed download in the Error field of the JSON it prints.
    try:
        info = json.loads(result.stdout)
    except json.JSONDecodeError:
        info = {}
    if result.returncode != 0 or "Error" in info or "Dir" not in info:
        detail = info.get("Error") or result.stderr.strip() or result.stdout.strip()
        raise GoModuleError(f"`go mod download {module}@{version}` failed: {detail}")
    return Path(info["Dir"])


def find_tool(name: str) -> Tool:
    try:
        return TOOLS[name]
    except KeyError:
        raise UnknownToolError(f"unknown tool {name!r}; known tools: {', '.join(sorted(TOOLS))}") from None


def is_built(tool: Tool) -> bool:
    """An executable binary, built from the tool's current recipe."""
    if not (tool.binary.is_file() and os.access(tool.binary, os.X_OK)):
        return False
    try:
        return tool.recipe_file.read_text() == tool.recipe_text
    except OSError:
        return False


def tool_path(name: str) -> Path:
    """The cached binary of the pinned version; raises ToolNotBuiltError naming the build command."""
    tool = find_tool(name)
    if not is_built(tool):
        raise ToolNotBuiltError(
            f"{tool.name} {tool.version} is not built (no executable {tool.binary}, or one built from an older "
            f"recipe than {tool.recipe_file} should hold); "
            f"build it from the repository root with: {tool.build_command}"
        )
    return tool.binary
