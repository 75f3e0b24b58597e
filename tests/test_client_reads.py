"""CodeArtsClient.read against real aiohttp servers on 127.0.0.1: what a read sends, and how
every answer is mapped — values, errors (also inside a 2xx), unreadable and hostile answers —
through the same guards as a stop (body bound, scrubbing, capping, no redirects)."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from netfaults import closed_port

from bulkstop.auth import TokenAuth
from bulkstop.client import MAX_READ_BODY, CodeArtsClient
from bulkstop.codes import is_job_not_found
from bulkstop.models import ReplyKind, TransportFailure
from bulkstop.reads import (
    BuildState,
    JobsPage,
    ReadApi,
    ReadReply,
    ReadRequest,
    build_request,
    jobs_request,
    parse_build_details,
    parse_jobs_page,
)
from bulkstop.retry import SystematicFault, Verdict, classify
from bulkstop.transport import MAX_BODY

pytestmark = pytest.mark.anyio

TOKEN = "tok-READS-5e1f0c7a9b"  # distinctive, so a leak is easy to spot
JOB = "f9d6c8466d614a9788e9a0acf6c15f46"
PROJECT = "aaaabbbbccccddddeeeeffff00001111"
DETAILS = build_request(ReadApi.SHOW_BUILD_DETAILS, JOB, 20)
JOBS = jobs_request(ReadApi.LIST_PROJECT_JOBS, PROJECT, 0)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[str]:
    """Serve ``handler`` for every path on 127.0.0.1; yield the base URL."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    async with TestServer(app, host="127.0.0.1") as server:
        yield str(server.make_url("")).rstrip("/")


def answering(
    payload: Any = None,
    *,
    status: int = 200,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    seen: list[web.Request] | None = None,
) -> Handler:
    async def handle(request: web.Request) -> web.Response:
        if seen is not None:
            seen.append(request)
        data = body if body is not None else json.dumps(payload).encode()
        return web.Response(
            status=status, body=data, headers=headers, content_type="application/json"
        )

    return handle


async def read(
    handler: Handler,
    request: ReadRequest = DETAILS,
    parse: Any = parse_build_details,
    **options: Any,
) -> ReadReply[Any]:
    async with serving(handler) as url:
        async with CodeArtsClient(url, TokenAuth(TOKEN), timeout=5.0, **options) as client:
            reply: ReadReply[Any] = await client.read(request, parse)
            return reply


BUILDING = {"result": {"building": True, "build_result": None}, "status": "success"}


# --- what is sent ----------------------------------------------------------------------------


async def test_a_read_is_a_get_with_its_query_the_token_and_the_encodings_asked() -> None:
    seen: list[web.Request] = []

    await read(answering({"jobs": [], "total": 0}, seen=seen), JOBS, parse_jobs_page)

    (request,) = seen
    assert request.method == "GET"
    assert request.path == f"/v1/job/{PROJECT}/list"
    assert dict(request.query) == {"page_index": "0", "page_size": "100"}
    assert request.headers["X-Auth-Token"] == TOKEN
    assert request.headers["Accept-Encoding"] == "gzip, deflate"


async def test_a_redirect_is_not_followed() -> None:
    seen: list[web.Request] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(request)
        return web.Response(status=302, headers={"Location": "/elsewhere"})

    reply = await read(handle)

    assert len(seen) == 1
    assert reply.error is not None
    assert reply.error.http_status == 302


# --- answers ---------------------------------------------------------------------------------


async def test_a_2xx_answer_is_parsed_into_its_value() -> None:
    reply = await read(answering(BUILDING, headers={"X-Request-Id": "req-42"}))

    assert reply == ReadReply(
        value=BuildState(False, "building"), http_status=200, request_id="req-42"
    )


async def test_a_page_larger_than_a_stop_answer_is_read_whole() -> None:
    entries = [{"id": JOB, "job_name": "n" * 150, "filler": "x" * 1200} for _ in range(100)]
    payload = {"jobs": entries, "total": 100}
    assert MAX_BODY < len(json.dumps(payload)) < MAX_READ_BODY  # more than a stop answer may be

    reply = await read(answering(payload), JOBS, parse_jobs_page)

    assert isinstance(reply.value, JobsPage)
    assert len(reply.value.jobs) == 100


async def test_a_read_answer_over_its_bound_is_unreadable_and_transient() -> None:
    body = b'{"jobs": [], "pad": "' + b"x" * 4096 + b'"}'

    reply = await read(answering(body=body), JOBS, parse_jobs_page, read_limit=1024)

    assert reply.error is not None
    assert reply.error.kind is ReplyKind.BAD_BODY
    assert "over 1024 bytes" in reply.error.error_msg
    assert classify(reply.error).verdict is Verdict.TRANSIENT


async def test_a_compressed_answer_is_read_within_the_bound() -> None:
    body = gzip.compress(json.dumps(BUILDING).encode())

    reply = await read(answering(body=body, headers={"Content-Encoding": "gzip"}))

    assert reply.value == BuildState(False, "building")


