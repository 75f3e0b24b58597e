"""CodeArtsClient against a stand-in for CodeArts on 127.0.0.1: what is sent, how every answer
and failure is read, how the retry policy then judges it, and which endpoints are accepted.

The stand-in is a real aiohttp server on loopback (:class:`aiohttp.test_utils.TestServer`), the
way httpx tests pass a ``MockTransport``: the client's own session, parser and reading path do
the work, and the test sees the request exactly as it arrived. Answers that no well-behaved
server can give (a dropped connection, a reset, a body cut short, a broken header) come from a
raw TCP server speaking bytes; a connection that cannot be made at all from a Unix socket that
does not exist. Nothing reaches into aiohttp (aioresponses only raises, in one test, an aiohttp
error that no server can cause), and nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aioresponses import aioresponses
from multidict import CIMultiDictProxy
from netfaults import (
    UNRESOLVABLE_HOST,
    NoSuchHostResolver,
    SelfSignedTLSServer,
    closed_port,
    self_signed_certificate,
)
from yarl import URL

import bulkstop
from bulkstop.auth import OutgoingRequest, TokenAuth
from bulkstop.client import CodeArtsClient, check_endpoint, region_endpoint, resolve_endpoint
from bulkstop.errors import UsageError
from bulkstop.models import Outcome, Reply, ReplyKind, Target, TransportFailure
from bulkstop.retry import Decision, SystematicFault, Verdict, classify, parse_retry_after
from bulkstop.transport import CUT_MARK

pytestmark = pytest.mark.anyio

TOKEN = "tok-SENTINEL-7f3a9c1e5b"  # distinctive, so a leak is easy to spot
JOB_ID = "f9d6c8466d614a9788e9a0acf6c15f46"
TARGET = Target(job_id=JOB_ID, build_no=20)
ENDPOINT = "https://cloudbuild-ext.cn-north-4.myhuaweicloud.com"
LEGACY_PATH = "/v3/jobs/stop"
V3_PATH = f"/v3/jobs/{JOB_ID}/20/stop"
V1_PATH = f"/v1/job/{JOB_ID}/stop"
PATH_OF_API = {"legacy": LEGACY_PATH, "v3": V3_PATH, "v1": V1_PATH}
HTML = "<html><body><h1>502 Bad Gateway</h1></body></html>"
API_NOT_SERVED = SystematicFault.API_NOT_SERVED
#: A client timeout for answers that never come: short, since the test waits it out.
NO_ANSWER_TIMEOUT = 0.05


# --- a stand-in for CodeArts ----------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    """One request as the server received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: CIMultiDictProxy[str]
    body: bytes


@dataclass
class CodeArts:
    """Answers every request with what :meth:`answer` set last (``{"result": true}`` at first)
    and notes each request in :attr:`requests`."""

    url: str = ""
    requests: list[Sent] = field(default_factory=list)
    _answer: dict[str, Any] = field(default_factory=lambda: {"payload": {"result": True}})

    def answer(
        self,
        *,
        status: int = 200,
        payload: Any = None,
        body: str | None = None,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer ``payload`` as JSON, else ``body`` as ``content_type``, with ``headers``."""
        self._answer = {
            "status": status,
            "payload": payload,
            "body": body,
            "content_type": content_type,
            "headers": headers or {},
        }

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(
            Sent(
                request.method,
                request.path,
                dict(request.query),
                request.headers,
                await request.read(),
            )
        )
        answer = {"status": 200, "body": None, "headers": {}, **self._answer}
        headers = dict(answer["headers"])
        if answer["payload"] is not None:
            data = json.dumps(answer["payload"]).encode()
            headers.setdefault("Content-Type", "application/json")
        else:
            data = (answer["body"] or "").encode()
            headers.setdefault("Content-Type", answer["content_type"])
        return web.Response(status=answer["status"], body=data, headers=headers)

    @property
    def paths(self) -> list[str]:
        return [request.path for request in self.requests]


@pytest.fixture
async def codearts() -> AsyncIterator[CodeArts]:
    stand_in = CodeArts()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", stand_in.handle)
    async with TestServer(app, host="127.0.0.1") as server:
        stand_in.url = str(server.make_url("")).rstrip("/")
        yield stand_in


Speaker = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def raw_server(speak: Speaker) -> AsyncIterator[str]:
    """A TCP server on 127.0.0.1 that reads each request's head, then lets ``speak`` answer in
    bytes (or not at all); yields its ``http://`` base URL."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            await speak(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    async with server:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()  # until the client gives up and closes


async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    pass  # the connection closes without a byte of answer


async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    # A zero linger time makes the close a TCP reset.
    linger = struct.pack("ii", 1, 0)
    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
    writer.transport.abort()


async def cut_short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    )
    writer.write(b'{"res')  # 5 of the 100 bytes promised
    await writer.drain()


