"""CodeArtsClient against mocked aiohttp: what is sent, how every answer and failure is read,
how the retry policy then judges it, and which endpoints are accepted."""

from __future__ import annotations

import errno
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey
from aioresponses import aioresponses
from netfaults import (
    UNRESOLVABLE_HOST,
    NoSuchHostResolver,
    SelfSignedTLSServer,
    closed_port,
    self_signed_certificate,
)
from yarl import URL

from bulkstop.auth import TokenAuth
from bulkstop.client import CodeArtsClient, check_endpoint, region_endpoint, resolve_endpoint
from bulkstop.errors import UsageError
from bulkstop.models import Outcome, Reply, ReplyKind, Target, TransportFailure
from bulkstop.retry import Decision, SystematicFault, Verdict, classify, parse_retry_after
from bulkstop.transport import CUT_MARK

TOKEN = "tok-SENTINEL-7f3a9c1e5b"  # distinctive, so a leak is easy to spot
JOB_ID = "f9d6c8466d614a9788e9a0acf6c15f46"
TARGET = Target(job_id=JOB_ID, build_no=20)
ENDPOINT = "https://cloudbuild-ext.cn-north-4.myhuaweicloud.com"
LEGACY_URL = f"{ENDPOINT}/v3/jobs/stop"
V3_URL = f"{ENDPOINT}/v3/jobs/{JOB_ID}/20/stop"
V1_URL = f"{ENDPOINT}/v1/job/{JOB_ID}/stop?build_no=20"
URL_OF_API = {"legacy": LEGACY_URL, "v3": V3_URL, "v1": V1_URL}
HTML = "<html><body><h1>502 Bad Gateway</h1></body></html>"
API_NOT_SERVED = SystematicFault.API_NOT_SERVED


class _Response(aiohttp.ClientResponse):
    """aioresponses 0.7.9 builds responses without aiohttp 3.14's ``stream_writer`` argument
    (pnuckowski/aioresponses#289); supply a finished one."""

    def __init__(self, method: str, url: URL, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", SimpleNamespace(output_size=0))
        super().__init__(method, url, **kwargs)


class _Mock(aioresponses):
    def add(self, url: Any, method: str = "GET", *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("response_class", _Response)
        super().add(url, method, *args, **kwargs)


@pytest.fixture
def mocked() -> Iterator[aioresponses]:
    with _Mock() as m:
        yield m


async def stop_once(api: str = "legacy", endpoint: str = ENDPOINT, **options: Any) -> Reply:
    async with CodeArtsClient(endpoint, TokenAuth(TOKEN), api=api, **options) as client:
        return await client.stop(TARGET)


async def error_reply(mocked: aioresponses, status: int, **response: Any) -> Reply:
    mocked.post(LEGACY_URL, status=status, **response)
    return await stop_once()


def sent(mocked: aioresponses, url: str) -> dict[str, Any]:
    """The keyword arguments of the one POST made to ``url``."""
    calls = mocked.requests[("POST", URL(url))]
    assert len(calls) == 1
    kwargs: dict[str, Any] = calls[0].kwargs
    return kwargs


def connector_error() -> aiohttp.ClientConnectorError:
    """A connect failure that says nothing about the endpoint itself (no route, for now)."""
    key = ConnectionKey(
        "cloudbuild-ext.cn-north-4.myhuaweicloud.com", 443, True, True, None, None, None, None
    )
    return aiohttp.ClientConnectorError(key, OSError(errno.ENETUNREACH, "unreachable"))


# --- what is sent -------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_legacy_call_is_a_post_to_v3_jobs_stop(mocked: aioresponses) -> None:
    mocked.post(LEGACY_URL, payload={"result": True})

    await stop_once()

    assert list(mocked.requests) == [("POST", URL(LEGACY_URL))]


@pytest.mark.anyio
async def test_legacy_body_is_job_id_and_build_no_as_a_string(mocked: aioresponses) -> None:
    mocked.post(LEGACY_URL, payload={"result": True})

    await stop_once()

    assert json.loads(sent(mocked, LEGACY_URL)["data"]) == {"job_id": JOB_ID, "build_no": "20"}


@pytest.mark.anyio
@pytest.mark.parametrize("api", ["legacy", "v3", "v1"])
async def test_every_call_sends_the_token_and_a_json_content_type(
    mocked: aioresponses, api: str
) -> None:
    mocked.post(URL_OF_API[api], payload={"result": True})

    await stop_once(api)

    headers = sent(mocked, URL_OF_API[api])["headers"]
    assert headers["X-Auth-Token"] == TOKEN
    assert headers["Content-Type"] == "application/json"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        ("https://gw.example.com", "https://gw.example.com/v3/jobs/stop"),
        ("https://gw.example.com/", "https://gw.example.com/v3/jobs/stop"),
        ("https://gw.example.com/base", "https://gw.example.com/base/v3/jobs/stop"),
        ("https://gw.example.com/base/", "https://gw.example.com/base/v3/jobs/stop"),
        ("https://gw.example.com:8443/a/b/", "https://gw.example.com:8443/a/b/v3/jobs/stop"),
    ],
)
async def test_endpoint_with_or_without_slash_or_base_path_gives_one_url(
    mocked: aioresponses, endpoint: str, url: str
) -> None:
    mocked.post(url, payload={"result": True})

    reply = await stop_once(endpoint=endpoint)

    assert reply.kind is ReplyKind.STOPPED
    assert list(mocked.requests) == [("POST", URL(url))]


