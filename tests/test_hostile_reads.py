"""Hostile servers on 127.0.0.1 for the read side: discovery and verification read what a
server chose to answer, and each answer is data for one job or build, never a crash or a hang.

The servers are real aiohttp applications on loopback; waits run on a :class:`FakeClock`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import anyio
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from fakeclock import FakeClock

from bulkstop.auth import TokenAuth
from bulkstop.client import CodeArtsClient
from bulkstop.discover import DiscoveredBuild, DiscoverQuery, Discovery
from bulkstop.pacing import Pacer
from bulkstop.reader import ReadSettings
from bulkstop.retry import RetryPolicy
from bulkstop.verify import Verification, VerifyResult, VerifySettings, VerifyVerdict

pytestmark = pytest.mark.anyio

JOB_ID = "f9d6c8466d614a9788e9a0acf6c15f46"
NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
#: The most requests any one test may make of its server.
MAX_REQUESTS = 400

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[tuple[str, list[str]]]:
    """Serve ``handler`` for every path on 127.0.0.1; yield the base URL and the paths asked."""
    asked: list[str] = []

    async def counted(request: web.Request) -> web.StreamResponse:
        asked.append(request.raw_path)
        if len(asked) > MAX_REQUESTS:
            return web.Response(status=500, text="too many requests for one test")
        return await handler(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", counted)
    async with TestServer(app, host="127.0.0.1") as server:
        yield str(server.make_url("")).rstrip("/"), asked


def answer(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=status, headers=headers)


def records(*entries: Any) -> dict[str, Any]:
    return {
        "result": {
            "job_build_states": list(entries),
            "page_index": "0",
            "total_page": "1",
            "total_record": str(len(entries)),
        },
        "status": "success",
    }


def reads(**retry: Any) -> ReadSettings:
    return ReadSettings(rate=1000.0, retry=RetryPolicy(initial_backoff=0.1, **retry), seed=1)


async def verify(
    handler: Handler, targets: list[tuple[str, int]], settings: VerifySettings
) -> tuple[list[VerifyResult], float, list[str]]:
    """Verify ``targets`` against ``handler``: the verdicts, virtual seconds taken, paths."""
    clock = FakeClock()
    async with serving(handler) as (url, asked), clock.autojump():
        async with CodeArtsClient(url, TokenAuth("tok-hostile-0001"), timeout=5.0) as client:
            pacer = Pacer(rate=settings.reads.rate, clock=clock)
            verification = Verification(
                client, targets, settings=settings, pacer=pacer, clock=clock, wall=lambda: NOW
            )
            with anyio.fail_after(30):
                async with verification as verdicts:
                    found = [result async for result in verdicts]
    return found, clock.now(), asked


async def discover(
    handler: Handler, query: DiscoverQuery, settings: ReadSettings | None = None
) -> tuple[list[DiscoveredBuild], Discovery, list[str]]:
    clock = FakeClock()
    settings = settings or reads()
    async with serving(handler) as (url, asked), clock.autojump():
        async with CodeArtsClient(url, TokenAuth("tok-hostile-0001"), timeout=5.0) as client:
            pacer = Pacer(rate=settings.rate, clock=clock)
            discovery = Discovery(
                client, query, settings=settings, pacer=pacer, clock=clock, wall=lambda: NOW
            )
            with anyio.fail_after(30):
                async with discovery as builds:
                    found = [build async for build in builds]
    return found, discovery, asked


# --- verification ----------------------------------------------------------------------------


async def test_a_per_build_answer_about_another_build_is_not_taken_for_this_one() -> None:
    """The record list is not served; the per-build call answers build 7's record, ended,
    when build 20 was asked: build 20 is not called ended on another build's word."""

    async def handle(request: web.Request) -> web.Response:
        path = request.path
        if path.endswith("/list") or "build-info-records" in path or "history" in path:
            return answer({"error_code": "CB.00060214", "error_msg": "URL not found"}, 404)
        if path.endswith("/build-info"):
            return answer({"error_code": "CB.00060214", "error_msg": "URL not found"}, 404)
        return answer({"result": {"build_no": 7, "status": "ABORTED"}, "status": "success"})

    settings = VerifySettings(timeout=4.0, reads=reads())
    found, _, asked = await verify(handle, [(JOB_ID, 20)], settings)
    assert [(r.build_no, r.verdict) for r in found] == [(20, VerifyVerdict.UNKNOWN)]
    assert "7" in found[0].detail
    assert any(path.endswith(f"/v1/record/{JOB_ID}/20/record-info") for path in asked)


async def test_the_verify_timeout_bounds_a_throttled_first_check() -> None:
    """Every read answers 429 with a Retry-After of a day: verification still ends by its
    timeout (virtual time), with the build unknown, instead of waiting out the throttling."""

    async def handle(request: web.Request) -> web.Response:
        return answer(
            {"error_code": "CB.00060211", "error_msg": "too many requests"},
            429,
            {"Retry-After": "86400"},
        )

    settings = VerifySettings(timeout=10.0, reads=reads())
    found, took, asked = await verify(handle, [(JOB_ID, 20)], settings)
    assert [(r.build_no, r.verdict) for r in found] == [(20, VerifyVerdict.UNKNOWN)]
    assert took <= 10.0
    assert len(asked) < 30
