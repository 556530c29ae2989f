"""The informer's cache and handlers over scripted list and watch calls."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import urllib3

from localcsi.k8s.errors import Gone, KubeError
from localcsi.k8s.informer import HEALTHY_SECONDS, Backoff, Informer, object_key
from localcsi.k8s.resources import WatchEvent


def obj(name: str, rv: str, namespace: str | None = None, **spec: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "resourceVersion": rv}
    if namespace:
        meta["namespace"] = namespace
    return {"metadata": meta, "spec": spec}


class Script:
    """Lists and watch streams served in order; the informer stops once the script is used up."""

    def __init__(self, lists: list[tuple[list[dict[str, Any]], str]], watches: list[list[WatchEvent] | Exception]):
        self.lists = lists
        self.watches = watches
        self.watch_versions: list[str] = []
        self.done = threading.Event()

    def list_fn(self) -> tuple[list[dict[str, Any]], str]:
        return self.lists.pop(0)

    def watch_fn(self, resource_version: str, _timeout: int) -> Iterator[WatchEvent]:
        self.watch_versions.append(resource_version)
        if not self.watches:
            self.done.set()
            return iter(())
        step = self.watches.pop(0)
        if isinstance(step, Exception):
            raise step
        return iter(step)


def informer_of(script: Script, **options: Any) -> Informer:
    return Informer(script.list_fn, script.watch_fn, backoff=options.pop("backoff", Backoff(0.001, 0.004)), **options)


def run(informer: Informer, script: Script) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    informer.add_handler(lambda kind, o: seen.append((kind, o["metadata"]["name"])))
    informer.run(should_exit=script.done.is_set)
    return seen


def test_list_then_watch_keeps_the_cache_and_tells_handlers() -> None:
    script = Script(
        lists=[([obj("a", "1"), obj("b", "2")], "10")],
        watches=[
            [
                WatchEvent("MODIFIED", obj("a", "11", size=2)),
                WatchEvent("DELETED", obj("b", "12")),
                WatchEvent("BOOKMARK", {"metadata": {"resourceVersion": "13"}}),
                WatchEvent("ADDED", obj("c", "14")),
            ]
        ],
    )
    informer = informer_of(script)
    seen = run(informer, script)
    assert seen == [("ADDED", "a"), ("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b"), ("ADDED", "c")]
    assert sorted(informer.cache()) == ["a", "c"]
    assert informer.cache()["a"]["spec"] == {"size": 2}
    assert script.watch_versions == ["10", "14"]  # the second watch resumes after the last event
    assert informer.wait_synced(0)


def test_an_expired_watch_relists_and_reports_what_changed_meanwhile() -> None:
    script = Script(
        lists=[([obj("a", "1"), obj("b", "2")], "10"), ([obj("a", "1"), obj("c", "30")], "31")],
        watches=[Gone(410, "Expired", "too old resource version"), []],
    )
    informer = informer_of(script)
    seen = run(informer, script)
    # a is unchanged across the relist: no event for it; b vanished; c appeared
    assert seen == [("ADDED", "a"), ("ADDED", "b"), ("DELETED", "b"), ("ADDED", "c")]
    assert sorted(informer.cache()) == ["a", "c"]
    assert script.watch_versions[:2] == ["10", "31"]


def test_a_failing_handler_does_not_stop_the_others() -> None:
    script = Script(lists=[([obj("a", "1")], "5")], watches=[])
    informer = informer_of(script)

    def broken(_kind: str, _obj: dict[str, Any]) -> None:
        raise RuntimeError("handler bug")

    informer.add_handler(broken)
    assert run(informer, script) == [("ADDED", "a")]


def test_namespaced_objects_are_keyed_by_namespace_and_name() -> None:
    assert object_key(obj("pvc-1", "1", namespace="team")) == "team/pvc-1"
    assert object_key(obj("node-1", "1")) == "node-1"


def test_a_relist_reports_as_client_go_does_by_resource_version() -> None:
    first = [obj("same", "1"), obj("bumped", "2"), obj("gone", "3"), obj("unversioned", "", size=1)]
    second = [obj("same", "1"), obj("bumped", "20"), obj("new", "21"), obj("unversioned", "", size=2)]
    script = Script(lists=[(first, "10"), (second, "30")], watches=[KubeError(500, "InternalError", "etcd blip"), []])
    informer = informer_of(script)
    seen = run(informer, script)
    # "same" kept its resourceVersion: no event; without versions, the content decides
    assert seen[4:] == [("DELETED", "gone"), ("MODIFIED", "bumped"), ("ADDED", "new"), ("MODIFIED", "unversioned")]
    assert informer.cache()["bumped"]["metadata"]["resourceVersion"] == "20"


class Recorded(Backoff):
    def __init__(self, first: float, maximum: float) -> None:
        super().__init__(first, maximum, draw=lambda: 1.0)  # no jitter: the ceiling itself
        self.pauses: list[float] = []

    def next(self) -> float:
        self.pauses.append(super().next())
        return self.pauses[-1]


def test_every_reopened_watch_waits_longer_up_to_the_cap_and_a_long_watch_resets_it() -> None:
    now = [0.0]
    script = Script(lists=[([obj("a", "1")], "10")], watches=[[], [], [], [], []])

    def watch(version: str, timeout: int) -> Iterator[WatchEvent]:
        if len(script.watch_versions) == 4:
            now[0] += HEALTHY_SECONDS  # the fifth watch stays open long enough to count as healthy
        return script.watch_fn(version, timeout)

    backoff = Recorded(0.001, 0.004)
    informer = Informer(script.list_fn, watch, backoff=backoff, clock=lambda: now[0])
    run(informer, script)
    # closed cleanly four times at once: 1, 2, 4, 4 ms (capped); the fifth stayed open, so 1 ms again
    assert backoff.pauses[:5] == [0.001, 0.002, 0.004, 0.004, 0.001]
    assert script.watch_versions == ["10"] * 6  # a clean close resumes from the same version, no relist


def test_backoff_is_jittered_between_half_and_all_of_the_ceiling() -> None:
    draws = iter([0.0, 1.0, 0.5])
    backoff = Backoff(first=1.0, maximum=3.0, draw=lambda: next(draws))
    assert [backoff.next(), backoff.next(), backoff.next()] == [0.5, 2.0, 2.25]
    backoff.reset()
    assert 0.5 <= Backoff(first=1.0).next() <= 1.0


def polled(stop: threading.Event) -> Callable[[], bool]:
    """A stop flag that is not an Event's own is_set, so the informer cannot wait on it."""

    def flag() -> bool:
        return stop.is_set()

    return flag


