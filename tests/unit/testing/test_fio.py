"""The e2e IO tests' fio: its argv, and its JSON read back (a real fio 3.33 output, Debian bookworm's)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from localcsi.testing.fio import FioOutputError, fio_argv, rates

pytestmark = pytest.mark.unit

# `fio_argv(1, 1, [("write-bps", "/tmp/fio-t"), ("read-iops", "/tmp/fio-t")])`, as fio 3.33 printed it.
SAMPLE = (Path(__file__).parent / "data" / "fio-3.33-two-jobs.json").read_text()


def test_global_options_come_before_the_first_job_and_every_job_waits_for_the_previous_one() -> None:
    argv = fio_argv(2, 3, [("write-bps", "/data0/rate"), ("read-iops", "/dev/xvda")])
    first_job = argv.index("--name=round0-write-bps")
    assert argv[:first_job] == [
        "fio", "--output-format=json", "--eta=never",
        "--direct=1", "--ioengine=psync", "--iodepth=1", "--time_based=1", "--runtime=3s", "--size=2M",
    ]  # fmt: skip
    assert argv[first_job:first_job + 10] == [
        "--name=round0-write-bps", "--filename=/data0/rate", "--rw=write", "--bs=64k", "--stonewall",
        "--name=round0-read-iops", "--filename=/dev/xvda", "--rw=read", "--bs=4k", "--stonewall",
    ]  # fmt: skip
    names = [arg.removeprefix("--name=") for arg in argv if arg.startswith("--name=")]
    assert names == ["round0-write-bps", "round0-read-iops", "round1-write-bps", "round1-read-iops"]
    assert argv.count("--stonewall") == 4


def test_an_output_file_is_a_global_option_and_standard_output_is_the_default() -> None:
    to_file = fio_argv(1, 1, [("write-bps", "/data0/rate")], output="/out/fio.json")
    assert to_file.index("--output=/out/fio.json") < to_file.index("--name=round0-write-bps")
    assert not [arg for arg in fio_argv(1, 1, [("write-bps", "/data0/rate")]) if arg.startswith("--output=")]


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="'randrw-bps' is not one of"):
        fio_argv(1, 1, [("randrw-bps", "/dev/xvda")])


def test_rates_take_bytes_per_second_or_iops_from_the_direction_of_each_job() -> None:
    jobs = {job["jobname"]: job for job in json.loads(SAMPLE)["jobs"]}
    measured = rates(SAMPLE, 1, ["write-bps", "read-iops"])
    assert measured == {
        "write-bps": [round(float(jobs["round0-write-bps"]["write"]["bw_bytes"]), 1)],
        "read-iops": [round(jobs["round0-read-iops"]["read"]["iops"], 1)],
    }
    assert measured["write-bps"][0] > 0 and measured["read-iops"][0] > 0


def test_text_around_the_json_document_is_skipped() -> None:
    noisy = "fio: note: both iodepth >= 1 and synchronous I/O engine are selected\n" + SAMPLE + "\nbye\n"
    assert rates(noisy, 1, ["write-bps"]) == rates(SAMPLE, 1, ["write-bps"])


def test_a_missing_job_a_failed_job_or_no_json_is_an_error_that_shows_what_fio_said() -> None:
    with pytest.raises(FioOutputError, match="no job round1-write-bps"):
        rates(SAMPLE, 2, ["write-bps"])
    document = json.loads(SAMPLE)
    document["jobs"][0]["error"] = 5
    with pytest.raises(FioOutputError, match="round0-write-bps failed with error 5"):
        rates(json.dumps(document), 1, ["write-bps"])
    with pytest.raises(FioOutputError, match="no JSON document in fio's output: 'fio: cannot open'"):
        rates("fio: cannot open", 1, ["write-bps"])
    with pytest.raises(FioOutputError, match="does not parse"):
        rates('{"jobs": [', 1, ["write-bps"])
