"""fio inside a pod, for the IO-limit tests: the argv of one fio run of every round, and its JSON parsed.

One fio process runs every round: each round measures every KIND:PATH in turn, one job each, for
SECONDS (`--time_based --runtime`), each job a `stonewall` so that none starts before the previous
one ends. Every job does direct IO (`--direct=1`: the page cache would hide the device's throttle)
with the psync engine at queue depth 1, over the first REGION bytes of PATH (`--size`), a file on a
filesystem volume (fio lays it out before the job's clock starts) or a block device:

    write-bps, read-bps      64 KiB operations, sequential; bytes per second (`bw_bytes`)
    write-iops, read-iops    4 KiB operations, sequential; operations per second (`iops`)

fio prints one JSON document (`--output-format=json`), to standard output or, given `output`, to that
file (`--output`); its `jobs` array holds one entry per job, in the order the jobs ran, with the job's
`jobname`, `error` and its `read` and `write` statistics.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

REGION = "2M"
FIO_BINARY = "fio"


@dataclass(frozen=True)
class FioKind:
    rw: str  # fio's `rw`: read or write, sequential
    block_size: str  # fio's `bs`
    statistic: str  # the field of the job's `read` or `write` object: `bw_bytes` or `iops`

    @property
    def direction(self) -> str:
        return "write" if self.rw == "write" else "read"


KINDS = {
    "write-bps": FioKind(rw="write", block_size="64k", statistic="bw_bytes"),
    "read-bps": FioKind(rw="read", block_size="64k", statistic="bw_bytes"),
    "write-iops": FioKind(rw="write", block_size="4k", statistic="iops"),
    "read-iops": FioKind(rw="read", block_size="4k", statistic="iops"),
}


class FioOutputError(ValueError):
    pass


def job_name(round_index: int, kind: str) -> str:
    return f"round{round_index}-{kind}"


def fio_argv(
    rounds: int, seconds: int, specs: Sequence[tuple[str, str]], region: str = REGION, output: str | None = None
) -> list[str]:
    """fio's argv: `specs` are (KIND, PATH) pairs, measured in this order in each of `rounds` rounds; the
    JSON goes to `output` when given, else to standard output."""
    for kind, _ in specs:
        if kind not in KINDS:
            raise ValueError(f"{kind!r} is not one of {', '.join(KINDS)}")
    argv = [FIO_BINARY, "--output-format=json", "--eta=never"]
    if output is not None:
        argv.append(f"--output={output}")
    # Options before the first --name are global: they apply to every job.
    argv += ["--direct=1", "--ioengine=psync", "--iodepth=1", "--time_based=1", f"--runtime={seconds}s"]
    argv += [f"--size={region}"]
    for round_index in range(rounds):
        for kind, path in specs:
            spec = KINDS[kind]
            argv += [f"--name={job_name(round_index, kind)}", f"--filename={path}"]
            argv += [f"--rw={spec.rw}", f"--bs={spec.block_size}", "--stonewall"]
    return argv


def fio_document(output: str) -> dict[str, Any]:
    """The JSON document in fio's output; anything fio or the runtime printed around it is skipped."""
    start = output.find("{")
    if start < 0:
        raise FioOutputError(f"no JSON document in fio's output: {output[-2000:]!r}")
    try:
        document, _ = json.JSONDecoder().raw_decode(output, start)
    except json.JSONDecodeError as error:
        raise FioOutputError(f"fio's JSON does not parse ({error}): {output[-2000:]!r}") from None
    if not isinstance(document, dict) or not isinstance(document.get("jobs"), list):
        raise FioOutputError(f"fio's JSON has no jobs array: {output[-2000:]!r}")
    return document


def rates(output: str, rounds: int, kinds: Sequence[str]) -> dict[str, list[float]]:
    """KIND -> its rate in each round (bytes or operations per second), from fio's JSON output."""
    jobs = {job["jobname"]: job for job in fio_document(output)["jobs"]}
    measured: dict[str, list[float]] = {kind: [] for kind in kinds}
    for round_index in range(rounds):
        for kind in kinds:
            name = job_name(round_index, kind)
            job = jobs.get(name)
            if job is None:
                raise FioOutputError(f"fio reported no job {name}; it reported {sorted(jobs)}")
            if job.get("error"):
                raise FioOutputError(f"fio job {name} failed with error {job['error']}")
            spec = KINDS[kind]
            measured[kind].append(round(float(job[spec.direction][spec.statistic]), 1))
    return measured
