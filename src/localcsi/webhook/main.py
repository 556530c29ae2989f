"""``localcsi webhook``: the StorageClass informer, the HTTPS server, certificate reloads, clean SIGTERM."""

from __future__ import annotations

import argparse
import contextlib
import logging
import ssl
from typing import Final

from localcsi.extender.main import split_listen
from localcsi.k8s.client import api_client
from localcsi.lifecycle import Lifecycle
from localcsi.logs import fields
from localcsi.metrics import http
from localcsi.webhook.lookup import KubeLookup
from localcsi.webhook.server import TlsFiles, WebhookServer

log = logging.getLogger(__name__)

CERT_CHECK_SECONDS: Final = 10.0


def run(args: argparse.Namespace) -> int:
    try:
        tls = TlsFiles(args.tls_cert_file, args.tls_key_file)
    except (OSError, ssl.SSLError) as error:
        log.error("cannot load the serving certificate: %s", error, extra=fields(cert=args.tls_cert_file))
        return 1
    with Lifecycle() as lifecycle, contextlib.ExitStack() as stack:
        try:
            api = api_client(args.kubeconfig)
        except Exception as error:
            log.error("cannot build a Kubernetes client: %s", error, extra=fields(kubeconfig=args.kubeconfig))
            return 1
        lookup = KubeLookup(api)
        lookup.start(lifecycle.should_exit.is_set)
        try:
            server = WebhookServer(split_listen(args.listen), tls, lookup, ready=lookup.synced)
            http.serve(
                stack,
                metrics_address=args.metrics_address,
                prober=lambda: None if lookup.synced() else "StorageClass cache not synced yet",
                registry=server.metrics.registry,
            )
        except OSError as error:
            log.error("cannot listen: %s", error, extra=fields(listen=args.listen))
            return 1
        server.start()
        stack.callback(server.stop)
        log.info("webhook serving", extra=fields(port=server.port, cert=args.tls_cert_file))
        while not lifecycle.wait(CERT_CHECK_SECONDS):
            tls.reload_if_changed()
        log.info("stopped")
    return 0
