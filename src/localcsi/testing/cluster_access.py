"""Who may use the test cluster (`cluster.py`) and with what: admin, kube-scheduler and the service accounts
of deploy/rbac as users of the apiserver's static token file, and kubeconfigs and API clients for each."""

from __future__ import annotations

import secrets
from pathlib import Path

import yaml
from kubernetes import client, config

from localcsi.k8s.client import api_client
from localcsi.k8s.rest import KubeApi
from localcsi.testing.certs import ClusterCerts
from localcsi.testing.vm import HOST_LOOPBACK

SYSTEM_NAMESPACE = "localcsi-system"
SERVICE_ACCOUNTS = (
    "localcsi-agent", "localcsi-controller", "localcsi-csi-controller", "localcsi-extender", "localcsi-webhook"
)  # fmt: skip
ADMIN = "admin"
# The bootstrap RBAC of kube-apiserver already binds these users to their components' ClusterRoles.
SCHEDULER = "system:kube-scheduler"


def service_account_user(name: str) -> str:
    return f"system:serviceaccount:{SYSTEM_NAMESPACE}:{name}"


class ClusterAccess:
    """KubeCluster's users, tokens, kubeconfigs and clients; KubeCluster sets the attributes below."""

    workdir: Path
    server: str
    port: int
    certs: ClusterCerts
    _tokens: dict[str, str]

    @property
    def ca_file(self) -> Path:
        return self.certs.ca_cert

    def _write_token_file(self) -> Path:
        users = [(ADMIN, "system:masters"), (SCHEDULER, "")] + [
            (service_account_user(sa), f"system:serviceaccounts,system:serviceaccounts:{SYSTEM_NAMESPACE}")
            for sa in SERVICE_ACCOUNTS
        ]
        lines = []
        for index, (user, groups) in enumerate(users):
            token = secrets.token_hex(16)
            self._tokens[user] = token
            lines.append(f'{token},{user},uid-{index},"{groups}"' if groups else f"{token},{user},uid-{index}")
        path = self.workdir / "tokens.csv"
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o600)
        return path

    def token(self, user: str = ADMIN) -> str:
        return self._tokens[self._user(user)]

    def _user(self, user: str) -> str:
        return service_account_user(user) if user in SERVICE_ACCOUNTS else user

    def kubeconfig(self, user: str = ADMIN, server: str | None = None, ca_file: str | None = None) -> Path:
        """A kubeconfig file for `user` (admin, or a service account's short or full name)."""
        user = self._user(user)
        safe = user.replace(":", "_")
        path = self.workdir / f"kubeconfig-{safe}-{'guest' if server else 'host'}"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "test", "cluster": {"server": server or self.server,
                                                      "certificate-authority": ca_file or str(self.ca_file)}}],
            "users": [{"name": safe, "user": {"token": self._tokens[user]}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": safe}}],
            "current-context": "test",
        }  # fmt: skip
        if not path.exists():  # written once: clients in other threads may be reading it
            staging = path.with_suffix(".partial")
            staging.write_text(yaml.safe_dump(config))
            staging.chmod(0o600)
            staging.replace(path)
        return path

    def guest_kubeconfig(self, user: str, ca_path_in_guest: str) -> str:
        """kubeconfig text for the node VM, which reaches the apiserver at HOST_LOOPBACK (boot it with
        VMConfig(host_loopback=True)), with the CA copied to `ca_path_in_guest`."""
        path = self.kubeconfig(user, server=f"https://{HOST_LOOPBACK}:{self.port}", ca_file=ca_path_in_guest)
        return path.read_text()

    def api_client(self, user: str = ADMIN) -> client.ApiClient:
        """The official client, for what the tests do themselves (the components never use it)."""
        return config.new_client_from_config(config_file=str(self.kubeconfig(user)))

    def kube_api(self, user: str = ADMIN) -> KubeApi:
        """The components' own client (localcsi.k8s.rest), loaded from the kubeconfig as they load it: what
        to hand to CustomResources, the informers, the leader election and the rest of localcsi.k8s."""
        return api_client(str(self.kubeconfig(user)))
