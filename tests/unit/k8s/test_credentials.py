"""Credentials: a token file re-read as it rotates, and exec credential plugins (a small Python script
here) run as argv lists, cached until their expiry, run again after a 401."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from localcsi.k8s.credentials import (
    EXEC_API_VERSIONS,
    Auth,
    ClientCertificate,
    ConfigError,
    ExecCredentials,
    ExecPlugin,
    TokenFile,
)
from localcsi.k8s.errors import KubeError
from localcsi.k8s.kubeconfig import ClusterConfig
from localcsi.k8s.rest import KubeApi
from localcsi.testing.stub_apiserver import Reply, Request, StubApiserver, status_reply

pytestmark = pytest.mark.unit

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)

# Counts its runs in argv[1]; records its argv and environment in argv[2]; answers with token-N, the
# expiry in $EXPIRES and the certificate files named in $CERT and $KEY, if set.
PLUGIN = """\
import json, os, sys
runs, record = sys.argv[1], sys.argv[2]
n = int(open(runs).read()) + 1 if os.path.exists(runs) else 1
open(runs, "w").write(str(n))
info = json.loads(os.environ["KUBERNETES_EXEC_INFO"])
json.dump({"argv": sys.argv[3:], "info": info, "region": os.environ.get("REGION")}, open(record, "w"))
status = {"token": f"token-{n}"}
if os.environ.get("EXPIRES"):
    status["expirationTimestamp"] = os.environ["EXPIRES"]
if os.environ.get("CERT"):
    status = {"clientCertificateData": open(os.environ["CERT"]).read(), "clientKeyData": open(os.environ["KEY"]).read()}
if os.environ.get("ANSWER"):
    print(os.environ["ANSWER"])
else:
    print(json.dumps({"apiVersion": info["apiVersion"], "kind": "ExecCredential", "status": status}))
