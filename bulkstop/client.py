"""The HTTP client for CodeArts: one stop call in, one :class:`~bulkstop.models.Reply` out;
one read call in, one :class:`~bulkstop.reads.ReadReply` out.

:class:`CodeArtsClient` owns one aiohttp session whose connection pool is sized to the run's
concurrency. It knows *how* to call (endpoint, stop API, auth, TLS, timeout) but not *whether*
to retry: every outcome, including a timeout or a reset, comes back as a ``Reply`` for the
retry policy to judge. aiohttp's exceptions are mapped here, once.

Every answer is hostile until read: its body is read and decompressed within
:data:`~bulkstop.transport.MAX_BODY` bytes (:func:`~bulkstop.transport.read_body`), and every
text the server chose (code, message, request id, headers quoted in a message) reaches the
``Reply`` as one capped line with the auth's live secrets scrubbed out
(:func:`~bulkstop.transport.server_text`). An answer too large or in an encoding not asked for
is an unreadable answer, judged like any other.

Reads (:meth:`CodeArtsClient.read`, the APIs of :mod:`bulkstop.reads`) take the same path:
the same session, auth and signing, TLS, timeout and scrubbing, and the same mapping of
aiohttp's exceptions. Their answers are larger (a page of up to 100 jobs or records), so they
are read within :data:`MAX_READ_BODY` instead; a 2xx whose body carries an error code is that
error, and every text a parser keeps goes through the same scrubbing and capping.

The engine talks to any object with the :class:`StopClient` shape, discovery and verification
to any with the :class:`ReadClient` shape, so tests can pass a fake.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, NamedTuple, Protocol, Self, TypeVar

import aiohttp
from yarl import URL

from bulkstop.apis import StopApi, get_stop_api, parse_error_body
from bulkstop.auth import Auth, OutgoingRequest
from bulkstop.codes import may_have_applied
from bulkstop.deadlines import CallDeadlines
from bulkstop.errors import UsageError
from bulkstop.models import (
    Reply,
    ReplyKind,
    Target,
    TransportFailure,
    answered_reply,
    new_named_tuple,
)
from bulkstop.retry import parse_retry_after
from bulkstop.transport import (
    ACCEPT_ENCODING,
    MAX_BODY,
    USER_AGENT,
    Body,
    check_endpoint,
    read_body,
    server_text,
)

if TYPE_CHECKING:
    from bulkstop.reads import Parser, ReadReply, ReadRequest

__all__ = [
    "MAX_READ_BODY",
    "CodeArtsClient",
    "ReadClient",
    "StopClient",
    "check_endpoint",
    "region_endpoint",
    "resolve_endpoint",
]

REGION_ENDPOINT = "https://cloudbuild-ext.{region}.myhuaweicloud.com"
# Caps on what a server may put into one report cell. Real values are far shorter: codes like
# CB.00060211 (11), request ids of 32-36; a message is what a person reads in the report.
_MAX_MESSAGE = 300
_MAX_CODE = 64
_MAX_REQUEST_ID = 128
#: How much of an unreadable 2xx body the message quotes.
_MAX_QUOTE = 120
#: The most of a read answer that is read, compressed or not. A page of 100 jobs is about
#: 130 KiB as the service's fields go, a page of 100 records about 60 KiB; 1 MiB leaves room
#: for longer names while keeping a discovery's worst case at concurrency × 1 MiB.
MAX_READ_BODY = 1024 * 1024
#: 2xx bodies whose verdict a client remembers, and the longest one remembered. A service
#: answers every stop with one of a few short bodies (``{"result": true}``): each is parsed
#: once. A body past either bound is parsed every time, so an answer varying per call (or a
#: hostile one) costs what it did and cannot grow the memory.
_VERDICTS = 8
_VERDICT_BODY = 128
#: Sent with every request and not signed: a proxy may rewrite them, and the SDK does not sign
#: them either. An own session holds them as its defaults, so no request merges them.
_UNSIGNED_HEADERS = {"Accept-Encoding": ACCEPT_ENCODING, "User-Agent": USER_AGENT}
#: What every request asks of aiohttp's own timers: nothing. The client's :class:`CallDeadlines`
#: keeps each call's limit on one timer for all of them (a timer per call cost about 5 % of a
#: call).
_NO_AIOHTTP_TIMEOUT = aiohttp.ClientTimeout()
# Read once per answer: a module name costs 5 ns, ``ReplyKind.STOPPED`` goes through the enum
# type's __getattr__ hook on Python 3.11 (about 70 ns).
_STOPPED: Final = ReplyKind.STOPPED
_NOT_STOPPED: Final = ReplyKind.NOT_STOPPED

T = TypeVar("T")


def _static_headers(auth: Auth | None) -> dict[str, str] | None:
    """Every request's headers when ``auth`` is a :class:`StaticAuth`, else ``None``."""
    static = getattr(auth, "static_headers", None)
    if static is None:
        return None
    return {"Content-Type": "application/json", **static()}