@pytest.mark.anyio
async def test_v3_call_names_job_and_build_in_the_path_with_an_empty_body(
    mocked: aioresponses,
) -> None:
    mocked.post(V3_URL, payload={"success": True, "result": ""})

    await stop_once("v3")

    assert sent(mocked, V3_URL)["data"] == b""


@pytest.mark.anyio
async def test_v1_call_sends_build_no_in_the_query_and_as_an_integer_body(
    mocked: aioresponses,
) -> None:
    mocked.post(V1_URL, payload={"status": "success"})

    await stop_once("v1")

    ((_, url),) = mocked.requests
    assert url.path == f"/v1/job/{JOB_ID}/stop"
    assert url.query["build_no"] == "20"
    assert json.loads(sent(mocked, V1_URL)["data"]) == {"build_no": 20}


@pytest.mark.anyio
async def test_requests_ask_aiohttp_not_to_follow_redirects(mocked: aioresponses) -> None:
    mocked.post(LEGACY_URL, payload={"result": True})

    await stop_once()

    assert sent(mocked, LEGACY_URL)["allow_redirects"] is False


# --- reading 2xx answers ------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("api", "payload", "kind"),
    [
        ("legacy", {"result": True}, ReplyKind.STOPPED),
        ("legacy", {"result": False}, ReplyKind.NOT_STOPPED),
        ("v3", {"success": True, "result": ""}, ReplyKind.STOPPED),
        ("v3", {"success": False, "result": ""}, ReplyKind.NOT_STOPPED),
        ("v1", {"status": "success"}, ReplyKind.STOPPED),
        ("v1", {"status": "failed"}, ReplyKind.NOT_STOPPED),
    ],
)
async def test_success_flag_decides_stopped_or_not_stopped(
    mocked: aioresponses, api: str, payload: dict[str, Any], kind: ReplyKind
) -> None:
    mocked.post(URL_OF_API[api], payload=payload)

    reply = await stop_once(api)

    assert (reply.kind, reply.http_status, reply.error_code, reply.error_msg) == (kind, 200, "", "")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("kind", "outcome"),
    [(ReplyKind.STOPPED, Outcome.STOPPED), (ReplyKind.NOT_STOPPED, Outcome.NOT_STOPPED)],
)
async def test_success_replies_classify_as_final(
    mocked: aioresponses, kind: ReplyKind, outcome: Outcome
) -> None:
    mocked.post(LEGACY_URL, payload={"result": kind is ReplyKind.STOPPED})

    reply = await stop_once()

    assert classify(reply) == Decision(Verdict.FINAL, outcome)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("stopped", "text/plain"),
        (HTML, "text/html"),
        ("", "application/json"),
        ("{not json", "application/json"),
        ("[]", "application/json"),
        ('{"result": "true"}', "application/json"),
        ('{"success": true}', "application/json"),
        ('{"error":' * 5000 + "{}" + "}" * 5000, "application/json"),
    ],
    ids=["text", "html", "empty", "broken-json", "array", "string-flag", "other-api", "deep"],
)
async def test_unreadable_2xx_body_is_bad_body_that_may_have_applied(
    mocked: aioresponses, body: str, content_type: str
) -> None:
    mocked.post(LEGACY_URL, status=200, body=body, content_type=content_type)

    reply = await stop_once()

    assert (reply.kind, reply.http_status, reply.maybe_applied) == (ReplyKind.BAD_BODY, 200, True)
    assert reply.error_msg.startswith("unreadable legacy answer")
    assert classify(reply) == Decision(Verdict.TRANSIENT)