def unconnectable(tmp_path: Path) -> aiohttp.ClientSession:
    """A session whose every connection fails to be made, with an OS error that says nothing
    about the endpoint (a Unix socket that does not exist: no network at all)."""
    return aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(tmp_path / "no.sock")))


#: How the failures of a transport are made: a raw server's way of answering, or no connection.
FAILURES: dict[str, Speaker | None] = {
    "timeout": never_answer,
    "never-connected": None,
    "dropped": hang_up,
    "reset": reset,
    "cut-short": cut_short,
}


async def stop_failing(failure: str, tmp_path: Path) -> Reply:
    """One stop call that fails the way ``failure`` names."""
    speak = FAILURES[failure]
    if speak is None:
        async with unconnectable(tmp_path) as session:
            return await stop_once(ENDPOINT, session=session)
    async with raw_server(speak) as url:
        return await stop_once(url, timeout=NO_ANSWER_TIMEOUT if failure == "timeout" else 5.0)


async def stop_once(endpoint: str, api: str = "legacy", **options: Any) -> Reply:
    async with CodeArtsClient(endpoint, TokenAuth(TOKEN), api=api, **options) as client:
        return await client.stop(TARGET)


async def error_reply(codearts: CodeArts, status: int, **answer: Any) -> Reply:
    codearts.answer(status=status, **answer)
    return await stop_once(codearts.url)


def sent(codearts: CodeArts) -> Sent:
    """The one request the server received."""
    [request] = codearts.requests
    return request


# --- what is sent -------------------------------------------------------------------------------


async def test_legacy_call_is_a_post_to_v3_jobs_stop(codearts: CodeArts) -> None:
    await stop_once(codearts.url)

    assert [(r.method, r.path) for r in codearts.requests] == [("POST", LEGACY_PATH)]


async def test_legacy_body_is_job_id_and_build_no_as_a_string(codearts: CodeArts) -> None:
    await stop_once(codearts.url)

    assert json.loads(sent(codearts).body) == {"job_id": JOB_ID, "build_no": "20"}


@pytest.mark.parametrize("api", ["legacy", "v3", "v1"])
async def test_every_call_sends_the_token_and_a_json_content_type(
    codearts: CodeArts, api: str
) -> None:
    await stop_once(codearts.url, api)

    headers = sent(codearts).headers
    assert headers["X-Auth-Token"] == TOKEN
    assert headers["Content-Type"] == "application/json"


class _SignEach:
    """An auth with no static headers: signs each request (as AK/SK does), with its own token."""

    mode = "test"

    def __init__(self) -> None:
        self.signed = 0

    async def prepare(self) -> None:
        return None

    async def sign(self, request: OutgoingRequest) -> int:
        self.signed += 1
        request.headers["X-Auth-Token"] = f"per-request-{self.signed}"
        return 7

    def secret_values(self) -> list[str]:
        return []

    async def refresh(self, generation: int) -> bool:
        return False


