"""Which credential a run uses: one of three ways, chosen from options and the environment.

=====================  ===============================================================
way                    configured by
=====================  ===============================================================
token                  ``CODEARTS_TOKEN``, or ``--token-file PATH`` (file content, stripped)
IAM password           ``HUAWEICLOUD_USERNAME`` + ``HUAWEICLOUD_PASSWORD`` +
                       ``HUAWEICLOUD_DOMAIN``; project from ``--project-id`` or
                       ``--project-name`` (default: the region's name); IAM at
                       ``--iam-endpoint`` or ``https://iam.{region}.myhuaweicloud.com``
AK/SK                  ``HUAWEICLOUD_SDK_AK`` + ``HUAWEICLOUD_SDK_SK``, project id from
                       ``--project-id`` or ``HUAWEICLOUD_SDK_PROJECT_ID``; temporary keys
                       add ``HUAWEICLOUD_SDK_SECURITY_TOKEN``
=====================  ===============================================================

Exactly one way must be configured; anything else is a :class:`~bulkstop.errors.UsageError`
that names the variables and options involved, never their values. Rules a user can rely on:

- An environment variable set to the empty string counts as unset.
- Setting any variable of a way means that way was meant: it must then be complete, and it
  contradicts every other way that is configured too.
- Within the token way, ``--token-file`` beats ``CODEARTS_TOKEN``: an explicit file is the more
  deliberate choice, and the chosen source says the variable was ignored.
- Within AK/SK, ``--project-id`` beats ``HUAWEICLOUD_SDK_PROJECT_ID`` for the same reason.
- The IAM endpoint follows the CodeArts endpoint's transport rule (the password travels to it):
  https, or http to loopback, or http with ``--insecure-http``.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import aiohttp

from bulkstop.auth import AkSkAuth, Auth, Secret, TokenAuth
from bulkstop.clock import Clock
from bulkstop.errors import UsageError
from bulkstop.log import get_logger

__all__ = [
    "AKSK_VARIABLES",
    "IAM_VARIABLES",
    "TOKEN_VARIABLE",
    "CredentialOptions",
    "ResolvedAuth",
    "resolve_auth",
]

TOKEN_VARIABLE = "CODEARTS_TOKEN"  # noqa: S105 - the name of a variable, not a token
#: The three variables the IAM password way needs, all of them.
IAM_VARIABLES = ("HUAWEICLOUD_USERNAME", "HUAWEICLOUD_PASSWORD", "HUAWEICLOUD_DOMAIN")
_AK, _SK = "HUAWEICLOUD_SDK_AK", "HUAWEICLOUD_SDK_SK"
_AK_PROJECT = "HUAWEICLOUD_SDK_PROJECT_ID"
_AK_SECURITY_TOKEN = "HUAWEICLOUD_SDK_SECURITY_TOKEN"  # noqa: S105 - a variable name
#: Every variable of the AK/SK way (the first two are required).
AKSK_VARIABLES = (_AK, _SK, _AK_PROJECT, _AK_SECURITY_TOKEN)

log = get_logger(__name__)

_REGION = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_THE_THREE_WAYS = (
    f"a token ({TOKEN_VARIABLE} or --token-file), "
    f"an IAM password ({', '.join(IAM_VARIABLES)}), "
    f"or an access key ({_AK} and {_SK})"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class CredentialOptions:
    """The command-line side of credential selection (the environment is the other side)."""

    token_file: Path | None = None
    project_id: str | None = None
    project_name: str | None = None
    region: str | None = None
    iam_endpoint: str | None = None
    #: accept plain ``http://`` to a non-loopback IAM endpoint (``--insecure-http``)
    allow_insecure_http: bool = False


class ResolvedAuth(NamedTuple):
    """The chosen credential and where it came from, e.g. ``token from CODEARTS_TOKEN``.

    ``source`` is safe to log: it names variables, files, users and a masked AK, never a secret.
    """

    auth: Auth
    source: str


def resolve_auth(
    options: CredentialOptions,
    env: Mapping[str, str],
    *,
    session: aiohttp.ClientSession,
    clock: Clock,
) -> ResolvedAuth:
    """Pick the one configured credential; raise :class:`UsageError` if there is not exactly one.

    Nothing is sent here: an IAM password is only exchanged for a token by
    ``await auth.prepare()``. ``session`` and ``clock`` are used by that exchange.
    """
    given = {name: value for name, value in env.items() if value}
    token_sources = [
        *(["--token-file"] if options.token_file is not None else []),
        *([TOKEN_VARIABLE] if TOKEN_VARIABLE in given else []),
    ]
    iam_sources = [name for name in IAM_VARIABLES if name in given]
    aksk_sources = [name for name in AKSK_VARIABLES if name in given]

    ways = [sources for sources in (token_sources, iam_sources, aksk_sources) if sources]
    if not ways:
        raise UsageError(f"no credentials: give {_THE_THREE_WAYS}")
    if len(ways) > 1:
        named = ", ".join(source for sources in ways for source in sources)
        raise UsageError(
            f"credentials are given more than one way ({named}); keep exactly one of "
            f"{_THE_THREE_WAYS}"
        )

    if token_sources:
        return _token(options, given)
    if iam_sources:
        return _iam_password(options, given, session=session, clock=clock)
    return _access_key(options, given)


def _token(options: CredentialOptions, env: Mapping[str, str]) -> ResolvedAuth:
    if options.token_file is not None:
        path = options.token_file
        try:
            token = _read_token_file(path)
        except (OSError, UnicodeDecodeError) as exc:
            if isinstance(exc, UnicodeDecodeError):
                reason = "not UTF-8"
            else:
                reason = exc.strerror or type(exc).__name__
            raise UsageError(f"cannot read the token file {path}: {reason}") from exc
        where = f"--token-file {path}"
        if not token:
            raise UsageError(f"the token file {path} is empty")
        source = f"token from {where}"
        if TOKEN_VARIABLE in env:
            source += f" ({TOKEN_VARIABLE} ignored)"
    else:
        token = env[TOKEN_VARIABLE].strip()
        where = TOKEN_VARIABLE
        if not token:
            raise UsageError(f"{TOKEN_VARIABLE} holds only whitespace")
        source = f"token from {where}"
    if any(char.isspace() for char in token):
        raise UsageError(f"the token from {where} contains whitespace: it must be a single line")
    return ResolvedAuth(TokenAuth(Secret(token)), source)


def _read_token_file(path: Path) -> str:
    """The token in ``path``, stripped; a warning when others than its owner may read it.

    Only a warning: the token is already as exposed as it will be, and refusing to run in an
    incident for a file's mode would cost more than it saves.
    """
    with path.open("rb") as stream:
        mode = os.fstat(stream.fileno()).st_mode  # of the file read, not of a path re-read
        data = stream.read()
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning(
            "credentials.token_file_readable",
            path=str(path),
            mode=f"{stat.S_IMODE(mode):04o}",
            advice=f"chmod 600 {path}: other users may read this token",
        )
    return data.decode("utf-8").strip()


def _iam_password(
    options: CredentialOptions,
    env: Mapping[str, str],
    *,
    session: aiohttp.ClientSession,
    clock: Clock,
) -> ResolvedAuth:
    missing = [name for name in IAM_VARIABLES if name not in env]
    if missing:
        raise UsageError(f"an IAM password login also needs {', '.join(missing)}")
    user, password, domain = (env[name] for name in IAM_VARIABLES)

    region = options.region
    if region is not None and not _REGION.fullmatch(region):
        raise UsageError(f"{region!r} is not a region name like cn-north-4")
    if options.iam_endpoint:
        endpoint = options.iam_endpoint
    elif region:
        endpoint = f"https://iam.{region}.myhuaweicloud.com"
    else:
        raise UsageError("an IAM password login needs --region or --iam-endpoint")

    project_name = options.project_name or (None if options.project_id else region)
    if not (options.project_id or project_name):
        raise UsageError(
            "an IAM password login needs a project: --project-id, --project-name or --region"
        )
    from bulkstop.iam import IamPasswordAuth  # only when this way is chosen

    auth = IamPasswordAuth(
        session,
        endpoint,
        user,
        Secret(password),
        domain,
        project_id=options.project_id,
        project_name=project_name,
        clock=clock,
        allow_insecure_http=options.allow_insecure_http,
    )
    project = options.project_id or project_name
    return ResolvedAuth(
        auth, f"IAM password for user {user} (domain {domain}, project {project}, {endpoint})"
    )


def _access_key(options: CredentialOptions, env: Mapping[str, str]) -> ResolvedAuth:
    missing = [name for name in (_AK, _SK) if name not in env]
    if missing:
        raise UsageError(f"an access key login also needs {', '.join(missing)}")
    project_id = options.project_id or env.get(_AK_PROJECT)
    if not project_id:
        raise UsageError(f"an access key login needs a project id: {_AK_PROJECT} or --project-id")
    security_token = env.get(_AK_SECURITY_TOKEN)
    try:
        auth = AkSkAuth(
            env[_AK],
            Secret(env[_SK]),
            project_id,
            None if security_token is None else Secret(security_token),
        )
    except ValueError as exc:  # a key of only whitespace
        raise UsageError(f"{_AK} or {_SK} holds only whitespace") from exc
    kind = "temporary AK/SK" if security_token is not None else "AK/SK"
    return ResolvedAuth(auth, f"{kind} from {_AK} (AK {auth.access_key_hint})")