# --- reading error answers ----------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    "payload",
    [
        {"error_code": "CB.00060200", "error_msg": "invalid parameter"},
        {"errorCode": "CB.00060200", "errorMsg": "invalid parameter"},
        {"code": "CB.00060200", "message": "invalid parameter"},
        {"error": {"code": "CB.00060200", "message": "invalid parameter"}},
        {"error": {"error_code": "CB.00060200", "error_msg": "invalid parameter"}},
    ],
    ids=["snake", "camel", "code-message", "nested", "nested-snake"],
)
async def test_every_error_body_form_gives_code_and_message(
    mocked: aioresponses, payload: dict[str, Any]
) -> None:
    reply = await error_reply(mocked, 400, payload=payload)

    assert reply.kind is ReplyKind.HTTP_ERROR
    assert (reply.http_status, reply.error_code, reply.error_msg) == (
        400,
        "CB.00060200",
        "invalid parameter",
    )


@pytest.mark.anyio
async def test_html_error_body_message_names_status_and_content_type(
    mocked: aioresponses,
) -> None:
    reply = await error_reply(mocked, 502, body=HTML, content_type="text/html; charset=utf-8")

    assert (reply.error_code, reply.error_msg) == ("", "HTTP 502 with text/html body")


@pytest.mark.anyio
async def test_error_body_nested_too_deep_for_json_still_gives_a_reply(
    mocked: aioresponses,
) -> None:
    reply = await error_reply(mocked, 500, body='{"error":' * 5000 + "{}" + "}" * 5000)

    assert (reply.kind, reply.error_msg) == (
        ReplyKind.HTTP_ERROR,
        "HTTP 500 with application/json body",
    )


@pytest.mark.anyio
async def test_long_error_message_is_collapsed_and_cut_with_a_mark(mocked: aioresponses) -> None:
    message = "too\n  many\twords " * 100
    reply = await error_reply(mocked, 400, payload={"error_code": "X", "error_msg": message})

    assert len(reply.error_msg) == 300
    assert reply.error_msg.startswith("too many words too many words")
    assert reply.error_msg.endswith(CUT_MARK)


HOSTILE_TEXT = "a\r\nb\x00c\x1b[2Jd\x85e\u2028f\ud800g\x7f"
HOSTILE_LINE = "a b c [2Jd e f\ufffdg"
HOSTILE_HEADER = HOSTILE_TEXT.replace("\ud800", "")


