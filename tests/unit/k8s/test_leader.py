import copy
import functools
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import urllib3

from localcsi.k8s.errors import AlreadyExists, Conflict
from localcsi.k8s.leader import LeaderElector, Timings, default_identity, micro_time

pytestmark = pytest.mark.unit

Object = dict[str, Any]
MICRO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.start_wall = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> datetime:
        return self.start_wall + timedelta(seconds=self.now - 1000.0)

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeLeases:
    """One Lease with the apiserver's optimistic concurrency: replace needs the current resourceVersion."""

    def __init__(self) -> None:
        self.lease: Object | None = None
        self.version = 0
        self.writes: list[Object] = []
        self.fail_next: Exception | None = None
        self.before_write: Callable[[], None] | None = None

    def _check_failure(self) -> None:
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error

    def get(self) -> Object | None:
        self._check_failure()
        return copy.deepcopy(self.lease)

    def _store(self, spec: Object) -> Object:
        self.version += 1
        self.lease = {"metadata": {"name": "l", "namespace": "ns", "resourceVersion": str(self.version)}, "spec": spec}
        self.writes.append(copy.deepcopy(spec))
        return copy.deepcopy(self.lease)

    def create(self, spec: Object) -> Object:
        self._check_failure()
        if self.before_write:
            self.before_write()
        if self.lease is not None:
            raise AlreadyExists(409, "AlreadyExists", 'leases.coordination.k8s.io "l" already exists')
        return self._store(copy.deepcopy(spec))

    def replace(self, lease: Object) -> Object:
        self._check_failure()
        if self.before_write:
            self.before_write()
        assert self.lease is not None
        if lease["metadata"]["resourceVersion"] != self.lease["metadata"]["resourceVersion"]:
            raise Conflict(409, "Conflict", "the object has been modified")
        return self._store(copy.deepcopy(lease["spec"]))


def once(store: FakeLeases, action: Callable[[], object]) -> Callable[[], None]:
    """A before_write hook that runs ``action`` (another replica's step) before this write, once."""

    def hook() -> None:
        store.before_write = None
        action()

    return hook


def elector(store: FakeLeases, clock: FakeClock, identity: str) -> LeaderElector:
    return LeaderElector(store, identity, clock=clock.monotonic, wall_clock=clock.wall)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store() -> FakeLeases:
    return FakeLeases()


def test_first_replica_creates_the_lease_with_every_field(store: FakeLeases, clock: FakeClock) -> None:
    a = elector(store, clock, "a")
    assert a.step() == 5.0
    assert a.is_leading()
    assert store.lease is not None
    spec = store.lease["spec"]
    assert spec["holderIdentity"] == "a"
    assert spec["leaseDurationSeconds"] == 15
    assert spec["leaseTransitions"] == 0
    assert spec["acquireTime"] == spec["renewTime"] == "2025-01-02T03:04:05.678901Z"


def test_renewal_moves_renew_time_only(store: FakeLeases, clock: FakeClock) -> None:
    a = elector(store, clock, "a")
    a.step()
    assert store.lease is not None
    first = dict(store.lease["spec"])
    clock.advance(5)
    assert a.step() == 5.0
    spec = store.lease["spec"]
    assert spec["acquireTime"] == first["acquireTime"]
    assert spec["renewTime"] == "2025-01-02T03:04:10.678901Z"
    assert spec["leaseTransitions"] == 0
    assert MICRO_TIME.fullmatch(spec["renewTime"])


def test_follower_waits_a_full_lease_after_the_last_change_it_saw(store: FakeLeases, clock: FakeClock) -> None:
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    a.step()
    assert b.step() == 2.0
    assert not b.is_leading()
    # a keeps renewing: b never takes over.
    for _ in range(6):
        clock.advance(5)
        a.step()
        b.step()
        assert a.is_leading() and not b.is_leading()
    # a dies after its last renewal; b takes over only once it has seen no change for 15 s.
    died_at = clock.now
    while not b.is_leading():
        clock.advance(2)
        b.step()
        assert clock.now - died_at <= 17
    assert clock.now - died_at >= 15
    assert store.lease is not None
    assert store.lease["spec"]["holderIdentity"] == "b"
    assert store.lease["spec"]["leaseTransitions"] == 1


