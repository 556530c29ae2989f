"""The e2e environment stops right after the last e2e test a worker runs, once."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from localcsi.testing import e2e_fixtures


class Item:
    def __init__(self, config: pytest.Config, e2e: bool) -> None:
        self.config, self.e2e = config, e2e

    def get_closest_marker(self, name: str) -> object | None:
        return object() if name == "e2e" and self.e2e else None


def _teardown(item: Item, nextitem: Item | None) -> None:
    hook = e2e_fixtures.pytest_runtest_teardown(item, nextitem)  # type: ignore[arg-type]
    assert isinstance(hook, Iterator)
    next(hook)
    with pytest.raises(StopIteration):
        next(hook)


def test_the_environment_stops_after_the_last_e2e_test_and_only_once(pytestconfig: pytest.Config) -> None:
    stops: list[str] = []
    pytestconfig.stash[e2e_fixtures._STOP_EARLY] = lambda: stops.append("stop")
    try:
        e2e, node = Item(pytestconfig, True), Item(pytestconfig, False)
        _teardown(e2e, e2e)
        assert stops == [], "another e2e test follows"
        _teardown(node, node)
        assert stops == [], "a node test is no reason to stop"
        _teardown(e2e, node)
        assert stops == ["stop"]
        _teardown(e2e, None)
        assert stops == ["stop"], "stopped twice"
    finally:
        with contextlib.suppress(KeyError):
            del pytestconfig.stash[e2e_fixtures._STOP_EARLY]