def _field(reply: Reply, field: str) -> str:
    value: str = getattr(reply, field)
    return value


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("response", "field", "limit"),
    [
        ({"payload": {"error_code": "C" * 50_000, "error_msg": "m"}}, "error_code", 64),
        ({"payload": {"error_code": "C", "error_msg": "m" * 50_000}}, "error_msg", 300),
        (
            {"payload": {"error_code": "C"}, "headers": {"X-Request-Id": "r" * 8000}},
            "request_id",
            128,
        ),
        ({"status": 302, "headers": {"Location": "https://x/" + "l" * 8000}}, "error_msg", 300),
    ],
    ids=["error_code", "error_msg", "request_id", "location"],
)
async def test_every_server_chosen_field_is_capped_with_a_mark(
    mocked: aioresponses, response: dict[str, Any], field: str, limit: int
) -> None:
    mocked.post(LEGACY_URL, **{"status": 400, "body": "", **response})

    value = _field(await stop_once(), field)

    assert len(value) == limit
    assert value.endswith(CUT_MARK)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("response", "field", "expected"),
    [
        ({"payload": {"error_code": HOSTILE_TEXT, "error_msg": "m"}}, "error_code", HOSTILE_LINE),
        ({"payload": {"error_code": "C", "error_msg": HOSTILE_TEXT}}, "error_msg", HOSTILE_LINE),
        # no surrogate in a header here: the mock encodes header values as UTF-8
        (
            {"payload": {"error_code": "C"}, "headers": {"X-Request-Id": HOSTILE_HEADER}},
            "request_id",
            "a b c [2Jd e fg",
        ),
    ],
    ids=["error_code", "error_msg", "request_id"],
)
async def test_control_characters_and_lone_surrogates_never_reach_a_reply(
    mocked: aioresponses, response: dict[str, Any], field: str, expected: str
) -> None:
    mocked.post(LEGACY_URL, **{"status": 400, **response})

    assert _field(await stop_once(), field) == expected


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "payload"),
    [(200, {"result": True}), (400, {"error_code": "CB.00060200", "error_msg": "bad"})],
)
async def test_x_request_id_is_kept(
    mocked: aioresponses, status: int, payload: dict[str, Any]
) -> None:
    mocked.post(LEGACY_URL, status=status, payload=payload, headers={"X-Request-Id": "req-42"})

    reply = await stop_once()

    assert reply.request_id == "req-42"


@pytest.mark.anyio
@pytest.mark.parametrize(("header", "seconds"), [("7", 7.0), ("1.5", 1.5), ("0", 0.0)])
async def test_retry_after_in_seconds_is_read(
    mocked: aioresponses, header: str, seconds: float
) -> None:
    reply = await error_reply(
        mocked, 429, payload={"error_code": "APIG.0308"}, headers={"Retry-After": header}
    )

    assert reply.retry_after == seconds


@pytest.mark.anyio
async def test_retry_after_as_http_date_is_read_as_seconds_from_now(
    mocked: aioresponses,
) -> None:
    # An hour ahead: the seconds that pass between writing the header and reading it cannot
    # bring the answer below 3590, so no clock needs faking.
    when = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    header = format_datetime(when, usegmt=True)

    reply = await error_reply(
        mocked, 503, body=HTML, content_type="text/html", headers={"Retry-After": header}
    )

    assert reply.retry_after is not None
    assert 3590 < reply.retry_after <= 3600


@pytest.mark.anyio
@pytest.mark.parametrize("headers", [{}, {"Retry-After": "soon"}], ids=["absent", "garbage"])
async def test_missing_or_unreadable_retry_after_is_none(
    mocked: aioresponses, headers: dict[str, str]
) -> None:
    reply = await error_reply(mocked, 429, payload={"error_code": "APIG.0308"}, headers=headers)

    assert reply.retry_after is None


# --- what the retry policy makes of each error --------------------------------------------------

