"""IAM password login: :class:`IamPasswordAuth`, an :class:`~bulkstop.auth.Auth` mode.

A user's password is exchanged for a project-scoped token at IAM
(``POST {iam_endpoint}/v3/auth/tokens``), and the token is refreshed before it expires, or when
the service calls it stale; every fetch is single flight. The password goes only where
:func:`~bulkstop.transport.check_endpoint` allows, and IAM's answers are read within
:data:`IAM_MAX_BODY`. Apart from :mod:`bulkstop.auth` so that a run with another credential
never loads it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import anyio
from yarl import URL

from bulkstop.auth import Secret
from bulkstop.clock import Clock, utcnow
from bulkstop.errors import BulkstopError, CredentialsRejected, UsageError
from bulkstop.log import get_logger
from bulkstop.models import OutgoingRequest
from bulkstop.transport import (
    ACCEPT_ENCODING,
    USER_AGENT,
    Body,
    check_endpoint,
    read_body,
    server_text,
)

__all__ = ["IAM_MAX_BODY", "IamPasswordAuth"]

# Named for the concept, as when this lived in bulkstop.auth: a logging setup that routes
# "bulkstop.auth" keeps receiving the login's events.
_log = get_logger("bulkstop.auth")

#: The most of an IAM answer that is read. Larger than a stop answer's cap: a token's body
#: lists its roles and the service catalog, tens of KiB; and there is one such answer per
#: token lifetime, not one per target, so the cap is never multiplied by the concurrency.
IAM_MAX_BODY = 1024 * 1024
_MAX_IAM_CODE = 64
_MAX_IAM_MESSAGE = 200


@dataclass(slots=True)
class _Flight:
    """One IAM fetch that concurrent callers share."""

    done: anyio.Event = field(default_factory=anyio.Event)
    error: BulkstopError | None = None
    abandoned: bool = False  # the fetching task was cancelled; a waiter takes over


class IamPasswordAuth:
    """An IAM user's password exchanged for a project-scoped token, refreshed when due.

    :meth:`prepare` fetches the first token (``POST {iam_endpoint}/v3/auth/tokens``) and raises
    :class:`CredentialsRejected` when IAM refuses the password, :class:`UsageError` when IAM
    cannot be reached or answers nonsense. :meth:`sign` sends ``X-Auth-Token`` and, once the
    token is within ``refresh_margin`` seconds of expiring (capped at half its lifetime), fetches
    the next one first. :meth:`refresh` never raises: it returns ``False`` when no new token
    could be had. All fetches are single flight.

    Expiry is kept on ``clock``'s scale: the token's lifetime (``expires_at - issued_at`` from
    IAM's own body, so local clock skew does not matter) counted from when the fetch started.
    After IAM refuses the password once, no further attempt is made: IAM locks a user after
    repeated failed logins, and a bulk run must not be what locks someone out.

    ``iam_endpoint`` must be https, or http to loopback, or ``allow_insecure_http`` must be
    given (:func:`~bulkstop.transport.check_endpoint`); otherwise the constructor raises
    :class:`UsageError`. IAM's answer is read within :data:`IAM_MAX_BODY` bytes: a larger body
    still yields the token of its header, with its lifetime unknown.
    """

    __slots__ = (
        "_clock",
        "_domain",
        "_flight",
        "_generation",
        "_last_error",
        "_margin",
        "_password",
        "_previous_token",
        "_project_id",
        "_project_name",
        "_refresh_due",
        "_refused",
        "_request_timeout",
        "_retry_after",
        "_session",
        "_token",
        "_tokens_url",
        "_user",
        "_wall_clock",
    )

    #: Attempts per fetch on network errors, 429 and 5xx, and the waits between them.
    FETCH_BACKOFF: tuple[float, ...] = (0.5, 2.0)
    #: After a failed fetch, seconds during which further refreshes fail at once instead of
    #: calling IAM again (many requests hitting an expired token would otherwise each try).
    FAILURE_COOLDOWN: float = 30.0

    def __init__(
        self,
        session: aiohttp.ClientSession,
        iam_endpoint: str,
        user: str,
        password: Secret | str,
        domain: str,
        project_id: str | None = None,
        project_name: str | None = None,
        *,
        clock: Clock,
        refresh_margin: float = 300.0,
        request_timeout: float = 30.0,
        wall_clock: Callable[[], datetime] = utcnow,
        allow_insecure_http: bool = False,
    ) -> None:
        # The password travels to this URL: the same rule as the CodeArts endpoint's.
        iam = check_endpoint(
            iam_endpoint, allow_insecure_http=allow_insecure_http, name="IAM endpoint"
        )
        if not (project_id or project_name):
            raise ValueError("an IAM token needs a project: give project_id or project_name")
        secret = password if isinstance(password, Secret) else Secret(password)
        if not secret:
            raise ValueError("the IAM password is empty")
        self._session = session
        self._tokens_url: URL = iam.joinpath("v3", "auth", "tokens")
        self._user = user
        self._password = secret
        self._domain = domain
        self._project_id = project_id
        self._project_name = project_name
        self._clock = clock
        self._margin = refresh_margin
        self._request_timeout = request_timeout
        self._wall_clock = wall_clock
        self._token: Secret | None = None
        #: the token before the current one: a request signed with it may still be answered
        self._previous_token: Secret | None = None
        self._refresh_due = float("inf")  # on the clock's scale
        self._generation = 0
        self._flight: _Flight | None = None
        self._refused: CredentialsRejected | None = None
        self._last_error: BulkstopError | None = None
        self._retry_after = float("-inf")

    @property
    def mode(self) -> str:
        return "iam-password"

    @property
    def generation(self) -> int:
        """How many tokens have been fetched so far (0 before :meth:`prepare`)."""
        return self._generation

    async def prepare(self) -> None:
        """Fetch the first token; raise :class:`CredentialsRejected` or :class:`UsageError`."""
        if self._token is not None:
            return
        error = await self._single_flight(self._generation)
        if error is not None:
            raise error

    async def sign(self, request: OutgoingRequest) -> int:
        if self._token is None:
            await self.prepare()
        elif self._flight is not None or self._clock.now() >= self._refresh_due:
            # Near expiry, or a refresh is under way (the service called the token stale):
            # wait for the new token rather than send the one about to be refused.
            await self._single_flight(self._generation)
        # A failed refresh keeps the current token: it may still be valid for a while, and
        # if the service calls it stale, the caller's refresh() reports the failure.
        token = self._token
        assert token is not None  # prepare() raised otherwise
        request.headers["X-Auth-Token"] = token.reveal()
        return self._generation

    async def refresh(self, generation: int) -> bool:
        return await self._single_flight(generation) is None

    async def _single_flight(self, generation: int) -> BulkstopError | None:
        """Make a token newer than ``generation`` current; ``None`` on success, else why not."""
        while True:
            if generation < self._generation:
                return None
            if self._refused is not None:
                return self._refused
            if self._last_error is not None and self._clock.now() < self._retry_after:
                return self._last_error
            flight = self._flight
            if flight is None:
                break
            await flight.done.wait()
            if not flight.abandoned:
                return flight.error

        flight = self._flight = _Flight()
        try:
            flight.error = await self._fetch()
        except BaseException:
            flight.abandoned = True
            raise
        finally:
            self._flight = None
            flight.done.set()
        return flight.error

    async def _fetch(self) -> BulkstopError | None:
        """Fetch a token, retrying transient failures; never raises but for cancellation."""
        attempt = 0
        while True:
            attempt += 1
            try:
                await self._fetch_once()
            except _TransientIamError as exc:
                _log.warning(
                    "auth.token_fetch_failed",
                    endpoint=str(self._tokens_url.origin()),
                    attempt=attempt,
                    reason=str(exc),
                )
                if attempt > len(self.FETCH_BACKOFF):
                    error = UsageError(str(exc))
                    error.__cause__ = exc.__cause__
                    return self._failed(error)
                await self._clock.sleep(self.FETCH_BACKOFF[attempt - 1])
            except CredentialsRejected as exc:
                _log.error(
                    "auth.token_refused", endpoint=str(self._tokens_url.origin()), user=self._user
                )
                self._refused = exc
                return exc
            except UsageError as exc:
                _log.error(
                    "auth.token_fetch_failed",
                    endpoint=str(self._tokens_url.origin()),
                    reason=str(exc),
                )
                return self._failed(exc)
            else:
                self._last_error = None
                return None

    def _failed(self, error: BulkstopError) -> BulkstopError:
        self._last_error = error
        self._retry_after = self._clock.now() + self.FAILURE_COOLDOWN
        return error

    async def _fetch_once(self) -> None:
        started = self._clock.now()
        where = f"IAM at {self._tokens_url.origin()}"
        try:
            async with self._session.post(
                self._tokens_url,
                data=self._request_body(),
                headers={
                    "Content-Type": "application/json;charset=utf8",
                    "Accept-Encoding": ACCEPT_ENCODING,
                    "User-Agent": USER_AGENT,
                },
                allow_redirects=False,  # a password is never re-sent to where a redirect points
                timeout=aiohttp.ClientTimeout(total=self._request_timeout),
                auto_decompress=False,  # read_body decompresses, within its bound
            ) as response:
                status = response.status
                token = response.headers.get("X-Subject-Token", "")
                body = await read_body(response, IAM_MAX_BODY)
        except (aiohttp.ClientError, TimeoutError) as exc:
            reason = type(exc).__name__
            raise _TransientIamError(f"{where} could not be reached ({reason})") from exc

        if status in (401, 403):
            raise CredentialsRejected(
                f"{where} refused the login of user {self._user!r} in domain "
                f"{self._domain!r}: {self._describe_error(status, body)}"
            )
        if status == 429 or status >= 500:
            raise _TransientIamError(f"{where} failed: {self._describe_error(status, body)}")
        if not 200 <= status < 300:
            raise UsageError(f"{where} did not issue a token: {self._describe_error(status, body)}")
        if not token:
            raise UsageError(f"{where} answered HTTP {status} without an X-Subject-Token header")

        raw = body.data
        if body.problem:  # the token is in its header; only its lifetime goes unknown
            _log.warning(
                "auth.token_body_unread",
                endpoint=str(self._tokens_url.origin()),
                reason=body.problem,
            )
        lifetime = self._token_lifetime(raw)
        if lifetime is None:
            self._refresh_due = float("inf")  # rely on the service calling it stale
        else:
            margin = min(self._margin, lifetime / 2)
            self._refresh_due = started + lifetime - margin
        self._previous_token = self._token
        self._token = Secret(token)
        self._generation += 1
        _log.info(
            "auth.token_fetched",
            generation=self._generation,
            expires_at=self._expires_at_text(raw),
        )

    def _request_body(self) -> bytes:
        project = {"id": self._project_id} if self._project_id else {"name": self._project_name}
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": self._user,
                            "password": self._password.reveal(),
                            "domain": {"name": self._domain},
                        }
                    },
                },
                "scope": {"project": project},
            }
        }
        return json.dumps(body).encode()

    def _token_lifetime(self, raw: bytes) -> float | None:
        """Seconds the token is valid for, or ``None`` when IAM's body does not say."""
        token = _json_object(raw).get("token")
        if not isinstance(token, dict):
            return None
        expires = _parse_time(token.get("expires_at"))
        if expires is None:
            return None
        issued = _parse_time(token.get("issued_at"))
        delta: timedelta = expires - (issued if issued is not None else self._wall_clock())
        return max(0.0, delta.total_seconds())

    @staticmethod
    def _expires_at_text(raw: bytes) -> str | None:
        token = _json_object(raw).get("token")
        if isinstance(token, dict):
            value = token.get("expires_at")
            return server_text(value, _MAX_IAM_CODE) if isinstance(value, str) else None
        return None

    def _describe_error(self, status: int, body: Body) -> str:
        """``HTTP 401, APIGW.0301: message`` from an IAM error body: one capped line, without
        any secret (IAM does not echo passwords, but the text is untrusted and is printed)."""
        parsed = _json_object(body.data)
        nested = parsed.get("error")
        nested = nested if isinstance(nested, dict) else {}
        code = parsed.get("error_code") or nested.get("code")
        message = parsed.get("error_msg") or nested.get("message")
        secrets = self.secret_values()
        text = f"HTTP {status}"
        if code:
            text += f", {server_text(str(code), _MAX_IAM_CODE, secrets)}"
        if message:
            text += f": {server_text(str(message), _MAX_IAM_MESSAGE, secrets)}"
        elif body.problem:
            text += f" ({body.problem})"
        return text

    def secret_values(self) -> list[str]:
        values = [self._password.reveal()]
        for token in (self._token, self._previous_token):
            if token is not None:
                values.append(token.reveal())
        return values

    def __repr__(self) -> str:
        project = (
            f"project_id={self._project_id!r}"
            if self._project_id
            else f"project_name={self._project_name!r}"
        )
        return (
            f"IamPasswordAuth(user={self._user!r}, password='***', domain={self._domain!r}, "
            f"{project}, iam={str(self._tokens_url.origin())!r}, generation={self._generation})"
        )


class _TransientIamError(UsageError):
    """IAM failed in a way worth another try (network, 429, 5xx)."""


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    # IAM writes UTC with a trailing Z; a zone-less value is read as UTC too.
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
