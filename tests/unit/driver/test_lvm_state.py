"""StateView's reads: on its one reader thread whoever asks, the heap trimmed after each, failures
passed to the caller. (What the view keeps and folds in: test_local_backend.py.)"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from localcsi.core.errors import Internal
from localcsi.driver import lvm_state
from localcsi.driver.lvm_state import READER_THREAD, StateView
from localcsi.lvm.lvm import LvmState
from localcsi.testing.fake_lvm import FakeLvm, vg

pytestmark = pytest.mark.unit


class ThreadRecordingLvm(FakeLvm):
    def __init__(self) -> None:
        super().__init__(vg("localcsi-a"), vg("other"))
        self.threads: set[str] = set()
        self.failure: Exception | None = None

    def state(self, vg: str | None = None) -> LvmState:
        self.threads.add(threading.current_thread().name)
        if self.failure is not None:
            raise self.failure
        return super().state(vg)


@pytest.fixture
def trims(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    done: list[int] = []

    def trim() -> bool:
        done.append(1)
        return True

    monkeypatch.setattr(lvm_state, "trim_heap", trim)
    return done


def test_every_read_runs_on_the_one_reader_thread_and_trims_the_heap(trims: list[int]) -> None:
    lvm = ThreadRecordingLvm()
    view = StateView(lvm, lambda name: name.startswith("localcsi-"), max_age=0)
    with ThreadPoolExecutor(4, thread_name_prefix="caller") as callers:
        states = list(callers.map(lambda _: view.read(), range(8)))
    assert [group.name for group in states[0].vgs] == ["localcsi-a"], "still filtered to the allowed VGs"
    assert len(lvm.threads) == 1 and next(iter(lvm.threads)).startswith(READER_THREAD), lvm.threads
    assert lvm.state_reads == len(trims) == 8


def test_a_failed_read_reaches_its_caller(trims: list[int]) -> None:
    lvm = ThreadRecordingLvm()
    lvm.failure = Internal("lvm fullreport failed")
    view = StateView(lvm, lambda _: True, max_age=60)
    with pytest.raises(Internal, match="fullreport failed"):
        view.current()
    lvm.failure = None
    assert view.current().vgs, "nothing was kept from the failed read: the next caller reads again"
    assert len(lvm.threads) == 1