def failing_forever(attempts: threading.Event) -> Callable[[str, int], Iterator[WatchEvent]]:
    def watch(_version: str, _timeout: int) -> Iterator[WatchEvent]:
        attempts.set()
        raise KubeError(503, "ServiceUnavailable", "apiserver restarting")

    return watch


@pytest.mark.parametrize("flag", ["event", "callable"])
def test_shutdown_ends_the_backoff_pause_at_once(flag: str) -> None:
    stop, attempted = threading.Event(), threading.Event()
    informer = Informer(lambda: ([], "1"), failing_forever(attempted), backoff=Backoff(first=60.0, maximum=60.0))
    # an Event's own is_set wakes the pause at once; any other flag is polled every 0.1 s
    thread = informer.start(stop.is_set if flag == "event" else polled(stop))
    assert attempted.wait(5), "the informer never watched"
    time.sleep(0.05)  # now inside a pause of 30 to 60 s
    stopped = time.monotonic()
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert time.monotonic() - stopped < 0.5


def test_a_refused_connection_is_one_warning_line_and_a_relist(caplog: pytest.LogCaptureFixture) -> None:
    refused = urllib3.exceptions.MaxRetryError(
        urllib3.HTTPConnectionPool("127.0.0.1", 1),
        "/apis",
        urllib3.exceptions.NewConnectionError(urllib3.connection.HTTPConnection("127.0.0.1", 1), "refused"),
    )
    script = Script(lists=[([obj("a", "1")], "5"), ([obj("a", "1")], "6")], watches=[refused, []])
    with caplog.at_level("WARNING", logger="localcsi.k8s.informer"):
        run(informer_of(script), script)
    [record] = caplog.records
    assert record.levelname == "WARNING" and "Max retries exceeded" in record.getMessage()
    assert record.exc_info is None, "a network error is expected: no traceback"
    assert script.watch_versions[:2] == ["5", "6"], "the failed watch is followed by a relist"
