"""read_body against a real aiohttp server on 127.0.0.1: a body already whole in the buffer
(taken at once) reads exactly as the same body still arriving (read in a loop).

The server sends the first part of each body, then waits for the test to let the rest go, so
the test knows which path each read takes: ``is_eof()`` before reading tells them apart.
"""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bulkstop.transport import Body, read_body

pytestmark = pytest.mark.anyio

LIMIT = 1000
JSON = b'{"result":true,"pad":"' + b"x" * 200 + b'"}'


def _deflate(data: bytes, wbits: int) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, wbits)
    return packer.compress(data) + packer.flush()


CASES = {
    "json": (JSON, None),
    "empty": (b"", None),
    "exactly the limit": (b"y" * LIMIT, None),
    "one over the limit": (b"y" * (LIMIT + 1), None),
    "gzip": (gzip.compress(JSON), "gzip"),
    "deflate": (_deflate(JSON, zlib.MAX_WBITS), "deflate"),
    "raw deflate": (_deflate(JSON, -zlib.MAX_WBITS), "deflate"),
    "gzip over the limit once inflated": (gzip.compress(b"z" * (LIMIT + 1)), "gzip"),
    "gzip cut short": (gzip.compress(JSON)[:-12], "gzip"),
    "corrupt gzip": (b"\x1f\x8b not gzip at all", "gzip"),
}


@asynccontextmanager
async def body_server(
    data: bytes, encoding: str | None
) -> AsyncIterator[tuple[str, asyncio.Event]]:
    """Serve ``data`` with its true Content-Length; ``?split=1`` holds back all but its first
    byte until the yielded event is set. Yields the URL and the event."""
    release = asyncio.Event()

    async def handle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Encoding": encoding} if encoding else {})
        response.content_type = "application/json"
        response.content_length = len(data)
        await response.prepare(request)
        if request.query.get("split") and data:
            await response.write(data[:1])
            await release.wait()
            await response.write(data[1:])
        else:
            await response.write(data)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/", handle)
    async with TestServer(app, host="127.0.0.1") as server:
        yield str(server.make_url("/")), release


async def _read(
    session: aiohttp.ClientSession, url: str, release: asyncio.Event, *, split: bool
) -> tuple[Body, bool]:
    """The body as read_body reads it, and whether it was whole in the buffer at the start."""
    async with session.get(url, params={"split": "1"} if split else {}) as response:
        if split:
            reading = asyncio.ensure_future(read_body(response, LIMIT))
            await asyncio.sleep(0)  # let the read start on the part already in
            whole_at_start = response.content.is_eof()
            release.set()
            return await reading, whole_at_start
        await response.content.wait_eof()
        return await read_body(response, LIMIT), response.content.is_eof()


@pytest.mark.parametrize(("data", "encoding"), CASES.values(), ids=CASES.keys())
async def test_a_buffered_body_reads_as_the_same_body_still_arriving(
    data: bytes, encoding: str | None
) -> None:
    async with (
        body_server(data, encoding) as (url, release),
        aiohttp.ClientSession(auto_decompress=False) as session,
    ):
        whole, was_whole = await _read(session, url, release, split=False)
        arriving, was_arriving_whole = await _read(session, url, release, split=True)

    assert was_whole
    assert not was_arriving_whole or not data
    assert whole == arriving


async def test_a_buffered_body_over_the_limit_is_refused_as_one_still_arriving() -> None:
    async with (
        body_server(b"y" * (LIMIT + 1), None) as (url, release),
        aiohttp.ClientSession(auto_decompress=False) as session,
    ):
        whole, _ = await _read(session, url, release, split=False)

    assert whole == Body(problem=f"answer over {LIMIT} bytes, not read")


async def test_a_buffered_body_is_the_bytes_sent() -> None:
    async with (
        body_server(gzip.compress(JSON), "gzip") as (url, release),
        aiohttp.ClientSession(auto_decompress=False) as session,
    ):
        whole, was_whole = await _read(session, url, release, split=False)

    assert was_whole
    assert whole == Body(JSON)


@asynccontextmanager
async def lying_server(declared: int, sent: bytes) -> AsyncIterator[tuple[str, asyncio.Event]]:
    """A raw HTTP/1.1 server that declares ``declared`` bytes and sends ``sent``, then closes;
    on ``?split=1`` all but the first byte waits for the yielded event."""
    release = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        head += b"Content-Length: %d\r\n\r\n" % declared
        if b"split=1" in request.split(b"\r\n", 1)[0]:
            writer.write(head + sent[:1])
            await writer.drain()
            await release.wait()
            writer.write(sent[1:])
        else:
            writer.write(head + sent)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}/", release


@pytest.mark.parametrize("split", [False, True])
async def test_a_length_longer_than_the_body_is_a_payload_error_either_way(split: bool) -> None:
    async with (
        aiohttp.ClientSession(auto_decompress=False) as session,
        lying_server(500, b'{"result":true}') as (url, release),
    ):
        with pytest.raises(aiohttp.ClientPayloadError):
            await _read(session, url, release, split=split)