class StopClient(Protocol):
    """What the engine needs from a client."""

    async def stop(self, target: Target) -> Reply: ...

    async def refresh_credentials(self, generation: int) -> bool: ...


class ReadClient(Protocol):
    """What discovery and verification need from a client."""

    async def read(self, request: ReadRequest, parse: Parser[T]) -> ReadReply[T]: ...

    async def refresh_credentials(self, generation: int) -> bool: ...


class _Answer(NamedTuple):
    """An HTTP answer with its body read (within its bound)."""

    response: aiohttp.ClientResponse
    body: Body
    generation: int


def region_endpoint(region: str) -> str:
    region = region.strip()
    if not region or not all(c.isalnum() or c == "-" for c in region):
        raise UsageError(f"--region: not a region name: {region!r}")
    return REGION_ENDPOINT.format(region=region)


def resolve_endpoint(endpoint: str | None, region: str | None) -> str:
    """The endpoint to use: an explicit endpoint always wins over a region."""
    if endpoint:
        return endpoint.strip()
    if region:
        return region_endpoint(region)
    raise UsageError("no endpoint: give --endpoint URL (or CODEARTS_ENDPOINT) or --region NAME")


def _connect_failure(exc: aiohttp.ClientConnectorError) -> tuple[TransportFailure | None, str]:
    """Why a connection could not be made, by exception class, and a message naming the host.

    Only classes and the ``os_error`` aiohttp documents are read, never its message texts:
    ``ClientConnectorDNSError`` (aiohttp ≥ 3.10.10) for a name that does not resolve,
    ``ClientConnectorCertificateError`` for a certificate that is not trusted, and a
    ``ConnectionRefusedError`` under a plain connector error for a port nobody listens on.
    """
    where = f"{exc.host}:{exc.port}" if exc.port is not None else exc.host
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return TransportFailure.DNS, f"cannot resolve host {exc.host}"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        reason = getattr(exc.certificate_error, "verify_message", "") or "verification failed"
        return TransportFailure.CERTIFICATE, f"certificate of {where} not trusted: {reason}"
    if isinstance(exc.os_error, ConnectionRefusedError):
        return TransportFailure.REFUSED, f"connection refused by {where}"
    return None, f"cannot connect to {where}: {exc.os_error or exc}"


