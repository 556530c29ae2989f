"""Leader election on a coordination.k8s.io/v1 Lease, the way client-go's leaderelection does it.

Timings (seconds, defaults as in client-go except the renew period):

- ``lease_seconds`` (15): written as ``spec.leaseDurationSeconds``. Another replica takes the Lease
  once it has seen the same record, unchanged, for this long. It measures that on its own monotonic
  clock from when it saw the record change, so clock skew between machines does not matter.
- ``renew_seconds`` (5): how often the leader renews ``spec.renewTime``.
- ``retry_seconds`` (2): how often a follower tries to acquire, and how soon a leader retries a
  renewal that failed.
- ``renew_deadline_seconds`` (10): the leader stops acting once this long has passed since the start
  of its last successful renewal, even if the renewal call itself hangs. It is shorter than the
  lease, so the leader has stopped before anyone else can take over.

Writes use ``metadata.resourceVersion``: of two replicas racing for a free Lease exactly one wins,
the other gets 409 and tries again later. On a clean shutdown the leader stops its work, then
releases the Lease (empty holder, ``leaseDurationSeconds: 1``), so the other replica takes over
within ``retry_seconds`` instead of waiting out the lease.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import urllib3

from localcsi.k8s.errors import KubeError, NotFound
from localcsi.k8s.rest import KubeApi, resource_path
from localcsi.lifecycle import stop_sleeper
from localcsi.logs import fields

log = logging.getLogger(__name__)

Object = dict[str, Any]
StillLeading = Callable[[], bool]


def micro_time(moment: datetime) -> str:
    """metav1.MicroTime on the wire: RFC 3339 in UTC with exactly six fractional digits."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def default_identity() -> str:
    """hostname_random: unique even for two processes on one host, or a restart under the same name."""
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


class LeaseStore(Protocol):
    """One Lease object. create and replace raise localcsi.k8s.errors (Conflict or AlreadyExists on a lost
    race); replace sends the body's metadata.resourceVersion, so a stale write fails."""

    def get(self) -> Object | None: ...

    def create(self, spec: Object) -> Object: ...

    def replace(self, lease: Object) -> Object: ...


class KubeLeaseStore:
    """A LeaseStore over the apiserver, as raw dicts with the apiserver's JSON keys."""

    def __init__(self, api: KubeApi, namespace: str, name: str, request_timeout: float = 5.0) -> None:
        self._api = api
        self.namespace = namespace
        self.name = name
        self._timeout = request_timeout

    def _path(self, name: str | None = None) -> str:
        return resource_path("coordination.k8s.io", "v1", "leases", name, namespace=self.namespace)

    def get(self) -> Object | None:
        try:
            return self._api.get(self._path(self.name), timeout=self._timeout)
        except NotFound:
            return None

    def create(self, spec: Object) -> Object:
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": spec,
        }
        return self._api.create(self._path(), body, timeout=self._timeout)

    def replace(self, lease: Object) -> Object:
        return self._api.replace(self._path(self.name), lease, timeout=self._timeout)


@dataclass(frozen=True)
class Timings:
    lease_seconds: float = 15.0
    renew_seconds: float = 5.0
    retry_seconds: float = 2.0
    renew_deadline_seconds: float = 10.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_seconds < self.renew_deadline_seconds:
            raise ValueError("retry_seconds must be positive and shorter than renew_deadline_seconds")
        if not 0 < self.renew_seconds < self.renew_deadline_seconds < self.lease_seconds:
            raise ValueError("need 0 < renew_seconds < renew_deadline_seconds < lease_seconds")


