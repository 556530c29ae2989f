"""Certificates for a test cluster, made with the openssl CLI: a CA, a serving cert, a service-account key."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

SERVER_NAMES = ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc")


@dataclass(frozen=True)
class ClusterCerts:
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    sa_key: Path
    sa_pub: Path


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_certs(directory: Path, ip_addresses: tuple[str, ...]) -> ClusterCerts:
    """A CA and a server certificate valid for `ip_addresses` and the usual in-cluster names."""
    directory.mkdir(parents=True, exist_ok=True)
    certs = ClusterCerts(
        ca_cert=directory / "ca.crt",
        ca_key=directory / "ca.key",
        server_cert=directory / "apiserver.crt",
        server_key=directory / "apiserver.key",
        sa_key=directory / "sa.key",
        sa_pub=directory / "sa.pub",
    )
    _openssl("genrsa", "-out", str(certs.ca_key), "2048")
    _openssl(
        "req", "-x509", "-new", "-key", str(certs.ca_key), "-subj", "/CN=localcsi-test-ca",
        "-days", "2", "-out", str(certs.ca_cert),
    )  # fmt: skip
    _openssl("genrsa", "-out", str(certs.server_key), "2048")
    csr = directory / "apiserver.csr"
    _openssl("req", "-new", "-key", str(certs.server_key), "-subj", "/CN=kube-apiserver", "-out", str(csr))
    alt_names = [f"DNS:{name}" for name in SERVER_NAMES] + [f"IP:{ip}" for ip in ip_addresses]
    extensions = directory / "apiserver.ext"
    extensions.write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
        f"extendedKeyUsage=serverAuth\nsubjectAltName={','.join(alt_names)}\n"
    )
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(certs.ca_cert), "-CAkey", str(certs.ca_key),
        "-CAcreateserial", "-days", "2", "-extfile", str(extensions), "-out", str(certs.server_cert),
    )  # fmt: skip
    _openssl("genrsa", "-out", str(certs.sa_key), "2048")
    _openssl("rsa", "-in", str(certs.sa_key), "-pubout", "-out", str(certs.sa_pub))
    return certs


@dataclass(frozen=True)
class ClientCert:
    cert: Path
    key: Path


def make_client_cert(certs: ClusterCerts, name: str, common_name: str, organization: str = "") -> ClientCert:
    """A client certificate signed by the cluster CA: the apiserver maps CN to the user and O to a group
    (a kubelet is `system:node:<node>` in `system:nodes`, as the Node authorizer requires)."""
    directory = certs.ca_cert.parent
    client = ClientCert(cert=directory / f"{name}.crt", key=directory / f"{name}.key")
    if client.cert.exists() or client.key.exists():
        raise FileExistsError(f"{client.cert} exists: choose another name than the cluster's own certificates")
    subject = f"/CN={common_name}" + (f"/O={organization}" if organization else "")
    csr = directory / f"{name}.csr"
    _openssl("genrsa", "-out", str(client.key), "2048")
    _openssl("req", "-new", "-key", str(client.key), "-subj", subject, "-out", str(csr))
    extensions = directory / f"{name}.ext"
    extensions.write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n"
    )
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(certs.ca_cert), "-CAkey", str(certs.ca_key),
        "-CAcreateserial", "-days", "2", "-extfile", str(extensions), "-out", str(client.cert),
    )  # fmt: skip
    return client
