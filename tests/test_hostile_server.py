"""A hostile server on 127.0.0.1: answers too large, compression bombs, lying lengths, echoed
credentials. Each is data for one target (a ``Reply``), never a crash or a memory spike.

The servers are real aiohttp applications on loopback, so the client's own session, parser and
reading path are what is tested. "Memory stays bounded" is measured as the peak of what Python
allocated while the call ran (:mod:`tracemalloc`, a count, not a timing): reading a 50 MB
answer whole would need 50 MB at least; the bound below is a small fraction of that.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import aiohttp
import anyio
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from fakeclock import FakeClock
from yarl import URL

from bulkstop import (
    AkSkAuth,
    Auth,
    CodeArtsClient,
    IamPasswordAuth,
    Outcome,
    Pacer,
    Reply,
    ReplyKind,
    RetryPolicy,
    RunSettings,
    Secret,
    Stopper,
    Target,
    TokenAuth,
)
from bulkstop.auth import OutgoingRequest
from bulkstop.errors import CredentialsRejected
from bulkstop.iam import IAM_MAX_BODY
from bulkstop.report import ReportWriter, load_report
from bulkstop.transport import ACCEPT_ENCODING, CUT_MARK, MAX_BODY

pytestmark = pytest.mark.anyio

JOB_ID = "f9d6c8466d614a9788e9a0acf6c15f46"
TARGET = Target(JOB_ID, 20)
HUGE = 50 * 1024 * 1024
CHUNK = b" " * (64 * 1024)
#: Peak Python allocation allowed during one hostile call: far below the 50 MB the answer is.
MEMORY_BOUND = 8 * 1024 * 1024
TIMEOUT = 10.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _bomb(wbits: int) -> bytes:
    """50 MB of zeros compressed to about 50 KB: under the read cap, far over it decompressed."""
    packer = zlib.compressobj(9, zlib.DEFLATED, wbits)
    zeros = bytes(1024 * 1024)
    parts = [packer.compress(zeros) for _ in range(HUGE // len(zeros))]
    return b"".join([*parts, packer.flush()])


GZIP_BOMB = _bomb(16 + zlib.MAX_WBITS)
DEFLATE_BOMB = _bomb(zlib.MAX_WBITS)


@asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[str]:
    """Serve ``handler`` for every path on 127.0.0.1; yield the base URL."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    async with TestServer(app, host="127.0.0.1") as server:
        yield str(server.make_url("")).rstrip("/")


