import threading
import time

import pytest

from localcsi.core.errors import Aborted
from localcsi.core.locks import OperationLocks

pytestmark = pytest.mark.unit


def test_second_caller_on_the_same_key_is_aborted() -> None:
    locks = OperationLocks()
    with locks.hold("pvc-1"):
        with pytest.raises(Aborted, match="'pvc-1' is already in progress"), locks.hold("pvc-1"):
            pass
        with locks.hold("pvc-2"):
            assert locks.is_held("pvc-2")
    assert not locks.is_held("pvc-1")


def test_keys_are_released_when_the_operation_fails() -> None:
    locks = OperationLocks()
    with pytest.raises(RuntimeError), locks.hold("a"):
        raise RuntimeError("boom")
    with locks.hold("a"):
        assert locks.is_held("a")


def test_several_keys_are_taken_all_or_none() -> None:
    locks = OperationLocks()
    with locks.hold("snap-source"):
        with pytest.raises(Aborted), locks.hold("new-volume", "snap-source"):
            pass
        assert not locks.is_held("new-volume")


def test_repeated_keys_in_one_call_are_one_key() -> None:
    locks = OperationLocks()
    with locks.hold("a", "a"):
        assert locks.is_held("a")
    assert not locks.is_held("a")


def test_exactly_one_of_many_concurrent_callers_wins() -> None:
    locks = OperationLocks()
    start = threading.Barrier(16)
    release = threading.Event()
    outcomes: list[str] = []
    record = threading.Lock()

    def attempt() -> None:
        start.wait()
        try:
            with locks.hold("pvc-1"):
                with record:
                    outcomes.append("won")
                release.wait(5)
        except Aborted:
            with record:
                outcomes.append("aborted")

    threads = [threading.Thread(target=attempt) for _ in range(16)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5
    while len(outcomes) < 16 and time.monotonic() < deadline:  # the winner still holds the key here
        time.sleep(0.01)
    release.set()
    for thread in threads:
        thread.join(5)
    assert sorted(outcomes) == ["aborted"] * 15 + ["won"]
