"""What the client's session adds to every request, on a real aiohttp server on 127.0.0.1: the
same unsigned headers through its own session as through a given one, and no cookies kept."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDictProxy

from bulkstop.auth import TokenAuth
from bulkstop.client import CodeArtsClient
from bulkstop.models import ReplyKind, Target
from bulkstop.transport import ACCEPT_ENCODING, USER_AGENT

pytestmark = pytest.mark.anyio

TOKEN = "tok-session-0001"
TARGET = Target(job_id="f9d6c8466d614a9788e9a0acf6c15f46", build_no=20)


async def sent_headers(*, given_session: bool, calls: int = 2) -> list[CIMultiDictProxy[str]]:
    """The headers of ``calls`` stop calls as the server got them; every answer sets a cookie."""
    seen: list[CIMultiDictProxy[str]] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(request.headers)
        response = web.json_response({"result": True})
        response.set_cookie("lb", "node-7")
        return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    async with TestServer(app, host="127.0.0.1") as server:
        # by name: a cookie jar takes no cookie from a bare IP address
        url = f"http://localhost:{server.port}"
        async with aiohttp.ClientSession() as session:
            given = session if given_session else None
            async with CodeArtsClient(url, TokenAuth(TOKEN), session=given) as client:
                for _ in range(calls):
                    assert (await client.stop(TARGET)).kind is ReplyKind.STOPPED
    return seen


@pytest.mark.parametrize("given_session", [False, True], ids=["own session", "given session"])
async def test_every_request_carries_the_unsigned_headers_and_its_credential(
    given_session: bool,
) -> None:
    for headers in await sent_headers(given_session=given_session):
        assert headers["Accept-Encoding"] == ACCEPT_ENCODING
        assert headers["User-Agent"] == USER_AGENT
        assert headers["Content-Type"] == "application/json"
        assert headers["X-Auth-Token"] == TOKEN
        assert headers.getall("User-Agent") == [USER_AGENT]  # never sent twice


async def test_an_own_session_sends_no_cookie_an_answer_set() -> None:
    first, second = await sent_headers(given_session=False)

    assert "Cookie" not in first
    assert "Cookie" not in second
