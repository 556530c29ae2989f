"""Direct-IO rates from inside a pod, for the IO-limit tests: what fio would report, with no fio.

    measure ROUNDS SECONDS KIND:PATH...

KIND is write-bps, read-bps, write-iops or read-iops; PATH a file on a filesystem volume or a block
device. Each round measures every KIND:PATH for SECONDS in turn, with O_DIRECT (the page cache would
hide the device's throttle): 64 KiB operations for bytes per second, 4 KiB for operations per second,
cycling over the first REGION bytes. The report is JSON: {"KIND:PATH": [rate per round, ...]}.
"""

from __future__ import annotations

import json
import mmap
import os
import time
from collections.abc import Sequence
from pathlib import Path

REGION = 2 * 1024 * 1024
BLOCK = {"bps": 64 * 1024, "iops": 4096}
KINDS = ("write-bps", "read-bps", "write-iops", "read-iops")


def _open(path: Path, write: bool) -> int:
    if path.is_block_device():
        return os.open(path, (os.O_RDWR if write else os.O_RDONLY) | os.O_DIRECT)
    if not path.exists() or path.stat().st_size < REGION:
        _prepare(path)
    return os.open(path, (os.O_RDWR if write else os.O_RDONLY) | os.O_DIRECT)


def _prepare(path: Path) -> None:
    """A file of REGION bytes to read back (written once, outside any measurement)."""
    with path.open("wb") as file:
        file.write(os.urandom(REGION))
        file.flush()
        os.fsync(file.fileno())


def rate(kind: str, path: Path, seconds: float) -> float:
    """Bytes (bps) or operations (iops) per second over ``seconds`` of back-to-back direct IO."""
    direction, _, unit = kind.partition("-")
    if kind not in KINDS:
        raise ValueError(f"{kind!r} is not one of {', '.join(KINDS)}")
    size = BLOCK[unit]
    buffer = mmap.mmap(-1, size)  # page-aligned, as O_DIRECT requires
    buffer.write(os.urandom(size))
    fd = _open(path, direction == "write")
    try:
        operations, offset = 0, 0
        start = time.monotonic()
        deadline = start + seconds
        while time.monotonic() < deadline:
            if direction == "write":
                os.pwrite(fd, buffer, offset)
            else:
                os.preadv(fd, [buffer], offset)
            operations += 1
            offset = (offset + size) % REGION
        elapsed = time.monotonic() - start
        if direction == "write":
            os.fsync(fd)
    finally:
        os.close(fd)
        buffer.close()
    return operations * (size if unit == "bps" else 1) / elapsed


def measure(rounds: int, seconds: float, specs: Sequence[str]) -> str:
    results: dict[str, list[float]] = {spec: [] for spec in specs}
    for _ in range(rounds):
        for spec in specs:
            kind, _, path = spec.partition(":")
            results[spec].append(round(rate(kind, Path(path), seconds), 1))
    return json.dumps(results)
