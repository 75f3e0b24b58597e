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
from bulkstop.errors import CredentialsRejected
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
            found: list[DiscoveredBuild] = []
            with anyio.fail_after(30):
                try:
                    async with discovery as builds:
                        found.extend([build async for build in builds])
                except CredentialsRejected:
                    assert discovery.abort_error is not None
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


# --- discovery -------------------------------------------------------------------------------


def running(number: Any, **fields: Any) -> dict[str, Any]:
    return {"number": number, "state": "RUNNING", "start_time": NOW_MS - 60_000, **fields}


async def test_pages_longer_than_asked_cannot_grow_a_job_past_its_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every page holds 1000 new builds when 100 were asked: the records kept for one job stay
    within the pages' cap (pages × page size), and the job names the cut."""
    monkeypatch.setattr("bulkstop.discover._MAX_PAGES", 3)

    async def handle(request: web.Request) -> web.Response:
        page = int(request.query["page_index"])
        body = records(*(running(page * 1000 + n) for n in range(1, 1001)))
        body["result"]["total_page"] = body["result"]["total_record"] = "1000000"
        return answer(body)

    found, discovery, asked = await discover(handle, DiscoverQuery(job_ids=(JOB_ID,)))
    assert len(asked) == 1
    assert len(found) == discovery.stats.builds_seen == 300
    assert [build.build_no for build in found] == list(range(1, 301))
    assert [p.reason for p in discovery.stats.problems] == ["unreadable"]
    assert "300 records" in discovery.stats.problems[0].message


@pytest.mark.parametrize(
    "entry",
    [
        running("12x"),
        running(-4),
        running(2**40),
        running(1.5),
        running(None),
        running(True),
        "a string",
        None,
    ],
)
async def test_a_record_that_is_not_one_is_named_and_the_others_are_found(entry: Any) -> None:
    async def handle(request: web.Request) -> web.Response:
        return answer(records(running(5), entry, running(6)))

    found, discovery, _ = await discover(handle, DiscoverQuery(job_ids=(JOB_ID,)))
    assert [build.build_no for build in found] == [5, 6]
    assert [p.reason for p in discovery.stats.problems] == ["unreadable"]
    assert "job_build_states[1]" in discovery.stats.problems[0].message


@pytest.mark.parametrize(
    "fields",
    [
        {"state": {"word": "SUCCESS"}},
        {"state": None, "job_running_status": None},
        {"start_time": 10**30},
        {"start_time": "yesterday"},
        {"start_time": "2026-01-05T11:00:00"},
        {"start_time": None, "code_branch": ["main"], "executor": {"name": "x"}},
    ],
)
async def test_fields_of_the_wrong_type_are_absent_and_the_build_counts_as_running(
    fields: dict[str, Any],
) -> None:
    async def handle(request: web.Request) -> web.Response:
        return answer(records(running(5, **fields)))

    found, discovery, _ = await discover(handle, DiscoverQuery(job_ids=(JOB_ID,)))
    assert [build.build_no for build in found] == [5]
    assert discovery.stats.problems == []


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"<html><body>gateway</body></html>", "text/html"),
        (b'{"result": ', "application/json"),
        (b"[1, 2, 3]", "application/json"),
        (b'{"result": {"job_build_states": {"0": 1}}}', "application/json"),
        (b'{"result": null, "status": {"a": 1}}', "application/json"),
        (b"null", "application/json"),
    ],
)
async def test_a_page_that_is_not_an_answer_is_one_jobs_problem(
    body: bytes, content_type: str
) -> None:
    other = "0123456789abcdef0123456789abcdef"

    async def handle(request: web.Request) -> web.Response:
        if other in request.path:
            return answer(records(running(9)))
        return web.Response(body=body, content_type=content_type)

    query = DiscoverQuery(job_ids=(JOB_ID, other))
    found, discovery, _ = await discover(handle, query)
    assert [(b.job_id, b.build_no) for b in found] == [(other, 9)]
    # a body that is not JSON is retried as a transient fault, one of the wrong shape is not
    assert [p.job_id for p in discovery.stats.problems] == [JOB_ID]
    assert discovery.stats.problems[0].reason in {"bad_answer", "failed"}


async def test_a_page_repeated_forever_is_read_twice() -> None:
    async def handle(request: web.Request) -> web.Response:
        body = records(*(running(n) for n in range(1, 101)))
        body["result"]["total_page"] = body["result"]["total_record"] = "999999"
        return answer(body)

    found, _, asked = await discover(handle, DiscoverQuery(job_ids=(JOB_ID,)))
    assert len(asked) == 2
    assert len(found) == 100


async def test_job_ids_a_project_list_offers_are_never_asked_unless_they_are_job_ids() -> None:
    project = "a" * 32
    hostile = ["../../../etc/passwd", '=HYPERLINK("x")', "f" * 5000, "é" * 32, "A" * 32]

    async def handle(request: web.Request) -> web.Response:
        if request.path.endswith("/list") and project in request.path:
            jobs = [{"id": job_id} for job_id in [*hostile, JOB_ID]]
            return answer({"result": {"job_list": jobs, "total": len(jobs)}, "status": "success"})
        return answer(records(running(3)))

    found, discovery, asked = await discover(handle, DiscoverQuery(project_id=project))
    assert [(b.job_id, b.build_no) for b in found] == [(JOB_ID, 3)]
    assert all(path.count("/") <= 6 and ".." not in path for path in asked)
    assert len(asked) == 2
    assert [p.reason for p in discovery.stats.problems] == ["unreadable"]


