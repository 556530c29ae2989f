#!/usr/bin/env python3
"""Build the container images a node's containerd runs, as docker-archive tarballs, without a registry.

    python3 hack/images.py build              build what is missing; print each image's archive
    python3 hack/images.py build --rebuild    build every image again
    python3 hack/images.py context DIR        write site.tar.gz into DIR, the build context of
                                              images/localcsi/Containerfile for `docker build`

`build` needs root, buildah and debootstrap, and the Go tools of the sidecars and pause
(`python3 hack/tools/build.py all`). Archives go to ${LOCALCSI_CACHE:-~/.cache/localcsi}/images;
see docs/images.md.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "src"))  # this checkout's package, whether installed or not

from localcsi.testing.images import SITE_ARCHIVE, ImageBuildError, build_images  # noqa: E402
from localcsi.testing.install import build_site_tarball  # noqa: E402
from localcsi.testing.tools import ToolNotBuiltError  # noqa: E402


def build(rebuild: bool) -> int:
    start = time.monotonic()
    try:
        images = build_images(rebuild=rebuild)
    except (ImageBuildError, ToolNotBuiltError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for image in images:
        how = "cached" if image.seconds is None else f"built in {image.seconds:.1f}s"
        size = image.archive.stat().st_size / 2**20
        print(f"{image.ref}\t{image.archive}\t{size:.1f} MiB\t{how}")
    print(f"total {time.monotonic() - start:.1f}s")
    return 0


def context(directory: Path) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="localcsi-wheels-") as tmp:  # wheels and the unpacked site stay out
        shutil.move(build_site_tarball(Path(tmp)), directory / SITE_ARCHIVE)
    print(directory / SITE_ARCHIVE)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    build_parser = commands.add_parser("build", help="build the images that are missing")
    build_parser.add_argument("--rebuild", action="store_true", help="build every image again")
    context_parser = commands.add_parser("context", help="write the localcsi image's build context")
    context_parser.add_argument("directory", type=Path)
    args = parser.parse_args(argv)
    if args.command == "build":
        return build(args.rebuild)
    return context(args.directory)


if __name__ == "__main__":
    raise SystemExit(main())
