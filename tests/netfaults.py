"""Endpoints that fail the way a wrong endpoint fails, on loopback only.

* :func:`closed_port` — a port on 127.0.0.1 that nothing listens on (connection refused);
* :class:`NoSuchHostResolver` — an aiohttp resolver for which no name resolves, so a DNS
  failure needs no network at all;
* :func:`self_signed_certificate` and :class:`SelfSignedTLSServer` — a TLS server on
  127.0.0.1 whose certificate nobody trusts, made at test time with the ``cryptography``
  package when it is installed, else with the ``openssl`` command, else the test is skipped.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

#: A name that cannot resolve anywhere (RFC 6761 reserves ``.invalid``).
UNRESOLVABLE_HOST = "bulkstop-test.invalid"


def closed_port() -> int:
    """A loopback port nothing listens on: bound, then closed again at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class NoSuchHostResolver(AbstractResolver):
    """Resolves nothing: every lookup fails as a resolver's "name not known" does."""

    def __init__(self) -> None:
        self.lookups: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.lookups.append(host)
        raise OSError(socket.EAI_NONAME, f"{host}: name or service not known")

    async def close(self) -> None:
        pass


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """``(certificate, key)`` PEM files for 127.0.0.1, signed by themselves."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    try:
        _with_cryptography(cert, key)
    except ImportError:
        openssl = shutil.which("openssl")
        if openssl is None:
            pytest.skip("neither the cryptography package nor openssl is installed")
        subprocess.run(
            [
                openssl,
                *("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
                *("-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"),
                *("-addext", "subjectAltName=IP:127.0.0.1"),
                *("-keyout", str(key), "-out", str(cert)),
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
    return cert, key


def _with_cryptography(cert_path: Path, key_path: Path) -> None:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


class SelfSignedTLSServer:
    """A TLS listener on 127.0.0.1 in a thread; counts the TLS handshakes clients began.

    It never answers HTTP: a client that checks certificates gives up during the handshake.
    Use it as a context manager; ``url`` is its ``https://`` base URL.
    """

    def __init__(self, cert: Path, key: Path) -> None:
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(cert, key)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self.url = f"https://127.0.0.1:{self.port}"
        self.handshakes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="tls-server", daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.handshakes += 1
            conn.settimeout(5)
            try:
                with self._context.wrap_socket(conn, server_side=True):
                    pass  # a trusting client would send its request now; none does
            except (ssl.SSLError, OSError):
                pass  # the client rejected the certificate: what the tests want
            finally:
                conn.close()

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._listener.close()


def resolver_is_quick(host: str = UNRESOLVABLE_HOST, within: float = 2.0) -> bool:
    """Whether this machine's resolver says at once that ``host`` does not exist."""
    outcome: dict[str, Any] = {}

    def lookup() -> None:
        try:
            socket.getaddrinfo(host, 443)
        except socket.gaierror:
            outcome["failed"] = True

    thread = threading.Thread(target=lookup, daemon=True)
    thread.start()
    thread.join(within)
    return bool(outcome.get("failed"))
