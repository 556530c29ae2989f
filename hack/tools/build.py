#!/usr/bin/env python3
"""Build the Go tools the tests run into a versioned cache outside the repository.

    python hack/tools/build.py csi-sanity            build one tool; nothing to do when it is cached
    python hack/tools/build.py all                   build every registered tool
    python hack/tools/build.py --rebuild csi-sanity  build again even when it is cached

Versions and recipes live in src/localcsi/testing/tools.py. Each tool is built into
${LOCALCSI_CACHE:-~/.cache/localcsi}/tools/<name>-<version>/bin (through a staging directory, so an
interrupted build never looks cached); go's output goes to build.log beside it. GOPATH, GOMODCACHE
and GOCACHE keep their defaults: a warm module cache makes later builds fast. A lock file per tool
lets two build.py runs at once build each tool once: the second waits, then finds it cached.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import assert_never

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "src"))  # this checkout's registry, whether installed or not

from localcsi.testing.build_lock import build_lock  # noqa: E402
from localcsi.testing.tools import (  # noqa: E402
    TOOLS,
    CBuild,
    GoInstall,
    GoModuleError,
    ModuleBuild,
    Recipe,
    Tool,
    UnknownToolError,
    find_tool,
    go_module_dir,
    is_built,
)

GOFLAGS = "-trimpath"
LOG_TAIL_LINES = 40


class BuildError(RuntimeError):
    def __init__(self, message: str, log: Path | None = None) -> None:
        super().__init__(message)
        self.log = log


def go_env(tool: Tool, **overrides: str) -> dict[str, str]:
    """The caller's environment with fixed build flags and no go.work from the working directory."""
    cgo = {"CGO_ENABLED": "0"} if tool.static else {}
    return {**os.environ, "GOFLAGS": GOFLAGS, "GOWORK": "off", **cgo, **overrides}


def ldflags(tool: Tool) -> list[str]:
    """-s -w: no symbol table and no DWARF (test tools, never debugged here), which shortens every link
    (single-threaded, the tail of each build) and shrinks the binaries the VM images carry."""
    stamps = [f"-X {symbol}={tool.version}" for symbol in tool.version_symbols]
    return ["-ldflags=" + " ".join(["-s", "-w", *stamps])]


def run_logged(argv: list[str], cwd: Path, env: dict[str, str], log: Path, shown_env: Sequence[str] = ()) -> None:
    with log.open("a") as out:
        settings = "".join(f"{name}={env[name]} " for name in shown_env if name in env)
        out.write(f"$ {settings}{shlex.join(argv)}  # in {cwd}\n")
        out.flush()
        result = subprocess.run(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        raise BuildError(f"`{shlex.join(argv[:2])}` exited with code {result.returncode}", log)


def run_go(argv: list[str], cwd: Path, env: dict[str, str], log: Path) -> None:
    run_logged(argv, cwd, env, log, shown_env=("GOFLAGS", "CGO_ENABLED"))


def go_install(tool: Tool, recipe: GoInstall, out_dir: Path, log: Path) -> None:
    argv = ["go", "install", *ldflags(tool), f"{recipe.package}@{tool.version}"]
    run_go(argv, cwd=tool.directory, env=go_env(tool, GOBIN=str(out_dir)), log=log)


def module_build(tool: Tool, recipe: ModuleBuild, out_dir: Path, log: Path) -> None:
    module_dir = tool.directory / "module"
    shutil.rmtree(module_dir, ignore_errors=True)
    module_dir.mkdir()
    (module_dir / "go.mod").write_text(recipe.go_mod)
    argv = ["go", "build", "-mod=mod", *ldflags(tool), "-o", str(out_dir / tool.name), recipe.package]
    run_go(argv, cwd=module_dir, env=go_env(tool), log=log)


def c_build(tool: Tool, recipe: CBuild, out_dir: Path, log: Path) -> None:
    try:
        module_dir = go_module_dir(recipe.module, recipe.module_version)
    except GoModuleError as error:
        raise BuildError(str(error)) from None
    source = module_dir / recipe.source
    if not source.is_file():
        raise BuildError(f"{recipe.module}@{recipe.module_version} has no {recipe.source} (looked in {module_dir})")
    argv = ["gcc", *recipe.flags, "-o", str(out_dir / tool.name), str(source)]
    run_logged(argv, cwd=tool.directory, env=dict(os.environ), log=log)


def required_programs(recipe: Recipe) -> tuple[str, ...]:
    match recipe:
        case GoInstall() | ModuleBuild():
            return ("go",)
        case CBuild():
            return ("go", "gcc")  # go downloads the module that holds the C source
        case _:
            assert_never(recipe)


def build_tool(tool: Tool, rebuild: bool = False) -> str:
    """Build `tool` unless it is cached; returns "cached" or "built"."""
    if is_built(tool) and not rebuild:
        return "cached"
    for program in required_programs(tool.recipe):
        if shutil.which(program) is None:
            raise BuildError(f"{program} is not on PATH: install it to build {tool.name}")
    tool.directory.mkdir(parents=True, exist_ok=True)
    with build_lock(tool.directory / "build.lock"):
        # Another build.py may have built it while this one waited for the lock.
        if is_built(tool) and not rebuild:
            return "cached"
        build_unlocked(tool)
    return "built"


def build_unlocked(tool: Tool) -> None:
    log = tool.directory / "build.log"
    log.write_text("")
    staging = Path(tempfile.mkdtemp(prefix="bin.partial-", dir=tool.directory))
    try:
        match tool.recipe:
            case GoInstall():
                go_install(tool, tool.recipe, staging, log)
            case ModuleBuild():
                module_build(tool, tool.recipe, staging, log)
            case CBuild():
                c_build(tool, tool.recipe, staging, log)
            case _:
                assert_never(tool.recipe)
        if not (staging / tool.name).is_file():
            raise BuildError(f"the build succeeded but produced no {tool.name} in {staging}", log)
        (staging / tool.recipe_file.name).write_text(tool.recipe_text)
        staging.chmod(0o755)  # mkdtemp made it 0700; CI caches it as another user
        shutil.rmtree(tool.binary.parent, ignore_errors=True)
        staging.rename(tool.binary.parent)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def log_tail(log: Path) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:])


def selected_tools(names: Sequence[str]) -> list[Tool]:
    if "all" in names:
        return list(TOOLS.values())
    return [find_tool(name) for name in dict.fromkeys(names)]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Build the Go tools the tests run into a versioned cache.")
    parser.add_argument("tools", nargs="+", metavar="TOOL", help=f"all, or any of: {', '.join(TOOLS)}")
    parser.add_argument("--rebuild", action="store_true", help="build even when the binary is cached")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        tools = selected_tools(args.tools)
    except UnknownToolError as error:
        print(f"build.py: {error}", file=sys.stderr)
        return 2
    for tool in tools:
        start = time.monotonic()
        try:
            outcome = build_tool(tool, rebuild=args.rebuild)
        except BuildError as error:
            elapsed = time.monotonic() - start
            print(f"[tools] {tool.name} {tool.version}: FAILED ({elapsed:.1f}s): {error}", file=sys.stderr)
            if error.log is not None:
                print(f"--- last lines of {error.log}:\n{log_tail(error.log)}", file=sys.stderr)
            return 1
        elapsed = time.monotonic() - start
        print(f"[tools] {tool.name} {tool.version}: {outcome} ({elapsed:.1f}s) {tool.binary}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
