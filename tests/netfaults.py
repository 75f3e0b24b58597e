"""Endpoints that fail the way a wrong endpoint fails, on loopback only.

* :func:`closed_port` — a port on 127.0.0.1 that nothing listens on (connection refused);
* :class:`NoSuchHostResolver` — an aiohttp resolver for which no name resolves, so a DNS
  failure needs no network at all;
* :func:`self_signed_certificate` and :class:`SelfSignedTLSServer` — a TLS server on
  127.0.0.1 whose certificate nobody trusts: a fixed self-signed pair in ``tests/data``, made
  once for these tests with ``openssl`` (EC P-256, valid 2000–2100, SAN ``IP:127.0.0.1``). It
  names nothing but loopback and protects nothing; a fixed pair needs no ``cryptography``
  package and no ``openssl`` process at test time.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import threading
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from aiohttp.abc import AbstractResolver, ResolveResult

#: A name that cannot resolve anywhere (RFC 6761 reserves ``.invalid``).
UNRESOLVABLE_HOST = "bulkstop-test.invalid"
_DATA = Path(__file__).parent / "data"


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
    """``(certificate, key)`` PEM files for 127.0.0.1, signed by themselves, in ``directory``."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    shutil.copyfile(_DATA / "loopback-cert.pem", cert)
    shutil.copyfile(_DATA / "loopback-key.pem", key)
    return cert, key


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
