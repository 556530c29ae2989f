"""hack/demo_steps.py: the demo's progress lines and its closing table of steps and seconds."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytestmark = pytest.mark.unit

HACK = Path(__file__).resolve().parents[2] / "hack"


@pytest.fixture
def demo_steps(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location("demo_steps", HACK / "demo_steps.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "demo_steps", module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


class Clock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def lines() -> list[str]:
    return []


@pytest.fixture
def steps(demo_steps: ModuleType, clock: Clock, lines: list[str]) -> Any:
    return demo_steps.Steps(3, write=lines.append, clock=clock)


def test_a_step_prints_a_line_as_it_starts_and_one_with_its_time_and_detail_as_it_ends(
    steps: Any, clock: Clock, lines: list[str]
) -> None:
    with steps.step("VolumeSnapshot snap") as step:
        assert lines == ["[demo] [1/3] VolumeSnapshot snap ..."]
        clock.now += 4.25
        step.detail = "readyToUse"

    assert lines[1] == "[demo] [1/3] VolumeSnapshot snap: done in 4.2s (readyToUse)"
    assert (step.title, step.seconds, step.status) == ("VolumeSnapshot snap", 4.25, "ok")


def test_steps_are_numbered_in_order_and_a_step_without_detail_ends_plainly(
    steps: Any, clock: Clock, lines: list[str]
) -> None:
    for title in ("first", "second"):
        with steps.step(title):
            clock.now += 1

    assert lines == [
        "[demo] [1/3] first ...",
        "[demo] [1/3] first: done in 1.0s",
        "[demo] [2/3] second ...",
        "[demo] [2/3] second: done in 1.0s",
    ]
    assert [step.title for step in steps.steps] == ["first", "second"]


def test_a_failing_step_is_recorded_as_failed_with_its_time_and_the_error_goes_on(
    steps: Any, clock: Clock, lines: list[str]
) -> None:
    with pytest.raises(RuntimeError, match="no capacity"), steps.step("wait"):
        clock.now += 180
        raise RuntimeError("no capacity")

    (step,) = steps.steps
    assert (step.status, step.seconds) == ("FAILED", 180)
    assert lines[-1] == "[demo] [1/3] wait: FAILED after 180.0s"


def test_ctrl_c_in_a_step_is_recorded_as_interrupted(steps: Any, clock: Clock, lines: list[str]) -> None:
    with pytest.raises(KeyboardInterrupt), steps.step("boot"):
        clock.now += 2
        raise KeyboardInterrupt

    assert steps.steps[0].status == "interrupted"
    assert lines[-1] == "[demo] [1/3] boot: interrupted after 2.0s"


def test_the_table_lists_steps_with_their_parts_indented_under_them_and_the_total(demo_steps: ModuleType) -> None:
    step = demo_steps.Step
    table = demo_steps.summary_table(
        [
            step("boot the node", 95.04, "ok", parts=[("etcd", 1.2), ("helm install", 12.0)]),
            step("PVC data and a writer", 7.5, "ok", detail="not in the table"),
            step("restore", 3.0, "FAILED"),
        ]
    )

    assert table.splitlines() == [
        "step                      seconds  result",
        "------------------------  -------  ------",
        "1. boot the node             95.0  ok",
        "     etcd                     1.2",
        "     helm install            12.0",
        "2. PVC data and a writer      7.5  ok",
        "3. restore                    3.0  FAILED",
        "------------------------  -------  ------",
        "total                       105.5",
    ]


def test_the_total_counts_the_steps_not_their_parts_again(demo_steps: ModuleType) -> None:
    table = demo_steps.summary_table([demo_steps.Step("boot", 10.0, "ok", parts=[("vm", 6.0), ("helm", 4.0)])])

    assert table.splitlines()[-1].split() == ["total", "10.0"]


def test_an_empty_run_still_has_a_header_and_a_zero_total(demo_steps: ModuleType) -> None:
    lines = demo_steps.summary_table([]).splitlines()

    assert lines[0].split() == ["step", "seconds", "result"]
    assert lines[-1].split() == ["total", "0.0"]
