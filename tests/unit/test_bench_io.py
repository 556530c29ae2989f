"""The pure part of benchmarks/bench_io.py: medians and ratios. The benchmark itself needs the node VM."""

from __future__ import annotations

import pytest

from localcsi.testing.install import load_project_script

BENCH = load_project_script("benchmarks/bench_io.py")

pytestmark = pytest.mark.unit


def test_ratios_are_localcsi_medians_over_bare_medians() -> None:
    bare = {kind: [100.0, 300.0, 200.0] for kind in BENCH.KINDS}
    csi = {kind: [190.0, 10.0, 1000.0] for kind in BENCH.KINDS}
    table = BENCH.ratios(bare, csi)
    assert set(table) == set(BENCH.KINDS)
    assert table["randread-iops"] == {"bare": 200.0, "localcsi": 190.0, "ratio": pytest.approx(0.95)}


def test_fio_jobs_and_results() -> None:
    argv = BENCH.fio_argv("randwrite-iops", "/mnt/x", 5.0)
    assert argv[0] == "fio" and "--rw=randwrite" in argv and "--bs=4k" in argv and "--direct=1" in argv
    assert "--filename=/mnt/x/bench" in argv and f"--iodepth={BENCH.IODEPTH}" in argv
    report = {"jobs": [{"read": {"iops": 10.0, "bw_bytes": 5}, "write": {"iops": 123.5, "bw_bytes": 7}}]}
    assert BENCH.fio_result("randwrite-iops", report) == 123.5
    assert BENCH.fio_result("seqread-1m", report) == 5.0
