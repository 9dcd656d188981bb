"""Throw-away certificates for TLS tests, made by the ``openssl`` command, and hypercorn with TLS.

A test CA signs a server certificate for 127.0.0.1 and a client certificate, with the
extensions strict verifiers insist on (Go's crypto/tls; Python 3.13's default
VERIFY_X509_STRICT wants the CA's keyUsage and the leaves' key identifiers).
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypercorn.config import Config as HypercornConfig

from trioping._webconfig import WebConfig

OPENSSL = shutil.which("openssl")
requires_openssl = pytest.mark.skipif(
    OPENSSL is None, reason="the openssl command is not installed (apt-get install openssl)"
)
_EC = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")


@dataclass(frozen=True)
class Certs:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    assert OPENSSL is not None
    subprocess.run([OPENSSL, *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _signed(directory: Path, name: str, extensions: str) -> None:
    """A key and a certificate for *name*, signed by the test CA, with *extensions*."""
    _openssl("req", *_EC, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=directory)
    (directory / f"{name}.ext").write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n" + extensions
    )
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-out", f"{name}.crt", "-extfile", f"{name}.ext",
        cwd=directory,
    )  # fmt: skip


def make_certs(directory: Path) -> Certs:
    """CA, server (127.0.0.1) and client certificates in *directory*; skips without openssl."""
    if OPENSSL is None:
        pytest.skip("the openssl command is not installed (apt-get install openssl)")
    directory.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req", "-x509", *_EC, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=trioping test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-addext", "subjectKeyIdentifier=hash",
        cwd=directory,
    )  # fmt: skip
    _signed(directory, "server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    _signed(directory, "client", "extendedKeyUsage=clientAuth\n")
    return Certs(
        ca=directory / "ca.crt",
        server_cert=directory / "server.crt",
        server_key=directory / "server.key",
        client_cert=directory / "client.crt",
        client_key=directory / "client.key",
    )


class HypercornWebConfig(HypercornConfig):
    """hypercorn's config taking TLS from a web config, as the exporter serves it.

    hypercorn switches TLS on when ``certfile`` and ``keyfile`` are set and builds its own
    context from them; :meth:`create_ssl_context` hands it the web config's instead, so
    client authentication and TLS versions from the file apply too.
    """

    def __init__(self, web: WebConfig) -> None:
        super().__init__()
        self.web = web
        files = web.tls_files()
        if files is not None:
            self.certfile, self.keyfile = files

    def create_ssl_context(self) -> ssl.SSLContext | None:
        return self.web.ssl_context()
