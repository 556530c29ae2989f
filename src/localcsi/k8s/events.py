"""Record core/v1 Events about our objects; recording never fails the caller."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import urllib3

from localcsi.k8s.errors import KubeError
from localcsi.k8s.rest import KubeApi, resource_path

log = logging.getLogger(__name__)

DEFAULT_NAMESPACE = "default"  # where Events about cluster-scoped objects go, as kubectl describe expects


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class EventRecorder:
    def __init__(self, api: KubeApi, component: str, host: str) -> None:
        self._api = api
        self.component = component
        self.host = host

    def record(self, involved: dict[str, Any], event_type: str, reason: str, message: str) -> None:
        meta = involved.get("metadata", {})
        namespace = meta.get("namespace") or DEFAULT_NAMESPACE
        timestamp = now_rfc3339()
        body = {
            "metadata": {"name": f"{meta.get('name', 'unknown')}.{uuid.uuid4().hex[:12]}", "namespace": namespace},
            "involvedObject": {
                "apiVersion": involved.get("apiVersion"),
                "kind": involved.get("kind"),
                "name": meta.get("name"),
                "namespace": meta.get("namespace"),
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": event_type,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": self.component, "host": self.host},
            "reportingComponent": self.component,
            "reportingInstance": self.host,
            "firstTimestamp": timestamp,
            "lastTimestamp": timestamp,
            "count": 1,
        }
        try:
            self._api.create(resource_path("", "v1", "events", namespace=namespace), body)
        except (KubeError, OSError, ValueError, urllib3.exceptions.HTTPError) as error:
            log.warning("could not record event %s on %s: %s", reason, meta.get("name"), error)