def test_follower_measures_on_its_own_clock_not_the_renew_time(store: FakeLeases, clock: FakeClock) -> None:
    a = elector(store, clock, "a")
    a.step()
    assert store.lease is not None
    store.lease["spec"]["renewTime"] = "2000-01-01T00:00:00.000000Z"  # a skewed or ancient clock
    b = elector(store, clock, "b")
    b.step()
    assert not b.is_leading(), "a record first seen now is not expired, whatever its renewTime says"


def test_leader_stops_acting_at_the_renew_deadline_even_without_a_new_attempt(
    store: FakeLeases, clock: FakeClock
) -> None:
    a = elector(store, clock, "a")
    a.step()
    clock.advance(9.9)
    assert a.is_leading()
    clock.advance(0.1)
    assert not a.is_leading(), "a stuck renewal must not keep the worker acting"


def test_failed_renewals_retry_quickly_then_give_up_before_anyone_can_take_over(
    store: FakeLeases, clock: FakeClock
) -> None:
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    a.step()
    b.step()
    renewed_at = clock.now
    clock.advance(5)
    store.fail_next = OSError("connection refused")
    assert a.step() == 2.0
    assert a.is_leading()
    clock.advance(5)  # 10 s since the last successful renewal started
    store.fail_next = urllib3.exceptions.ReadTimeoutError(
        urllib3.HTTPConnectionPool("127.0.0.1", 1), "/apis/coordination.k8s.io", "read timed out"
    )
    a.step()
    assert not a.is_leading()
    b.step()
    assert not b.is_leading(), "b may not take over before a lease duration has passed"
    lost_at = clock.now
    clock.advance(renewed_at + 15 - clock.now)
    b.step()
    assert b.is_leading()
    assert lost_at < clock.now


def test_lost_race_on_create_and_replace_is_a_409_not_a_crash(store: FakeLeases, clock: FakeClock) -> None:
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    store.before_write = once(store, a.step)
    assert b.step() == 2.0
    assert a.is_leading() and not b.is_leading()
    assert store.lease is not None and store.lease["spec"]["holderIdentity"] == "a"
    # A stale replace: b sees the lease unchanged for 30 s, but a renews between b's read and b's write.
    b.step()
    clock.advance(30)
    store.before_write = once(store, a.step)
    writes = len(store.writes)
    b.step()
    assert store.before_write is None, "b got as far as writing"
    assert not b.is_leading()
    assert len(store.writes) == writes + 1, "only a's renewal was stored"
    assert store.lease["spec"]["holderIdentity"] == "a"


def test_leader_that_sees_another_holder_stops_at_once(store: FakeLeases, clock: FakeClock) -> None:
    a = elector(store, clock, "a")
    a.step()
    assert store.lease is not None
    store.lease["spec"]["holderIdentity"] = "intruder"
    store.version += 1
    store.lease["metadata"]["resourceVersion"] = str(store.version)
    clock.advance(5)
    a.step()
    assert not a.is_leading()


def test_release_lets_the_other_replica_take_over_at_its_next_attempt(store: FakeLeases, clock: FakeClock) -> None:
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    a.step()
    b.step()
    assert a.release()
    assert not a.is_leading()
    assert store.lease is not None
    spec = store.lease["spec"]
    assert spec["holderIdentity"] == ""
    assert spec["leaseDurationSeconds"] == 1
    clock.advance(2)
    b.step()
    assert b.is_leading()
    assert store.lease["spec"]["leaseTransitions"] == 1


def test_release_does_nothing_when_someone_else_holds_it(store: FakeLeases, clock: FakeClock) -> None:
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    a.step()
    writes = len(store.writes)
    assert not b.release()
    assert len(store.writes) == writes


def test_holder_restarting_under_the_same_identity_keeps_its_acquire_time(store: FakeLeases, clock: FakeClock) -> None:
    elector(store, clock, "a").step()
    assert store.lease is not None
    acquired = store.lease["spec"]["acquireTime"]
    clock.advance(3)
    again = elector(store, clock, "a")
    again.step()
    assert again.is_leading()
    assert store.lease["spec"]["acquireTime"] == acquired
    assert store.lease["spec"]["leaseTransitions"] == 0


