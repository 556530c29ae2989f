"""The e2e tests' pod workload: `python3 -m localcsi.testing.workload VERB ...` in the localcsi image.

A pod reports its result through its termination message (`/dev/termination-log`), which the kubelet
copies into the pod's status: tests read it from the Kubernetes API alone, with no exec or log access,
on the node VM and on kind alike.

    write PATH MIB       write MIB MiB of random data to PATH (a file, or a block device), fsync,
                         and report its sha256
    checksum PATH MIB    report the sha256 of the first MIB MiB of PATH
    hold                 sleep until terminated (a pod that keeps its volumes mounted)

The IO-limit test measures with fio instead, in an image of its own (localcsi.testing.fio).
"""

from __future__ import annotations

import hashlib
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

MIB = 1024 * 1024
TERMINATION_LOG = Path("/dev/termination-log")


def write(path: Path, mib: int) -> str:
    digest = hashlib.sha256()
    flags = os.O_WRONLY | (0 if path.is_block_device() else os.O_CREAT | os.O_TRUNC)
    fd = os.open(path, flags, 0o644)
    try:
        for _ in range(mib):
            chunk = os.urandom(MIB)
            digest.update(chunk)
            os.write(fd, chunk)
        os.fsync(fd)
    finally:
        os.close(fd)
    return digest.hexdigest()


def checksum(path: Path, mib: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        for _ in range(mib):
            chunk = source.read(MIB)
            if len(chunk) != MIB:
                raise SystemExit(f"{path}: short read, {len(chunk)} bytes where {MIB} were expected")
            digest.update(chunk)
    return digest.hexdigest()


def hold() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        time.sleep(3600)


def report(result: str) -> None:
    print(result, flush=True)
    if TERMINATION_LOG.parent.exists():
        TERMINATION_LOG.write_text(result)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    match args:
        case ["write", path, mib]:
            report(write(Path(path), int(mib)))
        case ["checksum", path, mib]:
            report(checksum(Path(path), int(mib)))
        case ["hold"]:
            hold()
        case _:
            print(__doc__, file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