@contextmanager
def traced() -> Iterator[Callable[[], int]]:
    """Trace Python allocations; the yielded function gives the peak so far, in bytes."""
    tracemalloc.start()
    try:
        yield lambda: tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def streaming(
    *, declared: bool, status: int = 200, headers: dict[str, str] | None = None
) -> Handler:
    """An answer of ``HUGE`` bytes written 64 KiB at a time, chunked or with its length."""

    async def handle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=status, headers=headers)
        response.content_type = "application/json"
        if declared:
            response.content_length = HUGE
        await response.prepare(request)
        try:
            for _ in range(HUGE // len(CHUNK)):
                await response.write(CHUNK)
        except ConnectionError:  # the client went away, as it should
            pass
        return response

    return handle


def fixed(
    body: bytes,
    *,
    status: int = 200,
    encoding: str | None = None,
    headers: dict[str, str] | None = None,
) -> Handler:
    """An answer of exactly ``body``, sent as it is (aiohttp does not compress it again)."""

    async def handle(request: web.Request) -> web.Response:
        sent = dict(headers or {})
        if encoding:
            sent["Content-Encoding"] = encoding
        return web.Response(body=body, status=status, headers=sent, content_type="application/json")

    return handle


async def stop_once(url: str, auth: Auth | None = None) -> Reply:
    """One stop call to ``url`` with a fresh client."""
    credential = auth or TokenAuth("tok-hostile-0001")
    async with CodeArtsClient(url, credential, timeout=TIMEOUT) as client:
        return await client.stop(TARGET)


# --- size -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_a_50_mb_answer_is_unreadable_and_never_read_whole(declared: bool) -> None:
    async with serving(streaming(declared=declared)) as url:
        with traced() as peak:
            reply = await stop_once(url)
            used = peak()

    assert (reply.kind, reply.http_status) == (ReplyKind.BAD_BODY, 200)
    assert f"over {MAX_BODY} bytes" in reply.error_msg
    assert used < MEMORY_BOUND


async def test_a_50_mb_error_answer_is_an_http_error_judged_by_its_status() -> None:
    async with serving(streaming(declared=False, status=503)) as url:
        reply = await stop_once(url)

    assert (reply.kind, reply.http_status, reply.error_code) == (ReplyKind.HTTP_ERROR, 503, "")
    assert reply.error_msg == f"HTTP 503: answer over {MAX_BODY} bytes, not read"
    assert reply.maybe_applied is True  # a 5xx, as for any other 5xx answer


async def test_a_content_length_over_the_cap_is_refused_without_waiting_for_the_body() -> None:
    release = anyio.Event()

    async def lying(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_length = 10**8  # claims 100 MB, sends a few bytes, then stalls
        await response.prepare(request)
        await response.write(b'{"result": true}')
        await release.wait()
        return response

    async with serving(lying) as url:
        try:
            async with CodeArtsClient(url, TokenAuth("tok-hostile-0001"), timeout=2.0) as client:
                reply = await client.stop(TARGET)
        finally:
            release.set()

    assert reply.kind is ReplyKind.BAD_BODY  # not a timeout: no byte of it was waited for
    assert f"over {MAX_BODY} bytes" in reply.error_msg


# --- compression ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "bomb"), [("gzip", GZIP_BOMB), ("deflate", DEFLATE_BOMB)], ids=["gzip", "deflate"]
)
@pytest.mark.parametrize(
    ("status", "kind"), [(200, ReplyKind.BAD_BODY), (500, ReplyKind.HTTP_ERROR)], ids=["200", "500"]
)
async def test_a_compression_bomb_is_unreadable_and_never_inflated(
    encoding: str, bomb: bytes, status: int, kind: ReplyKind
) -> None:
    assert len(bomb) < MAX_BODY  # only the decompression bound can stop it

    async with serving(fixed(bomb, status=status, encoding=encoding)) as url:
        with traced() as peak:
            reply = await stop_once(url)
            used = peak()

    assert (reply.kind, reply.http_status) == (kind, status)
    assert f"decompresses to over {MAX_BODY} bytes" in reply.error_msg
    assert used < MEMORY_BOUND


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("gzip", gzip.compress(b'{"result": true}')),
        ("x-gzip", gzip.compress(b'{"result": true}')),
        ("deflate", zlib.compress(b'{"result": true}')),
        ("deflate", zlib.compress(b'{"result": true}')[2:-4]),  # raw deflate, as some send
        ("identity", b'{"result": true}'),
    ],
    ids=["gzip", "x-gzip", "deflate-zlib", "deflate-raw", "identity"],
)
async def test_a_compressed_answer_within_the_cap_is_read(encoding: str, body: bytes) -> None:
    async with serving(fixed(body, encoding=encoding)) as url:
        reply = await stop_once(url)

    assert reply.kind is ReplyKind.STOPPED


@pytest.mark.parametrize(
    ("encoding", "body", "says"),
    [
        ("br", b"\x0b\x02\x80{}\x03", "content encoding 'br'"),
        ("zstd", b"(\xb5/\xfd\x00X\x11\x00\x00{}", "content encoding 'zstd'"),
        ("gzip, br", b"{}", "content encoding 'gzip, br'"),
        ("gzip", b"\x1f\x8b\x08\x00not gzip at all", "corrupt"),
        ("gzip", gzip.compress(b'{"result": true}')[:-12], "cut short"),
    ],
    ids=["br", "zstd", "stacked", "corrupt", "cut-short"],
)
async def test_an_answer_that_cannot_be_decompressed_here_is_unreadable(
    encoding: str, body: bytes, says: str
) -> None:
    async with serving(fixed(body, encoding=encoding)) as url:
        reply = await stop_once(url)

    assert (reply.kind, reply.http_status, reply.maybe_applied) == (ReplyKind.BAD_BODY, 200, True)
    assert says in reply.error_msg


async def test_requests_ask_only_for_encodings_read_here() -> None:
    seen: list[str] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Accept-Encoding", ""))
        return web.json_response({"result": True})

    async with serving(record) as url:
        await stop_once(url)

    assert seen == [ACCEPT_ENCODING]