def test_timings_must_let_the_leader_stop_before_the_lease_ends() -> None:
    with pytest.raises(ValueError, match="renew_deadline_seconds < lease_seconds"):
        Timings(lease_seconds=10, renew_deadline_seconds=10)
    with pytest.raises(ValueError, match="renew_seconds < renew_deadline_seconds"):
        Timings(renew_seconds=10, renew_deadline_seconds=10)
    with pytest.raises(ValueError, match="retry_seconds"):
        Timings(retry_seconds=0)


def test_identity_and_micro_time_formats() -> None:
    assert default_identity() != default_identity()
    moment = datetime(2025, 6, 1, 12, 0, 0, 5, tzinfo=UTC)
    assert micro_time(moment) == "2025-06-01T12:00:00.000005Z"
    with pytest.raises(ValueError, match="identity"):
        LeaderElector(FakeLeases(), "")


# --- run(): the worker thread follows leadership ---------------------------------------------------

FAST = Timings(lease_seconds=1.5, renew_seconds=0.2, retry_seconds=0.1, renew_deadline_seconds=1.0)


def test_run_starts_work_when_leading_and_releases_on_shutdown(store: FakeLeases) -> None:
    stop = threading.Event()
    acted: list[bool] = []

    def work(still_leading: Callable[[], bool]) -> None:
        while still_leading():
            acted.append(True)
            stop.wait(0.05)
        acted.append(False)

    a = LeaderElector(store, "a", FAST)
    runner = threading.Thread(target=lambda: acted.append(a.run(work, stop.is_set)))
    runner.start()
    deadline = datetime.now(UTC) + timedelta(seconds=5)
    while True not in acted and datetime.now(UTC) < deadline:
        stop.wait(0.05)
    stop.set()
    runner.join(5)
    assert not runner.is_alive()
    assert any(flag is True for flag in acted), "the worker ran while leading"
    assert acted[-2:] == [False, True], "the worker stopped before run() returned True"
    assert store.lease is not None and store.lease["spec"]["holderIdentity"] == ""


def test_run_steps_down_when_the_work_raises(store: FakeLeases) -> None:
    def work(still_leading: Callable[[], bool]) -> None:
        raise RuntimeError("boom")

    a = LeaderElector(store, "a", FAST)
    assert a.run(work, lambda: len(store.writes) > 50) is False
    assert len(store.writes) <= 3, "create, at most one renewal, release"
    assert store.lease is not None and store.lease["spec"]["holderIdentity"] == ""


def test_run_restarts_work_after_leadership_comes_back(store: FakeLeases) -> None:
    clock = FakeClock()
    starts: list[float] = []

    def work(still_leading: Callable[[], bool]) -> None:
        starts.append(clock.now)
        while still_leading():
            threading.Event().wait(0.01)

    a = LeaderElector(store, "a", FAST, clock=clock.monotonic, wall_clock=clock.wall)
    phases = iter(["lead", "steal", "wait", "wait", "wait", "lead-again", "done"])
    phase = ["start"]

    def pause(_seconds: float) -> None:
        phase[0] = next(phases)
        assert store.lease is not None
        if phase[0] == "steal":
            store.lease["spec"]["holderIdentity"] = "b"
            store.version += 1
            store.lease["metadata"]["resourceVersion"] = str(store.version)
        clock.advance(1.0)

    assert a.run(work, lambda: phase[0] == "done", pause) is True
    assert len(starts) == 2, "work started once per term of leadership"


@pytest.mark.parametrize("flag", ["event", "callable"])
def test_run_returns_promptly_on_shutdown_in_the_middle_of_a_renew_pause(store: FakeLeases, flag: str) -> None:
    stop, working = threading.Event(), threading.Event()

    def work(still_leading: Callable[[], bool]) -> None:
        while still_leading():
            working.set()
            threading.Event().wait(0.01)

    a = LeaderElector(store, "a", Timings())  # renews every 5 s: shutdown comes in the pause
    should_exit = stop.is_set if flag == "event" else functools.partial(threading.Event.is_set, stop)
    runner = threading.Thread(target=lambda: a.run(work, should_exit))
    runner.start()
    assert working.wait(5)
    asked = datetime.now(UTC)
    stop.set()
    runner.join(5)
    assert not runner.is_alive()
    assert datetime.now(UTC) - asked < timedelta(seconds=0.5)
    assert store.lease is not None and store.lease["spec"]["holderIdentity"] == "", "released on the way out"
