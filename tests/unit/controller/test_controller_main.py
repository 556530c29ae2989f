"""The storage controller's work loop: another pass on a change, and a prompt stop when leadership
ends (or shutdown begins), whichever wait it is in."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

from localcsi.controller import main
from localcsi.controller.reconciler import Outcome
from localcsi.k8s.informer import ListFn, WatchFn
from localcsi.k8s.kubeconfig import ClusterConfig
from localcsi.k8s.resources import WatchEvent
from localcsi.k8s.rest import KubeApi

pytestmark = pytest.mark.unit

NODE = {"metadata": {"name": "node-1", "resourceVersion": "2"}}


class Apiserver:
    """Every kind lists empty; watches wait until ``stop``, the node watch shows a node after ``poke``."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.poke = threading.Event()

    def source(self, *_args: Any, **_kwargs: Any) -> tuple[ListFn, WatchFn]:
        def watch(_version: str, _timeout: int) -> Iterator[WatchEvent]:
            while not self.stop.wait(0.02):
                if self.poke.is_set():
                    self.poke.clear()
                    return iter([WatchEvent("ADDED", NODE)])
            return iter(())

        return (lambda: ([], "1")), watch


@pytest.fixture
def apiserver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Apiserver]:
    fake = Apiserver()
    monkeypatch.setattr(main, "builtin_source", fake.source)
    monkeypatch.setattr(main, "custom_source", fake.source)
    yield fake
    fake.stop.set()


def controller(monkeypatch: pytest.MonkeyPatch, passes: list[int]) -> main.Controller:
    # the client is never called (the sources are the fake's); the reconciler's pass is a stand-in that counts
    subject = main.Controller(KubeApi(ClusterConfig("http://127.0.0.1:1")), "init-config", 3600, "test-replica")

    def reconcile(*_caches: Mapping[str, Any], **_: Any) -> Outcome:
        passes.append(len(passes) + 1)
        return Outcome()

    monkeypatch.setattr(subject.reconciler, "reconcile", reconcile)
    return subject


def until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def seconds_to_stop(work: Callable[[], None], leading: threading.Event) -> float:
    thread = threading.Thread(target=work)
    thread.start()
    time.sleep(0.3)  # well inside the wait
    asked = time.monotonic()
    leading.clear()
    thread.join(5)
    assert not thread.is_alive()
    return time.monotonic() - asked


def test_work_stops_while_waiting_for_caches_that_never_sync(
    apiserver: Apiserver, monkeypatch: pytest.MonkeyPatch
) -> None:
    passes: list[int] = []
    subject = controller(monkeypatch, passes)  # informers never started: never synced
    leading = threading.Event()
    leading.set()
    assert seconds_to_stop(lambda: subject.work(leading.is_set), leading) < 0.5
    assert passes == []


def test_work_stops_in_the_middle_of_an_hour_long_resync_wait(
    apiserver: Apiserver, monkeypatch: pytest.MonkeyPatch
) -> None:
    passes: list[int] = []
    subject = controller(monkeypatch, passes)
    subject.start_informers(apiserver.stop.is_set)
    leading = threading.Event()
    leading.set()
    assert seconds_to_stop(lambda: subject.work(leading.is_set), leading) < 0.3
    assert passes == [1]


def test_a_change_ends_the_wait_with_another_pass(apiserver: Apiserver, monkeypatch: pytest.MonkeyPatch) -> None:
    passes: list[int] = []
    subject = controller(monkeypatch, passes)
    subject.start_informers(apiserver.stop.is_set)
    leading = threading.Event()
    leading.set()
    worker = threading.Thread(target=subject.work, args=(leading.is_set,))
    worker.start()
    try:
        until(lambda: passes == [1])
        apiserver.poke.set()  # a node appears
        until(lambda: passes == [1, 2])
    finally:
        leading.clear()
        worker.join(5)
    assert not worker.is_alive()
