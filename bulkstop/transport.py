"""The HTTP edge shared by the CodeArts client and IAM login: where a credential may go.

- :func:`check_endpoint`: a URL that carries a credential is ``https``, or ``http`` to a
  loopback host, or ``http`` when the caller explicitly allows it (``--insecure-http``).
"""

from __future__ import annotations

import ipaddress

from yarl import URL

from bulkstop.errors import UsageError

__all__ = ["check_endpoint"]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_endpoint(
    endpoint: str, *, allow_insecure_http: bool = False, name: str = "endpoint"
) -> URL:
    """Parse and vet a URL that credentials go to: https, or http on loopback, or http when
    explicitly allowed. ``name`` starts every message (``endpoint``, ``IAM endpoint``)."""
    try:
        url = URL(endpoint)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{name}: not a URL: {endpoint!r}") from exc
    if url.scheme not in ("http", "https") or not url.host:
        raise UsageError(f"{name}: expected http(s)://host[:port], got {endpoint!r}")
    if url.user or url.password:
        raise UsageError(f"{name}: credentials in the URL are not accepted")
    if url.query_string or url.fragment:
        raise UsageError(f"{name}: must not carry a query or fragment: {endpoint!r}")
    if url.scheme == "http" and not _is_loopback(url.host) and not allow_insecure_http:
        raise UsageError(
            f"{name}: refusing plain http to {url.host} (credentials would travel unencrypted);"
            " use https, or --insecure-http if you really mean it"
        )
    return url.with_path(url.path.rstrip("/") or "/")
