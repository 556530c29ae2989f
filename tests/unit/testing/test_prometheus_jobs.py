"""localcsi.testing.prometheus.apiserver_proxy_job: a scrape job through the apiserver's proxy, from a
kubernetes client's configuration, that promtool accepts (the e2e tier scrapes the real node with it)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from localcsi.testing.prometheus import apiserver_proxy_job, binary

pytestmark = pytest.mark.unit

PATHS = {"plugin-abc:9808": "/api/v1/namespaces/ns/pods/plugin-abc:9808/proxy/metrics"}


def _configuration(tmp_path: Path, *, token: bool) -> client.Configuration:
    configuration = client.Configuration()
    configuration.host = "https://127.0.0.1:6443"
    configuration.ssl_ca_cert = str(tmp_path / "ca.crt")
    for name in ("ca.crt", "client.crt", "client.key"):
        (tmp_path / name).write_text("not read by promtool check config\n")
    if token:
        configuration.api_key = {"authorization": "Bearer secret-token"}
    else:
        configuration.cert_file, configuration.key_file = str(tmp_path / "client.crt"), str(tmp_path / "client.key")
    return configuration


def _promtool_accepts(tmp_path: Path, job: dict[str, object]) -> None:
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump({"scrape_configs": [job]}))
    check = subprocess.run(
        [binary("promtool"), "check", "config", str(config)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_token_job_scrapes_each_path_on_the_apiserver_with_its_ca(tmp_path: Path) -> None:
    job = apiserver_proxy_job("localcsi", _configuration(tmp_path, token=True), PATHS)
    assert job["scheme"] == "https"
    assert job["authorization"] == {"type": "Bearer", "credentials": "secret-token"}
    assert job["tls_config"] == {"ca_file": str(tmp_path / "ca.crt")}
    assert job["static_configs"] == [
        {"targets": ["127.0.0.1:6443"], "labels": {"__metrics_path__": PATHS["plugin-abc:9808"],
                                                    "instance": "plugin-abc:9808"}}
    ]  # fmt: skip
    _promtool_accepts(tmp_path, job)


def test_a_certificate_job_presents_the_client_certificate(tmp_path: Path) -> None:
    job = apiserver_proxy_job("localcsi", _configuration(tmp_path, token=False), PATHS)
    assert "authorization" not in job
    assert job["tls_config"] == {
        "ca_file": str(tmp_path / "ca.crt"),
        "cert_file": str(tmp_path / "client.crt"),
        "key_file": str(tmp_path / "client.key"),
    }
    _promtool_accepts(tmp_path, job)