class _NeverSigned(TokenAuth):
    async def sign(self, request: OutgoingRequest) -> int:
        raise AssertionError("a static auth's requests are not signed one by one")


async def test_a_static_auth_s_headers_are_added_by_the_client_without_signing(
    codearts: CodeArts,
) -> None:
    async with CodeArtsClient(codearts.url, _NeverSigned(TOKEN)) as client:
        replies = [await client.stop(TARGET) for _ in range(2)]

    assert [r.credential_generation for r in replies] == [0, 0]
    assert [r.headers["X-Auth-Token"] for r in codearts.requests] == [TOKEN, TOKEN]
    assert {r.headers["Content-Type"] for r in codearts.requests} == {"application/json"}


async def test_an_auth_without_static_headers_signs_every_request(codearts: CodeArts) -> None:
    auth = _SignEach()
    async with CodeArtsClient(codearts.url, auth) as client:
        replies = [await client.stop(TARGET) for _ in range(2)]
        client.auth = TokenAuth(TOKEN)  # a static one set later is taken up at once
        await client.stop(TARGET)

    assert auth.signed == 2
    assert [r.credential_generation for r in replies] == [7, 7]
    assert [r.headers["X-Auth-Token"] for r in codearts.requests] == [
        "per-request-1",
        "per-request-2",
        TOKEN,
    ]


@pytest.mark.parametrize("api", ["legacy", "v3", "v1"])
async def test_every_call_names_bulkstop_and_aiohttp_with_their_versions(
    codearts: CodeArts, api: str
) -> None:
    await stop_once(codearts.url, api)

    expected = f"bulkstop/{bulkstop.__version__} aiohttp/{aiohttp.__version__}"
    assert sent(codearts).headers["User-Agent"] == expected


@pytest.mark.parametrize(
    ("base", "path"),
    [
        ("", "/v3/jobs/stop"),
        ("/", "/v3/jobs/stop"),
        ("/base", "/base/v3/jobs/stop"),
        ("/base/", "/base/v3/jobs/stop"),
        ("/a/b/", "/a/b/v3/jobs/stop"),
    ],
)
async def test_endpoint_with_or_without_slash_or_base_path_gives_one_url(
    codearts: CodeArts, base: str, path: str
) -> None:
    reply = await stop_once(codearts.url + base)

    assert reply.kind is ReplyKind.STOPPED
    assert codearts.paths == [path]


async def test_v3_call_names_job_and_build_in_the_path_with_an_empty_body(
    codearts: CodeArts,
) -> None:
    codearts.answer(payload={"success": True, "result": ""})

    await stop_once(codearts.url, "v3")

    assert (sent(codearts).path, sent(codearts).body) == (V3_PATH, b"")


async def test_v1_call_sends_build_no_in_the_query_and_as_an_integer_body(
    codearts: CodeArts,
) -> None:
    codearts.answer(payload={"status": "success"})

    await stop_once(codearts.url, "v1")

    request = sent(codearts)
    assert request.path == V1_PATH
    assert request.query == {"build_no": "20"}
    assert json.loads(request.body) == {"build_no": 20}


async def test_a_redirect_is_not_followed(codearts: CodeArts) -> None:
    # Where the redirect points is this same server: a client that followed it would ask again.
    codearts.answer(status=302, body="", headers={"Location": f"{codearts.url}/login"})

    await stop_once(codearts.url)

    assert codearts.paths == [LEGACY_PATH]


# --- reading 2xx answers ------------------------------------------------------------------------


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
    codearts: CodeArts, api: str, payload: dict[str, Any], kind: ReplyKind
) -> None:
    codearts.answer(payload=payload)

    reply = await stop_once(codearts.url, api)

    assert (reply.kind, reply.http_status, reply.error_code, reply.error_msg) == (kind, 200, "", "")


