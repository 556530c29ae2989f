import json
from pathlib import Path

import pytest

from localcsi.testing import io_rate
from localcsi.testing.workload import main

pytestmark = pytest.mark.unit


def test_measure_reports_a_positive_rate_per_round_for_each_spec(tmp_path: Path) -> None:
    target = tmp_path / "rate"
    report = json.loads(io_rate.measure(2, 0.05, [f"write-bps:{target}", f"read-iops:{target}"]))
    assert set(report) == {f"write-bps:{target}", f"read-iops:{target}"}
    assert all(len(rates) == 2 and all(rate > 0 for rate in rates) for rates in report.values())
    assert target.stat().st_size == io_rate.REGION, "IO cycles over one region, never grows the file"


def test_an_unknown_kind_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="write-mbps"):
        io_rate.rate("write-mbps", tmp_path / "x", 0.01)


def test_the_workload_verb_needs_at_least_one_spec(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["measure", "1", "0.1"]) == 2
    assert "measure ROUNDS SECONDS" in capsys.readouterr().err


def test_every_kind_runs_and_region_sets_the_file_size(tmp_path: Path) -> None:
    target = tmp_path / "rate"
    specs = [f"{kind}:{target}" for kind in io_rate.KINDS]
    report = json.loads(io_rate.measure(1, 0.02, ["region=4", *specs]))
    assert list(report) == specs, "region= is a setting, not a measurement"
    assert all(rates[0] > 0 for rates in report.values())
    assert target.stat().st_size == 4 * io_rate.MiB
