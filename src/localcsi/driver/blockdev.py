"""Block device work the controller needs on this node: wiping freed LVs and copying content.

Both open the target with O_EXCL, which the kernel refuses (EBUSY) while the device is mounted or
held by device-mapper, so a volume in use is never wiped or overwritten.

- ``wipe`` writes zeroes over the whole device with the BLKZEROOUT ioctl (offloaded as WRITE ZEROES
  where the device supports it, else the kernel writes zero pages), then discards it (best effort)
  so thin-provisioned or flash storage gets the space back. Zeroes are guaranteed; a discard alone
  is not, on many devices, a promise that old data reads back as zeroes.
- ``copy`` copies a point-in-time source device onto a new LV, zeroing runs of zero blocks instead
  of writing them, and logs its progress.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import struct
import time
from collections.abc import Callable, Iterator
from typing import Protocol

from localcsi.core.errors import FailedPrecondition, Internal
from localcsi.core.sizes import GiB, MiB, format_bytes

log = logging.getLogger(__name__)

# linux/fs.h
BLKGETSIZE64 = 0x80081272
BLKDISCARD = 0x1277
BLKZEROOUT = 0x127F
COPY_CHUNK = 4 * MiB
ZERO_STEP = GiB  # one BLKZEROOUT call at most: keeps a wipe interruptible and its progress visible
PROGRESS_SECONDS = 5.0


class BlockDevices(Protocol):
    def wipe(self, path: str) -> None:
        """Make every byte of the device read as zero; FAILED_PRECONDITION if it is in use."""
        ...

    def copy(self, source: str, target: str, size_bytes: int) -> None:
        """Copy the first ``size_bytes`` of source onto target and zero the rest of target."""
        ...


@contextlib.contextmanager
def _open(path: str, flags: int) -> Iterator[int]:
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            raise FailedPrecondition(
                f"{path} is in use (mounted or held by another device); unpublish it first"
            ) from None
        raise Internal(f"cannot open {path}: {exc.strerror}") from None
    try:
        yield fd
    finally:
        os.close(fd)


def _range(start: int, length: int) -> bytes:
    return struct.pack("QQ", start, length)


class _Progress:
    def __init__(self, what: str, total: int, clock: Callable[[], float]) -> None:
        self.what, self.total, self.clock = what, total, clock
        self.started = self.last = clock()

    def update(self, done: int) -> None:
        now = self.clock()
        if now - self.last >= PROGRESS_SECONDS:
            self.last = now
            log.info("%s: %s of %s (%d%%)", self.what, format_bytes(done), format_bytes(self.total),
                     100 * done // max(1, self.total))  # fmt: skip

    def finish(self) -> None:
        seconds = max(self.clock() - self.started, 1e-6)
        rate = self.total / seconds / MiB
        log.info("%s: done, %s in %.1fs (%.0f MiB/s)", self.what, format_bytes(self.total), seconds, rate)


class LocalBlockDevices:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock

    # The three ioctls, apart so tests can run the logic on plain files.
    def _size(self, fd: int) -> int:
        size: int = struct.unpack("Q", fcntl.ioctl(fd, BLKGETSIZE64, b"\0" * 8))[0]
        return size

    def _zero_range(self, fd: int, start: int, length: int) -> None:
        fcntl.ioctl(fd, BLKZEROOUT, _range(start, length))

    def _discard(self, fd: int, size: int) -> None:
        fcntl.ioctl(fd, BLKDISCARD, _range(0, size))

    def _zero(self, fd: int, start: int, end: int, progress: _Progress | None = None) -> None:
        position = start
        while position < end:
            length = min(ZERO_STEP, end - position)
            self._zero_range(fd, position, length)
            position += length
            if progress is not None:
                progress.update(position)

    def wipe(self, path: str) -> None:
        with _open(path, os.O_WRONLY | os.O_EXCL) as fd:
            size = self._size(fd)
            progress = _Progress(f"wipe {path}", size, self.clock)
            try:
                self._zero(fd, 0, size, progress)
            except OSError as exc:
                raise Internal(f"zeroing {path} failed: {exc.strerror}; the LV was kept, retry") from None
            with contextlib.suppress(OSError):  # not every device discards; the zeroes are what count
                self._discard(fd, size)
            os.fsync(fd)
            progress.finish()

    def zero_ends(self, path: str, length: int) -> None:
        """Zero the first and last ``length`` bytes of a device: its labels and partition tables."""
        with _open(path, os.O_WRONLY | os.O_EXCL) as fd:
            size = self._size(fd)
            head = min(length, size)
            try:
                self._zero_range(fd, 0, head)
                tail = min(length, size - head)
                if tail:
                    self._zero_range(fd, size - tail, tail)
            except OSError as exc:
                raise Internal(f"zeroing the ends of {path} failed: {exc.strerror}; retry") from None
            os.fsync(fd)

    def copy(self, source: str, target: str, size_bytes: int) -> None:
        with _open(source, os.O_RDONLY) as src, _open(target, os.O_WRONLY | os.O_EXCL) as dst:
            target_size = self._size(dst)
            length = min(size_bytes, self._size(src))
            if length > target_size:
                raise Internal(f"{target} ({target_size} bytes) is smaller than the {length} bytes to copy")
            progress = _Progress(f"copy {source} -> {target}", length, self.clock)
            try:
                self._copy(src, dst, length, progress)
                self._zero(dst, length, target_size)
                os.fsync(dst)
            except OSError as exc:
                raise Internal(
                    f"copying {source} to {target} failed: {exc.strerror}; nothing was presented as "
                    "ready, retry (a thick source written heavily meanwhile can overflow the copy's "
                    "temporary snapshot)"
                ) from None
            progress.finish()

    def _copy(self, src: int, dst: int, length: int, progress: _Progress) -> None:
        buffer = bytearray(COPY_CHUNK)
        view = memoryview(buffer)
        zeros = bytes(COPY_CHUNK)
        zero_start: int | None = None  # a run of zero chunks waiting to be zeroed in one call
        position = 0
        while position < length:
            want = min(COPY_CHUNK, length - position)
            got = os.preadv(src, [view[:want]], position)
            if got != want:
                raise OSError(errno.EIO, f"short read at {position}: {got} of {want} bytes")
            if view[:want] == zeros[:want]:
                zero_start = position if zero_start is None else zero_start
            else:
                if zero_start is not None:
                    self._zero(dst, zero_start, position)
                    zero_start = None
                written = os.pwritev(dst, [view[:want]], position)
                if written != want:
                    raise OSError(errno.EIO, f"short write at {position}: {written} of {want} bytes")
            position += want
            progress.update(position)
        if zero_start is not None:
            self._zero(dst, zero_start, length)
