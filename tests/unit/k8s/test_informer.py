"""The informer's cache and handlers over scripted list and watch calls."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from localcsi.k8s.errors import Gone
from localcsi.k8s.informer import Informer, object_key
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
    informer = Informer(script.list_fn, script.watch_fn)
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
    informer = Informer(script.list_fn, script.watch_fn)
    seen = run(informer, script)
    # a is unchanged across the relist: no event for it; b vanished; c appeared
    assert seen == [("ADDED", "a"), ("ADDED", "b"), ("DELETED", "b"), ("ADDED", "c")]
    assert sorted(informer.cache()) == ["a", "c"]
    assert script.watch_versions[:2] == ["10", "31"]


def test_a_failing_handler_does_not_stop_the_others() -> None:
    script = Script(lists=[([obj("a", "1")], "5")], watches=[])
    informer = Informer(script.list_fn, script.watch_fn)

    def broken(_kind: str, _obj: dict[str, Any]) -> None:
        raise RuntimeError("handler bug")

    informer.add_handler(broken)
    assert run(informer, script) == [("ADDED", "a")]


def test_namespaced_objects_are_keyed_by_namespace_and_name() -> None:
    assert object_key(obj("pvc-1", "1", namespace="team")) == "team/pvc-1"
    assert object_key(obj("node-1", "1")) == "node-1"
