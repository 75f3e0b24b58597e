"""The HTTP edge shared by the CodeArts client and IAM login: where a credential may go, and
how much of an answer is believed.

Everything a server sends is data for one target, never a reason to crash or to grow:

- :func:`check_endpoint`: a URL that carries a credential is ``https``, or ``http`` to a
  loopback host, or ``http`` when the caller explicitly allows it (``--insecure-http``).
- :func:`read_body`: an answer is read within a byte limit and decompressed (``gzip`` or
  ``deflate`` only, the encodings :data:`ACCEPT_ENCODING` asks for) within the same limit.
  Anything else — too large, an encoding not asked for, a corrupt stream — comes back as a
  :class:`Body` with a ``problem``, which callers treat as an unreadable answer. Requests
  must be sent with ``auto_decompress=False`` so that aiohttp hands over the raw bytes.
- :func:`server_text`: text a server chose (a code, a message, a header) becomes one short line
  without control characters, with every live secret replaced by ``***``.
- :data:`USER_AGENT`: who calls, on every request (CodeArts and IAM), so that a service's logs
  can tell bulkstop's calls from others.
"""

from __future__ import annotations

import ipaddress
import re
import zlib
from collections.abc import Sequence
from typing import NamedTuple

import aiohttp
from yarl import URL

from bulkstop import __version__
from bulkstop.errors import UsageError
from bulkstop.models import new_named_tuple

__all__ = [
    "ACCEPT_ENCODING",
    "CUT_MARK",
    "MAX_BODY",
    "USER_AGENT",
    "Body",
    "check_endpoint",
    "read_body",
    "server_text",
]

#: The most of a CodeArts answer that is read, compressed or not. A stop answer is a few dozen
#: bytes and a gateway's HTML error page a few KiB; 64 KiB holds any real one with room to
#: spare, while keeping a run's worst case at concurrency × 64 KiB (32 MiB at the maximum of
#: 512 calls in flight) however large an answer a server claims or sends.
MAX_BODY = 64 * 1024
#: What requests ask for. Pinned rather than left to aiohttp, which also offers ``br`` and
#: ``zstd`` whenever an optional package for them happens to be installed: only these two can
#: be decompressed here within a bound (:mod:`zlib`'s ``max_length``).
ACCEPT_ENCODING = "gzip, deflate"
#: The ``User-Agent`` of every request: bulkstop's version and the HTTP library's, the way
#: aiohttp's own default names itself.
USER_AGENT = f"bulkstop/{__version__} aiohttp/{aiohttp.__version__}"
#: How a text cut to its length limit ends, so a reader knows it is not the whole text.
CUT_MARK = "…[cut]"
#: Secrets shorter than this are not scrubbed: replacing every "ab" would garble the text
#: and hide nothing (the logs' redactor uses the same floor).
_MIN_SECRET = 4

_GZIP_WBITS = 16 + zlib.MAX_WBITS
_ENCODINGS: dict[str, tuple[int, ...]] = {
    "": (),
    "identity": (),
    "gzip": (_GZIP_WBITS,),
    "x-gzip": (_GZIP_WBITS,),
    # RFC 9110 deflate is zlib-wrapped; some servers send a raw deflate stream instead.
    "deflate": (zlib.MAX_WBITS, -zlib.MAX_WBITS),
}
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


class Body(NamedTuple):
    """An answer's body as read: its bytes, or why they were not read (``problem``)."""

    data: bytes = b""
    #: empty when ``data`` is the whole body; else a short phrase, e.g. ``answer over 65536
    #: bytes, not read``
    problem: str = ""

    def __repr__(self) -> str:
        # The bytes are the server's and may echo a credential: their size only.
        return f"Body(<{len(self.data)} bytes>, problem={self.problem!r})"


async def read_body(response: aiohttp.ClientResponse, limit: int = MAX_BODY) -> Body:
    """Read ``response``'s body, never holding more than ``limit`` bytes of it or of what it
    decompresses to. The request must have been sent with ``auto_decompress=False``.

    Hand-written because aiohttp offers no bound here: ``read()`` takes the whole body, and
    its transparent decompression inflates without a limit.
    """
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    decoders = _ENCODINGS.get(encoding)
    if decoders is None:
        shown = server_text(encoding, 40)
        return Body(problem=f"answer in content encoding {shown!r}, which was not asked for")
    declared = response.headers.get("Content-Length", "").strip()
    # Refused before a byte is read, so a false claim costs nothing. A length of more digits
    # than any body could have is refused unparsed: int() refuses thousands of digits.
    if declared.isascii() and declared.isdigit() and (len(declared) > 18 or int(declared) > limit):
        return Body(problem=f"answer over {limit} bytes, not read")
    content = response.content
    if content.is_eof():
        # The whole body is already buffered (the common case: a small answer arrives with
        # its headers), so it is taken without a wait; read_nowait raises what read would.
        data = content.read_nowait(limit + 1)
    else:
        data = await _read_within(content, limit)
    if len(data) > limit:
        return Body(problem=f"answer over {limit} bytes, not read")
    if not decoders or not data:
        return new_named_tuple(Body, (data, ""))  # the common case (see new_named_tuple)
    return _decompressed(data, decoders, limit)


async def _read_within(content: aiohttp.StreamReader, limit: int) -> bytes:
    """At most ``limit + 1`` bytes of a body still arriving: one more than allowed tells a
    body over the limit from one exactly at it."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await content.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if content.at_eof():  # the whole body is in: no read to see the end
            break
    return b"".join(chunks)


def _decompressed(data: bytes, decoders: tuple[int, ...], limit: int) -> Body:
    """``data`` decompressed with the first ``zlib`` window that reads it, within ``limit``."""
    for wbits in decoders:
        decoder = zlib.decompressobj(wbits)
        try:
            # max_length bounds what is produced: a bomb stops at limit + 1 bytes.
            plain = decoder.decompress(data, limit + 1)
        except zlib.error:
            continue
        if len(plain) > limit:
            return Body(problem=f"answer decompresses to over {limit} bytes, not read")
        if not decoder.eof:
            return Body(problem="compressed answer cut short")
        return Body(plain)
    return Body(problem="compressed answer is corrupt")


def server_text(value: str, limit: int, secrets: Sequence[str] = ()) -> str:
    """``value``, text a server chose, as one line of at most ``limit`` characters.

    Every secret of ``secrets`` (four characters or more) becomes ``***`` first, in the whole
    text, so that a cut can never leave part of one; then control characters and runs of
    whitespace become one space, lone surrogates U+FFFD, and a text still too long is cut,
    ending in :data:`CUT_MARK`.
    """
    text = value
    # longest first, so that no secret is left half-replaced by a shorter one inside it (one
    # secret, a token's, needs no sorting: the common case, at every answer)
    for secret in secrets if len(secrets) < 2 else sorted(secrets, key=len, reverse=True):
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