sys.exit(int(os.environ.get("EXIT", "0")))
"""


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


class Plugin:
    def __init__(self, directory: Path) -> None:
        self.script = directory / "plugin.py"
        self.script.write_text(PLUGIN)
        self.runs_file = directory / "runs"
        self.record_file = directory / "record.json"

    def credentials(self, clock: Clock | None = None, *extra: str, **env: str) -> ExecCredentials:
        args = (str(self.script), str(self.runs_file), str(self.record_file), *extra)
        plugin = ExecPlugin(command=sys.executable, args=args, env=env, install_hint="pip install the-plugin")
        return ExecCredentials(plugin, wall_clock=clock or Clock(), environ={"PATH": "/usr/bin:/bin"})

    @property
    def runs(self) -> int:
        return int(self.runs_file.read_text()) if self.runs_file.exists() else 0

    @property
    def record(self) -> dict[str, Any]:
        return dict(json.loads(self.record_file.read_text()))


@pytest.fixture
def plugin(tmp_path: Path) -> Plugin:
    return Plugin(tmp_path)


def test_the_plugin_gets_its_arguments_verbatim_its_env_and_the_exec_info(plugin: Plugin) -> None:
    shell_like = ("two words", "$(touch pwned)", "; exit 3", "*")
    assert plugin.credentials(None, *shell_like, REGION="eu-1").current() == Auth(token="token-1")
    assert plugin.record["argv"] == list(shell_like)  # an argv list: nothing a shell would have expanded
    assert plugin.record["region"] == "eu-1"
    assert plugin.record["info"] == {
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "spec": {"interactive": False},
    }
    assert not (Path.cwd() / "pwned").exists()


def test_a_token_is_kept_until_its_expiry(plugin: Plugin) -> None:
    clock = Clock()
    credentials = plugin.credentials(clock, EXPIRES=(NOW + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert credentials.current() == Auth(token="token-1")
    clock.now = NOW + timedelta(minutes=59)
    assert credentials.current() == Auth(token="token-1")
    assert plugin.runs == 1
    clock.now = NOW + timedelta(hours=1)
    assert credentials.current() == Auth(token="token-2")
    assert plugin.runs == 2


def test_a_token_without_expiry_is_kept_until_the_apiserver_refuses_it(plugin: Plugin) -> None:
    credentials = plugin.credentials(Clock())
    assert [credentials.current().token for _ in range(3)] == ["token-1"] * 3
    assert credentials.expire() is True
    assert credentials.current() == Auth(token="token-2")


def test_a_401_runs_the_plugin_again_and_the_request_goes_through(plugin: Plugin) -> None:
    def handle(request: Request) -> Reply:
        if request.headers.get("authorization") == "Bearer token-1":  # expired early, on the server's side
            return status_reply(401, "Unauthorized", "Unauthorized")
        return Reply(body={"kind": "NodeList", "items": []})

    with StubApiserver(handle) as server:
        api = KubeApi(ClusterConfig(server.url, credentials=plugin.credentials(Clock())))
        assert api.list("/api/v1/nodes") == ([], "")
    assert [r.headers["authorization"] for r in server.requests] == ["Bearer token-1", "Bearer token-2"]
    assert plugin.runs == 2


def test_a_plugin_still_refused_after_running_again_gives_the_401(plugin: Plugin) -> None:
    with StubApiserver(lambda _: status_reply(401, "Unauthorized", "Unauthorized")) as server:
        api = KubeApi(ClusterConfig(server.url, credentials=plugin.credentials(Clock())))
        with pytest.raises(KubeError, match="401"):
            api.get("/api/v1/nodes")
    assert plugin.runs == 2  # one renewal per request, no loop


def test_a_plugin_may_answer_with_a_client_certificate(plugin: Plugin, tmp_path: Path) -> None:
    (tmp_path / "c.pem").write_text("CERT PEM")
    (tmp_path / "k.pem").write_text("KEY PEM")
    credentials = plugin.credentials(None, CERT=str(tmp_path / "c.pem"), KEY=str(tmp_path / "k.pem"))
    assert credentials.current() == Auth(certificate=ClientCertificate(b"CERT PEM", b"KEY PEM"))


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"EXIT": "2"}, r"exited with status 2 \(pip install the-plugin\)"),
        ({"ANSWER": "Please log in first"}, "did not print an ExecCredential as JSON"),
        ({"ANSWER": '{"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential"}'}, "answered"),
        ({"ANSWER": '{"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential", "status": {}}'},
         "neither a token nor a client certificate"),
        ({"EXPIRES": "tomorrow"}, "is not RFC 3339"),
    ],
)  # fmt: skip
def test_a_plugin_that_fails_says_what_went_wrong(plugin: Plugin, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        plugin.credentials(None, **env).current()


def test_a_missing_plugin_names_its_install_hint() -> None:
    plugin = ExecPlugin(command="/nonexistent/gke-gcloud-auth-plugin", install_hint="install gke-gcloud-auth-plugin")
    with pytest.raises(ConfigError, match=r"not found \(install gke-gcloud-auth-plugin\)"):
        ExecCredentials(plugin).current()


def test_only_the_exec_credential_versions_kubectl_supports_are_accepted() -> None:
    assert EXEC_API_VERSIONS == ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")
    with pytest.raises(ConfigError, match="v1alpha1"):
        ExecCredentials(ExecPlugin(command="x", api_version="client.authentication.k8s.io/v1alpha1"))


def test_a_token_file_is_read_again_once_a_minute(tmp_path: Path) -> None:
    path, now = tmp_path / "token", [0.0]
    path.write_text("first\n")
    tokens = TokenFile(path, clock=lambda: now[0])
    assert tokens.current() == Auth(token="first")
    path.write_text("second\n")
    now[0] = 59.0
    assert tokens.current() == Auth(token="first")
    now[0] = 60.0
    assert tokens.current() == Auth(token="second")


def test_a_token_file_that_vanished_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the token file"):
        TokenFile(tmp_path / "missing").current()
