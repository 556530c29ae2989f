"""``localcsi controller``: informers on Nodes, init configs and NodeLocalStorages; reconcile while leading.

Every replica keeps its caches warm, so a new leader acts as soon as it holds the Lease; only the
leader writes. A reconcile runs on every change and at least every ``--resync-seconds``. With
``--metrics-address`` every replica serves ``/metrics`` (leadership, reconciles: localcsi.metrics.controller)
and ``/healthz``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Final

from localcsi.controller.reconciler import Reconciler
from localcsi.k8s.client import api_client
from localcsi.k8s.events import EventRecorder
from localcsi.k8s.informer import Informer, builtin_source, custom_source
from localcsi.k8s.leader import KubeLeaseStore, LeaderElector, default_identity
from localcsi.k8s.resources import NODE_LOCAL_STORAGE, NODE_LOCAL_STORAGE_INIT_CONFIG, CustomResources, Object
from localcsi.k8s.rest import KubeApi
from localcsi.lifecycle import Lifecycle
from localcsi.logs import fields
from localcsi.metrics import http
from localcsi.metrics.controller import CONTROLLER

log = logging.getLogger(__name__)

COMPONENT: Final = "localcsi-controller"
RETRY_SECONDS: Final = 1.0
# How often a wait checks whether this replica still leads (or is shutting down).
LEADING_POLL_SECONDS: Final = 0.1
# Coalesce a burst of events (a node joining touches it several times) into one pass.
SETTLE_SECONDS: Final = 0.1
StillLeading = Callable[[], bool]


class Controller:
    def __init__(self, api: KubeApi, config_name: str, resync_seconds: float, identity: str) -> None:
        storages = CustomResources(api, NODE_LOCAL_STORAGE)
        configs = CustomResources(api, NODE_LOCAL_STORAGE_INIT_CONFIG)
        self.nodes = Informer(*builtin_source(api, "nodes"))
        self.configs = Informer(*custom_source(configs))
        self.storages = Informer(*custom_source(storages))
        recorder = EventRecorder(api, COMPONENT, identity)
        self.reconciler = Reconciler(storages, configs, config_name, recorder)
        self.resync_seconds = resync_seconds
        self._changed = threading.Event()
        for informer in self._informers():
            informer.add_handler(self._on_change)

    def _informers(self) -> tuple[Informer, Informer, Informer]:
        return self.nodes, self.configs, self.storages

    def _on_change(self, event_type: str, obj: Object) -> None:
        self._changed.set()

    def start_informers(self, should_exit: Callable[[], bool]) -> None:
        for name, informer in zip(("nodes", "init-configs", "node-local-storages"), self._informers(), strict=True):
            informer.start(should_exit, name=f"informer-{name}")

    def _wait_synced(self, still_leading: StillLeading) -> bool:
        pending = list(self._informers())
        while pending and still_leading():
            pending[0].wait_synced(LEADING_POLL_SECONDS)
            pending = [informer for informer in pending if not informer.wait_synced(0)]
        return not pending

    def work(self, still_leading: StillLeading) -> None:
        """Reconcile until ``still_leading()`` is False; the leader election's worker."""
        CONTROLLER.leader.set(1)
        try:
            self._work(still_leading)
        finally:
            CONTROLLER.leader.set(0)

    def _work(self, still_leading: StillLeading) -> None:
        if not self._wait_synced(still_leading):
            return
        log.info("caches synced; reconciling")
        while still_leading():
            self._changed.clear()
            started = time.monotonic()
            outcome = self.reconciler.reconcile(
                self.nodes.cache(), self.configs.cache(), self.storages.cache(), still_leading
            )
            CONTROLLER.reconciled(
                seconds=time.monotonic() - started,
                writes=outcome.writes,
                errors=outcome.errors,
                retry=outcome.retry,
                stopped=outcome.stopped,
            )
            if outcome.stopped:
                break
            self._wait_for_change(RETRY_SECONDS if outcome.retry else self.resync_seconds, still_leading)
        log.info("stopped reconciling")

    def _wait_for_change(self, seconds: float, still_leading: StillLeading) -> None:
        deadline = time.monotonic() + seconds
        while still_leading() and (left := deadline - time.monotonic()) > 0:
            if self._changed.wait(min(left, LEADING_POLL_SECONDS)):
                time.sleep(SETTLE_SECONDS)
                return


def run(args: argparse.Namespace) -> int:
    config_name = args.init_config
    resync_seconds = float(args.resync_seconds)
    identity = getattr(args, "identity", None) or default_identity()
    api = api_client(args.kubeconfig)
    controller = Controller(api, config_name, resync_seconds, identity)
    log.info(
        "controller starting",
        extra=fields(identity=identity, init_config=config_name, leader_elect=args.leader_elect),
    )
    with Lifecycle() as lifecycle, contextlib.ExitStack() as serving:
        http.serve(serving, metrics_address=args.metrics_address)
        should_exit = lifecycle.should_exit.is_set
        controller.start_informers(should_exit)
        if not args.leader_elect:
            controller.work(lambda: not should_exit())
            return 0
        store = KubeLeaseStore(api, args.lease_namespace, args.lease_name)
        elector = LeaderElector(store, identity)
        clean = elector.run(controller.work, should_exit, lifecycle.wait)
    log.info("controller stopped", extra=fields(identity=identity, clean=clean))
    return 0 if clean else 1