_ERRORS = [
    # (status, error_code, decision, maybe_applied)
    (400, "CB.00060200", Decision(Verdict.FINAL, Outcome.REJECTED), False),
    (400, "CB.00060201", Decision(Verdict.FINAL, Outcome.REJECTED), False),
    (400, "CB.00060211", Decision(Verdict.THROTTLED), False),
    (500, "CB.00060211", Decision(Verdict.THROTTLED), False),
    (429, "APIG.0308", Decision(Verdict.THROTTLED), False),
    # "URL not found", or a 404 that is not CodeArts' own: the route is wrong, not the target
    (404, "CB.00060214", Decision(Verdict.FINAL, Outcome.NOT_FOUND, API_NOT_SERVED), False),
    (404, "", Decision(Verdict.FINAL, Outcome.NOT_FOUND, API_NOT_SERVED), False),
    # an unknown job, in CodeArts' own words: about the target only
    (404, "CB.00060404", Decision(Verdict.FINAL, Outcome.NOT_FOUND), False),
    (401, "APIG.0301", Decision(Verdict.FINAL, Outcome.UNAUTHORIZED), False),
    (401, "APIG.0307", Decision(Verdict.STALE_CREDENTIAL), False),
    (403, "CB.00060403", Decision(Verdict.FINAL, Outcome.FORBIDDEN), False),
    (500, "CB.00060100", Decision(Verdict.TRANSIENT), True),
    (500, "CB.00060101", Decision(Verdict.TRANSIENT), True),
    (502, "", Decision(Verdict.TRANSIENT), True),
    (503, "", Decision(Verdict.TRANSIENT), True),
    (504, "", Decision(Verdict.TRANSIENT), True),
]


async def _reply_for(mocked: aioresponses, status: int, code: str) -> Reply:
    if code:
        return await error_reply(mocked, status, payload={"error_code": code, "error_msg": "m"})
    return await error_reply(mocked, status, body=HTML, content_type="text/html")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "code", "decision"),
    [case[:3] for case in _ERRORS],
    ids=[f"{status}-{code or 'html'}" for status, code, *_ in _ERRORS],
)
async def test_error_status_and_code_classify_as(
    mocked: aioresponses, status: int, code: str, decision: Decision
) -> None:
    reply = await _reply_for(mocked, status, code)

    assert (reply.kind, reply.http_status, reply.error_code) == (
        ReplyKind.HTTP_ERROR,
        status,
        code,
    )
    assert classify(reply) == decision


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "code", "maybe_applied"),
    [(status, code, applied) for status, code, _, applied in _ERRORS],
    ids=[f"{status}-{code or 'html'}" for status, code, *_ in _ERRORS],
)
async def test_only_non_throttling_5xx_may_have_applied(
    mocked: aioresponses, status: int, code: str, maybe_applied: bool
) -> None:
    reply = await _reply_for(mocked, status, code)

    assert reply.maybe_applied is maybe_applied


@pytest.mark.anyio
async def test_redirect_is_reported_not_followed(mocked: aioresponses) -> None:
    mocked.post(
        LEGACY_URL, status=302, body="", headers={"Location": "https://elsewhere.example/login"}
    )

    reply = await stop_once()

    assert (reply.kind, reply.http_status) == (ReplyKind.HTTP_ERROR, 302)
    assert reply.error_msg == "HTTP 302 redirect to 'https://elsewhere.example/login' not followed"
    assert len(mocked.requests) == 1


@pytest.mark.anyio
async def test_redirect_classifies_as_rejected(mocked: aioresponses) -> None:
    mocked.post(LEGACY_URL, status=302, body="", headers={"Location": "https://elsewhere.example/"})

    reply = await stop_once()

    assert classify(reply) == Decision(Verdict.FINAL, Outcome.REJECTED)
    assert reply.maybe_applied is False


