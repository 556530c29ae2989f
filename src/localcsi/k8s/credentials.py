"""Who we are to the apiserver: a bearer token or a client certificate, static, re-read from a file, or
obtained from an exec credential plugin.

``KubeApi`` asks for ``current()`` before every request and calls ``expire()`` after a 401, then tries
once more if that returned True: a rotated service-account token or an expired cloud token is then
picked up without restarting the process.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

# client-go re-reads a service-account token file at most once a minute (bound tokens rotate hourly).
TOKEN_FILE_REREAD_SECONDS = 60.0
EXEC_API_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")
# A plugin may wait for a browser login; a hung one must still not block a component forever.
EXEC_TIMEOUT_SECONDS = 300.0
# Run the plugin again this long before its token expires, so a request in flight does not carry a
# token that expires on the way (client-go waits for the expiry itself).
EXEC_EXPIRY_MARGIN = timedelta(seconds=10)


class ConfigError(Exception):
    """A kubeconfig, in-cluster setup or credential plugin we cannot use; the message says what to fix."""


@dataclass(frozen=True)
class ClientCertificate:
    cert_pem: bytes
    key_pem: bytes


@dataclass(frozen=True)
class Auth:
    token: str | None = None
    certificate: ClientCertificate | None = None


class Credentials(Protocol):
    def current(self) -> Auth:
        """What to authenticate the next request with."""

    def expire(self) -> bool:
        """Forget what ``current`` returned (the apiserver said 401); True if asking again may help."""


@dataclass(frozen=True)
class StaticCredentials:
    """A token or certificate written in the kubeconfig, or none (anonymous)."""

    auth: Auth = Auth()

    def current(self) -> Auth:
        return self.auth

    def expire(self) -> bool:
        return False


class TokenFile:
    """A bearer token read from a file, read again after ``reread_seconds`` or a 401: the kubelet
    rewrites a projected service-account token before it expires."""

    def __init__(
        self,
        path: Path,
        reread_seconds: float = TOKEN_FILE_REREAD_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self._reread_seconds = reread_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._read_at = 0.0

    def current(self) -> Auth:
        with self._lock:
            now = self._clock()
            if self._token is None or now - self._read_at >= self._reread_seconds:
                try:
                    self._token = self.path.read_text().strip()
                except OSError as error:
                    raise ConfigError(f"cannot read the token file {self.path}: {error}") from None
                self._read_at = now
            return Auth(token=self._token)

    def expire(self) -> bool:
        with self._lock:
            self._token = None
        return True


@dataclass(frozen=True)
class ExecPlugin:
    """A kubeconfig user's ``exec`` section: the command and what it needs."""

    command: str
    args: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    api_version: str = EXEC_API_VERSIONS[0]
    install_hint: str = ""
    cluster_info: Mapping[str, Any] | None = None  # sent when provideClusterInfo is true


class ExecCredentials:
    """Credentials from an exec plugin (client.authentication.k8s.io ExecCredential, as kubectl runs
    them for cloud clusters): run as an argv list, never through a shell; the answer is kept until its
    ``expirationTimestamp`` (for good when it has none) or a 401."""

    def __init__(
        self,
        plugin: ExecPlugin,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        environ: Mapping[str, str] | None = None,
    ) -> None:
        if plugin.api_version not in EXEC_API_VERSIONS:
            raise ConfigError(
                f"exec plugin {plugin.command}: apiVersion {plugin.api_version!r} is not one of {EXEC_API_VERSIONS}"
            )
        self.plugin = plugin
        self._wall_clock = wall_clock
        self._environ = environ
        self._lock = threading.Lock()
        self._auth: Auth | None = None
        self._expires: datetime | None = None

    def current(self) -> Auth:
        with self._lock:
            fresh = self._expires is None or self._wall_clock() < self._expires - EXEC_EXPIRY_MARGIN
            if self._auth is None or not fresh:
                self._auth, self._expires = self._run()
            return self._auth

    def expire(self) -> bool:
        with self._lock:
            self._auth = None
        return True

    def _run(self) -> tuple[Auth, datetime | None]:
        plugin = self.plugin
        spec: dict[str, Any] = {"interactive": False}
        if plugin.cluster_info is not None:
            spec["cluster"] = dict(plugin.cluster_info)
        exec_info = {"apiVersion": plugin.api_version, "kind": "ExecCredential", "spec": spec}
        env = {**(os.environ if self._environ is None else self._environ), **plugin.env}
        env["KUBERNETES_EXEC_INFO"] = json.dumps(exec_info)
        argv = [plugin.command, *plugin.args]
        hint = f" ({plugin.install_hint.strip()})" if plugin.install_hint.strip() else ""
        try:
            # stderr is the user's terminal: plugins print their login instructions there, as with kubectl
            proc = subprocess.run(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                timeout=EXEC_TIMEOUT_SECONDS,
                check=False,
            )
        except FileNotFoundError:
            raise ConfigError(f"exec plugin {plugin.command} not found{hint}") from None
        except (OSError, subprocess.TimeoutExpired) as error:
            raise ConfigError(f"exec plugin {plugin.command} failed: {error}") from None
        if proc.returncode != 0:
            raise ConfigError(f"exec plugin {plugin.command} exited with status {proc.returncode}{hint}")
        return parse_exec_credential(proc.stdout, plugin.api_version, plugin.command)


def parse_exec_credential(output: bytes, api_version: str, command: str) -> tuple[Auth, datetime | None]:
    """The token or certificate, and the expiry, of a plugin's ExecCredential answer."""
    try:
        answer = json.loads(output)
    except ValueError:
        raise ConfigError(f"exec plugin {command} did not print an ExecCredential as JSON") from None
    if not isinstance(answer, dict) or answer.get("kind") != "ExecCredential":
        raise ConfigError(f"exec plugin {command} did not print an ExecCredential")
    if answer.get("apiVersion") != api_version:
        raise ConfigError(f"exec plugin {command} answered {answer.get('apiVersion')!r}, not {api_version!r}")
    status = answer.get("status")
    if not isinstance(status, dict):
        raise ConfigError(f"exec plugin {command}: the ExecCredential has no status")
    token = status.get("token")
    cert, key = status.get("clientCertificateData"), status.get("clientKeyData")
    if bool(cert) != bool(key):
        raise ConfigError(f"exec plugin {command}: clientCertificateData and clientKeyData come together")
    if not token and not cert:
        raise ConfigError(f"exec plugin {command}: the ExecCredential has neither a token nor a client certificate")
    certificate = ClientCertificate(str(cert).encode(), str(key).encode()) if cert else None
    auth = Auth(token=str(token) if token else None, certificate=certificate)
    expiry = status.get("expirationTimestamp")
    if not expiry:
        return auth, None
    try:
        expires = datetime.fromisoformat(str(expiry))
    except ValueError:
        raise ConfigError(f"exec plugin {command}: expirationTimestamp {expiry!r} is not RFC 3339") from None
    return auth, expires if expires.tzinfo else expires.replace(tzinfo=UTC)
