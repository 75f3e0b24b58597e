"""Choosing the one credential of a run from options and the environment."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
from fakeclock import FakeClock
from yarl import URL

from bulkstop.auth import AkSkAuth, OutgoingRequest, TokenAuth
from bulkstop.credentials import CredentialOptions, ResolvedAuth, resolve_auth
from bulkstop.errors import UsageError
from bulkstop.iam import IamPasswordAuth

pytestmark = pytest.mark.anyio

TOKEN = "tok-S3CRET-token-value"
PASSWORD = "pw-S3CRET-password"
AK = "AKEXAMPLE0000000000"
SK = "sk-S3CRET-secret-key"
STS = "sts-S3CRET-security-token"
PROJECT_ID = "0123456789abcdef0123456789abcdef"
SECRETS = (TOKEN, PASSWORD, SK, STS)

Resolve = Callable[..., ResolvedAuth]

IAM_ENV = {
    "HUAWEICLOUD_USERNAME": "alice",
    "HUAWEICLOUD_PASSWORD": PASSWORD,
    "HUAWEICLOUD_DOMAIN": "acme",
}
AKSK_ENV = {"HUAWEICLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_SK": SK}


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.fixture
def resolve(session: aiohttp.ClientSession) -> Resolve:
    def run(env: dict[str, str], **options: Any) -> ResolvedAuth:
        return resolve_auth(
            CredentialOptions(**options),
            env,
            session=session,
            clock=FakeClock(),
        )

    return run


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(f"\n  {TOKEN.replace('tok-', 'file-')}  \n", encoding="utf-8")
    return path


async def _sent_token(resolved: ResolvedAuth) -> str:
    request = OutgoingRequest(method="POST", url=URL("https://example.com/"))
    await resolved.auth.sign(request)
    return request.headers["X-Auth-Token"]


def _assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text
    assert "S3CRET" not in text


# --- none, or more than one ------------------------------------------------------------------


@pytest.mark.parametrize(
    "env",
    [{}, {"CODEARTS_TOKEN": "", "HUAWEICLOUD_SDK_AK": ""}, {"UNRELATED": "x"}],
    ids=["empty", "empty-values", "unrelated"],
)
async def test_no_credentials_lists_the_three_ways(resolve: Resolve, env: dict[str, str]) -> None:
    with pytest.raises(UsageError, match="no credentials") as caught:
        resolve(env)

    message = str(caught.value)
    for way in ("CODEARTS_TOKEN", "--token-file", "HUAWEICLOUD_USERNAME", "HUAWEICLOUD_SDK_AK"):
        assert way in message


@pytest.mark.parametrize(
    ("env", "use_file", "named"),
    [
        pytest.param(
            {"CODEARTS_TOKEN": TOKEN, **AKSK_ENV},
            False,
            ["CODEARTS_TOKEN", "HUAWEICLOUD_SDK_AK", "HUAWEICLOUD_SDK_SK"],
            id="token-and-aksk",
        ),
        pytest.param(
            {"CODEARTS_TOKEN": TOKEN, **IAM_ENV},
            False,
            ["CODEARTS_TOKEN", "HUAWEICLOUD_USERNAME", "HUAWEICLOUD_PASSWORD"],
            id="token-and-iam",
        ),
        pytest.param(
            {**IAM_ENV, **AKSK_ENV},
            False,
            ["HUAWEICLOUD_DOMAIN", "HUAWEICLOUD_SDK_AK"],
            id="iam-and-aksk",
        ),
        pytest.param(AKSK_ENV, True, ["--token-file", "HUAWEICLOUD_SDK_AK"], id="file-and-aksk"),
        pytest.param(
            {"CODEARTS_TOKEN": TOKEN, "HUAWEICLOUD_PASSWORD": PASSWORD},
            False,
            ["CODEARTS_TOKEN", "HUAWEICLOUD_PASSWORD"],
            id="token-and-part-of-iam",
        ),
        pytest.param(
            {"CODEARTS_TOKEN": TOKEN, "HUAWEICLOUD_SDK_SECURITY_TOKEN": STS},
            False,
            ["CODEARTS_TOKEN", "HUAWEICLOUD_SDK_SECURITY_TOKEN"],
            id="token-and-sts-token",
        ),
    ],
)
async def test_more_than_one_way_names_the_contradicting_sources(
    resolve: Resolve, token_file: Path, env: dict[str, str], use_file: bool, named: list[str]
) -> None:
    options = {"token_file": token_file} if use_file else {}

    with pytest.raises(UsageError, match="more than one way") as caught:
        resolve(env, **options)

    for source in named:
        assert source in str(caught.value)
    _assert_no_secret(str(caught.value))


# --- token -----------------------------------------------------------------------------------


async def test_token_from_the_environment(resolve: Resolve) -> None:
    resolved = resolve({"CODEARTS_TOKEN": f"  {TOKEN}\n"})

    assert isinstance(resolved.auth, TokenAuth)
    assert resolved.source == "token from CODEARTS_TOKEN"
    assert await _sent_token(resolved) == TOKEN


async def test_token_from_a_file_is_stripped(resolve: Resolve, token_file: Path) -> None:
    resolved = resolve({}, token_file=token_file)

    assert resolved.source == f"token from --token-file {token_file}"
    assert await _sent_token(resolved) == TOKEN.replace("tok-", "file-")


async def test_token_file_beats_the_environment_variable(
    resolve: Resolve, token_file: Path
) -> None:
    resolved = resolve({"CODEARTS_TOKEN": TOKEN}, token_file=token_file)

    assert resolved.source == f"token from --token-file {token_file} (CODEARTS_TOKEN ignored)"
    assert await _sent_token(resolved) == TOKEN.replace("tok-", "file-")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (None, "cannot read the token file"),
        (b"  \n\n", "is empty"),
        (b"\xff\xfe\x00", "not UTF-8"),
        (b"two\nlines", "single line"),
    ],
    ids=["missing", "empty", "not-utf8", "two-lines"],
)
async def test_unusable_token_file_names_the_path(
    resolve: Resolve, tmp_path: Path, content: bytes | None, match: str
) -> None:
    path = tmp_path / "token.txt"
    if content is not None:
        path.write_bytes(content)

    with pytest.raises(UsageError, match=match) as caught:
        resolve({}, token_file=path)

    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("mode", "warned"),
    [(0o600, False), (0o400, False), (0o640, True), (0o604, True), (0o644, True)],
    ids=["0600", "0400", "0640", "0604", "0644"],
)
async def test_token_file_others_may_read_is_warned_about_not_refused(
    resolve: Resolve, token_file: Path, mode: int, warned: bool
) -> None:
    os.chmod(token_file, mode)

    with structlog.testing.capture_logs() as logs:
        resolved = resolve({}, token_file=token_file)

    assert await _sent_token(resolved) == TOKEN.replace("tok-", "file-")
    warnings = [
        (entry["log_level"], entry["path"], entry["mode"])
        for entry in logs
        if entry["event"] == "credentials.token_file_readable"
    ]
    assert warnings == ([("warning", str(token_file), f"{mode:04o}")] if warned else [])
    _assert_no_secret(repr(logs))


async def test_token_file_that_is_a_directory_is_refused(resolve: Resolve, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read the token file"):
        resolve({}, token_file=tmp_path)


@pytest.mark.parametrize("value", ["   ", f"{TOKEN} {TOKEN}"], ids=["blank", "two-words"])
async def test_unusable_token_variable_is_refused_without_showing_it(
    resolve: Resolve, value: str
) -> None:
    with pytest.raises(UsageError, match="CODEARTS_TOKEN") as caught:
        resolve({"CODEARTS_TOKEN": value})

    _assert_no_secret(str(caught.value))


# --- IAM password ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "present",
    [
        ["HUAWEICLOUD_USERNAME"],
        ["HUAWEICLOUD_PASSWORD"],
        ["HUAWEICLOUD_USERNAME", "HUAWEICLOUD_DOMAIN"],
        ["HUAWEICLOUD_PASSWORD", "HUAWEICLOUD_DOMAIN"],
    ],
)
async def test_partial_iam_login_names_the_missing_variables(
    resolve: Resolve, present: list[str]
) -> None:
    env = {name: IAM_ENV[name] for name in present}

    with pytest.raises(UsageError, match="IAM password login also needs") as caught:
        resolve(env, region="cn-north-4")

    message = str(caught.value)
    for name in IAM_ENV:
        assert (name in message) == (name not in present)
    _assert_no_secret(message)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        pytest.param(
            {"region": "cn-north-4"},
            "project_name='cn-north-4', iam='https://iam.cn-north-4.myhuaweicloud.com'",
            id="region-names-project-and-endpoint",
        ),
        pytest.param(
            {"region": "cn-north-4", "project_id": PROJECT_ID},
            f"project_id='{PROJECT_ID}', iam='https://iam.cn-north-4.myhuaweicloud.com'",
            id="project-id",
        ),
        pytest.param(
            {"region": "cn-north-4", "project_name": "cn-north-4_sub"},
            "project_name='cn-north-4_sub'",
            id="project-name",
        ),
        pytest.param(
            {"iam_endpoint": "https://iam.myhuaweicloud.com", "project_name": "ap-southeast-3"},
            "project_name='ap-southeast-3', iam='https://iam.myhuaweicloud.com'",
            id="explicit-endpoint",
        ),
        pytest.param(
            {"region": "cn-north-4", "iam_endpoint": "https://iam.example:8443"},
            "project_name='cn-north-4', iam='https://iam.example:8443'",
            id="explicit-endpoint-wins",
        ),
    ],
)
async def test_iam_login_takes_project_and_endpoint_from_options(
    resolve: Resolve, options: dict[str, str], expected: str
) -> None:
    resolved = resolve(IAM_ENV, **options)

    assert isinstance(resolved.auth, IamPasswordAuth)
    assert expected in repr(resolved.auth)


async def test_iam_source_names_the_user_but_not_the_password(resolve: Resolve) -> None:
    resolved = resolve(IAM_ENV, region="cn-north-4")

    assert resolved.source == (
        "IAM password for user alice (domain acme, project cn-north-4, "
        "https://iam.cn-north-4.myhuaweicloud.com)"
    )


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({}, "--region or --iam-endpoint"),
        ({"project_id": PROJECT_ID}, "--region or --iam-endpoint"),
        ({"iam_endpoint": "https://iam.myhuaweicloud.com"}, "needs a project"),
        ({"region": "cn-north-4/../evil"}, "not a region name"),
    ],
    ids=["nothing", "project-only", "endpoint-only", "bad-region"],
)
async def test_incomplete_iam_options_are_refused(
    resolve: Resolve, options: dict[str, str], match: str
) -> None:
    with pytest.raises(UsageError, match=match) as caught:
        resolve(IAM_ENV, **options)

    _assert_no_secret(str(caught.value))


async def test_plain_http_iam_endpoint_off_loopback_is_refused(resolve: Resolve) -> None:
    with pytest.raises(UsageError, match="--insecure-http") as caught:
        resolve(IAM_ENV, iam_endpoint="http://iam.example.com", project_id=PROJECT_ID)

    assert str(caught.value).startswith("IAM endpoint: refusing plain http to iam.example.com")
    _assert_no_secret(str(caught.value))


async def test_plain_http_iam_endpoint_off_loopback_is_accepted_when_allowed(
    resolve: Resolve,
) -> None:
    resolved = resolve(
        IAM_ENV,
        iam_endpoint="http://iam.example.com",
        project_id=PROJECT_ID,
        allow_insecure_http=True,
    )

    assert isinstance(resolved.auth, IamPasswordAuth)


# --- AK/SK -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "options", "expected_project"),
    [
        ({"HUAWEICLOUD_SDK_PROJECT_ID": PROJECT_ID}, {}, PROJECT_ID),
        ({}, {"project_id": PROJECT_ID}, PROJECT_ID),
        ({"HUAWEICLOUD_SDK_PROJECT_ID": "env-project"}, {"project_id": PROJECT_ID}, PROJECT_ID),
    ],
    ids=["env", "option", "option-wins"],
)
async def test_access_key_login_takes_the_project_id(
    resolve: Resolve, env: dict[str, str], options: dict[str, str], expected_project: str
) -> None:
    resolved = resolve({**AKSK_ENV, **env}, **options)

    request = OutgoingRequest(method="POST", url=URL("https://example.com/"))
    await resolved.auth.sign(request)
    assert isinstance(resolved.auth, AkSkAuth)
    assert request.headers["X-Project-Id"] == expected_project


async def test_access_key_source_shows_only_a_masked_key(resolve: Resolve) -> None:
    resolved = resolve({**AKSK_ENV, "HUAWEICLOUD_SDK_PROJECT_ID": PROJECT_ID})

    assert resolved.source == "AK/SK from HUAWEICLOUD_SDK_AK (AK AKEX***)"


async def test_temporary_access_key_sends_the_security_token(resolve: Resolve) -> None:
    resolved = resolve({**AKSK_ENV, "HUAWEICLOUD_SDK_SECURITY_TOKEN": STS}, project_id=PROJECT_ID)

    request = OutgoingRequest(method="POST", url=URL("https://example.com/"))
    await resolved.auth.sign(request)
    assert resolved.source == "temporary AK/SK from HUAWEICLOUD_SDK_AK (AK AKEX***)"
    assert request.headers["X-Security-Token"] == STS


@pytest.mark.parametrize(
    ("env", "options", "match"),
    [
        ({"HUAWEICLOUD_SDK_AK": AK}, {}, "also needs HUAWEICLOUD_SDK_SK$"),
        ({"HUAWEICLOUD_SDK_SK": SK}, {}, "also needs HUAWEICLOUD_SDK_AK$"),
        (
            {"HUAWEICLOUD_SDK_SECURITY_TOKEN": STS},
            {},
            "also needs HUAWEICLOUD_SDK_AK, HUAWEICLOUD_SDK_SK$",
        ),
        (AKSK_ENV, {}, "needs a project id: HUAWEICLOUD_SDK_PROJECT_ID or --project-id"),
        (
            {"HUAWEICLOUD_SDK_AK": " ", "HUAWEICLOUD_SDK_SK": SK},
            {"project_id": PROJECT_ID},
            "only whitespace",
        ),
    ],
    ids=["no-sk", "no-ak", "sts-only", "no-project", "blank-ak"],
)
async def test_incomplete_access_key_login_is_refused(
    resolve: Resolve, env: dict[str, str], options: dict[str, str], match: str
) -> None:
    with pytest.raises(UsageError, match=match) as caught:
        resolve(env, **options)

    _assert_no_secret(str(caught.value))