# --- transport failures -------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("exception", "kind", "maybe_applied"),
    [
        # builtin TimeoutError is asyncio.TimeoutError on 3.11+
        pytest.param(TimeoutError(), ReplyKind.TIMEOUT, True, id="timeout"),
        pytest.param(connector_error(), ReplyKind.CONNECTION, False, id="never-connected"),
        pytest.param(aiohttp.ServerDisconnectedError(), ReplyKind.CONNECTION, True, id="dropped"),
        pytest.param(
            aiohttp.ClientOSError(errno.ECONNRESET, "reset"), ReplyKind.CONNECTION, True, id="reset"
        ),
        pytest.param(
            aiohttp.ClientPayloadError("cut short"), ReplyKind.CONNECTION, True, id="cut-short"
        ),
    ],
)
async def test_transport_failure_becomes_a_reply_not_an_exception(
    mocked: aioresponses, exception: Exception, kind: ReplyKind, maybe_applied: bool
) -> None:
    mocked.post(LEGACY_URL, exception=exception)

    reply = await stop_once()

    assert (reply.kind, reply.http_status, reply.maybe_applied) == (kind, None, maybe_applied)
    assert classify(reply) == Decision(Verdict.TRANSIENT)


@pytest.mark.anyio
async def test_timeout_message_names_the_configured_timeout(mocked: aioresponses) -> None:
    mocked.post(LEGACY_URL, exception=TimeoutError())

    reply = await stop_once(timeout=2.5)

    assert reply.error_msg == "no answer within 2.5 s"


@pytest.mark.anyio
async def test_connect_failure_message_names_the_host_and_the_os_error(
    mocked: aioresponses,
) -> None:
    mocked.post(LEGACY_URL, exception=connector_error())

    reply = await stop_once()

    assert reply.error_msg == (
        "cannot connect to cloudbuild-ext.cn-north-4.myhuaweicloud.com:443: "
        f"[Errno {errno.ENETUNREACH}] unreachable"
    )
    assert reply.transport_failure is None


# --- connect failures that say the endpoint is wrong (real sockets on loopback) -------------------


@pytest.mark.anyio
async def test_a_refused_connection_is_a_refused_transport_failure() -> None:
    port = closed_port()

    reply = await stop_once(endpoint=f"http://127.0.0.1:{port}")

    assert (reply.kind, reply.transport_failure, reply.maybe_applied) == (
        ReplyKind.CONNECTION,
        TransportFailure.REFUSED,
        False,
    )
    assert reply.error_msg == f"connection refused by 127.0.0.1:{port}"
    assert classify(reply) == Decision(Verdict.TRANSIENT, fault=SystematicFault.REFUSED)


@pytest.mark.anyio
async def test_a_host_that_does_not_resolve_is_a_dns_transport_failure() -> None:
    resolver = NoSuchHostResolver()  # no network: the lookup fails as a resolver's does
    connector = aiohttp.TCPConnector(resolver=resolver)
    async with aiohttp.ClientSession(connector=connector) as session:
        reply = await stop_once(endpoint=f"https://{UNRESOLVABLE_HOST}", session=session)

    assert resolver.lookups
    assert set(resolver.lookups) == {UNRESOLVABLE_HOST}
    assert (reply.kind, reply.transport_failure, reply.maybe_applied) == (
        ReplyKind.CONNECTION,
        TransportFailure.DNS,
        False,
    )
    assert reply.error_msg == f"cannot resolve host {UNRESOLVABLE_HOST}"
    assert classify(reply) == Decision(Verdict.TRANSIENT, fault=SystematicFault.DNS)


@pytest.mark.anyio
async def test_an_untrusted_certificate_is_a_permanent_certificate_failure(
    tmp_path: Path,
) -> None:
    cert, key = self_signed_certificate(tmp_path)
    with SelfSignedTLSServer(cert, key) as server:
        reply = await stop_once(endpoint=server.url)

    assert (reply.kind, reply.transport_failure, reply.maybe_applied) == (
        ReplyKind.CONNECTION,
        TransportFailure.CERTIFICATE,
        False,
    )
    assert reply.error_msg.startswith(f"certificate of 127.0.0.1:{server.port} not trusted: ")
    assert classify(reply) == Decision(
        Verdict.FINAL, Outcome.FAILED, SystematicFault.CERTIFICATE
    )  # never retried