async def test_a_token_echoed_in_a_malformed_header_line_is_scrubbed() -> None:
    # aiohttp's web server cannot send a broken header, so this one speaks raw HTTP.
    token = "tok-hostile-header-5b7d"

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\nEcho " + token.encode() + b"\r\nContent-Length: 2\r\n\r\n{}"
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        reply = await stop_once(f"http://127.0.0.1:{port}", TokenAuth(token))

    assert reply.kind is ReplyKind.CONNECTION  # a broken answer, as any other
    assert token not in repr(reply)


# --- IAM answers ----------------------------------------------------------------------------------

IAM_TOKEN = {"X-Subject-Token": "tok-from-iam-01"}


def iam_auth(session: aiohttp.ClientSession, url: str) -> IamPasswordAuth:
    return IamPasswordAuth(
        session,
        url,
        "alice",
        Secret("pa55-w0rd-hostile"),
        "acme",
        project_id="0123456789abcdef0123456789abcdef",
        clock=FakeClock(),
    )


@pytest.mark.parametrize(
    "handler",
    [
        streaming(declared=False, status=201, headers=IAM_TOKEN),
        fixed(GZIP_BOMB, status=201, encoding="gzip", headers=IAM_TOKEN),
    ],
    ids=["50-mb", "gzip-bomb"],
)
async def test_an_oversized_iam_answer_is_not_read_and_its_token_still_serves(
    handler: Handler,
) -> None:
    request = OutgoingRequest(method="POST", url=URL("https://cloudbuild.example/v3/jobs/stop"))
    async with serving(handler) as url, aiohttp.ClientSession() as session:
        auth = iam_auth(session, url)
        with traced() as peak:
            await auth.prepare()
            used = peak()
        await auth.sign(request)

    assert request.headers["X-Auth-Token"] == IAM_TOKEN["X-Subject-Token"]
    assert used < MEMORY_BOUND


async def test_an_oversized_iam_refusal_is_described_without_its_body() -> None:
    async with serving(streaming(declared=False, status=401)) as url:
        async with aiohttp.ClientSession() as session:
            with traced() as peak:
                with pytest.raises(CredentialsRejected) as caught:
                    await iam_auth(session, url).prepare()
                used = peak()

    assert f"HTTP 401 (answer over {IAM_MAX_BODY} bytes, not read)" in str(caught.value)
    assert used < MEMORY_BOUND


# --- whole runs: engine + client + report ---------------------------------------------------------

TOKEN = "tok-fixed-hostile-7a1c"
PASSWORD = "pa55-w0rd-hostile"
AK = "AKHOSTILE0000000000"
SK = "SKHOSTILE00000000000000000000000000000000"
SECURITY_TOKEN = "sts-hostile-5e9d0c"
PROJECT_ID = "0123456789abcdef0123456789abcdef"
ROWS = [(JOB_ID, n) for n in (1, 2, 3)]


class Echo:
    """CodeArts that puts every credential it receives into its answers' code, message and
    ``X-Request-Id``, and IAM on the same port. The first IAM token is called expired, so an
    IAM run refreshes it mid-run and the refreshed token is what gets echoed."""

    def __init__(self, sk: str = "") -> None:
        self.sk = sk  # the gateway knows the SK it checks signatures with
        self.issued: list[str] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v3/auth/tokens", self.iam)
        app.router.add_route("*", "/{tail:.*}", self.stop)
        return app

    async def iam(self, request: web.Request) -> web.Response:
        token = f"tok-iam-{len(self.issued) + 1:02d}-4f0b9e2d"
        self.issued.append(token)
        return web.json_response({"token": {}}, status=201, headers={"X-Subject-Token": token})

    async def stop(self, request: web.Request) -> web.Response:
        token = request.headers.get("X-Auth-Token", "")
        if self.issued and token == self.issued[0]:
            body = {"error_code": "APIG.0307", "error_msg": "The token must be updated."}
            return web.json_response(body, status=401)
        sent = [token, request.headers.get("X-Security-Token", ""), self.sk]
        echoed = " ".join(value for value in sent if value)
        return web.json_response(
            {"error_code": f"CB.{echoed}", "error_msg": f"you sent {echoed}"},
            status=400,
            headers={"X-Request-Id": f"req-{echoed}"},
        )