@pytest.mark.parametrize(
    ("kind", "outcome"),
    [(ReplyKind.STOPPED, Outcome.STOPPED), (ReplyKind.NOT_STOPPED, Outcome.NOT_STOPPED)],
)
async def test_success_replies_classify_as_final(
    codearts: CodeArts, kind: ReplyKind, outcome: Outcome
) -> None:
    codearts.answer(payload={"result": kind is ReplyKind.STOPPED})

    reply = await stop_once(codearts.url)

    assert classify(reply) == Decision(Verdict.FINAL, outcome)


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
    codearts: CodeArts, body: str, content_type: str
) -> None:
    codearts.answer(status=200, body=body, content_type=content_type)

    reply = await stop_once(codearts.url)

    assert (reply.kind, reply.http_status, reply.maybe_applied) == (ReplyKind.BAD_BODY, 200, True)
    assert reply.error_msg.startswith("unreadable legacy answer")
    assert classify(reply) == Decision(Verdict.TRANSIENT)


# --- reading error answers ----------------------------------------------------------------------


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
    codearts: CodeArts, payload: dict[str, Any]
) -> None:
    reply = await error_reply(codearts, 400, payload=payload)

    assert reply.kind is ReplyKind.HTTP_ERROR
    assert (reply.http_status, reply.error_code, reply.error_msg) == (
        400,
        "CB.00060200",
        "invalid parameter",
    )


async def test_html_error_body_message_names_status_and_content_type(
    codearts: CodeArts,
) -> None:
    reply = await error_reply(codearts, 502, body=HTML, content_type="text/html; charset=utf-8")

    assert (reply.error_code, reply.error_msg) == ("", "HTTP 502 with text/html body")


async def test_error_body_nested_too_deep_for_json_still_gives_a_reply(
    codearts: CodeArts,
) -> None:
    reply = await error_reply(codearts, 500, body='{"error":' * 5000 + "{}" + "}" * 5000)

    assert (reply.kind, reply.error_msg) == (
        ReplyKind.HTTP_ERROR,
        "HTTP 500 with application/json body",
    )


async def test_long_error_message_is_collapsed_and_cut_with_a_mark(codearts: CodeArts) -> None:
    message = "too\n  many\twords " * 100
    reply = await error_reply(codearts, 400, payload={"error_code": "X", "error_msg": message})

    assert len(reply.error_msg) == 300
    assert reply.error_msg.startswith("too many words too many words")
    assert reply.error_msg.endswith(CUT_MARK)


#: Line breaks, NUL, an escape sequence, C1 and Unicode line separators, DEL and a lone
#: surrogate (JSON can carry one as ``\\ud800``).
HOSTILE_TEXT = "a\r\nb\x00c\x1b[2Jd\x85e\u2028f\ud800g\x7f"
HOSTILE_LINE = "a b c [2Jd e f\ufffdg"


def _field(reply: Reply, field: str) -> str:
    value: str = getattr(reply, field)
    return value


@pytest.mark.parametrize(
    ("answer", "field", "limit"),
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
    codearts: CodeArts, answer: dict[str, Any], field: str, limit: int
) -> None:
    codearts.answer(**{"status": 400, "body": "", **answer})

    value = _field(await stop_once(codearts.url), field)

    assert len(value) == limit
    assert value.endswith(CUT_MARK)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"error_code": HOSTILE_TEXT, "error_msg": "m"}, "error_code"),
        ({"error_code": "C", "error_msg": HOSTILE_TEXT}, "error_msg"),
    ],
    ids=["error_code", "error_msg"],
)
async def test_control_characters_and_lone_surrogates_in_a_body_never_reach_a_reply(
    codearts: CodeArts, payload: dict[str, str], field: str
) -> None:
    codearts.answer(status=400, payload=payload)

    assert _field(await stop_once(codearts.url), field) == HOSTILE_LINE


