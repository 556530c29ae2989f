"""Build an API client: an explicit kubeconfig file, else the in-cluster service account, else the default
kubeconfig ($KUBECONFIG's first file, or ~/.kube/config)."""

from __future__ import annotations

import os

from localcsi.k8s.kubeconfig import load_in_cluster, load_kubeconfig
from localcsi.k8s.rest import KubeApi


def api_client(kubeconfig: str | None = None) -> KubeApi:
    if kubeconfig:
        return KubeApi(load_kubeconfig(kubeconfig))
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return KubeApi(load_in_cluster())
    return KubeApi(load_kubeconfig())
