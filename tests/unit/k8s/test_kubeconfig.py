"""Loading a kubeconfig (the current context's cluster and user, paths relative to the file) and the
in-cluster configuration, and api_client's order between them."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from localcsi.k8s import client
from localcsi.k8s.credentials import Auth, ClientCertificate, ConfigError, ExecCredentials, StaticCredentials, TokenFile
from localcsi.k8s.kubeconfig import SERVICE_ACCOUNT_DIR, default_kubeconfig_path, load_in_cluster, load_kubeconfig

pytestmark = pytest.mark.unit

V1 = "client.authentication.k8s.io/v1"


def kubeconfig(
    path: Path, cluster: dict[str, Any], user: dict[str, Any] | None = None, current: str | None = "work"
) -> Path:
    document: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "other", "cluster": {"server": "https://other:6443"}}, {"name": "c", "cluster": cluster}],
        "users": [{"name": "u", "user": user or {}}],
        "contexts": [{"name": "work", "context": {"cluster": "c", "user": "u"}}],
    }
    if current:
        document["current-context"] = current
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document))
    return path


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_the_current_context_s_cluster_and_token(tmp_path: Path) -> None:
    cluster = {
        "server": "https://10.0.0.1:6443/",
        "certificate-authority-data": b64(b"CA PEM"),
        "tls-server-name": "api",
    }
    config = load_kubeconfig(kubeconfig(tmp_path / "config", cluster, {"token": "t0k3n"}))
    assert (config.server, config.ca_pem, config.tls_server_name) == ("https://10.0.0.1:6443", b"CA PEM", "api")
    assert not config.insecure_skip_tls_verify
    assert config.credentials == StaticCredentials(Auth(token="t0k3n"))


def test_relative_paths_resolve_against_the_kubeconfig_s_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "kube"
    (home / "pki").mkdir(parents=True)
    for name, content in {"ca.crt": "CA", "user.crt": "CERT", "user.key": "KEY", "token": "from-file"}.items():
        (home / "pki" / name).write_text(content)
    cluster = {"server": "https://api:6443", "certificate-authority": "pki/ca.crt"}
    monkeypatch.chdir(tmp_path)  # not the kubeconfig's directory

    certs = {"client-certificate": "pki/user.crt", "client-key": "pki/user.key"}
    config = load_kubeconfig(kubeconfig(home / "config", cluster, certs))
    assert config.ca_pem == b"CA"
    assert config.credentials.current() == Auth(certificate=ClientCertificate(b"CERT", b"KEY"))

    config = load_kubeconfig(kubeconfig(home / "config", cluster, {"tokenFile": "pki/token"}))
    assert isinstance(config.credentials, TokenFile)
    assert config.credentials.current() == Auth(token="from-file")

    exec_user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": "bin/plugin"}}
    config = load_kubeconfig(kubeconfig(home / "config", cluster, exec_user))
    assert isinstance(config.credentials, ExecCredentials)
    assert config.credentials.plugin.command == str(home / "bin" / "plugin")

    on_path = {
        "exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "aws", "args": ["eks", "get-token"]}
    }
    config = load_kubeconfig(kubeconfig(home / "config", cluster, on_path))
    assert isinstance(config.credentials, ExecCredentials)
    assert (config.credentials.plugin.command, tuple(config.credentials.plugin.args)) == ("aws", ("eks", "get-token"))


def test_inline_data_wins_over_a_file_as_in_kubectl(tmp_path: Path) -> None:
    cluster = {
        "server": "https://api:6443",
        "certificate-authority": "missing.crt",
        "certificate-authority-data": b64(b"INLINE CA"),
    }
    user = {"client-certificate-data": b64(b"CERT"), "client-key-data": b64(b"KEY"), "client-key": "missing.key"}
    config = load_kubeconfig(kubeconfig(tmp_path / "config", cluster, user))
    assert config.ca_pem == b"INLINE CA"
    assert config.credentials.current().certificate == ClientCertificate(b"CERT", b"KEY")


def test_a_token_wins_over_a_token_file(tmp_path: Path) -> None:
    user = {"token": "inline", "tokenFile": "missing"}
    assert load_kubeconfig(kubeconfig(tmp_path / "config", {"server": "https://a"}, user)).credentials.current() == (
        Auth(token="inline")
    )


def test_exec_with_provide_cluster_info_passes_the_cluster(tmp_path: Path) -> None:
    cluster = {
        "server": "https://api:6443",
        "certificate-authority-data": b64(b"CA"),
        "tls-server-name": "api.internal",
    }
    env = [{"name": "AWS_PROFILE", "value": "ops"}]
    plugin = {"apiVersion": V1, "command": "/bin/true", "provideClusterInfo": True, "env": env, "installHint": "get it"}
    user = {"exec": plugin}
    credentials = load_kubeconfig(kubeconfig(tmp_path / "config", cluster, user)).credentials
    assert isinstance(credentials, ExecCredentials)
    assert dict(credentials.plugin.env) == {"AWS_PROFILE": "ops"}
    assert credentials.plugin.install_hint == "get it"
    assert credentials.plugin.cluster_info == {
        "server": "https://api:6443",
        "insecure-skip-tls-verify": False,
        "certificate-authority-data": b64(b"CA"),
        "tls-server-name": "api.internal",
    }


@pytest.mark.parametrize(
    ("cluster", "user", "current", "message"),
    [
        ({"server": "https://a"}, None, None, "no current-context is set"),
        ({"server": "https://a"}, None, "elsewhere", "no context named 'elsewhere'"),
        ({"server": "a:6443"}, None, "work", "is not an http"),
        ({"server": "https://a", "proxy-url": "http://proxy:3128"}, None, "work", "proxy-url is not supported"),
        ({"server": "https://a", "insecure-skip-tls-verify": True, "certificate-authority-data": b64(b"CA")}, None,
         "work", "exclude each other"),
        ({"server": "https://a", "certificate-authority": "nowhere.crt"}, None, "work",
         "cannot read certificate-authority"),
        ({"server": "https://a", "certificate-authority-data": "not base64!"}, None, "work", "is not base64"),
        ({"server": "https://a"}, {"auth-provider": {"name": "gcp", "config": {}}}, "work", "auth-provider 'gcp'"),
        ({"server": "https://a"}, {"username": "admin", "password": "secret"}, "work", "basic authentication"),
        ({"server": "https://a"}, {"client-certificate-data": b64(b"CERT")}, "work", "needs its key"),
        ({"server": "https://a"}, {"exec": {"apiVersion": V1}}, "work", "exec has no command"),
        ({"server": "https://a"}, {"exec": {"apiVersion": V1, "command": "login", "interactiveMode": "Always"}}, "work",
         "wants a terminal"),
    ],
)  # fmt: skip
def test_what_cannot_be_used_is_refused_with_a_message_naming_it(
    tmp_path: Path, cluster: dict[str, Any], user: dict[str, Any] | None, current: str | None, message: str
) -> None:
    path = kubeconfig(tmp_path / "config", cluster, user, current)
    with pytest.raises(ConfigError, match=message) as raised:
        load_kubeconfig(path)
    assert str(path) in str(raised.value)


def test_a_missing_or_broken_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read kubeconfig"):
        load_kubeconfig(tmp_path / "absent")
    (tmp_path / "broken").write_text("clusters: [")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_kubeconfig(tmp_path / "broken")


def test_the_default_file_is_kubeconfig_s_first_entry_else_home() -> None:
    environ = {"KUBECONFIG": os.pathsep.join(["/etc/first.yaml", "/etc/second.yaml"]), "HOME": "/home/op"}
    assert default_kubeconfig_path(environ) == Path("/etc/first.yaml")
    assert default_kubeconfig_path({"KUBECONFIG": os.pathsep + "/etc/second.yaml"}) == Path("/etc/second.yaml")
    assert default_kubeconfig_path({"HOME": "/home/op"}) == Path("/home/op/.kube/config")


def test_load_kubeconfig_without_a_path_reads_the_default(tmp_path: Path) -> None:
    kubeconfig(tmp_path / ".kube" / "config", {"server": "https://from-home:6443"})
    assert load_kubeconfig(None, environ={"HOME": str(tmp_path)}).server == "https://from-home:6443"


# -- in-cluster ---------------------------------------------------------------------------------------


@pytest.fixture
def service_account(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "token").write_text("sa-token\n")
    (tmp_path / "ca.crt").write_text("SA CA")
    return tmp_path / "token", tmp_path / "ca.crt"


@pytest.mark.parametrize(
    ("host", "server"), [("10.96.0.1", "https://10.96.0.1:443"), ("fd00:10:96::1", "https://[fd00:10:96::1]:443")]
)
def test_in_cluster_server_ca_and_token(service_account: tuple[Path, Path], host: str, server: str) -> None:
    token, ca = service_account
    environ = {"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": "443"}
    config = load_in_cluster(environ, token_path=token, ca_path=ca)
    assert (config.server, config.ca_pem) == (server, b"SA CA")
    assert config.credentials.current() == Auth(token="sa-token")


def test_in_cluster_without_the_environment_or_files_says_what_is_missing(service_account: tuple[Path, Path]) -> None:
    token, ca = service_account
    environ = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    with pytest.raises(ConfigError, match="KUBERNETES_SERVICE_PORT must be set"):
        load_in_cluster({"KUBERNETES_SERVICE_HOST": "10.96.0.1"}, token_path=token, ca_path=ca)
    with pytest.raises(ConfigError, match="service account's CA"):
        load_in_cluster(environ, token_path=token, ca_path=ca.with_name("absent"))
    with pytest.raises(ConfigError, match="no service account token"):
        load_in_cluster(environ, token_path=token.with_name("absent"), ca_path=ca)


# -- api_client's order ---------------------------------------------------------------------------------


def test_api_client_prefers_the_given_file_then_in_cluster_then_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    given = kubeconfig(tmp_path / "given", {"server": "https://given:6443"})
    kubeconfig(tmp_path / "default", {"server": "https://default:6443"})
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "default"))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    assert client.api_client(str(given)).config.server == "https://given:6443"
    if not SERVICE_ACCOUNT_DIR.exists():  # this is no pod: in-cluster is what was tried
        with pytest.raises(ConfigError, match=str(SERVICE_ACCOUNT_DIR)):
            client.api_client(None)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    assert client.api_client(None).config.server == "https://default:6443"
