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


def test_exclusive_holds_conflict_with_everything() -> None:
    locks = OperationLocks()
    with locks.hold(exclusive=["a"]):
        for attempt in ({"exclusive": ["a"]}, {"shared": ["a"]}, {"exclusive": ["b", "a"]}):
            with pytest.raises(Aborted, match="'a'"), locks.hold(**attempt):
                pass
        assert not locks.is_held("b"), "a refused hold must not keep any of its keys"
    assert not locks.is_held("a")


def test_shared_holds_stack_and_block_exclusive_ones() -> None:
    locks = OperationLocks()
    with locks.hold(shared=["src"]), locks.hold("dst1", shared=["src"]):
        with pytest.raises(Aborted), locks.hold(exclusive=["src"]):
            pass
        with pytest.raises(Aborted), locks.hold("src"):
            pass
        assert locks.is_held("src")
    assert not locks.is_held("src") and not locks.is_held("dst1")
    with locks.hold(exclusive=["src"]):
        pass


def test_a_key_both_exclusive_and_shared_in_one_call_is_exclusive() -> None:
    locks = OperationLocks()
    with locks.hold("a", shared=["a"]), pytest.raises(Aborted), locks.hold(shared=["a"]):
        pass
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
