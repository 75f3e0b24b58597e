"""The HTTP edge shared by the CodeArts client and IAM login: where a credential may go, and
what of a server's text is believed.

Everything a server sends is data for one target, never a reason to crash or to grow:

- :func:`check_endpoint`: a URL that carries a credential is ``https``, or ``http`` to a
  loopback host, or ``http`` when the caller explicitly allows it (``--insecure-http``).
- :func:`server_text`: text a server chose (a code, a message, a header) becomes one short line
  without control characters, with every live secret replaced by ``***``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from yarl import URL

from bulkstop.errors import UsageError

__all__ = ["CUT_MARK", "check_endpoint", "server_text"]

#: How a text cut to its length limit ends, so a reader knows it is not the whole text.
CUT_MARK = "…[cut]"
#: Secrets shorter than this are not scrubbed: replacing every "ab" would garble the text
#: and hide nothing (the logs' redactor uses the same floor).
_MIN_SECRET = 4
#: Characters that would break a line or drive a terminal: C0 and C1 controls, DEL and the
#: Unicode line and paragraph separators. Lone surrogates (from undecodable header bytes or
#: ``\\ud800`` escapes in JSON) are replaced on their own: UTF-8 cannot hold them.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_SURROGATES = re.compile(r"[\ud800-\udfff]")


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


def server_text(value: str, limit: int, secrets: Iterable[str] = ()) -> str:
    """``value``, text a server chose, as one line of at most ``limit`` characters.

    Every secret of ``secrets`` (four characters or more) becomes ``***`` first, in the whole
    text, so that a cut can never leave part of one; then control characters and runs of
    whitespace become one space, lone surrogates U+FFFD, and a text still too long is cut,
    ending in :data:`CUT_MARK`.
    """
    text = value
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= _MIN_SECRET and secret in text:
            text = text.replace(secret, "***")
    if not text.isascii():
        text = _SURROGATES.sub("\ufffd", text)
    if not text.isprintable():
        text = _CONTROLS.sub(" ", text)
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: max(0, limit - len(CUT_MARK))] + CUT_MARK
    return text