class LeaderElector:
    def __init__(
        self,
        store: LeaseStore,
        identity: str,
        timings: Timings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not identity:
            raise ValueError("identity must not be empty")
        self._store = store
        self.identity = identity
        self.timings = timings or Timings()
        self._clock = clock
        self._wall = wall_clock
        self._lock = threading.Lock()
        self._leading_until: float | None = None  # monotonic deadline while leading, else None
        self._stepping_down = False
        self._observed_spec: Object | None = None
        self._observed_at = 0.0

    # -- the state machine: one attempt per call --------------------------------------------------

    def is_leading(self) -> bool:
        """True only while this replica holds a fresh renewal; workers check it before every write."""
        with self._lock:
            until = self._leading_until
            return until is not None and not self._stepping_down and self._clock() < until

    def step(self) -> float:
        """One attempt to acquire or renew; returns the seconds to wait before the next attempt."""
        started = self._clock()
        was_leading = self._leading_until is not None
        try:
            acquired = self._try_acquire_or_renew(started)
        except (KubeError, OSError, urllib3.exceptions.HTTPError) as error:
            log.warning("lease: %s", error, extra=fields(identity=self.identity))
            acquired = False
        with self._lock:
            if acquired:
                self._leading_until = started + self.timings.renew_deadline_seconds
            elif self._leading_until is not None and self._clock() >= self._leading_until:
                self._leading_until = None
            leading_now = self._leading_until is not None
        if leading_now and not was_leading:
            log.info("became leader", extra=fields(identity=self.identity))
        elif was_leading and not leading_now:
            log.warning("lost leadership", extra=fields(identity=self.identity))
        if acquired:
            return self.timings.renew_seconds
        return self.timings.retry_seconds

    def _observe(self, spec: Object, now: float) -> None:
        if spec != self._observed_spec:
            self._observed_spec = dict(spec)
            self._observed_at = now

    def _try_acquire_or_renew(self, now: float) -> bool:
        lease = self._store.get()
        stamp = micro_time(self._wall())
        if lease is None:
            spec = self._spec(stamp, stamp, transitions=0)
            created = self._store.create(spec)
            self._observe(created.get("spec") or {}, now)
            return True
        spec = dict(lease.get("spec") or {})
        self._observe(spec, now)
        holder = spec.get("holderIdentity") or ""
        if holder and holder != self.identity:
            duration = float(spec.get("leaseDurationSeconds") or self.timings.lease_seconds)
            if now < self._observed_at + duration:
                self._lose_if_leading()
                return False
        transitions = int(spec.get("leaseTransitions") or 0)
        if holder == self.identity:
            new_spec = self._spec(str(spec.get("acquireTime") or stamp), stamp, transitions)
        else:
            new_spec = self._spec(stamp, stamp, transitions + 1)
        replaced = self._store.replace({**lease, "spec": {**spec, **new_spec}})
        self._observe(replaced.get("spec") or {}, now)
        return True

    def _lose_if_leading(self) -> None:
        with self._lock:
            self._leading_until = None

    def _spec(self, acquire_time: str, renew_time: str, transitions: int) -> Object:
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.timings.lease_seconds)),
            "acquireTime": acquire_time,
            "renewTime": renew_time,
            "leaseTransitions": transitions,
        }

    def release(self) -> bool:
        """Give the Lease up if we hold it: empty holder, a 1 s lease; True if released."""
        with self._lock:
            self._stepping_down = True
            self._leading_until = None
        try:
            lease = self._store.get()
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return False
            stamp = micro_time(self._wall())
            spec = dict(lease.get("spec") or {})
            spec.update(holderIdentity="", leaseDurationSeconds=1, acquireTime=stamp, renewTime=stamp)
            self._store.replace({**lease, "spec": spec})
        except (KubeError, OSError, urllib3.exceptions.HTTPError) as error:
            log.warning("could not release the lease: %s", error, extra=fields(identity=self.identity))
            return False
        log.info("released the lease", extra=fields(identity=self.identity))
        return True

    # -- the loop -----------------------------------------------------------------------------------

    def run(
        self,
        on_started_leading: Callable[[StillLeading], None],
        should_exit: Callable[[], bool],
        wait: Callable[[float], object] | None = None,
    ) -> bool:
        """Campaign until ``should_exit()``. While leading, run ``on_started_leading(self.is_leading)`` in a
        thread; it must return soon after ``is_leading()`` turns False, and is started again when this
        replica leads again. Returns True on a clean shutdown; False if the work raised (the lease is then
        released, so the other replica takes over) or would not stop."""
        pause = wait or stop_sleeper(should_exit)
        worker: _Worker | None = None
        clean = True
        while not should_exit():
            delay = self.step()
            if worker is not None and not worker.thread.is_alive():
                worker.thread.join()
                if worker.failed:
                    clean = False
                    break
                worker = None
            if worker is None and self.is_leading():
                worker = _Worker(on_started_leading, self.is_leading)
            elif worker is not None and not self.is_leading():
                worker.thread.join()
                worker = None
            pause(delay)
        with self._lock:
            self._stepping_down = True
        if worker is not None:
            worker.thread.join(self.timings.renew_deadline_seconds)
            if worker.thread.is_alive():
                log.error("the leader's work did not stop; not releasing the lease")
                return False
        self.release()
        return clean


class _Worker:
    """The leader's work in a thread; ``failed`` when it raised."""

    def __init__(self, work: Callable[[StillLeading], None], still_leading: StillLeading) -> None:
        self.failed = False
        self._work = work
        self._still_leading = still_leading
        self.thread = threading.Thread(target=self._run, name="leader-work", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self._work(self._still_leading)
        except Exception:
            log.exception("the leader's work failed; stepping down")
            self.failed = True
