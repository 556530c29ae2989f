"""Step bookkeeping for hack/demo.py: a progress line when a step starts and one when it ends, and
the closing table of steps and their seconds. Pure: the clock and the output are passed in."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

PREFIX = "[demo]"
OK, FAILED, INTERRUPTED = "ok", "FAILED", "interrupted"


@dataclass
class Step:
    title: str
    seconds: float = 0.0
    status: str = "running"
    detail: str = ""  # one line the step sets for its end line, e.g. a checksum
    # Named parts of the step and their seconds (the environment's phases), shown under it in the table.
    parts: list[tuple[str, float]] = field(default_factory=list)


class Steps:
    def __init__(
        self,
        total: int,
        write: Callable[[str], None] = print,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.steps: list[Step] = []
        self._write = write
        self._clock = clock

    @contextmanager
    def step(self, title: str) -> Iterator[Step]:
        """Time the block as one step: print a line as it starts, and one as it ends or fails."""
        record = Step(title)
        self.steps.append(record)
        label = f"{PREFIX} [{len(self.steps)}/{self.total}] {title}"
        self._write(f"{label} ...")
        start = self._clock()
        try:
            yield record
        except BaseException as error:
            record.seconds = self._clock() - start
            interrupted = isinstance(error, KeyboardInterrupt)
            record.status = INTERRUPTED if interrupted else FAILED
            self._write(f"{label}: {record.status} after {record.seconds:.1f}s")
            raise
        record.seconds = self._clock() - start
        record.status = OK
        detail = f" ({record.detail})" if record.detail else ""
        self._write(f"{label}: done in {record.seconds:.1f}s{detail}")


def summary_table(steps: Sequence[Step]) -> str:
    """Steps, their parts indented below them, and the total of the steps' seconds."""
    header = ("step", "seconds", "result")
    rows: list[tuple[str, str, str]] = []
    for number, step in enumerate(steps, start=1):
        rows.append((f"{number}. {step.title}", f"{step.seconds:.1f}", step.status))
        rows.extend((f"     {name}", f"{seconds:.1f}", "") for name, seconds in step.parts)
    total = ("total", f"{sum(step.seconds for step in steps):.1f}", "")
    widths = [max(len(row[column]) for row in (header, *rows, total)) for column in range(3)]
    rule = "  ".join("-" * width for width in widths)

    def line(row: tuple[str, str, str]) -> str:
        name, seconds, result = row
        return f"{name.ljust(widths[0])}  {seconds.rjust(widths[1])}  {result}".rstrip()

    return "\n".join([line(header), rule, *map(line, rows), rule, line(total)])