@pytest.mark.parametrize("body", [b"{not json", b"", b"\xff\xfe", b"[" * 100_000])
async def test_a_2xx_that_is_not_json_is_unreadable_and_transient(body: bytes) -> None:
    reply = await read(answering(body=body))

    assert reply.value is None
    assert reply.error is not None
    assert reply.error.kind is ReplyKind.BAD_BODY
    assert reply.error.error_msg.startswith("unreadable show_build_details answer")
    assert not reply.error.maybe_applied
    assert classify(reply.error).verdict is Verdict.TRANSIENT


async def test_a_2xx_of_the_wrong_shape_is_a_problem_naming_the_api() -> None:
    reply = await read(answering({"result": {"region": "cn-north-4"}}))

    assert reply.value is None
    assert reply.error is None
    assert reply.problem == (
        "show_build_details answer: result has neither building (a boolean) nor build_result"
    )


@pytest.mark.parametrize(
    ("payload", "verdict"),
    [
        ({"error_code": "CB.00060211", "error_msg": "too many requests"}, Verdict.THROTTLED),
        ({"status": "fail", "error": {"code": "APIG.0308", "message": "limit"}}, Verdict.THROTTLED),
        ({"error_code": "CB.00060200", "error_msg": "invalid parameter"}, Verdict.FINAL),
    ],
)
async def test_a_2xx_whose_body_carries_an_error_code_is_that_error(
    payload: dict[str, Any], verdict: Verdict
) -> None:
    reply = await read(answering(payload))

    assert reply.value is None
    assert reply.error is not None
    assert reply.error.kind is ReplyKind.HTTP_ERROR
    assert reply.error.http_status == 200
    assert classify(reply.error).verdict is verdict


async def test_422_devcb_00031006_is_job_not_found() -> None:
    payload = {"error_code": "DEVCB.00031006", "error_msg": "job not found"}

    reply = await read(answering(payload, status=422))

    assert reply.error is not None
    assert reply.error.http_status == 422
    assert is_job_not_found(reply.error.http_status, reply.error.error_code)


async def test_404_url_not_found_says_the_api_is_not_served() -> None:
    payload = {"error_code": "CB.00060214", "error_msg": "URL not found"}

    reply = await read(answering(payload, status=404))

    assert reply.error is not None
    assert classify(reply.error).fault is SystematicFault.API_NOT_SERVED


async def test_a_throttled_read_carries_retry_after() -> None:
    payload = {"error_code": "APIG.0308", "error_msg": "over ratelimit"}

    reply = await read(answering(payload, status=429, headers={"Retry-After": "3"}))

    assert reply.error is not None
    assert reply.error.retry_after == 3.0
    assert classify(reply.error).verdict is Verdict.THROTTLED


async def test_an_error_answer_of_a_read_may_not_have_applied_anything() -> None:
    reply = await read(answering({"error_code": "CB.00060101", "error_msg": "x"}, status=500))

    assert reply.error is not None
    assert not reply.error.maybe_applied
    assert classify(reply.error).verdict is Verdict.TRANSIENT


# --- guards ----------------------------------------------------------------------------------


async def test_a_token_the_server_echoes_is_scrubbed_from_parsed_values() -> None:
    payload = {"jobs": [{"id": JOB, "job_name": f"name {TOKEN} end"}], "total": 1}

    reply = await read(answering(payload), JOBS, parse_jobs_page)

    assert isinstance(reply.value, JobsPage)
    assert reply.value.jobs[0].job_name == "name *** end"


async def test_a_token_the_server_echoes_is_scrubbed_from_errors_and_problems() -> None:
    error = await read(answering({"error_code": TOKEN, "error_msg": f"bad {TOKEN}"}))
    problem = await read(answering({"result": {"building": TOKEN}, "status": TOKEN}))

    assert error.error is not None
    assert TOKEN not in error.error.error_code + error.error.error_msg
    assert TOKEN not in problem.problem


async def test_server_text_in_a_value_is_capped_to_one_line() -> None:
    payload = {"jobs": [{"id": JOB, "job_name": "a\r\nb\x00c" + "z" * 10_000}], "total": 1}

    reply = await read(answering(payload), JOBS, parse_jobs_page)

    assert isinstance(reply.value, JobsPage)
    name = reply.value.jobs[0].job_name
    assert name.isprintable()
    assert len(name) == 200
    assert name.startswith("a b c")


async def test_a_read_timeout_is_a_reply_that_applied_nothing() -> None:
    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response()

    async with serving(hang) as url:
        async with CodeArtsClient(url, TokenAuth(TOKEN), timeout=0.2) as client:
            reply = await client.read(DETAILS, parse_build_details)

    assert reply.error is not None
    assert reply.error.kind is ReplyKind.TIMEOUT
    assert not reply.error.maybe_applied
    assert classify(reply.error).verdict is Verdict.TRANSIENT


async def test_a_refused_connection_is_a_refused_transport_failure() -> None:
    url = f"http://127.0.0.1:{closed_port()}"

    async with CodeArtsClient(url, TokenAuth(TOKEN), timeout=2.0) as client:
        reply = await client.read(DETAILS, parse_build_details)

    assert reply.error is not None
    assert reply.error.kind is ReplyKind.CONNECTION
    assert reply.error.transport_failure is TransportFailure.REFUSED