async def test_control_characters_and_undecodable_bytes_in_a_header_never_reach_a_reply() -> None:
    # What a header line can carry: a tab, an escape sequence, DEL, C1 and U+2028 in UTF-8, and
    # a byte that is not UTF-8 at all (read as a lone surrogate).
    request_id = b"a\tb\x1b[2Jc\x7fd\xc2\x85e\xe2\x80\xa8f\xffg"

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n")
        writer.write(b"X-Request-Id: " + request_id + b"\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()

    async with raw_server(answer) as url:
        reply = await stop_once(url)

    assert reply.request_id == "a b [2Jc d e f\ufffdg"


@pytest.mark.parametrize(
    ("status", "payload"),
    [(200, {"result": True}), (400, {"error_code": "CB.00060200", "error_msg": "bad"})],
)
async def test_x_request_id_is_kept(
    codearts: CodeArts, status: int, payload: dict[str, Any]
) -> None:
    codearts.answer(status=status, payload=payload, headers={"X-Request-Id": "req-42"})

    reply = await stop_once(codearts.url)

    assert reply.request_id == "req-42"


@pytest.mark.parametrize(("header", "seconds"), [("7", 7.0), ("1.5", 1.5), ("0", 0.0)])
async def test_retry_after_in_seconds_is_read(
    codearts: CodeArts, header: str, seconds: float
) -> None:
    reply = await error_reply(
        codearts, 429, payload={"error_code": "APIG.0308"}, headers={"Retry-After": header}
    )

    assert reply.retry_after == seconds


async def test_retry_after_as_http_date_is_read_as_seconds_from_now(codearts: CodeArts) -> None:
    # An hour ahead: the seconds that pass between writing the header and reading it cannot
    # bring the answer below 3590, so no clock needs faking.
    when = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    header = format_datetime(when, usegmt=True)

    reply = await error_reply(
        codearts, 503, body=HTML, content_type="text/html", headers={"Retry-After": header}
    )

    assert reply.retry_after is not None
    assert 3590 < reply.retry_after <= 3600


@pytest.mark.parametrize("headers", [{}, {"Retry-After": "soon"}], ids=["absent", "garbage"])
async def test_missing_or_unreadable_retry_after_is_none(
    codearts: CodeArts, headers: dict[str, str]
) -> None:
    reply = await error_reply(codearts, 429, payload={"error_code": "APIG.0308"}, headers=headers)

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


async def _reply_for(codearts: CodeArts, status: int, code: str) -> Reply:
    if code:
        return await error_reply(codearts, status, payload={"error_code": code, "error_msg": "m"})
    return await error_reply(codearts, status, body=HTML, content_type="text/html")


@pytest.mark.parametrize(
    ("status", "code", "decision"),
    [case[:3] for case in _ERRORS],
    ids=[f"{status}-{code or 'html'}" for status, code, *_ in _ERRORS],
)
async def test_error_status_and_code_classify_as(
    codearts: CodeArts, status: int, code: str, decision: Decision
) -> None:
    reply = await _reply_for(codearts, status, code)

    assert (reply.kind, reply.http_status, reply.error_code) == (
        ReplyKind.HTTP_ERROR,
        status,
        code,
    )
    assert classify(reply) == decision


@pytest.mark.parametrize(
    ("status", "code", "maybe_applied"),
    [(status, code, applied) for status, code, _, applied in _ERRORS],
    ids=[f"{status}-{code or 'html'}" for status, code, *_ in _ERRORS],
)
async def test_only_non_throttling_5xx_may_have_applied(
    codearts: CodeArts, status: int, code: str, maybe_applied: bool
) -> None:
    reply = await _reply_for(codearts, status, code)

    assert reply.maybe_applied is maybe_applied


async def test_redirect_is_reported_not_followed(codearts: CodeArts) -> None:
    codearts.answer(status=302, body="", headers={"Location": "https://elsewhere.example/login"})

    reply = await stop_once(codearts.url)

    assert (reply.kind, reply.http_status) == (ReplyKind.HTTP_ERROR, 302)
    assert reply.error_msg == "HTTP 302 redirect to 'https://elsewhere.example/login' not followed"


async def test_redirect_classifies_as_rejected(codearts: CodeArts) -> None:
    codearts.answer(status=302, body="", headers={"Location": "https://elsewhere.example/"})

    reply = await stop_once(codearts.url)

    assert classify(reply) == Decision(Verdict.FINAL, Outcome.REJECTED)
    assert reply.maybe_applied is False


# --- transport failures -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "kind", "maybe_applied"),
    [
        ("timeout", ReplyKind.TIMEOUT, True),
        ("never-connected", ReplyKind.CONNECTION, False),
        ("dropped", ReplyKind.CONNECTION, True),
        ("reset", ReplyKind.CONNECTION, True),
        ("cut-short", ReplyKind.CONNECTION, True),
    ],
)
async def test_transport_failure_becomes_a_reply_not_an_exception(
    tmp_path: Path, failure: str, kind: ReplyKind, maybe_applied: bool
) -> None:
    reply = await stop_failing(failure, tmp_path)

    assert (reply.kind, reply.http_status, reply.maybe_applied) == (kind, None, maybe_applied)
    assert classify(reply) == Decision(Verdict.TRANSIENT)