@pytest.mark.anyio
async def test_a_certificate_trusted_through_the_ca_bundle_is_no_certificate_failure(
    tmp_path: Path,
) -> None:
    cert, key = self_signed_certificate(tmp_path)
    with SelfSignedTLSServer(cert, key) as server:
        # trusted now: the handshake succeeds and the server hangs up without an answer
        reply = await stop_once(endpoint=server.url, ca_bundle=cert)

    assert reply.kind is ReplyKind.CONNECTION
    assert reply.transport_failure is None
    assert server.handshakes == 1


# --- session ownership --------------------------------------------------------------------------


@pytest.mark.anyio
async def test_stop_outside_the_context_manager_is_refused() -> None:
    client = CodeArtsClient(ENDPOINT, TokenAuth(TOKEN))

    with pytest.raises(RuntimeError, match="async with"):
        await client.stop(TARGET)


@pytest.mark.anyio
async def test_a_given_session_is_used_and_left_open(mocked: aioresponses) -> None:
    mocked.post(LEGACY_URL, payload={"result": True})

    async with aiohttp.ClientSession() as session:
        async with CodeArtsClient(ENDPOINT, TokenAuth(TOKEN), session=session) as client:
            reply = await client.stop(TARGET)
        assert not session.closed
    assert reply.kind is ReplyKind.STOPPED


# --- no secret shows ----------------------------------------------------------------------------


def test_client_repr_shows_no_token() -> None:
    text = repr(CodeArtsClient(ENDPOINT, TokenAuth(TOKEN)))

    assert TOKEN not in text
    assert "auth='token'" in text


def test_token_auth_repr_and_str_show_no_token() -> None:
    auth = TokenAuth(TOKEN)

    assert TOKEN not in repr(auth)
    assert TOKEN not in str(auth)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "response",
    [
        {"status": 401, "payload": {"error_code": "APIG.0301", "error_msg": "Incorrect token"}},
        {"status": 502, "body": HTML, "content_type": "text/html"},
        {"status": 200, "body": "not json"},
        {"exception": TimeoutError()},
        {"exception": connector_error()},
        {"exception": aiohttp.ServerDisconnectedError()},
    ],
    ids=["401", "502", "bad-body", "timeout", "connect", "dropped"],
)
async def test_reply_never_carries_the_token(
    mocked: aioresponses, response: dict[str, Any]
) -> None:
    mocked.post(LEGACY_URL, **response)

    reply = await stop_once()

    assert TOKEN not in reply.error_msg
    assert TOKEN not in repr(reply)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "response",
    [
        {
            "status": 401,
            "payload": {"error_code": f"E{TOKEN}", "error_msg": f"bad token {TOKEN}"},
            "headers": {"X-Request-Id": f"req-{TOKEN}"},
        },
        # the token straddles where the message is cut
        {"status": 400, "payload": {"error_code": "E", "error_msg": "m" * 290 + TOKEN}},
        # ... and where the quote of an unreadable 200 ends
        {"status": 200, "body": "x" * 110 + TOKEN + "x" * 50, "content_type": "text/plain"},
        {"status": 302, "body": "", "headers": {"Location": f"https://x/?t={TOKEN}"}},
        {"status": 502, "body": "", "content_type": f"text/{TOKEN}"},
    ],
    ids=["every-field", "at-the-message-cut", "at-the-quote-cut", "location", "content-type"],
)
async def test_a_token_the_server_echoes_is_scrubbed_from_the_reply(
    mocked: aioresponses, response: dict[str, Any]
) -> None:
    mocked.post(LEGACY_URL, **response)

    reply = await stop_once()

    shown = repr(reply)
    assert TOKEN[:8] not in shown  # not even the part before a cut
    assert "***" in shown


# --- endpoints ----------------------------------------------------------------------------------


def test_https_endpoint_is_accepted() -> None:
    assert check_endpoint(ENDPOINT) == URL(ENDPOINT + "/")


