"""Latency and count by gRPC code of every CSI call, as a server interceptor.

The plugin's gRPC server takes ``RpcMetricsInterceptor`` (``localcsi.plugin.server``), so no servicer
knows about metrics. Labels: ``service`` (Identity, Controller, Node), ``method`` (the CSI method,
``CreateVolume``), ``code`` (``OK``, ``NOT_FOUND``...). Calls to a method no servicer has never reach
a handler and are not counted (gRPC answers UNIMPLEMENTED itself), so the labels stay the CSI spec's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

import grpc
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

# CreateVolume in cluster mode waits up to the operation timeout (60 s) for the node's agent.
BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

Behavior = Callable[[Any, grpc.ServicerContext], Any]
if TYPE_CHECKING:  # generic only in grpc-stubs
    Handler = grpc.RpcMethodHandler[Any, Any]
    Interceptor = grpc.ServerInterceptor[Any, Any]
else:
    Handler = grpc.RpcMethodHandler
    Interceptor = grpc.ServerInterceptor


def split_method(full_method: str) -> tuple[str, str]:
    """``/csi.v1.Controller/CreateVolume`` -> ("Controller", "CreateVolume")."""
    service, _, method = full_method.lstrip("/").partition("/")
    return service.rpartition(".")[2], method


class RpcMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.duration = Histogram(
            "localcsi_csi_request_duration_seconds",
            "Time to answer each CSI call, by service and method.",
            ["service", "method"],
            buckets=BUCKETS,
            registry=registry,
        )
        self.requests = Counter(
            "localcsi_csi_requests",
            "CSI calls answered, by service, method and gRPC status code.",
            ["service", "method", "code"],
            registry=registry,
        )

    def observe(self, service: str, method: str, code: grpc.StatusCode, seconds: float) -> None:
        self.duration.labels(service, method).observe(seconds)
        self.requests.labels(service, method, code.name).inc()


RPC: Final = RpcMetrics()


def _code(context: grpc.ServicerContext, failed: bool) -> grpc.StatusCode:
    # Set by context.abort or set_code; None when the servicer set nothing. (grpc-stubs lacks code().)
    code = getattr(context, "code", lambda: None)()
    if isinstance(code, grpc.StatusCode):
        return code
    return grpc.StatusCode.UNKNOWN if failed else grpc.StatusCode.OK


class RpcMetricsInterceptor(Interceptor):
    def __init__(self, metrics: RpcMetrics = RPC) -> None:
        self.metrics = metrics

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Handler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:  # CSI has only unary calls
            return handler
        service, method = split_method(handler_call_details.method)
        return grpc.unary_unary_rpc_method_handler(
            self._timed(handler.unary_unary, service, method),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _timed(self, behavior: Behavior, service: str, method: str) -> Behavior:
        def timed(request: Any, context: grpc.ServicerContext) -> Any:
            started = time.perf_counter()
            failed = True
            try:
                response = behavior(request, context)
                failed = False
                return response
            finally:
                self.metrics.observe(service, method, _code(context, failed), time.perf_counter() - started)

        return timed
