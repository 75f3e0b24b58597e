"""The client remembers the verdict of a short 2xx stop body it has parsed: a remembered body
reads exactly as a first one, on a real aiohttp server on 127.0.0.1, and the memory is bounded.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bulkstop.auth import TokenAuth
from bulkstop.client import _VERDICT_BODY, _VERDICTS, CodeArtsClient
from bulkstop.models import Reply, ReplyKind, Target

pytestmark = pytest.mark.anyio

TARGET = Target(job_id="f9d6c8466d614a9788e9a0acf6c15f46", build_no=20)


async def replies(api: str, bodies: list[bytes]) -> tuple[list[Reply], CodeArtsClient]:
    """One client's replies to ``bodies``, answered in turn with status 200."""
    answers: Iterator[bytes] = iter(bodies)

    async def handle(request: web.Request) -> web.Response:
        return web.Response(body=next(answers), content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    async with TestServer(app, host="127.0.0.1") as server:
        url = str(server.make_url("")).rstrip("/")
        async with CodeArtsClient(url, TokenAuth("tok-verdicts-0001"), api=api) as client:
            return [await client.stop(TARGET) for _ in bodies], client


def kinds(got: list[Reply]) -> list[ReplyKind]:
    return [reply.kind for reply in got]


STOPPED, NOT_STOPPED, BAD_BODY = ReplyKind.STOPPED, ReplyKind.NOT_STOPPED, ReplyKind.BAD_BODY


@pytest.mark.parametrize(
    ("api", "yes", "no"),
    [
        ("legacy", b'{"result": true}', b'{"result": false}'),
        ("v3", b'{"success": true, "result": ""}', b'{"success": false, "result": ""}'),
        ("v1", b'{"status": "success"}', b'{"status": "failed"}'),
    ],
)
async def test_a_remembered_body_gives_the_verdict_its_first_reading_gave(
    api: str, yes: bytes, no: bytes
) -> None:
    got, _ = await replies(api, [yes, no, yes, no, no, yes])

    assert kinds(got) == [STOPPED, NOT_STOPPED, STOPPED, NOT_STOPPED, NOT_STOPPED, STOPPED]


async def test_an_unreadable_body_is_never_remembered_and_reads_unreadable_each_time() -> None:
    got, client = await replies("legacy", [b'{"result": "yes"}'] * 3)

    assert kinds(got) == [BAD_BODY] * 3
    assert client._verdicts == {}


async def test_a_body_past_the_remembered_length_is_read_each_time() -> None:
    long_yes = b'{"result": true, "pad": "' + b"x" * _VERDICT_BODY + b'"}'

    got, client = await replies("legacy", [long_yes, long_yes])

    assert kinds(got) == [STOPPED, STOPPED]
    assert client._verdicts == {}


async def test_bodies_varying_per_answer_keep_at_most_the_bound_and_read_right() -> None:
    bodies = [b'{"result": %b, "n": %d}' % (b"true" if n % 2 else b"false", n) for n in range(30)]

    got, client = await replies("legacy", bodies)

    assert kinds(got) == [STOPPED if n % 2 else NOT_STOPPED for n in range(30)]
    assert len(client._verdicts) == _VERDICTS