@pytest.mark.parametrize(
    "endpoint", ["http://127.0.0.1:8080", "http://localhost:8080", "http://[::1]:8080"]
)
def test_plain_http_to_loopback_is_accepted(endpoint: str) -> None:
    assert check_endpoint(endpoint).scheme == "http"


def test_plain_http_to_a_public_host_is_refused_naming_the_flag() -> None:
    with pytest.raises(UsageError, match=r"refusing plain http.*--insecure-http"):
        check_endpoint("http://cloudbuild-ext.cn-north-4.myhuaweicloud.com")


def test_plain_http_to_a_public_host_is_accepted_when_allowed() -> None:
    url = check_endpoint("http://build.corp.example:8080/", allow_insecure_http=True)

    assert (url.scheme, url.host, url.port) == ("http", "build.corp.example", 8080)


def test_client_refuses_plain_http_to_a_public_host_before_sending() -> None:
    with pytest.raises(UsageError, match="--insecure-http"):
        CodeArtsClient("http://build.corp.example", TokenAuth(TOKEN))


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://user:hunter2@gw.example.com",
        "https://user@gw.example.com",
        "https://:hunter2@gw.example.com",
    ],
)
def test_credentials_in_the_url_are_refused_without_echoing_them(endpoint: str) -> None:
    with pytest.raises(UsageError, match="credentials") as caught:
        check_endpoint(endpoint)

    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    "endpoint",
    [
        "",
        "gw.example.com",
        "ftp://gw.example.com",
        "https://",
        "https://gw.example.com/?a=1",
        "https://gw.example.com/#top",
    ],
)
def test_endpoint_that_is_not_a_plain_base_url_is_refused(endpoint: str) -> None:
    with pytest.raises(UsageError, match="endpoint"):
        check_endpoint(endpoint)


@pytest.mark.parametrize(
    ("endpoint", "path"),
    [("https://gw.example.com", "/"), ("https://gw.example.com/base//", "/base")],
)
def test_check_endpoint_drops_trailing_slashes(endpoint: str, path: str) -> None:
    assert check_endpoint(endpoint).path == path


def test_explicit_endpoint_wins_over_region() -> None:
    assert resolve_endpoint(" https://gw.example.com ", "cn-north-4") == "https://gw.example.com"


def test_region_gives_the_cloudbuild_ext_endpoint() -> None:
    assert resolve_endpoint(None, "cn-north-4") == ENDPOINT


def test_neither_endpoint_nor_region_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="--endpoint"):
        resolve_endpoint(None, None)


@pytest.mark.parametrize("region", ["", "   ", "cn_north_4", "cn-north-4.evil.example", "a/b"])
def test_region_that_is_not_a_region_name_is_refused(region: str) -> None:
    with pytest.raises(UsageError, match="--region"):
        region_endpoint(region)


# --- parse_retry_after --------------------------------------------------------------------------

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("120", 120.0), (" 3 ", 3.0), ("0", 0.0), ("0.25", 0.25), ("2.5", 2.5)],
)
def test_retry_after_seconds(value: str, seconds: float) -> None:
    assert parse_retry_after(value, now=NOW) == seconds


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("Sat, 28 Nov 2026 12:01:30 GMT", 90.0),
        ("Sat, 28 Nov 2026 12:00:00 GMT", 0.0),
        ("Sat, 28 Nov 2026 11:59:00 GMT", 0.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
    ],
    ids=["future", "now", "just-past", "long-past"],
)
def test_retry_after_http_date_counts_from_now_and_never_goes_negative(
    value: str, seconds: float
) -> None:
    assert parse_retry_after(value, now=NOW) == seconds


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "  ",
        "soon",
        "-5",
        "-0.5",
        "inf",
        "nan",
        "1e400",
        "9" * 400,
        "0x10",
        "²",
        "Mon, 99 Foo 2026 00:00:00 GMT",
    ],
)
def test_retry_after_garbage_or_negative_is_none(value: str | None) -> None:
    assert parse_retry_after(value, now=NOW) is None