@pytest.mark.parametrize(
    "exception",
    [aiohttp.ClientError("something new"), aiohttp.ClientConnectionError("something new")],
    ids=["client-error", "connection-error"],
)
async def test_any_other_aiohttp_error_becomes_a_reply_that_may_have_applied(
    exception: Exception,
) -> None:
    # No server makes aiohttp raise an error of a kind it has not met yet; aioresponses raises
    # one (an exception only: it builds no response, so it needs nothing of aiohttp's inside).
    with aioresponses() as mocked:
        mocked.post(ENDPOINT + LEGACY_PATH, exception=exception)
        reply = await stop_once(ENDPOINT)

    assert (reply.kind, reply.http_status, reply.maybe_applied) == (
        ReplyKind.CONNECTION,
        None,
        True,
    )
    assert classify(reply) == Decision(Verdict.TRANSIENT)


async def test_timeout_message_names_the_configured_timeout() -> None:
    async with raw_server(never_answer) as url:
        reply = await stop_once(url, timeout=NO_ANSWER_TIMEOUT)

    assert reply.error_msg == f"no answer within {NO_ANSWER_TIMEOUT:g} s"


async def test_connect_failure_message_names_the_host_and_the_os_error(tmp_path: Path) -> None:
    async with unconnectable(tmp_path) as session:
        reply = await stop_once(ENDPOINT, session=session)

    assert reply.error_msg == (
        "cannot connect to cloudbuild-ext.cn-north-4.myhuaweicloud.com:443: "
        f"[Errno {errno.ENOENT}] {os.strerror(errno.ENOENT)}"
    )
    assert reply.transport_failure is None


# --- connect failures that say the endpoint is wrong (real sockets on loopback) -------------------


async def test_a_refused_connection_is_a_refused_transport_failure() -> None:
    port = closed_port()

    reply = await stop_once(f"http://127.0.0.1:{port}")

    assert (reply.kind, reply.transport_failure, reply.maybe_applied) == (
        ReplyKind.CONNECTION,
        TransportFailure.REFUSED,
        False,
    )
    assert reply.error_msg == f"connection refused by 127.0.0.1:{port}"
    assert classify(reply) == Decision(Verdict.TRANSIENT, fault=SystematicFault.REFUSED)


async def test_a_host_that_does_not_resolve_is_a_dns_transport_failure() -> None:
    resolver = NoSuchHostResolver()  # no network: the lookup fails as a resolver's does
    connector = aiohttp.TCPConnector(resolver=resolver)
    async with aiohttp.ClientSession(connector=connector) as session:
        reply = await stop_once(f"https://{UNRESOLVABLE_HOST}", session=session)

    assert resolver.lookups
    assert set(resolver.lookups) == {UNRESOLVABLE_HOST}
    assert (reply.kind, reply.transport_failure, reply.maybe_applied) == (
        ReplyKind.CONNECTION,
        TransportFailure.DNS,
        False,
    )
    assert reply.error_msg == f"cannot resolve host {UNRESOLVABLE_HOST}"
    assert classify(reply) == Decision(Verdict.TRANSIENT, fault=SystematicFault.DNS)