async def run_to_report(
    url: str, make_auth: Callable[[aiohttp.ClientSession, str], Auth], report: Path
) -> None:
    """Stop ``ROWS`` against ``url`` (one attempt each) and write the report, as the CLI does."""
    async with CodeArtsClient(url, None, timeout=TIMEOUT) as client:
        auth = make_auth(client.session, url)
        await auth.prepare()
        client.auth = auth
        stopper = Stopper(
            client,
            pacer=Pacer(rate=1000),
            settings=RunSettings(concurrency=3, retry=RetryPolicy(max_attempts=1)),
        )
        with ReportWriter(report) as writer:
            async with stopper.run(ROWS) as results:
                async for result in results:
                    writer.write(result)


AUTHS: dict[str, Callable[[aiohttp.ClientSession, str], Auth]] = {
    "token": lambda session, url: TokenAuth(TOKEN),
    "iam-refreshed": lambda session, url: IamPasswordAuth(
        session, url, "alice", Secret(PASSWORD), "acme", project_id=PROJECT_ID, clock=FakeClock()
    ),
    "temporary-aksk": lambda session, url: AkSkAuth(
        AK, Secret(SK), PROJECT_ID, Secret(SECURITY_TOKEN)
    ),
}


@pytest.mark.e2e
@pytest.mark.parametrize("mode", list(AUTHS))
async def test_echoed_credentials_never_reach_the_report(mode: str, tmp_path: Path) -> None:
    echo = Echo(sk=SK if mode == "temporary-aksk" else "")
    report = tmp_path / "report.csv"
    async with TestServer(echo.app(), host="127.0.0.1") as server:
        await run_to_report(str(server.make_url("")).rstrip("/"), AUTHS[mode], report)

    text = report.read_text(encoding="utf-8")
    records = load_report(report).records
    assert [r.outcome for r in records] == [Outcome.REJECTED] * len(ROWS)  # all were echoed
    assert all(r.error_msg.startswith("you sent ***") for r in records), text
    for secret in (TOKEN, PASSWORD, SK, SECURITY_TOKEN, *echo.issued):
        assert secret not in text
    if mode == "iam-refreshed":
        assert len(echo.issued) == 2  # the echoed token was the refreshed one


HOSTILE_CODE = "CB." + "9" * 10_000
HOSTILE_MESSAGE = "line one\r\nline two\x00\x1b[31m red\u2028sep \ud800 half a pair\n"
HOSTILE_REQUEST_ID = "req-" + "r" * 4000


async def hostile_fields(request: web.Request) -> web.Response:
    # json.dumps writes the lone surrogate as the escape \\ud800, which parsing turns back.
    body = json.dumps({"error_code": HOSTILE_CODE, "error_msg": HOSTILE_MESSAGE})
    return web.Response(
        text=body,
        status=400,
        content_type="application/json",
        headers={"X-Request-Id": HOSTILE_REQUEST_ID},
    )


@pytest.mark.e2e
@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".json"])
async def test_server_chosen_fields_reach_the_report_capped_and_on_one_line(
    suffix: str, tmp_path: Path
) -> None:
    report = tmp_path / f"report{suffix}"
    async with serving(hostile_fields) as url:
        await run_to_report(url, AUTHS["token"], report)

    lines = report.read_bytes().splitlines()
    framing = {".csv": 1, ".jsonl": 0, ".json": 2}[suffix]  # header, or [ and ]
    assert len(lines) == framing + len(ROWS)
    for record in load_report(report).records:
        assert len(record.error_code) == 64
        assert record.error_code.endswith(CUT_MARK)
        assert len(record.request_id) == 128
        assert record.error_msg == "line one line two [31m red sep \ufffd half a pair"


@pytest.mark.e2e
async def test_a_bomb_for_one_target_fails_that_target_alone(tmp_path: Path) -> None:
    async def answer(request: web.Request) -> web.StreamResponse:
        if (await request.json())["build_no"] == "2":
            return await fixed(GZIP_BOMB, encoding="gzip")(request)
        return web.json_response({"result": True})

    report = tmp_path / "report.csv"
    async with serving(answer) as url:
        with traced() as peak:
            await run_to_report(url, AUTHS["token"], report)
            used = peak()

    records = {r.build_no: r for r in load_report(report).records}
    assert {n: r.outcome for n, r in records.items()} == {
        "1": Outcome.STOPPED,
        "2": Outcome.FAILED,
        "3": Outcome.STOPPED,
    }
    assert f"decompresses to over {MAX_BODY} bytes" in records["2"].error_msg
    assert used < MEMORY_BOUND
