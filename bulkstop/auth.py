"""Credentials: how a request to CodeArts gets authenticated.

Every mode implements :class:`Auth`. The client builds an :class:`OutgoingRequest`, hands it to
``await auth.sign(request)`` (which adds headers and returns the credential *generation* it used),
and, when the service says the credential is stale (401 APIG.0307), calls
``await auth.refresh(generation)``: the first caller for a generation fetches a new credential,
every concurrent caller waits for that same fetch (single flight), and a caller whose request was
signed with an older generation than the current one returns at once.

Secrets live in :class:`Secret` so that no repr, log line or exception message can show them.
A credential goes only where :func:`~bulkstop.transport.check_endpoint` allows (https, or http
to loopback, or http when explicitly allowed), and IAM's answers are read within a bound.

The modes: :class:`TokenAuth` (a fixed ``X-Auth-Token``), :class:`AkSkAuth` (every request
signed with an access key, see :mod:`bulkstop.signing`) and
:class:`~bulkstop.iam.IamPasswordAuth` (a token fetched from IAM with a user's password and
refreshed before it expires), which lives in :mod:`bulkstop.iam` so that a run with another
credential never loads it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from bulkstop.clock import utcnow
from bulkstop.models import OutgoingRequest

__all__ = ["AkSkAuth", "Auth", "OutgoingRequest", "Secret", "StaticAuth", "TokenAuth"]


class Secret:
    """A string that never shows itself: ``repr``/``str`` print ``'***'``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself, for the one place that puts it on the wire."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))


class Auth(Protocol):
    """One way of authenticating to CodeArts (token, IAM password, AK/SK)."""

    @property
    def mode(self) -> str:
        """Short name for logs: ``token``, ``iam-password``, ``aksk``. Never a secret."""
        ...

    async def prepare(self) -> None:
        """Get ready before the first stop (e.g. fetch an IAM token). Raises on bad credentials."""
        ...

    async def sign(self, request: OutgoingRequest) -> int:
        """Add authentication headers to ``request``; return the credential generation used."""
        ...

    def secret_values(self) -> list[str]:
        """The secrets this credential holds right now, for log redaction. Never log these."""
        ...

    async def refresh(self, generation: int) -> bool:
        """Replace a credential the service called stale; ``True`` when a newer one is ready.

        Single flight: concurrent callers with the same ``generation`` share one refresh.
        A mode that cannot refresh (a fixed token) returns ``False``.
        """
        ...


class StaticAuth(Auth, Protocol):
    """An :class:`Auth` whose ``sign`` adds the same headers to every request, whatever the
    request, and always returns generation 0: :meth:`static_headers`. A client may then add
    those headers itself, sparing each request an ``OutgoingRequest`` and a ``sign()``
    coroutine (a fixed token's case).
    """

    def static_headers(self) -> dict[str, str]:
        """What ``sign`` adds to every request."""
        ...


class TokenAuth:
    """A fixed IAM token sent as ``X-Auth-Token``. It cannot be refreshed.

    A :class:`StaticAuth`: every request gets the same header.
    """

    __slots__ = ("_token",)

    def __init__(self, token: str | Secret) -> None:
        secret = token if isinstance(token, Secret) else Secret(token.strip())
        if not secret:
            raise ValueError("the token is empty")
        self._token = secret

    @property
    def mode(self) -> str:
        return "token"

    async def prepare(self) -> None:
        return None

    async def sign(self, request: OutgoingRequest) -> int:
        request.headers.update(self.static_headers())
        return 0

    def static_headers(self) -> dict[str, str]:
        return {"X-Auth-Token": self._token.reveal()}

    async def refresh(self, generation: int) -> bool:
        return False

    def secret_values(self) -> list[str]:
        return [self._token.reveal()]

    def __repr__(self) -> str:
        return "TokenAuth(token='***')"


def _as_secret(value: str | Secret) -> Secret:
    return value if isinstance(value, Secret) else Secret(value)


def _mask_access_key(ak: str) -> str:
    """Show enough of an access key to tell keys apart in logs: ``AKEX***``."""
    return f"{ak[:4]}***" if len(ak) >= 12 else "***"


class AkSkAuth:
    """Every request signed with an access key / secret key pair (``SDK-HMAC-SHA256``).

    Temporary keys carry a ``security_token`` (sent and signed as ``X-Security-Token``).
    ``now`` supplies the wall-clock time for ``X-Sdk-Date``; the gateway refuses dates too far
    from its own, so it must be the real UTC time outside tests. Keys cannot be refreshed.
    """

    __slots__ = ("_ak", "_now", "_project_id", "_security_token", "_sk")

    def __init__(
        self,
        ak: str,
        sk: Secret | str,
        project_id: str | None,
        security_token: Secret | str | None = None,
        *,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        if not ak.strip():
            raise ValueError("the access key (AK) is empty")
        secret = _as_secret(sk)
        if not secret.reveal().strip():
            raise ValueError("the secret key (SK) is empty")
        self._ak = ak.strip()
        self._sk = secret
        self._project_id = project_id
        self._security_token = None if security_token is None else _as_secret(security_token)
        self._now = now

    @property
    def mode(self) -> str:
        return "aksk"

    @property
    def access_key_hint(self) -> str:
        """The access key masked for logs (``AKEX***``)."""
        return _mask_access_key(self._ak)

    async def prepare(self) -> None:
        return None

    async def sign(self, request: OutgoingRequest) -> int:
        # Imported here: a run with another credential never loads the signing code.
        from bulkstop.signing import sign_request

        sign_request(
            request,
            ak=self._ak,
            sk=self._sk.reveal(),
            now=self._now(),
            project_id=self._project_id,
            security_token=(
                None if self._security_token is None else self._security_token.reveal()
            ),
        )
        return 0

    async def refresh(self, generation: int) -> bool:
        return False

    def secret_values(self) -> list[str]:
        values = [self._sk.reveal()]
        if self._security_token is not None:
            values.append(self._security_token.reveal())
        return values

    def __repr__(self) -> str:
        token = "" if self._security_token is None else ", security_token='***'"
        return (
            f"AkSkAuth(ak={self.access_key_hint!r}, sk='***', "
            f"project_id={self._project_id!r}{token})"
        )
