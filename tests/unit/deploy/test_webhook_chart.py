"""The webhook in the chart: off by default; on, a certificate kube-apiserver can verify (helm's, or
cert-manager's), a MutatingWebhookConfiguration that reaches the Deployment and leaves kube-system and
the release namespace alone, and read-only RBAC."""

from __future__ import annotations

import base64
import functools
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from localcsi import cli
from localcsi.testing.install import load_project_script

pytestmark = pytest.mark.unit

CHART = Path(__file__).resolve().parents[3] / "deploy" / "helm" / "localcsi"
GENERATE = load_project_script("deploy/generate.py")
NAMESPACE = "storage"
ON = ("--set", "webhook.enabled=true")
CERT_MANAGER = (*ON, "--set", "webhook.certificates.source=cert-manager")
ALL_ON = ("--values", str(CHART / "ci" / "all-on-values.yaml"))
Object = dict[str, Any]


@functools.cache
def render(*values: str) -> tuple[Object, ...]:
    return tuple(doc for doc in yaml.safe_load_all(GENERATE.template(values, namespace=NAMESPACE, crds=False)) if doc)


def webhook_objects(*values: str) -> dict[tuple[str, str], Object]:
    return {
        (doc["kind"], doc["metadata"]["name"]): doc
        for doc in render(*values)
        if doc["metadata"]["labels"].get("app.kubernetes.io/component") == "webhook"
    }


def test_the_webhook_is_off_by_default() -> None:
    assert webhook_objects() == {}
    assert not [doc for doc in render() if doc["kind"] == "MutatingWebhookConfiguration"]


def test_with_helm_certificates() -> None:
    objects = webhook_objects(*ON)
    assert set(objects) == {
        ("ServiceAccount", "localcsi-webhook"),
        ("ClusterRole", "localcsi-webhook"),
        ("ClusterRoleBinding", "localcsi-webhook"),
        ("Secret", "localcsi-webhook-tls"),
        ("Deployment", "localcsi-webhook"),
        ("Service", "localcsi-webhook"),
        ("MutatingWebhookConfiguration", "localcsi-webhook"),
    }
    (webhook,) = objects["MutatingWebhookConfiguration", "localcsi-webhook"]["webhooks"]
    secret = objects["Secret", "localcsi-webhook-tls"]
    assert secret["type"] == "kubernetes.io/tls"
    assert webhook["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]


def verify(ca_pem: bytes, cert_pem: bytes, directory: Path) -> str:
    (directory / "ca.crt").write_bytes(ca_pem)
    (directory / "tls.crt").write_bytes(cert_pem)
    check = ["openssl", "verify", "-CAfile", str(directory / "ca.crt"), str(directory / "tls.crt")]
    assert subprocess.run(check, capture_output=True, text=True, check=False).stdout.strip().endswith(": OK")
    names = ["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", str(directory / "tls.crt")]
    return subprocess.run(names, capture_output=True, text=True, check=True).stdout


def test_the_helm_certificate_is_signed_by_the_ca_bundle_for_the_service_names(tmp_path: Path) -> None:
    objects = webhook_objects(*ON)
    data = {key: base64.b64decode(value) for key, value in objects["Secret", "localcsi-webhook-tls"]["data"].items()}
    assert data["tls.key"].startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    names = verify(data["ca.crt"], data["tls.crt"], tmp_path)
    assert f"DNS:localcsi-webhook.{NAMESPACE}.svc" in names
    assert f"DNS:localcsi-webhook.{NAMESPACE}.svc.cluster.local" in names


def test_the_configuration_reaches_the_deployment_and_only_pod_creations() -> None:
    objects = webhook_objects(*ON)
    (webhook,) = objects["MutatingWebhookConfiguration", "localcsi-webhook"]["webhooks"]
    assert (webhook["failurePolicy"], webhook["sideEffects"], webhook["admissionReviewVersions"]) == (
        "Ignore", "None", ["v1"]
    )  # fmt: skip
    assert webhook["rules"] == [
        {
            "operations": ["CREATE"],
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "resources": ["pods"],
            "scope": "Namespaced",
        }
    ]
    assert webhook["timeoutSeconds"] == 5
    service_ref = webhook["clientConfig"]["service"]
    assert service_ref == {"name": "localcsi-webhook", "namespace": NAMESPACE, "path": "/mutate", "port": 443}
    service = objects["Service", "localcsi-webhook"]
    (port,) = service["spec"]["ports"]
    assert (port["port"], port["targetPort"]) == (443, "https")
    pod = objects["Deployment", "localcsi-webhook"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = cli.parse_args(container["args"])
    assert args.command == "webhook"
    declared = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert declared["https"] == int(args.listen.rpartition(":")[2])
    (mount,) = container["volumeMounts"]
    assert {Path(args.tls_cert_file).parent, Path(args.tls_key_file).parent} == {Path(mount["mountPath"])}
    (volume,) = pod["volumes"]
    assert volume["secret"]["secretName"] == "localcsi-webhook-tls"
    assert pod["serviceAccountName"] == "localcsi-webhook"


def test_kube_system_and_the_release_namespace_are_left_alone() -> None:
    (webhook,) = webhook_objects(*ON)["MutatingWebhookConfiguration", "localcsi-webhook"]["webhooks"]
    assert webhook["namespaceSelector"] == {
        "matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system", NAMESPACE]}
        ]
    }
    (webhook,) = webhook_objects(*ALL_ON)["MutatingWebhookConfiguration", "localcsi-webhook"]["webhooks"]
    assert webhook["namespaceSelector"]["matchExpressions"][0]["values"] == ["kube-system", NAMESPACE, "monitoring"]
    assert webhook["timeoutSeconds"] == 3


def test_the_role_only_reads_claims_and_classes() -> None:
    role = webhook_objects(*ON)["ClusterRole", "localcsi-webhook"]
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": ["get"]},
        {"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses"], "verbs": ["get", "list", "watch"]},
    ]


def test_with_cert_manager() -> None:
    objects = webhook_objects(*CERT_MANAGER)
    assert ("Secret", "localcsi-webhook-tls") not in objects
    configuration = objects["MutatingWebhookConfiguration", "localcsi-webhook"]
    assert configuration["metadata"]["annotations"] == {
        "cert-manager.io/inject-ca-from": f"{NAMESPACE}/localcsi-webhook"
    }
    (webhook,) = configuration["webhooks"]
    assert "caBundle" not in webhook["clientConfig"]
    certificate = objects["Certificate", "localcsi-webhook"]
    assert certificate["spec"]["secretName"] == "localcsi-webhook-tls"
    assert certificate["spec"]["dnsNames"] == [
        f"localcsi-webhook.{NAMESPACE}.svc", f"localcsi-webhook.{NAMESPACE}.svc.cluster.local"
    ]  # fmt: skip
    assert certificate["spec"]["issuerRef"] == {"kind": "Issuer", "name": "localcsi-webhook-selfsigned"}
    assert objects["Issuer", "localcsi-webhook-selfsigned"]["spec"] == {"selfSigned": {}}
    given = webhook_objects(*ALL_ON)
    assert given["Certificate", "localcsi-webhook"]["spec"]["issuerRef"] == {
        "kind": "ClusterIssuer",
        "name": "internal-ca",
    }
    assert not [key for key in given if key[0] == "Issuer"]
