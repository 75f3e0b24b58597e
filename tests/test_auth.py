"""The auth modes: IAM password tokens (single-flight refresh), AK/SK signing, fixed tokens.

IAM is a small aiohttp server on 127.0.0.1 (``IamStub``), so the token requests go through
a real socket and a real ``ClientSession``.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import anyio
import pytest
import structlog
from aiohttp import web
from fakeclock import FakeClock
from yarl import URL

import bulkstop
from bulkstop.auth import AkSkAuth, OutgoingRequest, Secret, TokenAuth
from bulkstop.errors import CredentialsRejected, UsageError
from bulkstop.iam import IamPasswordAuth

pytestmark = pytest.mark.anyio

PASSWORD = "pa55-w0rd-never-shown"
USER = "alice"
DOMAIN = "acme"
PROJECT_ID = "0123456789abcdef0123456789abcdef"
STOP_URL = URL("https://cloudbuild-ext.cn-north-4.myhuaweicloud.com/v3/jobs/stop")
ISSUED = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
DAY = 86400.0


def _iam_time(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class IamStub:
    """IAM's token endpoint: call *n* answers 201 with ``X-Subject-Token: tok-n``.

    ``status`` changes every later answer, ``script`` lists statuses for the next calls first;
    ``gate`` (when set) holds answers until it is set, ``entered`` tells a request arrived.
    """

    def __init__(self) -> None:
        self.url = ""
        self.calls = 0
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.lifetime = DAY
        self.with_issued_at = True
        self.status = 201
        self.script: list[int] = []
        self.error_body: dict[str, Any] | None = None
        self.success_body: dict[str, Any] | None = None
        self.send_token = True
        self.gate: anyio.Event | None = None
        self.entered = anyio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.calls += 1
        self.bodies.append(json.loads(await request.read()))
        self.headers.append(dict(request.headers))
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        status = self.script.pop(0) if self.script else self.status
        if status != 201:
            body = self.error_body or {"error_code": f"IAM.{status}", "error_msg": "no"}
            return web.json_response(body, status=status)
        headers = {"X-Subject-Token": f"tok-{self.calls}"} if self.send_token else {}
        return web.json_response(self._token_body(), status=201, headers=headers)

    def _token_body(self) -> dict[str, Any]:
        if self.success_body is not None:
            return self.success_body
        token = {"expires_at": _iam_time(ISSUED + timedelta(seconds=self.lifetime))}
        if self.with_issued_at:
            token["issued_at"] = _iam_time(ISSUED)
        return {"token": token}


@pytest.fixture
async def iam() -> AsyncIterator[IamStub]:
    stub = IamStub()
    app = web.Application()
    app.router.add_post("/v3/auth/tokens", stub.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    stub.url = f"http://{host}:{port}"
    try:
        yield stub
    finally:
        if stub.gate is not None:
            stub.gate.set()
        await runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_auth(
    session: aiohttp.ClientSession, clock: FakeClock, iam: IamStub
) -> Callable[..., IamPasswordAuth]:
    def make(**overrides: Any) -> IamPasswordAuth:
        arguments: dict[str, Any] = {
            "session": session,
            "iam_endpoint": iam.url,
            "user": USER,
            "password": Secret(PASSWORD),
            "domain": DOMAIN,
            "project_id": PROJECT_ID,
            "clock": clock,
        }
        arguments.update(overrides)
        return IamPasswordAuth(**arguments)

    return make


def _request() -> OutgoingRequest:
    return OutgoingRequest(
        method="POST", url=STOP_URL, headers={"Content-Type": "application/json"}
    )


# --- IAM password: the token request ---------------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ({"project_id": PROJECT_ID}, {"id": PROJECT_ID}),
        ({"project_id": None, "project_name": "cn-north-4"}, {"name": "cn-north-4"}),
        ({"project_id": PROJECT_ID, "project_name": "cn-north-4"}, {"id": PROJECT_ID}),
    ],
    ids=["id", "name", "id-wins"],
)
async def test_token_request_body_has_the_documented_shape(
    iam: IamStub,
    make_auth: Callable[..., IamPasswordAuth],
    scope: dict[str, str | None],
    expected: dict[str, str],
) -> None:
    await make_auth(**scope).prepare()

    assert iam.bodies == [
        {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {"name": USER, "password": PASSWORD, "domain": {"name": DOMAIN}}
                    },
                },
                "scope": {"project": expected},
            }
        }
    ]


async def test_token_request_is_sent_as_json_utf8(
    iam: IamStub, make_auth: Callable[..., IamPasswordAuth]
) -> None:
    await make_auth().prepare()

    assert iam.headers[0]["Content-Type"] == "application/json;charset=utf8"


async def test_token_request_names_bulkstop_and_aiohttp_with_their_versions(
    iam: IamStub, make_auth: Callable[..., IamPasswordAuth]
) -> None:
    await make_auth().prepare()

    expected = f"bulkstop/{bulkstop.__version__} aiohttp/{aiohttp.__version__}"
    assert iam.headers[0]["User-Agent"] == expected


async def test_trailing_slash_on_the_endpoint_is_ignored(
    iam: IamStub, make_auth: Callable[..., IamPasswordAuth]
) -> None:
    await make_auth(iam_endpoint=iam.url + "/").prepare()

    assert iam.calls == 1


async def test_sign_sends_the_token_from_the_subject_token_header(
    iam: IamStub, make_auth: Callable[..., IamPasswordAuth]
) -> None:
    auth = make_auth()
    await auth.prepare()
    request = _request()

    generation = await auth.sign(request)

    assert (generation, request.headers["X-Auth-Token"]) == (1, "tok-1")


async def test_sign_before_prepare_fetches_the_first_token(
    iam: IamStub, make_auth: Callable[..., IamPasswordAuth]
) -> None:
    request = _request()

    await make_auth().sign(request)

    assert (iam.calls, request.headers["X-Auth-Token"]) == (1, "tok-1")


async def test_prepare_twice_fetches_once(
    iam: IamStub, make_auth: Callable[..., IamPasswordAuth]
) -> None:
    auth = make_auth()

    await auth.prepare()
    await auth.prepare()

    assert iam.calls == 1


# --- IAM password: expiry and proactive refresh ----------------------------------------------


@pytest.mark.parametrize(
    ("elapsed", "calls"),
    [
        pytest.param(DAY - 300 - 1, 1, id="before-margin-keeps-token"),
        pytest.param(DAY - 300, 2, id="within-margin-refreshes"),
    ],
)
async def test_sign_refreshes_when_the_token_is_within_the_margin(
    iam: IamStub,
    make_auth: Callable[..., IamPasswordAuth],
    clock: FakeClock,
    elapsed: float,
    calls: int,
) -> None:
    auth = make_auth(refresh_margin=300.0)
    await auth.prepare()
    clock.advance(elapsed)
    request = _request()

    generation = await auth.sign(request)

    assert (iam.calls, generation, request.headers["X-Auth-Token"]) == (
        calls,
        calls,
        f"tok-{calls}",
    )


async def test_expiry_counts_from_when_the_fetch_started(
    iam: IamStub, make_auth: Callable[..., IamPasswordAuth], clock: FakeClock
) -> None:
    clock.advance(1000.0)
    auth = make_auth(refresh_margin=300.0)
    await auth.prepare()
    clock.advance(DAY - 300 - 1)

    await auth.sign(_request())

    assert iam.calls == 1


async def test_expires_at_without_issued_at_is_read_against_the_wall_clock(
    iam: IamStub, make_auth: Callable[..., IamPasswordAuth], clock: FakeClock
) -> None:
    iam.lifetime = 3600.0
    iam.with_issued_at = False
    # By the wall clock the token was issued 1000 s before we asked: 2600 s remain.
    auth = make_auth(refresh_margin=300.0, wall_clock=lambda: ISSUED + timedelta(seconds=1000))
    await auth.prepare()

    clock.advance(2600 - 300 - 1)
    await auth.sign(_request())
    calls_before_margin = iam.calls
    clock.advance(1)
    await auth.sign(_request())

    assert (calls_before_margin, iam.calls) == (1, 2)


async def test_margin_is_capped_at_half_a_short_lifetime(
    iam: IamStub, make_auth: Callable[..., IamPasswordAuth], clock: FakeClock
) -> None:
    iam.lifetime = 120.0
    auth = make_auth(refresh_margin=300.0)
    await auth.prepare()

    await auth.sign(_request())  # a 300 s margin on a 120 s token would refresh on every sign
    calls_at_start = iam.calls
    clock.advance(60.0)
    await auth.sign(_request())

    assert (calls_at_start, iam.calls) == (1, 2)


async def test_token_without_expiry_is_kept_until_called_stale(
    iam: IamStub, make_auth: Callable[..., IamPasswordAuth], clock: FakeClock
) -> None:
    iam.success_body = {}
    auth = make_auth()
    await auth.prepare()
    clock.advance(10 * DAY)

    await auth.sign(_request())

    assert iam.calls == 1


# --- IAM password: single flight -------------------------------------------------------------


async def test_concurrent_refreshes_share_one_iam_request(
    iam: IamStub, make_auth: Callable[..., IamPasswordAuth]
) -> None:
    auth = make_auth()
    await auth.prepare()
    iam.gate = anyio.Event()
    iam.entered = anyio.Event()
    answers: list[bool] = []

    async def refresh() -> None:
        answers.append(await auth.refresh(1))

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(refresh)
        await iam.entered.wait()  # the one IAM request is being answered...
        await anyio.wait_all_tasks_blocked()  # ...while the other 19 wait for it
        iam.gate.set()

    assert (iam.calls, answers, auth.generation) == (2, [True] * 20, 2)


async def test_concurrent_signs_near_expiry_share_one_refresh(
    iam: IamStub, make_auth: Callable[..., IamPasswordAuth], clock: FakeClock
) -> None:
    auth = make_auth(refresh_margin=300.0)
    await auth.prepare()
    clock.advance(DAY - 300)
    requests = [_request() for _ in range(20)]

    async with anyio.create_task_group() as tg:
        for request in requests:
            tg.start_soon(auth.sign, request)

    assert iam.calls == 2
    assert {request.headers["X-Auth-Token"] for request in requests} == {"tok-2"}


async def test_signing_during_a_refresh_waits_for_the_new_token(
    iam: IamStub, make_auth: Callable[..., IamPasswordAuth]
) -> None:
    auth = make_auth()
    await auth.prepare()  # tok-1, valid for a day
    iam.gate = anyio.Event()
    iam.entered = anyio.Event()
    requests = [_request() for _ in range(5)]
    generations: list[int] = []

    async def sign(request: OutgoingRequest) -> None:
        generations.append(await auth.sign(request))

    async with anyio.create_task_group() as tg:
        tg.start_soon(auth.refresh, 1)  # the service called tok-1 stale
        await iam.entered.wait()
        for request in requests:
            tg.start_soon(sign, request)
        await anyio.wait_all_tasks_blocked()
        assert generations == []  # nobody signed with the token being replaced
        iam.gate.set()

    assert iam.calls == 2
    assert {request.headers["X-Auth-Token"] for request in requests} == {"tok-2"}
    assert generations == [2] * 5


async def test_refresh_of_a_stale_generation_returns_at_once(
    iam: IamStub, make_auth: Callable[..., IamPasswordAuth]
) -> None:
    auth = make_auth()
    await auth.prepare()
    await auth.refresh(1)

    assert await auth.refresh(1) is True
    assert iam.calls == 2


async def test_waiter_takes_over_when_the_fetching_task_is_cancelled(
    iam: IamStub, make_auth: Callable[..., IamPasswordAuth]
) -> None:
    auth = make_auth()
    await auth.prepare()
    held = iam.gate = anyio.Event()
    iam.entered = anyio.Event()
    leader_scope = anyio.CancelScope()
    answers: list[bool] = []

    async def leader() -> None:
        with leader_scope:
            await auth.refresh(1)

    async def waiter() -> None:
        answers.append(await auth.refresh(1))

    async with anyio.create_task_group() as tg:
        tg.start_soon(leader)
        await iam.entered.wait()  # the leader's IAM request is held
        tg.start_soon(waiter)
        await anyio.wait_all_tasks_blocked()  # the waiter waits on the leader's fetch
        iam.gate = None
        leader_scope.cancel()
    held.set()

    assert (answers, iam.calls, auth.generation) == ([True], 3, 2)


# --- IAM password: failures ------------------------------------------------------------------


async def test_prepare_raises_credentials_rejected_when_iam_refuses(
    iam: IamStub, make_auth: Callable[..., IamPasswordAuth]
) -> None:
    iam.status = 401
    iam.error_body = {
        "error": {"code": "APIGW.0301", "message": "The username or password is wrong."}
    }

    with pytest.raises(CredentialsRejected) as caught:
        await make_auth().prepare()

    message = str(caught.value)
    assert "IAM" in message
    assert "HTTP 401, APIGW.0301" in message
    assert PASSWORD not in message


async def test_iam_error_text_never_echoes_the_password(
    iam: IamStub, make_auth: Callable[..., IamPasswordAuth]
) -> None:
    iam.status = 403
    iam.error_body = {"error_code": "IAM.0001", "error_msg": f"bad password {PASSWORD}"}

    with pytest.raises(CredentialsRejected) as caught:
        await make_auth().prepare()

    assert PASSWORD not in str(caught.value)
    assert "bad password ***" in str(caught.value)


async def test_iam_error_text_is_one_capped_line(
    iam: IamStub, make_auth: Callable[..., IamPasswordAuth]
) -> None:
    iam.status = 403
    iam.error_body = {"error_code": "IAM.\r\n" + "9" * 10_000, "error_msg": "no\n\x1b[2J" * 500}

    with pytest.raises(CredentialsRejected) as caught:
        await make_auth().prepare()

    message = str(caught.value)
    assert message.isprintable()  # no line break, no terminal control
    assert "HTTP 403, IAM. 999" in message
    assert len(message) < 500


async def test_refused_password_is_never_tried_again(
    iam: IamStub, make_auth: Callable[..., IamPasswordAuth], clock: FakeClock
) -> None:
    auth = make_auth()
    await auth.prepare()
    iam.status = 401

    first = await auth.refresh(1)
    clock.advance(10 * IamPasswordAuth.FAILURE_COOLDOWN)
    second = await auth.refresh(1)

    assert (first, second, iam.calls) == (False, False, 2)


async def test_refresh_retries_server_errors_on_the_clock_then_fails(
    iam: IamStub, make_auth: Callable[..., IamPasswordAuth], clock: FakeClock
) -> None:
    auth = make_auth()
    await auth.prepare()
    iam.status = 503

    async with clock.autojump():
        refreshed = await auth.refresh(1)

    # three attempts for the refresh, 0.5 s and 2 s apart
    assert (refreshed, iam.calls, clock.now()) == (False, 4, 2.5)


@pytest.mark.parametrize("status", [429, 500, 502])
async def test_refresh_succeeds_after_a_transient_error(
    iam: IamStub,
    make_auth: Callable[..., IamPasswordAuth],
    clock: FakeClock,
    status: int,
) -> None:
    auth = make_auth()
    await auth.prepare()
    iam.script = [status]
    request = _request()

    async with clock.autojump():
        refreshed = await auth.refresh(1)
    generation = await auth.sign(request)

    assert (refreshed, generation, request.headers["X-Auth-Token"]) == (True, 2, "tok-3")


async def test_failed_refresh_is_not_retried_during_the_cooldown(
    iam: IamStub, make_auth: Callable[..., IamPasswordAuth], clock: FakeClock
) -> None:
    auth = make_auth()
    await auth.prepare()
    iam.script = [400]

    failed = await auth.refresh(1)
    during = await auth.refresh(1)
    calls_during = iam.calls
    clock.advance(IamPasswordAuth.FAILURE_COOLDOWN)
    after = await auth.refresh(1)

    assert (failed, during, calls_during, after, iam.calls) == (False, False, 2, True, 3)


async def test_failed_proactive_refresh_keeps_sending_the_current_token(
    iam: IamStub, make_auth: Callable[..., IamPasswordAuth], clock: FakeClock
) -> None:
    auth = make_auth(refresh_margin=300.0)
    await auth.prepare()
    iam.status = 400
    clock.advance(DAY - 100)
    request = _request()

    generation = await auth.sign(request)

    assert (generation, request.headers["X-Auth-Token"], iam.calls) == (1, "tok-1", 2)


async def test_unreachable_iam_makes_prepare_raise_usage_error_from_the_network_error(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    with socket.socket() as probe:  # a port that was just free: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    auth = IamPasswordAuth(
        session, f"http://127.0.0.1:{port}", USER, PASSWORD, DOMAIN, PROJECT_ID, clock=clock
    )

    async with clock.autojump():
        with pytest.raises(UsageError, match="could not be reached") as caught:
            await auth.prepare()

    assert isinstance(caught.value.__cause__, aiohttp.ClientError)
    assert not isinstance(caught.value, CredentialsRejected)
    assert clock.now() == 2.5


@pytest.mark.parametrize(
    ("status", "send_token", "match"),
    [
        (404, True, "HTTP 404, IAM.404"),
        (307, True, "HTTP 307"),
        (201, False, "without an X-Subject-Token"),
    ],
    ids=["not-found", "redirect-not-followed", "no-token-header"],
)
async def test_unusable_iam_answer_makes_prepare_raise_usage_error_without_retry(
    iam: IamStub,
    make_auth: Callable[..., IamPasswordAuth],
    status: int,
    send_token: bool,
    match: str,
) -> None:
    iam.status = status
    iam.send_token = send_token

    with pytest.raises(UsageError, match=match):
        await make_auth().prepare()

    assert iam.calls == 1


@pytest.mark.parametrize(
    ("overrides", "match"),
    [({"project_id": None}, "project"), ({"password": ""}, "empty")],
    ids=["no-project", "empty-password"],
)
async def test_iam_auth_refuses_incomplete_settings(
    session: aiohttp.ClientSession, clock: FakeClock, overrides: dict[str, Any], match: str
) -> None:
    arguments: dict[str, Any] = {
        "project_id": PROJECT_ID,
        "password": PASSWORD,
        "clock": clock,
        **overrides,
    }

    with pytest.raises(ValueError, match=match):
        IamPasswordAuth(session, "https://iam.example", USER, domain=DOMAIN, **arguments)


# --- where the password may travel -------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["http://iam.example.com", "http://192.0.2.1:8080"])
async def test_plain_http_to_a_remote_iam_endpoint_is_refused_naming_the_flag(
    make_auth: Callable[..., IamPasswordAuth], endpoint: str
) -> None:
    with pytest.raises(UsageError, match=r"IAM endpoint: refusing plain http.*--insecure-http"):
        make_auth(iam_endpoint=endpoint)


async def test_plain_http_to_a_remote_iam_endpoint_is_accepted_when_allowed(
    make_auth: Callable[..., IamPasswordAuth],
) -> None:
    auth = make_auth(iam_endpoint="http://iam.example.com", allow_insecure_http=True)

    assert "iam='http://iam.example.com'" in repr(auth)


async def test_an_iam_endpoint_with_a_query_is_refused(
    make_auth: Callable[..., IamPasswordAuth],
) -> None:
    with pytest.raises(UsageError, match="IAM endpoint: must not carry a query"):
        make_auth(iam_endpoint="https://iam.example.com/?next=elsewhere")


# --- logs and reprs never show a secret ------------------------------------------------------


async def test_token_fetch_is_logged_without_secrets(
    iam: IamStub, make_auth: Callable[..., IamPasswordAuth]
) -> None:
    with structlog.testing.capture_logs() as logs:
        await make_auth().prepare()

    assert logs == [
        {
            "event": "auth.token_fetched",
            "log_level": "info",
            "generation": 1,
            "expires_at": "2026-11-29T12:00:00.000000Z",
        }
    ]


async def test_a_hostile_expiry_is_logged_as_one_capped_line(
    iam: IamStub, make_auth: Callable[..., IamPasswordAuth]
) -> None:
    iam.success_body = {"token": {"expires_at": "2026\n" + "x" * 10_000}}

    with structlog.testing.capture_logs() as logs:
        await make_auth().prepare()

    [fetched] = logs
    assert len(fetched["expires_at"]) == 64
    assert fetched["expires_at"].startswith("2026 xxx")


async def test_secret_values_keep_the_token_before_a_refresh(
    iam: IamStub, make_auth: Callable[..., IamPasswordAuth]
) -> None:
    auth = make_auth()
    await auth.prepare()
    await auth.refresh(1)

    # a request signed with tok-1 just before the refresh may still be answered, echoing it
    assert auth.secret_values() == [PASSWORD, "tok-2", "tok-1"]


async def test_iam_auth_repr_shows_no_secret(
    iam: IamStub, make_auth: Callable[..., IamPasswordAuth]
) -> None:
    auth = make_auth()
    await auth.prepare()

    text = repr(auth)

    assert PASSWORD not in text
    assert "tok-1" not in text
    assert USER in text


@pytest.mark.parametrize(
    "auth",
    [
        TokenAuth("tok-secret-value"),
        AkSkAuth("AKEXAMPLE0000000000", "SKEXAMPLE-secret", PROJECT_ID),
        AkSkAuth("AKEXAMPLE0000000000", "SKEXAMPLE-secret", None, "tok-secret-value"),
    ],
    ids=["token", "aksk", "aksk-temporary"],
)
def test_fixed_credential_reprs_show_no_secret(auth: object) -> None:
    text = repr(auth)

    assert "secret" not in text
    assert "AKEXAMPLE0000000000" not in text


@pytest.mark.parametrize(
    ("auth", "mode"),
    [
        (TokenAuth("t"), "token"),
        (AkSkAuth("AKEXAMPLE0000000000", "sk", None), "aksk"),
    ],
)
def test_fixed_modes_are_named_for_logs(auth: TokenAuth | AkSkAuth, mode: str) -> None:
    assert auth.mode == mode


async def test_iam_mode_is_named_for_logs(make_auth: Callable[..., IamPasswordAuth]) -> None:
    assert make_auth().mode == "iam-password"


# --- AK/SK -----------------------------------------------------------------------------------


async def test_aksk_sign_reproduces_the_sdk_golden_vector() -> None:
    auth = AkSkAuth(
        "AKEXAMPLE0000000000",
        Secret("SKEXAMPLE00000000000000000000000000000000"),
        PROJECT_ID,
        now=lambda: datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC),
    )
    request = OutgoingRequest(
        method="POST",
        url=STOP_URL,
        headers={"Content-Type": "application/json"},
        body=b'{"job_id":"f9d6c8466d614a9788e9a0acf6c15f46","build_no":"20"}',
    )

    generation = await auth.sign(request)

    assert generation == 0
    assert request.headers["Authorization"] == (
        "SDK-HMAC-SHA256 Access=AKEXAMPLE0000000000, "
        "SignedHeaders=content-type;host;x-project-id;x-sdk-date, "
        "Signature=c7e8e43146251447615205e2f4356d2de3540f800cd0a72a1d996945f1de0efb"
    )


async def test_aksk_sends_the_security_token_of_temporary_keys() -> None:
    auth = AkSkAuth("AKEXAMPLE0000000000", "sk", PROJECT_ID, Secret("sts-token"))
    request = _request()

    await auth.sign(request)

    assert request.headers["X-Security-Token"] == "sts-token"


async def test_aksk_cannot_refresh() -> None:
    auth = AkSkAuth("AKEXAMPLE0000000000", "sk", PROJECT_ID)

    assert (auth.mode, await auth.refresh(0)) == ("aksk", False)


@pytest.mark.parametrize(("ak", "sk"), [("", "sk"), ("AK", ""), ("  ", "sk"), ("AK", " ")])
def test_aksk_refuses_empty_keys(ak: str, sk: str) -> None:
    with pytest.raises(ValueError, match="empty"):
        AkSkAuth(ak, sk, PROJECT_ID)


@pytest.mark.parametrize(("ak", "hint"), [("AKEXAMPLE0000000000", "AKEX***"), ("SHORTKEY", "***")])
def test_aksk_access_key_hint_shows_at_most_four_characters(ak: str, hint: str) -> None:
    assert AkSkAuth(ak, "sk", None).access_key_hint == hint


async def test_a_token_auth_signs_with_exactly_its_static_headers_and_generation_0() -> None:
    # The StaticAuth contract the client relies on to skip sign().
    auth = TokenAuth(" tok-static-0001 ")
    request = OutgoingRequest(method="POST", url=URL("https://example.test/v3/jobs/stop"))
    request.headers["Content-Type"] = "application/json"

    generation = await auth.sign(request)

    assert generation == 0
    assert auth.static_headers() == {"X-Auth-Token": "tok-static-0001"}
    assert request.headers == {"Content-Type": "application/json", **auth.static_headers()}
