"""Direct-IO rates from inside a pod, for the IO-limit tests: what fio would report, with no fio.

    measure ROUNDS SECONDS [region=MIB] KIND:PATH...

PATH is a file on a filesystem volume or a block device. Each round measures every KIND:PATH for
SECONDS in turn, with O_DIRECT (the page cache would hide the device's throttle), at queue depth 1,
cycling over the first REGION bytes (2 MiB unless ``region=`` says otherwise):

    write-bps, read-bps          64 KiB operations, sequential; bytes per second
    write-iops, read-iops        4 KiB operations, sequential; operations per second
    randwrite-iops, randread-iops  4 KiB operations at random aligned offsets; operations per second
    seqwrite-1m, seqread-1m      1 MiB operations, sequential; bytes per second

The report is JSON: {"KIND:PATH": [rate per round, ...]}.
"""

from __future__ import annotations

import json
import mmap
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REGION = 2 * 1024 * 1024
KiB, MiB = 1024, 1024 * 1024


@dataclass(frozen=True)
class Kind:
    write: bool
    block: int
    random: bool = False
    bytes_per_second: bool = False


KINDS = {
    "write-bps": Kind(write=True, block=64 * KiB, bytes_per_second=True),
    "read-bps": Kind(write=False, block=64 * KiB, bytes_per_second=True),
    "write-iops": Kind(write=True, block=4 * KiB),
    "read-iops": Kind(write=False, block=4 * KiB),
    "randwrite-iops": Kind(write=True, block=4 * KiB, random=True),
    "randread-iops": Kind(write=False, block=4 * KiB, random=True),
    "seqwrite-1m": Kind(write=True, block=MiB, bytes_per_second=True),
    "seqread-1m": Kind(write=False, block=MiB, bytes_per_second=True),
}


def _open(path: Path, write: bool, region: int) -> int:
    if path.is_block_device():
        return os.open(path, (os.O_RDWR if write else os.O_RDONLY) | os.O_DIRECT)
    if not path.exists() or path.stat().st_size < region:
        _prepare(path, region)
    return os.open(path, (os.O_RDWR if write else os.O_RDONLY) | os.O_DIRECT)


def _prepare(path: Path, region: int) -> None:
    """A file of ``region`` bytes to read back (written once, outside any measurement)."""
    with path.open("wb") as file:
        for _ in range(0, region, MiB):
            file.write(os.urandom(min(MiB, region)))
        file.truncate(region)
        file.flush()
        os.fsync(file.fileno())


def rate(kind: str, path: Path, seconds: float, region: int = REGION) -> float:
    """Bytes or operations per second (as ``kind`` says) over ``seconds`` of back-to-back direct IO."""
    if kind not in KINDS:
        raise ValueError(f"{kind!r} is not one of {', '.join(KINDS)}")
    spec = KINDS[kind]
    slots = max(region // spec.block, 1)
    buffer = mmap.mmap(-1, spec.block)  # page-aligned, as O_DIRECT requires
    buffer.write(os.urandom(spec.block))
    fd = _open(path, spec.write, region)
    try:
        operations = 0
        start = time.monotonic()
        deadline = start + seconds
        while time.monotonic() < deadline:
            slot = random.randrange(slots) if spec.random else operations % slots  # noqa: S311 - offsets, not secrets
            if spec.write:
                os.pwrite(fd, buffer, slot * spec.block)
            else:
                os.preadv(fd, [buffer], slot * spec.block)
            operations += 1
        elapsed = time.monotonic() - start
        if spec.write:
            os.fsync(fd)
    finally:
        os.close(fd)
        buffer.close()
    return operations * (spec.block if spec.bytes_per_second else 1) / elapsed


def measure(rounds: int, seconds: float, specs: Sequence[str]) -> str:
    region = REGION
    measured = []
    for spec in specs:
        if spec.startswith("region="):
            region = int(spec.removeprefix("region=")) * MiB
        else:
            measured.append(spec)
    results: dict[str, list[float]] = {spec: [] for spec in measured}
    for _ in range(rounds):
        for spec in measured:
            kind, _, path = spec.partition(":")
            results[spec].append(round(rate(kind, Path(path), seconds, region), 1))
    return json.dumps(results)
