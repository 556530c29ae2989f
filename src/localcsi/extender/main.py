"""`localcsi extender`: informers into the view, the HTTP server, a periodic resync, clean SIGTERM."""

from __future__ import annotations

import argparse
import gc
import logging

from localcsi.core.scheduling import Strategy
from localcsi.extender.informers import all_synced, claim_fetcher, resync, start_informers
from localcsi.extender.server import ExtenderServer
from localcsi.extender.service import Extender
from localcsi.k8s.client import api_client
from localcsi.lifecycle import Lifecycle
from localcsi.logs import fields

log = logging.getLogger(__name__)

RESYNC_SECONDS = 300.0
SYNC_POLL_SECONDS = 0.5
GC_YOUNG_THRESHOLD = 100_000  # allocations between young-generation collections (Python's default: 700)


def split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 - an empty host means every address


def settle_garbage_collector() -> None:
    """The view is long-lived: keep the cyclic collector from walking it again and again (p99 spikes of
    tens of milliseconds at 5000 nodes), and collect the young generation less often: a request makes
    thousands of short-lived objects (node names), few of them in cycles. At 1000 nodes this took
    the p99 of filter plus prioritize from 4.6-6.8 ms to 3.4-4.7 ms (benchmarks/bench_extender.py)."""
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


def run(args: argparse.Namespace) -> int:
    address = split_listen(args.listen)
    with Lifecycle() as lifecycle:
        try:
            api = api_client(args.kubeconfig)
        except Exception as error:
            log.error("cannot build a Kubernetes client: %s", error, extra=fields(kubeconfig=args.kubeconfig))
            return 1
        extender = Extender(
            Strategy(args.strategy), ttl_seconds=float(args.reservation_ttl), fetch_claim=claim_fetcher(api)
        )
        watched = start_informers(api, extender, lifecycle.should_exit.is_set)
        try:
            server = ExtenderServer(address, extender, ready=lambda: all_synced(watched))
        except OSError as error:
            log.error("cannot listen on %s: %s", args.listen, error, extra=fields(listen=args.listen))
            lifecycle.request_exit("listen failed")
            return 1
        server.start()
        log.info(
            "extender serving",
            extra=fields(url=server.url, strategy=extender.strategy.value, kinds=[w.kind for w in watched]),
        )
        synced = False
        while not lifecycle.wait(RESYNC_SECONDS if synced else SYNC_POLL_SECONDS):
            if synced:
                resync(extender, watched)
            elif all_synced(watched):
                log.info("informer caches synced", extra=fields(**extender.ready_summary()))
                settle_garbage_collector()  # once: a freeze per resync would keep cyclic garbage forever
                synced = True
            else:
                continue
            server.metrics.synced()  # the view now agrees with the informers: /metrics' cache sync age
        server.stop()
        log.info("stopped")
    return 0
