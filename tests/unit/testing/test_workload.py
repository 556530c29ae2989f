from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from localcsi.testing import workload
from localcsi.testing.workload import MIB, checksum, main, write


def test_write_reports_the_sha256_that_checksum_reads_back(tmp_path: Path) -> None:
    target = tmp_path / "payload"
    written = write(target, 2)
    assert target.stat().st_size == 2 * MIB
    assert written == hashlib.sha256(target.read_bytes()).hexdigest()
    assert checksum(target, 2) == written


def test_checksum_refuses_a_short_file(tmp_path: Path) -> None:
    target = tmp_path / "short"
    target.write_bytes(b"x" * 10)
    with pytest.raises(SystemExit, match="short read"):
        checksum(target, 1)


def test_main_writes_the_termination_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "termination-log"
    monkeypatch.setattr(workload, "TERMINATION_LOG", log)
    assert main(["write", str(tmp_path / "f"), "1"]) == 0
    assert log.read_text() == hashlib.sha256((tmp_path / "f").read_bytes()).hexdigest()


def test_main_refuses_an_unknown_verb() -> None:
    assert main(["format", "/dev/sda"]) == 2
