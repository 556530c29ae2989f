"""Our own small Kubernetes API client: JSON over one urllib3 pool.

Why not the official ``kubernetes`` package: importing its client costs about 60 MiB of RSS (every API
and model class), more than issue 16 allows the agent in total, and we used it only as an HTTP transport,
since every caller works on raw JSON dicts. This client sends JSON, returns the apiserver's JSON as
dicts, turns non-2xx answers into ``localcsi.k8s.errors`` and streams watches line by line.

Network failures surface as ``urllib3.exceptions.HTTPError`` subclasses (the informers and loops that
call us treat them as a blip and retry with their own backoff).
"""

from __future__ import annotations

import json
import os
import ssl
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote, urlencode

import urllib3

from localcsi import __version__
from localcsi.k8s.credentials import ClientCertificate
from localcsi.k8s.errors import error_from_response, error_from_status
from localcsi.k8s.kubeconfig import ClusterConfig

Object = dict[str, Any]
Query = Mapping[str, str | int | bool | None]

USER_AGENT = f"localcsi/{__version__}"
JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"  # what the official client sends for a dict patch body
# Every call but a watch: a hung request must not outlive a leader's lease (see k8s/leader.py).
DEFAULT_TIMEOUT_SECONDS = 10.0
# A watch's read timeout is its timeoutSeconds plus this: the server ends the watch, not us, unless
# the connection died silently.
WATCH_READ_MARGIN_SECONDS = 30.0
# Informers keep one watch open per kind (eight in the extender) beside ordinary requests.
MAX_CONNECTIONS = 16
# One more attempt for a refused connect or a dropped keep-alive connection on an idempotent request;
# callers retry longer outages with their own backoff.
RETRIES = urllib3.Retry(total=1, redirect=False, raise_on_redirect=False, raise_on_status=False)


