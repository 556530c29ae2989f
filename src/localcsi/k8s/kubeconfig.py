"""Where the apiserver is and how to trust and authenticate to it: from a kubeconfig file, or from the
service account a pod runs as (in-cluster).

Only what our components and ``localcsi status`` meet is read: the current context's cluster (server,
certificate-authority(-data), insecure-skip-tls-verify, tls-server-name) and user (client-certificate(-data),
client-key(-data), token, tokenFile, exec). Anything else that changes how to connect (auth-provider,
basic auth, proxy-url) is refused with an error naming it, rather than ignored into a confusing 401.
Relative file paths resolve against the kubeconfig's directory, as kubectl does.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from localcsi.k8s.credentials import (
    Auth,
    ClientCertificate,
    ConfigError,
    Credentials,
    ExecCredentials,
    ExecPlugin,
    StaticCredentials,
    TokenFile,
)

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")

__all__ = ["ClusterConfig", "ConfigError", "default_kubeconfig_path", "load_in_cluster", "load_kubeconfig"]


@dataclasses.dataclass(frozen=True)
class ClusterConfig:
    server: str  # https://host:port, possibly with a path prefix (a proxy's)
    ca_pem: bytes | None = None  # None: the system's trust store
    insecure_skip_tls_verify: bool = False
    tls_server_name: str | None = None  # the name to verify the server's certificate for, if not the host's
    credentials: Credentials = dataclasses.field(default_factory=StaticCredentials)


def default_kubeconfig_path(environ: Mapping[str, str] = os.environ) -> Path:
    """The first file of $KUBECONFIG, else ~/.kube/config. kubectl merges every file of $KUBECONFIG;
    reading the first one alone covers a single cluster's kubeconfig, which is what an operator points
    ``localcsi status`` at."""
    for entry in environ.get("KUBECONFIG", "").split(os.pathsep):
        if entry:
            return Path(entry).expanduser()
    home = environ.get("HOME")
    return (Path(home) if home else Path.home()) / ".kube" / "config"


def load_kubeconfig(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] = os.environ
) -> ClusterConfig:
    """The current context of a kubeconfig file (``default_kubeconfig_path`` when none is given)."""
    file = Path(path) if path else default_kubeconfig_path(environ)
    try:
        document = yaml.safe_load(file.read_text())
    except OSError as error:
        raise ConfigError(f"cannot read kubeconfig {file}: {error.strerror or error}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"kubeconfig {file} is not valid YAML: {error}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"kubeconfig {file} is not a kubeconfig (no mapping at the top)")
    return _Kubeconfig(file, document, environ).current()


class _Kubeconfig:
    def __init__(self, file: Path, document: dict[str, Any], environ: Mapping[str, str]) -> None:
        self.file = file
        self.base = file.resolve().parent
        self.document = document
        self.environ = environ

    def error(self, what: str) -> ConfigError:
        return ConfigError(f"kubeconfig {self.file}: {what}")

    def current(self) -> ClusterConfig:
        name = self.document.get("current-context")
        if not name:
            raise self.error("no current-context is set (kubectl config use-context NAME)")
        context = self.named("contexts", "context", str(name))
        cluster_name, user_name = context.get("cluster"), context.get("user")
        if not cluster_name:
            raise self.error(f"context {name!r} names no cluster")
        cluster = self.named("clusters", "cluster", str(cluster_name))
        user = self.named("users", "user", str(user_name)) if user_name else {}
        return self.cluster_config(str(cluster_name), cluster, str(user_name or ""), user)

    def named(self, section: str, key: str, name: str) -> dict[str, Any]:
        for entry in self.document.get(section) or []:
            if isinstance(entry, dict) and entry.get("name") == name:
                body = entry.get(key)
                if not isinstance(body, dict):
                    raise self.error(f"{key} {name!r} is empty")
                return body
        raise self.error(f"no {key} named {name!r} in {section}")

    def path(self, value: Any) -> Path:
        path = Path(str(value)).expanduser()
        return path if path.is_absolute() else self.base / path

    def data_or_file(self, body: dict[str, Any], key: str, what: str) -> bytes | None:
        """``key-data`` (base64, wins as in client-go) or the file ``key`` names."""
        data = body.get(f"{key}-data")
        if data:
            try:
                return base64.b64decode(str(data), validate=True)
            except (binascii.Error, ValueError):
                raise self.error(f"{what}: {key}-data is not base64") from None
        if body.get(key):
            file = self.path(body[key])
            try:
                return file.read_bytes()
            except OSError as error:
                raise self.error(f"{what}: cannot read {key} {file}: {error.strerror or error}") from None
        return None

    def cluster_config(
        self, cluster_name: str, cluster: dict[str, Any], user_name: str, user: dict[str, Any]
    ) -> ClusterConfig:
        what = f"cluster {cluster_name!r}"
        server = str(cluster.get("server") or "")
        if not server.startswith(("https://", "http://")):
            raise self.error(f"{what}: server {server!r} is not an http(s) URL")
        if cluster.get("proxy-url"):
            raise self.error(f"{what}: proxy-url is not supported by localcsi")
        insecure = bool(cluster.get("insecure-skip-tls-verify"))
        ca_pem = self.data_or_file(cluster, "certificate-authority", what)
        if insecure and ca_pem:
            raise self.error(f"{what}: insecure-skip-tls-verify and a certificate authority exclude each other")
        config = ClusterConfig(
            server=server.rstrip("/"),
            ca_pem=ca_pem,
            insecure_skip_tls_verify=insecure,
            tls_server_name=str(cluster["tls-server-name"]) if cluster.get("tls-server-name") else None,
        )
        return dataclasses.replace(config, credentials=self.credentials(f"user {user_name!r}", user, config))

    def credentials(self, what: str, user: dict[str, Any], cluster: ClusterConfig) -> Credentials:
        if user.get("auth-provider"):
            provider = (user["auth-provider"] or {}).get("name") or "unnamed"
            raise self.error(
                f"{what}: auth-provider {provider!r} is not supported; use an exec credential plugin "
                "(client.authentication.k8s.io), as kubectl's own auth providers were removed in favour of them"
            )
        if user.get("username") or user.get("password"):
            raise self.error(f"{what}: basic authentication (username/password) is not supported")
        if user.get("exec"):
            return ExecCredentials(self.exec_plugin(what, user["exec"], cluster), environ=self.environ)
        cert = self.data_or_file(user, "client-certificate", what)
        key = self.data_or_file(user, "client-key", what)
        if bool(cert) != bool(key):
            raise self.error(f"{what}: a client certificate needs its key, and a key its certificate")
        certificate = ClientCertificate(cert, key) if cert and key else None
        if user.get("token"):  # a token wins over tokenFile, as in client-go
            return StaticCredentials(Auth(token=str(user["token"]), certificate=certificate))
        if user.get("tokenFile"):
            if certificate:
                raise self.error(f"{what}: tokenFile together with a client certificate is not supported")
            return TokenFile(self.path(user["tokenFile"]))
        return StaticCredentials(Auth(certificate=certificate))

    def exec_plugin(self, what: str, section: Any, cluster: ClusterConfig) -> ExecPlugin:
        if not isinstance(section, dict) or not section.get("command"):
            raise self.error(f"{what}: exec has no command")
        if section.get("interactiveMode") == "Always":
            raise self.error(
                f"{what}: the exec plugin wants a terminal (interactiveMode: Always); localcsi runs it without one"
            )
        command = str(section["command"])
        if os.sep in command and not Path(command).is_absolute():  # as client-go: relative to the kubeconfig
            command = str(self.base / command)
        env = {str(item["name"]): str(item.get("value", "")) for item in section.get("env") or [] if item.get("name")}
        cluster_info: dict[str, Any] | None = None
        if section.get("provideClusterInfo"):
            cluster_info = {"server": cluster.server, "insecure-skip-tls-verify": cluster.insecure_skip_tls_verify}
            if cluster.ca_pem:
                cluster_info["certificate-authority-data"] = base64.b64encode(cluster.ca_pem).decode()
            if cluster.tls_server_name:
                cluster_info["tls-server-name"] = cluster.tls_server_name
        return ExecPlugin(
            command=command,
            args=tuple(str(arg) for arg in section.get("args") or ()),
            env=env,
            api_version=str(section.get("apiVersion") or ""),
            install_hint=str(section.get("installHint") or ""),
            cluster_info=cluster_info,
        )


def load_in_cluster(
    environ: Mapping[str, str] = os.environ,
    token_path: Path = SERVICE_ACCOUNT_DIR / "token",
    ca_path: Path = SERVICE_ACCOUNT_DIR / "ca.crt",
) -> ClusterConfig:
    """The pod's service account: the apiserver at $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT, its
    CA and a token file re-read as the kubelet rotates it (TokenFile)."""
    host, port = environ.get("KUBERNETES_SERVICE_HOST"), environ.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise ConfigError("not in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address
    try:
        ca_pem = ca_path.read_bytes()
    except OSError as error:
        raise ConfigError(f"cannot read the service account's CA {ca_path}: {error.strerror or error}") from None
    if not token_path.is_file():
        raise ConfigError(f"no service account token at {token_path}")
    return ClusterConfig(server=f"https://{host}:{port}", ca_pem=ca_pem, credentials=TokenFile(token_path))