async def test_a_redirect_is_not_followed() -> None:
    async def handle(request: web.Request) -> web.Response:
        if request.path.startswith("/elsewhere"):
            return answer(records(running(4)))
        raise web.HTTPFound("/elsewhere")

    found, discovery, asked = await discover(handle, DiscoverQuery(job_ids=(JOB_ID,)))
    assert found == []
    assert not any(path.startswith("/elsewhere") for path in asked)
    assert [p.job_id for p in discovery.stats.problems] == [JOB_ID]


async def test_a_streak_of_401s_mid_listing_ends_discovery_with_what_was_found() -> None:
    jobs = [f"{n:032x}" for n in range(1, 21)]

    async def handle(request: web.Request) -> web.Response:
        if jobs[0] in request.path or jobs[1] in request.path:
            return answer(records(running(1)))
        return answer({"error_code": "CB.00060401", "error_msg": "token rejected"}, 401)

    settings = ReadSettings(rate=1000.0, concurrency=1, auth_breaker=3, seed=1)
    found, discovery, asked = await discover(handle, DiscoverQuery(job_ids=tuple(jobs)), settings)
    assert [(b.job_id, b.build_no) for b in found] == [(jobs[0], 1), (jobs[1], 1)]
    assert isinstance(discovery.abort_error, CredentialsRejected)
    assert len(asked) == 5


async def test_job_pages_longer_than_asked_cannot_grow_the_selection_past_its_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every page of the project's list holds 1000 new jobs when 100 were asked: the jobs
    taken stay within pages × page size, and the list names the cut."""
    monkeypatch.setattr("bulkstop.discover._MAX_PAGES", 2)
    project = "a" * 32

    async def handle(request: web.Request) -> web.Response:
        if request.path.endswith("/list") and project in request.path:
            page = int(request.query["page_index"])
            jobs = [{"id": f"{page * 1000 + n:032x}"} for n in range(1000)]
            return answer({"result": {"job_list": jobs, "total": 10**6}, "status": "success"})
        return answer(records())

    settings = ReadSettings(rate=10**6, concurrency=8, seed=1)
    _, discovery, asked = await discover(handle, DiscoverQuery(project_id=project), settings)
    listed = [path for path in asked if project in path]
    assert len(listed) == 1
    assert discovery.stats.jobs == 200
    assert len(asked) == 1 + 200
    assert [p.message for p in discovery.stats.problems] == [
        f"project {project}: entries left out: stopped at 200 jobs"
    ]


async def test_a_server_echoing_the_token_never_gets_it_into_a_problem() -> None:
    token = "tok-hostile-0001"

    async def handle(request: web.Request) -> web.Response:
        said = request.headers.get("X-Auth-Token", "")
        return answer({"error_code": "CB.00060403", "error_msg": f"no access for {said}"}, 403)

    _, discovery, _ = await discover(handle, DiscoverQuery(job_ids=(JOB_ID,)))
    (problem,) = discovery.stats.problems
    assert problem.reason == "forbidden"
    assert "no access for" in problem.message
    assert token not in repr(discovery.stats)


async def test_a_slow_loris_answer_times_out_per_call() -> None:
    """The server sends headers, then a byte now and then: each call ends at the client's
    timeout (real seconds, short), and the job is a problem after its attempts."""

    async def handle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_type = "application/json"
        await response.prepare(request)
        try:
            for _ in range(100):
                await response.write(b" ")
                await anyio.sleep(0.1)
        except ConnectionError:
            pass
        return response

    clock = FakeClock()
    settings = ReadSettings(rate=1000.0, retry=RetryPolicy(max_attempts=2), seed=1)
    async with serving(handle) as (url, asked), clock.autojump():
        async with CodeArtsClient(url, TokenAuth("tok-hostile-0001"), timeout=0.3) as client:
            discovery = Discovery(
                client,
                DiscoverQuery(job_ids=(JOB_ID,)),
                settings=settings,
                pacer=Pacer(rate=settings.rate, clock=clock),
                clock=clock,
                wall=lambda: NOW,
            )
            with anyio.fail_after(5):
                async with discovery as builds:
                    assert [build async for build in builds] == []
    assert len(asked) == 2
    assert [p.reason for p in discovery.stats.problems] == ["failed"]
    assert "timeout" in discovery.stats.problems[0].message


async def test_verify_falls_back_to_the_per_build_call_when_the_record_lists_are_not_served() -> (
    None
):
    async def handle(request: web.Request) -> web.Response:
        path = request.path
        if path.endswith("/build-info"):
            return answer({"result": {"building": False, "build_result": "ABORTED"}})
        return answer({"error_code": "CB.00060214", "error_msg": "URL not found"}, 404)

    settings = VerifySettings(timeout=4.0, reads=reads())
    found, _, asked = await verify(handle, [(JOB_ID, 20), (JOB_ID, 21)], settings)
    assert [(r.build_no, r.verdict, r.status) for r in found] == [
        (20, VerifyVerdict.ENDED, "ABORTED"),
        (21, VerifyVerdict.ENDED, "ABORTED"),
    ]
    assert len(asked) == 3 + 2
