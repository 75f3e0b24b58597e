"""AK/SK request signing, ``SDK-HMAC-SHA256``, byte-compatible with Huawei Cloud's own SDK.

The algorithm (the one ``huaweicloudsdkcore.signer.Signer`` implements):

1. The request carries ``X-Sdk-Date: YYYYMMDDTHHMMSSZ`` (UTC) and ``Host``.
2. Signed headers: every header of the request whose name has no ``_``; names lowercased,
   sorted, joined with ``;``.
3. Canonical request, lines joined by ``\\n``: the method in upper case; the canonical URI
   (the path percent-decoded, split on ``/``, each segment ``quote(seg, safe='~')``, joined with
   ``/`` and always ending in ``/``); the canonical query (``k=v`` pairs sorted on the decoded
   key and value, each side ``quote(.., safe='~')``, joined with ``&``); one
   ``name:stripped value`` line per signed header plus an empty line; the signed-header list;
   the hex SHA-256 of the body.
4. String to sign: ``SDK-HMAC-SHA256\\n<X-Sdk-Date>\\n<hex sha256 of the canonical request>``.
5. Signature: hex HMAC-SHA256 of the string to sign, keyed with the SK as UTF-8.

What is signed is exactly what :func:`sign_request` finds in ``request.headers`` once it has
added its own headers, so **the client must send exactly** ``request.headers`` (names and values
unchanged). Headers that aiohttp adds later on its own (``Content-Length``, ``Accept``,
``Accept-Encoding``, ``User-Agent`` when the request does not carry one) are not signed; the SDK
does not sign those either, because ``requests`` adds them after signing in the same way.
``Host`` is the exception that matters: the gateway checks the signed ``Host`` against the one
received, so :func:`sign_request` sets it itself and aiohttp sends an explicit ``Host`` as given.

One deliberate difference from the SDK: for a ``Content-Type`` other than JSON or BSON the SDK
adds ``X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD`` and leaves the body out of the signature.
:func:`sign_request` always signs the body (bulkstop only sends JSON, so the two never differ in
practice); :func:`compute_signature` still honours that header when a caller sets it, as the
gateway does.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import quote, unquote

from yarl import URL

from bulkstop.models import OutgoingRequest

__all__ = ["ALGORITHM", "compute_signature", "format_sdk_date", "sign_request"]

ALGORITHM = "SDK-HMAC-SHA256"

_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_DATE_HEADER = "X-Sdk-Date"
_CONTENT_SHA256_HEADER = "X-Sdk-Content-Sha256"
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

# Headers sign_request owns: any spelling already on the request is replaced, so that a request
# signed a second time (a retry after a refresh) carries one fresh copy of each.
_OWNED_HEADERS = ("authorization", "host", "x-sdk-date", "x-project-id", "x-security-token")


def format_sdk_date(when: datetime) -> str:
    """Format ``when`` as ``X-Sdk-Date`` wants it: ``YYYYMMDDTHHMMSSZ`` in UTC.

    ``when`` must be timezone-aware; a naive datetime raises :class:`ValueError` because its
    zone would be a guess and a wrong guess makes every signature fail.
    """
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("X-Sdk-Date needs a timezone-aware datetime")
    return when.astimezone(UTC).strftime(_DATE_FORMAT)


def compute_signature(
    method: str, url: URL, headers: Mapping[str, str], body: bytes, sk: str
) -> tuple[str, str]:
    """Return ``(signed_headers, signature_hex)`` for a request with exactly these headers.

    ``headers`` must hold ``X-Sdk-Date`` (any case); every header whose name has no ``_`` is
    signed. Names that differ only in case are refused (:class:`ValueError`): HTTP would send
    both and the signature could cover only one. Pure function: nothing is modified.
    """
    canonical_headers: dict[str, str] = {}
    for name, value in headers.items():
        lowered = name.lower()
        if lowered in canonical_headers:
            raise ValueError(f"header {name!r} is given twice in different case")
        canonical_headers[lowered] = str(value).strip()

    raw_date = canonical_headers.get(_DATE_HEADER.lower())
    if raw_date is None:
        raise ValueError(f"the request has no {_DATE_HEADER} header")
    # Parse and re-format as the SDK does: a malformed date fails here, not at the gateway.
    sdk_date = datetime.strptime(raw_date, _DATE_FORMAT).strftime(_DATE_FORMAT)

    signed = sorted(name for name in canonical_headers if "_" not in name)
    signed_list = ";".join(signed)
    canonical_request = "\n".join(
        (
            method.upper(),
            _canonical_uri(url),
            _canonical_query(url),
            "".join(f"{name}:{canonical_headers[name]}\n" for name in signed),
            signed_list,
            _payload_hash(body, canonical_headers),
        )
    )
    string_to_sign = "\n".join(
        (ALGORITHM, sdk_date, hashlib.sha256(canonical_request.encode()).hexdigest())
    )
    signature = hmac.new(sk.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()
    return signed_list, signature


def sign_request(
    request: OutgoingRequest,
    *,
    ak: str,
    sk: str,
    now: datetime,
    project_id: str | None = None,
    security_token: str | None = None,
) -> None:
    """Sign ``request`` in place for AK/SK authentication.

    Sets ``X-Sdk-Date`` (from ``now``), ``Host`` (``host[:port]``, the port only when it is not
    the scheme's default), ``X-Project-Id`` and ``X-Security-Token`` when given, strips every
    header value (the SDK sends them stripped too), then adds ``Authorization`` over exactly the
    headers the request now carries. Any earlier ``Authorization`` or owned header (in any case)
    is replaced, so signing the same request again is safe.
    """
    owned = {_DATE_HEADER: format_sdk_date(now), "Host": _host_header(request.url)}
    if project_id is not None:
        owned["X-Project-Id"] = project_id
    if security_token is not None:
        owned["X-Security-Token"] = security_token

    headers = {
        name: value.strip()
        for name, value in request.headers.items()
        if name.lower() not in _OWNED_HEADERS
    }
    headers.update(owned)
    signed_list, signature = compute_signature(
        request.method, request.url, headers, request.body, sk
    )
    headers["Authorization"] = (
        f"{ALGORITHM} Access={ak}, SignedHeaders={signed_list}, Signature={signature}"
    )
    request.headers.clear()
    request.headers.update(headers)


def _canonical_uri(url: URL) -> str:
    # The SDK percent-decodes the path as sent and re-quotes each segment; starting from the raw
    # (encoded) path keeps an encoded "/" splitting the path exactly as it does there.
    segments = unquote(url.raw_path).split("/")
    path = "/".join(quote(segment, safe="~") for segment in segments)
    return path if path.endswith("/") else f"{path}/"


def _canonical_query(url: URL) -> str:
    # Sorting (key, value) pairs before quoting matches the SDK for repeated keys too.
    pairs = sorted(url.query.items())
    return "&".join(f"{quote(key, safe='~')}={quote(value, safe='~')}" for key, value in pairs)


def _payload_hash(body: bytes, canonical_headers: Mapping[str, str]) -> str:
    if not body:
        return _EMPTY_SHA256
    declared = canonical_headers.get(_CONTENT_SHA256_HEADER.lower())
    if declared:
        return declared
    return hashlib.sha256(body).hexdigest()


def _host_header(url: URL) -> str:
    host = url.raw_host
    if not host:
        raise ValueError("cannot sign a request whose URL has no host")
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    if url.port is not None and not url.is_default_port():
        return f"{host}:{url.port}"
    return host
