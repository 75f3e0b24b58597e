"""A hostile server on 127.0.0.1: echoed credentials, oversized and multi-line fields. Each is
data for one target, never a leak into the report or a broken report line.

The servers are real aiohttp applications on loopback, so the client's own session, parser and
reading path are what is tested.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from fakeclock import FakeClock

from bulkstop import (
    AkSkAuth,
    Auth,
    CodeArtsClient,
    IamPasswordAuth,
    Outcome,
    Pacer,
    RetryPolicy,
    RunSettings,
    Secret,
    Stopper,
    TokenAuth,
)
from bulkstop.report import ReportWriter, load_report
from bulkstop.transport import CUT_MARK

pytestmark = pytest.mark.anyio

JOB_ID = "f9d6c8466d614a9788e9a0acf6c15f46"
TIMEOUT = 10.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[str]:
    """Serve ``handler`` for every path on 127.0.0.1; yield the base URL."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    async with TestServer(app, host="127.0.0.1") as server:
        yield str(server.make_url("")).rstrip("/")


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