@dataclass(frozen=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED, BOOKMARK
    object: Object


def _segment(value: str, what: str) -> str:
    """One path segment: names reach a URL, and a name such as ``../x`` must not reach another path."""
    if not value or "/" in value or value in (".", ".."):
        raise ValueError(f"{what} {value!r} cannot be part of an API path")
    return quote(value, safe="")


def resource_path(
    group: str,
    version: str,
    plural: str,
    name: str | None = None,
    *,
    namespace: str | None = None,
    subresource: str | None = None,
) -> str:
    """/api/v1/... for the core group, /apis/GROUP/VERSION/... otherwise; namespaced when ``namespace``
    is given (a cluster-wide list of a namespaced kind has none)."""
    parts = (
        ["api", _segment(version, "version")]
        if not group
        else ["apis", _segment(group, "group"), _segment(version, "version")]
    )
    if namespace is not None:
        parts += ["namespaces", _segment(namespace, "namespace")]
    parts.append(_segment(plural, "resource"))
    if name is not None:
        parts.append(_segment(name, "name"))
    if subresource is not None:
        if name is None:
            raise ValueError("a subresource needs a name")
        parts.append(_segment(subresource, "subresource"))
    return "/" + "/".join(parts)


def _query_string(query: Query | None) -> str:
    pairs = [(key, _query_value(value)) for key, value in (query or {}).items() if value is not None and value != ""]
    return "?" + urlencode(pairs) if pairs else ""


def _query_value(value: str | int | bool) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def watch_events(chunks: Iterable[bytes]) -> Iterator[WatchEvent]:
    """The events of a watch body, one JSON object a line, however the chunks split the lines. Raises
    the error an ERROR event carries (410 Gone when the resource version is too old).

    The events are read as the apiserver writes them; no model objects (the official client built one
    for every event of a built-in kind, which cost the extender most of its CPU when pods arrived quickly).
    """
    pending = b""
    for chunk in chunks:
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            if line.strip():
                yield _watch_event(json.loads(line))
    if pending.strip():
        yield _watch_event(json.loads(pending))


def _watch_event(event: Object) -> WatchEvent:
    kind, obj = str(event.get("type") or ""), event.get("object") or {}
    if kind == "ERROR":  # a metav1.Status
        raise error_from_status(obj)
    return WatchEvent(kind, cast(Object, obj))


def ssl_context(config: ClusterConfig, certificate: ClientCertificate | None) -> ssl.SSLContext:
    """Trust the configured CA (the system's when there is none) and present the client certificate."""
    if config.insecure_skip_tls_verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        cadata = config.ca_pem.decode() if config.ca_pem else None
        context = ssl.create_default_context(cadata=cadata)
    if certificate is not None:
        _load_certificate(context, certificate)
    return context


def _load_certificate(context: ssl.SSLContext, certificate: ClientCertificate) -> None:
    """ssl loads a certificate chain from files only: write them into a private directory and remove
    them once loaded."""
    with tempfile.TemporaryDirectory(prefix="localcsi-tls-") as directory:  # mode 0700
        cert, key = Path(directory) / "client.crt", Path(directory) / "client.key"
        for path, data in ((cert, certificate.cert_pem), (key, certificate.key_pem)):
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as file:
                file.write(data)
        context.load_cert_chain(cert, key)


class KubeApi:
    """Requests to one apiserver. Thread-safe: informers, reconcilers and the leader share one."""

    def __init__(self, config: ClusterConfig, max_connections: int = MAX_CONNECTIONS) -> None:
        self.config = config
        self._max_connections = max_connections
        self._lock = threading.Lock()
        self._pool: urllib3.PoolManager | None = None
        self._pool_certificate: ClientCertificate | None = None

    # -- JSON calls ---------------------------------------------------------------------------------

    def get(self, path: str, query: Query | None = None, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> Object:
        return self.request("GET", path, query=query, timeout=timeout)

    def list(
        self, path: str, query: Query | None = None, timeout: float = DEFAULT_TIMEOUT_SECONDS
    ) -> tuple[list[Object], str]:
        """The items of a list and its resourceVersion (where a watch of the same path continues)."""
        body = self.get(path, query, timeout)
        return list(body.get("items") or []), str((body.get("metadata") or {}).get("resourceVersion") or "")

    def create(self, path: str, body: Mapping[str, Any], timeout: float = DEFAULT_TIMEOUT_SECONDS) -> Object:
        return self.request("POST", path, body=body, timeout=timeout)

    def replace(self, path: str, body: Mapping[str, Any], timeout: float = DEFAULT_TIMEOUT_SECONDS) -> Object:
        return self.request("PUT", path, body=body, timeout=timeout)

    def merge_patch(self, path: str, patch: Mapping[str, Any], timeout: float = DEFAULT_TIMEOUT_SECONDS) -> Object:
        return self.request("PATCH", path, body=patch, content_type=MERGE_PATCH, timeout=timeout)

    def delete(self, path: str, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> Object:
        return self.request("DELETE", path, timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Query | None = None,
        body: Mapping[str, Any] | None = None,
        content_type: str = JSON,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> Object:
        """One call; the answer's JSON, or a KubeError for a non-2xx answer."""
        payload = None if body is None else json.dumps(body).encode()
        url = path + _query_string(query)
        response = self._send(method, url, payload, content_type=content_type, timeout=urllib3.Timeout(total=timeout))
        data = response.data
        if not 200 <= response.status < 300:
            raise error_from_response(response.status, response.reason or "", data)
        return cast(Object, json.loads(data)) if data else {}

    # -- watch --------------------------------------------------------------------------------------

    def watch(
        self, path: str, resource_version: str, timeout_seconds: int, query: Query | None = None
    ) -> Iterator[WatchEvent]:
        """The events after ``resource_version`` until the server ends the watch after ``timeout_seconds``;
        bookmarks included (they carry the resourceVersion to resume from). The request is sent when the
        iteration starts; leaving the iteration closes the connection."""
        params = {
            **(query or {}),
            "watch": True,
            "allowWatchBookmarks": True,
            "resourceVersion": resource_version or None,
            "timeoutSeconds": timeout_seconds,
        }
        timeout = urllib3.Timeout(connect=DEFAULT_TIMEOUT_SECONDS, read=timeout_seconds + WATCH_READ_MARGIN_SECONDS)
        response = self._send("GET", path + _query_string(params), None, timeout=timeout, stream=True)
        try:
            if not 200 <= response.status < 300:
                raise error_from_response(response.status, response.reason or "", response.read())
            yield from watch_events(response.stream(amt=None, decode_content=False))
        finally:
            response.close()
            response.release_conn()

    # -- transport ----------------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        path_and_query: str,
        payload: bytes | None,
        *,
        content_type: str = JSON,
        timeout: urllib3.Timeout,
        stream: bool = False,
    ) -> urllib3.BaseHTTPResponse:
        """Send with the current credentials; after a 401, once more if they could be renewed (a rotated
        service-account token, an expired exec plugin token)."""

        def send_once() -> urllib3.BaseHTTPResponse:
            auth = self.config.credentials.current()
            headers = {"Accept": JSON, "User-Agent": USER_AGENT}
            if payload is not None:
                headers["Content-Type"] = content_type
            if auth.token:
                headers["Authorization"] = f"Bearer {auth.token}"
            return self._pool_for(auth.certificate).request(
                method,
                self.config.server + path_and_query,
                body=payload,
                headers=headers,
                timeout=timeout,
                retries=RETRIES,
                preload_content=not stream,
            )

        response = send_once()
        if response.status == 401 and self.config.credentials.expire():
            response.drain_conn()
            response.release_conn()
            response = send_once()
        return response

    def _pool_for(self, certificate: ClientCertificate | None) -> urllib3.PoolManager:
        """The pool, built again when an exec plugin hands out a new client certificate."""
        with self._lock:
            if self._pool is None or certificate != self._pool_certificate:
                old, self._pool = self._pool, self._new_pool(certificate)
                self._pool_certificate = certificate
                if old is not None:
                    old.clear()
            return self._pool

    def _new_pool(self, certificate: ClientCertificate | None) -> urllib3.PoolManager:
        if not self.config.server.startswith("https://"):
            return urllib3.PoolManager(maxsize=self._max_connections)
        config = self.config
        return urllib3.PoolManager(
            maxsize=self._max_connections,
            ssl_context=ssl_context(config, certificate),
            cert_reqs="CERT_NONE" if config.insecure_skip_tls_verify else "CERT_REQUIRED",
            server_hostname=config.tls_server_name,
        )

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.clear()
                self._pool = None
