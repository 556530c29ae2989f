"""Wipe and copy logic on plain files; the block-device ioctls themselves run in the node tier."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from localcsi.core.errors import FailedPrecondition, Internal
from localcsi.core.sizes import MiB
from localcsi.driver import blockdev
from localcsi.driver.blockdev import COPY_CHUNK, LocalBlockDevices

pytestmark = pytest.mark.unit


class FileDevices(LocalBlockDevices):
    """The real logic, with the three ioctls done the plain-file way; records what was zeroed."""

    def __init__(self) -> None:
        self.ticks = 0.0
        super().__init__(clock=self.tick)
        self.zeroed: list[tuple[int, int]] = []
        self.discarded: list[int] = []

    def tick(self) -> float:
        self.ticks += 3.0
        return self.ticks

    def _size(self, fd: int) -> int:
        return os.fstat(fd).st_size

    def _zero_range(self, fd: int, start: int, length: int) -> None:
        self.zeroed.append((start, length))
        os.pwrite(fd, bytes(length), start)

    def _discard(self, fd: int, size: int) -> None:
        self.discarded.append(size)


def device(path: Path, content: bytes) -> str:
    path.write_bytes(content)
    return str(path)


def test_wipe_zeroes_every_byte_and_discards(tmp_path: Path) -> None:
    path = device(tmp_path / "lv", os.urandom(3 * MiB))
    devices = FileDevices()
    devices.wipe(path)
    assert Path(path).read_bytes() == bytes(3 * MiB)
    assert devices.discarded == [3 * MiB]


def test_copy_writes_data_zeroes_zero_runs_and_the_tail(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = os.urandom(COPY_CHUNK) + bytes(2 * COPY_CHUNK) + os.urandom(COPY_CHUNK // 2)
    source = device(tmp_path / "snap", data + os.urandom(MiB))  # longer than what is copied
    target = device(tmp_path / "new", os.urandom(len(data) + 2 * MiB))  # old garbage everywhere
    devices = FileDevices()
    with caplog.at_level(logging.INFO, logger=blockdev.__name__):
        devices.copy(source, target, len(data))
    assert Path(target).read_bytes() == data + bytes(2 * MiB), "the copy, then zeroes to the end"
    assert devices.zeroed == [(COPY_CHUNK, 2 * COPY_CHUNK), (len(data), 2 * MiB)], "zero runs are zeroed"
    assert any("copy" in message and "%" in message for message in caplog.messages), "progress is logged"
    assert any("done" in message for message in caplog.messages)


def test_copy_refuses_a_target_too_small(tmp_path: Path) -> None:
    source = device(tmp_path / "snap", bytes(2 * MiB))
    target = device(tmp_path / "new", bytes(MiB))
    with pytest.raises(Internal, match="smaller"):
        FileDevices().copy(source, target, 2 * MiB)


def test_a_short_read_fails_the_copy(tmp_path: Path) -> None:
    source = device(tmp_path / "snap", bytes(MiB))
    target = device(tmp_path / "new", bytes(4 * MiB))

    class Truncated(FileDevices):
        def _size(self, fd: int) -> int:
            return 4 * MiB  # claims more than the file holds, like an overflowed snapshot failing reads

    with pytest.raises(Internal, match="short read"):
        Truncated().copy(source, target, 4 * MiB)


def test_a_busy_device_is_a_failed_precondition(monkeypatch: pytest.MonkeyPatch) -> None:
    def busy(path: str, flags: int) -> int:
        raise OSError(16, "Device or resource busy")

    monkeypatch.setattr(os, "open", busy)
    with pytest.raises(FailedPrecondition, match="unpublish"):
        FileDevices().wipe("/dev/vg/lv")


def test_a_missing_device_is_internal(tmp_path: Path) -> None:
    with pytest.raises(Internal, match="cannot open"):
        FileDevices().wipe(str(tmp_path / "absent"))
