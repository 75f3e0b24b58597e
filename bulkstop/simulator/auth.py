"""Who may call the simulator: IAM tokens, the IAM password endpoint, and AK/SK signatures.

:meth:`Authenticator.check` runs first on every CodeArts request, as the gateway does, and
returns ``None`` (let through) or the 401 to answer. The modes:

* ``X-Auth-Token``: the configured token, or a token issued by ``POST /v3/auth/tokens``; with no
  configured token any non-empty one passes. With ``token_ttl_requests`` each token expires
  (``APIG.0307``) after that many authenticated requests. A request that carries a token is
  judged on the token alone.
* ``Authorization: SDK-HMAC-SHA256 Access=.., SignedHeaders=.., Signature=..`` with
  ``X-Sdk-Date``: the signature is recomputed with :func:`bulkstop.signing.compute_signature`
  over exactly the headers named in ``SignedHeaders``, as received. Consecutive failures lock the
  AK (see :class:`~bulkstop.simulator.config.SimulatorConfig`).

Every refusal is ``401 APIG.0301`` except an expired token; messages never carry a credential.
Adding a mode: another branch in :meth:`Authenticator.check` and its settings in the config.
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from yarl import URL

from bulkstop.simulator import codes
from bulkstop.simulator.codes import ErrorReply, iam_error_body
from bulkstop.simulator.config import SimulatorConfig

__all__ = ["Authenticator", "IamAnswer"]

_ALGORITHM_PREFIX = "SDK-HMAC-SHA256 "
_SDK_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_TOKEN_LIFETIME = timedelta(hours=24)

NO_CREDENTIAL = ErrorReply(401, codes.APIG_AUTH_FAILED, codes.AUTH_NO_CREDENTIAL)
BAD_TOKEN = ErrorReply(401, codes.APIG_AUTH_FAILED, codes.AUTH_BAD_TOKEN)
BAD_AK = ErrorReply(401, codes.APIG_AUTH_FAILED, codes.AUTH_BAD_AK)
BAD_SIGNATURE = ErrorReply(401, codes.APIG_AUTH_FAILED, codes.AUTH_BAD_SIGNATURE)
BAD_DATE = ErrorReply(401, codes.APIG_AUTH_FAILED, codes.AUTH_BAD_DATE)
BAD_HEADER = ErrorReply(401, codes.APIG_AUTH_FAILED, codes.AUTH_BAD_HEADER)
AK_LOCKED = ErrorReply(401, codes.APIG_AUTH_FAILED, codes.AUTH_AK_LOCKED)


class IamAnswer(NamedTuple):
    """The answer to ``POST /v3/auth/tokens``: status, encoded body, and the token if issued."""

    status: int
    body: bytes
    token: str | None


class Authenticator:
    """Checks credentials and issues IAM tokens for one simulator.

    ``monotonic`` times the AK lockout; ``wall`` (epoch seconds) checks ``X-Sdk-Date`` and dates
    issued tokens. Both are injected so tests control them.
    """

    __slots__ = (
        "_aksk",
        "_config",
        "_failures",
        "_issued",
        "_locked_until",
        "_monotonic",
        "_token",
        "_ttl",
        "_uses",
        "_wall",
    )

    def __init__(
        self,
        config: SimulatorConfig,
        *,
        monotonic: Callable[[], float],
        wall: Callable[[], float],
    ) -> None:
        self._config = config
        self._token = config.token
        self._ttl = config.token_ttl_requests
        self._aksk = config.aksk
        self._monotonic = monotonic
        self._wall = wall
        self._issued: set[str] = set()
        self._uses: dict[str, int] = {}
        self._failures = 0
        self._locked_until = float("-inf")

    # --- every request -----------------------------------------------------------------------

    def check(
        self, headers: Mapping[str, str], method: str, url: URL, body: bytes
    ) -> ErrorReply | None:
        """``None`` when the request may pass, else the 401 to answer."""
        token = headers.get("X-Auth-Token")
        if token:
            return self._check_token(token)
        authorization = headers.get("Authorization")
        if authorization:
            return self._check_signature(authorization, headers, method, url, body)
        return NO_CREDENTIAL

    def _check_token(self, token: str) -> ErrorReply | None:
        expected = self._token
        if (
            expected is not None
            and not hmac.compare_digest(token.encode(), expected.encode())
            and token not in self._issued
        ):
            return BAD_TOKEN
        if self._ttl is not None:
            used = self._uses.get(token, 0) + 1
            self._uses[token] = used
            if used > self._ttl:
                return codes.TOKEN_EXPIRED
        return None

    def _check_signature(
        self, authorization: str, headers: Mapping[str, str], method: str, url: URL, body: bytes
    ) -> ErrorReply | None:
        if self._aksk is None or not authorization.startswith(_ALGORITHM_PREFIX):
            return BAD_HEADER if self._aksk is not None else BAD_AK
        fields: dict[str, str] = {}
        for part in authorization[len(_ALGORITHM_PREFIX) :].split(","):
            name, sep, value = part.strip().partition("=")
            if not sep:
                return BAD_HEADER
            fields[name] = value
        access = fields.get("Access")
        signed_list = fields.get("SignedHeaders")
        signature = fields.get("Signature")
        if not (access and signed_list and signature):
            return BAD_HEADER
        ak, sk = self._aksk
        if not hmac.compare_digest(access.encode(), ak.encode()):
            return BAD_AK
        if self._monotonic() < self._locked_until:
            return AK_LOCKED
        if not self._date_ok(headers.get("X-Sdk-Date")):
            return self._failed(BAD_DATE)
        names = signed_list.split(";")
        if "x-sdk-date" not in names:
            return self._failed(BAD_SIGNATURE)
        signed: dict[str, str] = {}
        for name in names:
            received = headers.get(name)
            if received is None:
                return self._failed(BAD_SIGNATURE)
            signed[name] = received
        # Imported here: only AK/SK requests need it, and it keeps the simulator importable on
        # its own.
        from bulkstop.signing import compute_signature

        try:
            _, expected = compute_signature(method, url, signed, body, sk)
        except ValueError:
            return self._failed(BAD_SIGNATURE)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            return self._failed(BAD_SIGNATURE)
        self._failures = 0
        return None

    def _date_ok(self, raw: str | None) -> bool:
        if not raw:
            return False
        try:
            sent = datetime.strptime(raw.strip(), _SDK_DATE_FORMAT).replace(tzinfo=UTC)
        except ValueError:
            return False
        return abs(self._wall() - sent.timestamp()) <= self._config.max_clock_skew

    def _failed(self, reply: ErrorReply) -> ErrorReply:
        limit = self._config.aksk_lockout_after
        if limit:
            self._failures += 1
            if self._failures >= limit:
                self._failures = 0
                self._locked_until = self._monotonic() + self._config.aksk_lockout_seconds
        return reply

    # --- POST /v3/auth/tokens ----------------------------------------------------------------

    def issue(self, body: bytes) -> IamAnswer:
        """Answer a password login: 201 with a new token, 400 for a bad body, 401 for bad ids."""
        login = _read_password_login(body)
        if login is None:
            return IamAnswer(400, iam_error_body(*codes.IAM_BAD_REQUEST), None)
        user, password, domain, project = login
        expected = (self._config.iam_user, self._config.iam_password, self._config.iam_domain)
        given = (user, password, domain)
        # Every part is compared (no short cut), as a login check should.
        matches = [
            want is not None and hmac.compare_digest(got.encode(), want.encode())
            for got, want in zip(given, expected, strict=True)
        ]
        if not all(matches):
            return IamAnswer(401, iam_error_body(*codes.IAM_BAD_CREDENTIALS), None)
        token = "MII" + secrets.token_urlsafe(48)
        self._issued.add(token)
        issued_at = datetime.fromtimestamp(self._wall(), UTC)
        answer = {
            "token": {
                "expires_at": _iso(issued_at + _TOKEN_LIFETIME),
                "issued_at": _iso(issued_at),
                "methods": ["password"],
                "user": {"name": user, "domain": {"name": domain}},
                "project": project,
            }
        }
        return IamAnswer(201, json.dumps(answer).encode(), token)

    def __repr__(self) -> str:
        return f"Authenticator(issued_tokens={len(self._issued)}, ak_failures={self._failures})"


def _read_password_login(body: bytes) -> tuple[str, str, str, dict[str, str]] | None:
    """``(user, password, domain, project scope)`` from an IAM password body, or ``None``."""
    try:
        payload: Any = json.loads(body)
        identity = payload["auth"]["identity"]
        if "password" not in identity["methods"]:
            return None
        user = identity["password"]["user"]
        name, password, domain = user["name"], user["password"], user["domain"]["name"]
        scope = payload["auth"].get("scope", {}).get("project", {})
        project = {key: str(value) for key, value in scope.items() if key in ("id", "name")}
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    if not all(isinstance(value, str) and value for value in (name, password, domain)):
        return None
    return name, password, domain, project


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