class CodeArtsClient:
    """Calls one CodeArts stop API, and the read APIs. Use as an async context manager (it owns
    the session).

    Args:
        endpoint: base URL, e.g. ``https://cloudbuild-ext.cn-north-4.myhuaweicloud.com``.
        auth: how requests are authenticated (:mod:`bulkstop.auth`). May be given later
            through :attr:`auth` (IAM password auth needs this client's session first).
        api: ``"legacy"`` (default), ``"v3"``, ``"v1"``, or a :class:`~bulkstop.apis.StopApi`.
        timeout: seconds for one whole request (connect to last byte).
        pool_size: connections kept; size it to the run's concurrency.
        ca_bundle: a PEM file of extra CA certificates (corporate proxies).
        verify_tls: ``False`` turns certificate checks off (never the default).
        allow_insecure_http: accept plain ``http://`` to a non-loopback host.
        session: an aiohttp session to use instead of creating one (it is not closed here).
        read_limit: the most of a read answer that is read (:data:`MAX_READ_BODY`).
    """

    def __init__(
        self,
        endpoint: str | URL,
        auth: Auth | None,
        *,
        api: str | StopApi = "legacy",
        timeout: float = 30.0,
        pool_size: int = 8,
        ca_bundle: Path | None = None,
        verify_tls: bool = True,
        allow_insecure_http: bool = False,
        session: aiohttp.ClientSession | None = None,
        read_limit: int = MAX_READ_BODY,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be > 0")
        if read_limit < 1:
            raise ValueError("read_limit must be ≥ 1 byte")
        self.read_limit = read_limit
        self.endpoint = check_endpoint(str(endpoint), allow_insecure_http=allow_insecure_http)
        self._auth = auth
        # the headers of every request when the auth signs every one alike (see StaticAuth)
        self._static_headers = _static_headers(auth)
        self.api: StopApi = get_stop_api(api) if isinstance(api, str) else api
        self.timeout = timeout
        self.pool_size = max(1, pool_size)
        self._ssl = self._ssl_context(ca_bundle, verify_tls)
        self._session = session
        self._owns_session = session is None
        # what each request adds to its signed headers: nothing when the session is our own
        self._unsigned_headers = {} if session is None else _UNSIGNED_HEADERS
        self._deadlines: CallDeadlines | None = None  # made on the first call, on its loop
        # body bytes -> api.stopped(payload); only bodies of at most _VERDICT_BODY bytes
        self._verdicts: dict[bytes, bool] = {}

    @staticmethod
    def _ssl_context(ca_bundle: Path | None, verify_tls: bool) -> ssl.SSLContext | bool:
        if not verify_tls:
            return False
        if ca_bundle is None:
            return True
        try:
            context = ssl.create_default_context()
            context.load_verify_locations(cafile=str(ca_bundle))
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"--ca-bundle {ca_bundle}: cannot load certificates: {exc}") from exc
        return context

    async def __aenter__(self) -> Self:
        if self._session is None:
            # No limit_per_host: equal to the total it bounds nothing the total does not, and
            # aiohttp would track each request's connection per host besides.
            connector = aiohttp.TCPConnector(limit=self.pool_size, ssl=self._ssl)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=_NO_AIOHTTP_TIMEOUT,
                trust_env=False,
                # No CodeArts or IAM answer sets a cookie that a later call needs (IAM gives
                # its token in X-Subject-Token, and every call carries its own credential):
                # a jar that keeps nothing spares each request a cookie lookup.
                cookie_jar=aiohttp.DummyCookieJar(),
                headers=_UNSIGNED_HEADERS,
            )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._deadlines is not None:
            self._deadlines.close()
            self._deadlines = None
        if self._session is not None and self._owns_session:
            await self._session.close()
            self._session = None

    @property
    def auth(self) -> Auth:
        if self._auth is None:
            raise RuntimeError("CodeArtsClient has no credentials yet: set client.auth")
        return self._auth

    @auth.setter
    def auth(self, auth: Auth) -> None:
        self._auth = auth
        self._static_headers = _static_headers(auth)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("CodeArtsClient is not open: use 'async with CodeArtsClient(...)'")
        return self._session

    async def refresh_credentials(self, generation: int) -> bool:
        return await self.auth.refresh(generation)

    async def stop(self, target: Target) -> Reply:
        """Send one stop call; never raises for what the network or the server did."""
        call = self.api.request(self.endpoint, target)
        answer = await self._exchange(call.method, call.url, call.body, MAX_BODY)
        if isinstance(answer, Reply):
            return answer
        return self._reply(answer.response, answer.body, answer.generation)

    async def read(self, request: ReadRequest, parse: Parser[T]) -> ReadReply[T]:
        """Send one read call and parse its 2xx body with ``parse``; never raises for what the
        network or the server did (see :class:`~bulkstop.reads.ReadReply`)."""
        # Imported here: a run of stops never reads, and never loads the read APIs.
        from bulkstop.reads import ReadProblem, ReadReply, answer_error

        answer = await self._exchange("GET", request.url(self.endpoint), b"", self.read_limit)
        if isinstance(answer, Reply):
            # A read changes nothing, whatever became of it.
            return ReadReply(error=answer._replace(maybe_applied=False))
        response, body, generation = answer
        status = response.status
        request_id = self._request_id(response)
        payload = self._payload(body)
        if not 200 <= status < 300:
            error = self._error_reply(response, body, generation, payload, request_id)
            return ReadReply(
                error=error._replace(maybe_applied=False),
                http_status=status,
                request_id=request_id,
            )
        if body.problem or payload is None:
            why = body.problem or self._quote(body.data)
            message = f"unreadable {request.api} answer: {why}"
            unreadable = Reply(
                kind=ReplyKind.BAD_BODY,
                http_status=status,
                error_msg=self._server_text(message, _MAX_MESSAGE),
                request_id=request_id,
                credential_generation=generation,
            )
            return ReadReply(error=unreadable, http_status=status, request_id=request_id)
        error_in_body = answer_error(payload)
        if error_in_body is not None:  # a 2xx that carries an error code is that error
            code, message = error_in_body
            error = Reply(
                kind=ReplyKind.HTTP_ERROR,
                http_status=status,
                error_code=self._server_text(code, _MAX_CODE),
                error_msg=self._server_text(message, _MAX_MESSAGE),
                request_id=request_id,
                credential_generation=generation,
            )
            return ReadReply(error=error, http_status=status, request_id=request_id)
        value = parse(payload, self._server_text)
        if isinstance(value, ReadProblem):
            problem = self._server_text(f"{request.api} answer: {value.message}", _MAX_MESSAGE)
            return ReadReply(problem=problem, http_status=status, request_id=request_id)
        return ReadReply(value=value, http_status=status, request_id=request_id)

    async def _exchange(self, method: str, url: URL, body: bytes, limit: int) -> _Answer | Reply:
        """Sign and send one request and read its answer within ``limit`` bytes; a failure of
        the network is a :class:`Reply` (aiohttp's exceptions are mapped here, once)."""
        headers = self._static_headers
        if headers is None:
            request = OutgoingRequest(
                method=method,
                url=url,
                headers={"Content-Type": "application/json"},
                body=body,
            )
            generation = await self.auth.sign(request)
            method, url, headers, body = request.method, request.url, request.headers, request.body
        else:
            generation = 0  # a StaticAuth's only one
        sent = {**headers, **self._unsigned_headers} if self._unsigned_headers else headers
        deadlines = self._deadlines
        if deadlines is None:
            deadlines = self._deadlines = CallDeadlines(self.timeout, asyncio.get_running_loop())
        try:
            with deadlines.guard():  # past the client's timeout: TimeoutError
                session = self._session
                if session is None:
                    session = self.session  # raises: the client is not open
                async with session.request(
                    method,
                    url,
                    data=body,
                    headers=sent,
                    allow_redirects=False,  # never follow a redirect with credentials attached
                    timeout=_NO_AIOHTTP_TIMEOUT,
                    auto_decompress=False,  # read_body decompresses, within its bound
                ) as response:
                    read = await read_body(response, limit)
                    return new_named_tuple(_Answer, (response, read, generation))
        except TimeoutError:
            return Reply(
                kind=ReplyKind.TIMEOUT,
                error_msg=f"no answer within {self.timeout:g} s",
                maybe_applied=True,
                credential_generation=generation,
            )
        except aiohttp.ClientConnectorError as exc:
            # Never connected: the request cannot have reached the service.
            failure, message = _connect_failure(exc)
            return Reply(
                kind=ReplyKind.CONNECTION,
                error_msg=self._server_text(message, _MAX_MESSAGE),
                maybe_applied=False,
                credential_generation=generation,
                transport_failure=failure,
            )
        except (aiohttp.ClientError, OSError) as exc:
            return Reply(
                kind=ReplyKind.CONNECTION,
                # aiohttp quotes a malformed header line of the answer here: server text
                error_msg=self._server_text(
                    f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
                    _MAX_MESSAGE,
                ),
                maybe_applied=True,
                credential_generation=generation,
            )

    def _server_text(self, value: str, limit: int) -> str:
        """Server-chosen text as one line of at most ``limit``, the live secrets scrubbed.

        The secrets are asked for at each answer: an IAM token refreshed mid-run is one.
        """
        secrets = self._auth.secret_values() if self._auth is not None else ()
        return server_text(value, limit, secrets)

    def _request_id(self, response: aiohttp.ClientResponse) -> str:
        # An answer without an id (a gateway's own error page, say) costs no scrubbing.
        raw = response.headers.get("X-Request-Id")
        return self._server_text(raw, _MAX_REQUEST_ID) if raw else ""

    @staticmethod
    def _payload(body: Body) -> Any:
        """The body as JSON, or ``None`` when it is empty, not JSON, not UTF-8 or too deep."""
        raw = body.data
        try:
            # decoded here: json.loads would first sniff the encoding of bytes
            return json.loads(raw.decode()) if raw else None
        except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested too deep
            return None

    def _quote(self, raw: bytes) -> str:
        # quoted from the whole text, so a secret is scrubbed before any cut
        return repr(self._server_text(raw.decode("utf-8", "replace"), _MAX_QUOTE))

    def _stopped(self, body: Body) -> bool | None:
        """``api.stopped`` of the body's JSON, remembered for a short body seen before."""
        raw = body.data
        if len(raw) > _VERDICT_BODY:
            return self.api.stopped(self._payload(body))
        stopped = self._verdicts.get(raw)
        if stopped is None:
            stopped = self.api.stopped(self._payload(body))
            # the same bytes always parse to the same verdict: nothing stale is kept
            if stopped is not None and len(self._verdicts) < _VERDICTS:
                self._verdicts[raw] = stopped
        return stopped

    def _reply(self, response: aiohttp.ClientResponse, body: Body, generation: int) -> Reply:
        status = response.status
        request_id = self._request_id(response)
        if 200 <= status < 300:
            stopped = self._stopped(body)
            if stopped is None:
                why = body.problem or self._quote(body.data)
                return Reply(
                    kind=ReplyKind.BAD_BODY,
                    http_status=status,
                    error_msg=self._server_text(
                        f"unreadable {self.api.name} answer: {why}", _MAX_MESSAGE
                    ),
                    request_id=request_id,
                    maybe_applied=True,
                    credential_generation=generation,
                )
            kind = _STOPPED if stopped else _NOT_STOPPED
            return answered_reply(kind, status, request_id, generation)
        return self._error_reply(response, body, generation, self._payload(body), request_id)

    def _error_reply(
        self,
        response: aiohttp.ClientResponse,
        body: Body,
        generation: int,
        payload: Any,
        request_id: str,
    ) -> Reply:
        """The :class:`Reply` of a non-2xx answer."""
        status = response.status
        code, message = parse_error_body(payload)
        code = self._server_text(code, _MAX_CODE)
        if not code and not message:
            content_type = response.headers.get("Content-Type", "").split(";")[0] or "no"
            message = f"HTTP {status} with {content_type} body"
            if body.problem:
                message = f"HTTP {status}: {body.problem}"
            if 300 <= status < 400:
                location = self._server_text(response.headers.get("Location", ""), _MAX_MESSAGE)
                message = f"HTTP {status} redirect to {location!r} not followed"
        return Reply(
            kind=ReplyKind.HTTP_ERROR,
            http_status=status,
            error_code=code,
            error_msg=self._server_text(message, _MAX_MESSAGE),
            request_id=request_id,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
            maybe_applied=may_have_applied(status, code),
            credential_generation=generation,
        )

    def __repr__(self) -> str:
        return (
            f"CodeArtsClient(endpoint={str(self.endpoint)!r}, api={self.api.name!r}, "
            f"auth={self._auth.mode if self._auth else None!r}, timeout={self.timeout:g})"
        )