async def test_an_untrusted_certificate_is_a_permanent_certificate_failure(
    tmp_path: Path,
) -> None:
    cert, key = self_signed_certificate(tmp_path)
    with SelfSignedTLSServer(cert, key) as server:
        reply = await stop_once(server.url)

    assert (reply.kind, reply.transport_failure, reply.maybe_applied) == (
        ReplyKind.CONNECTION,
        TransportFailure.CERTIFICATE,
        False,
    )
    assert reply.error_msg.startswith(f"certificate of 127.0.0.1:{server.port} not trusted: ")
    assert classify(reply) == Decision(
        Verdict.FINAL, Outcome.FAILED, SystematicFault.CERTIFICATE
    )  # never retried


async def test_a_certificate_trusted_through_the_ca_bundle_is_no_certificate_failure(
    tmp_path: Path,
) -> None:
    cert, key = self_signed_certificate(tmp_path)
    with SelfSignedTLSServer(cert, key) as server:
        # trusted now: the handshake succeeds and the server hangs up without an answer
        reply = await stop_once(server.url, ca_bundle=cert)

    assert reply.kind is ReplyKind.CONNECTION
    assert reply.transport_failure is None
    assert server.handshakes == 1


# --- session ownership --------------------------------------------------------------------------


async def test_stop_outside_the_context_manager_is_refused() -> None:
    client = CodeArtsClient(ENDPOINT, TokenAuth(TOKEN))

    with pytest.raises(RuntimeError, match="async with"):
        await client.stop(TARGET)


async def test_a_given_session_is_used_and_left_open(codearts: CodeArts) -> None:
    async with aiohttp.ClientSession(headers={"X-Session": "given"}) as session:
        async with CodeArtsClient(codearts.url, TokenAuth(TOKEN), session=session) as client:
            reply = await client.stop(TARGET)
        assert not session.closed
    assert reply.kind is ReplyKind.STOPPED
    assert sent(codearts).headers["X-Session"] == "given"  # sent through that session


# --- no secret shows ----------------------------------------------------------------------------


def test_client_repr_shows_no_token() -> None:
    text = repr(CodeArtsClient(ENDPOINT, TokenAuth(TOKEN)))

    assert TOKEN not in text
    assert "auth='token'" in text


def test_token_auth_repr_and_str_show_no_token() -> None:
    auth = TokenAuth(TOKEN)

    assert TOKEN not in repr(auth)
    assert TOKEN not in str(auth)


@pytest.mark.parametrize(
    "answer",
    [
        {"status": 401, "payload": {"error_code": "APIG.0301", "error_msg": "Incorrect token"}},
        {"status": 502, "body": HTML, "content_type": "text/html"},
        {"status": 200, "body": "not json"},
    ],
    ids=["401", "502", "bad-body"],
)
async def test_reply_to_an_answer_never_carries_the_token(
    codearts: CodeArts, answer: dict[str, Any]
) -> None:
    codearts.answer(**answer)

    reply = await stop_once(codearts.url)

    assert TOKEN not in reply.error_msg
    assert TOKEN not in repr(reply)


@pytest.mark.parametrize("failure", ["timeout", "never-connected", "dropped"])
async def test_reply_to_a_failure_never_carries_the_token(tmp_path: Path, failure: str) -> None:
    reply = await stop_failing(failure, tmp_path)

    assert TOKEN not in reply.error_msg
    assert TOKEN not in repr(reply)


@pytest.mark.parametrize(
    "answer",
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
    codearts: CodeArts, answer: dict[str, Any]
) -> None:
    codearts.answer(**answer)

    reply = await stop_once(codearts.url)

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
