"""End to end: discovery and verification with the real client against the simulator's world.

Everything runs in-process on 127.0.0.1: a :class:`Simulator` holding a CodeArts project of
jobs whose builds run over (real) time, a :class:`CodeArtsClient`, and the library. The truth
to compare with is the simulator's own: ``World.running_builds()`` and
``Simulator.ignored_stops()``. Read rates are high and polls short so that each test ends in
a second or two; the assertions are about outcomes, never about timing.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import anyio
import pytest

from bulkstop import AkSkAuth, CodeArtsClient, Pacer, RetryPolicy, Stopper, TokenAuth
from bulkstop.discover import DEFAULT_SINCE, DiscoveredBuild, DiscoverQuery, Discovery
from bulkstop.models import Outcome
from bulkstop.reader import ReadSettings
from bulkstop.simulator import ReadConfig, Simulator, SimulatorConfig, ThrottleConfig, WorldConfig
from bulkstop.verify import Verification, VerifySettings, VerifyVerdict

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

TOKEN = "e2e-reads-token-4d2a77"
PROJECT = "0123456789abcdef0123456789abcdef"
#: 50 jobs, 15 of them running (3 of those an older build); and a runaway timer job whose
#: builds run for 3 days, started every 10 hours: 8 run now, only 3 started in the last 24 h.
WORLD = WorldConfig(
    project_id=PROJECT,
    jobs=50,
    builds_per_job=30,
    running_ratio=0.3,
    timer_interval=10 * 3600.0,
    timer_build_time=3 * 86400.0,
    stop_delay=0.3,
    ignore_stop_ratio=0.0,
)
#: No test here may take longer (each takes about a second or two).
BOUND = 60.0
FAST = ReadSettings(rate=200.0, concurrency=4, seed=7)
POLICY = RetryPolicy(initial_backoff=0.01, max_backoff=0.05, max_retry_after=0.2)

Key = tuple[str, int]


@asynccontextmanager
async def simulator(**config: Any) -> AsyncIterator[Simulator]:
    config.setdefault("token", TOKEN)
    config.setdefault("world", WORLD)
    with anyio.fail_after(BOUND):
        async with Simulator(SimulatorConfig(**config)) as sim:
            yield sim


@asynccontextmanager
async def client_of(sim: Simulator, auth: Any = None) -> AsyncIterator[CodeArtsClient]:
    async with CodeArtsClient(sim.url, auth or TokenAuth(TOKEN), timeout=5.0) as client:
        yield client


def running_since(sim: Simulator, since: datetime) -> set[Key]:
    """The world's builds running now that started at or after ``since``."""
    assert sim.world is not None
    cutoff = since.timestamp()
    return {
        (build.job.job_id, build.number)
        for build in sim.world.running_builds(time.time())
        if build.start >= cutoff
    }


async def discover(
    client: CodeArtsClient, query: DiscoverQuery, settings: ReadSettings = FAST
) -> tuple[list[DiscoveredBuild], Discovery]:
    discovery = Discovery(client, query, settings=settings)
    async with discovery as builds:
        found = [build async for build in builds]
    return found, discovery


def keys(found: list[DiscoveredBuild]) -> list[Key]:
    return [(build.job_id, build.build_no) for build in found]


@pytest.fixture
def started() -> datetime:
    return datetime.now(UTC)


async def test_a_project_of_50_jobs_lists_exactly_the_builds_running_in_the_window(
    started: datetime,
) -> None:
    async with simulator() as sim, client_of(sim) as client:
        found, discovery = await discover(client, DiscoverQuery(project_id=PROJECT))
        expected = running_since(sim, started - DEFAULT_SINCE)
        # running, started before the window, but inside the wider window the query asks for
        listed_too_old = running_since(sim, started - 2 * DEFAULT_SINCE) - expected
        order = [(world_index(sim, job), number) for job, number in keys(found)]

    assert set(keys(found)) == expected
    assert len(found) == len(expected)  # nothing twice
    assert listed_too_old  # the timer's builds of 30 and 40 hours ago
    assert discovery.stats.filtered_out == len(listed_too_old)  # judged by their own time
    assert discovery.stats.jobs == 51
    assert discovery.stats.problems == []
    assert order == sorted(order)  # project order, then build number


def world_index(sim: Simulator, job_id: str) -> int:
    assert sim.world is not None
    job = sim.world.job(job_id)
    assert job is not None
    return job.index


async def test_a_repeated_first_page_and_string_totals_do_not_duplicate_jobs(
    started: datetime,
) -> None:
    reads = ReadConfig(jobs_shape="sdk", repeat_first_page=True, total_as_string=True)
    settings = ReadSettings(rate=200.0, page_size=20, seed=7)
    async with simulator(reads=reads) as sim, client_of(sim) as client:
        found, discovery = await discover(client, DiscoverQuery(project_id=PROJECT), settings)
        expected = running_since(sim, started - DEFAULT_SINCE)
        list_calls = sim.stats.read_requests["list_project_jobs"]

    assert set(keys(found)) == expected
    assert len(found) == len(expected)
    assert discovery.stats.jobs == 51
    assert list_calls == 3  # 20 + 20 + 11: the short page ends the list


async def test_under_a_per_minute_read_limit_discovery_misses_nothing(started: datetime) -> None:
    # A per-minute policy scaled down: 30 reads per half-second window, shared by every read API,
    # and a pacer that starts at more than twice that.
    reads = ReadConfig(throttle=ThrottleConfig(limit=30, window=0.5))
    settings = ReadSettings(rate=160.0, concurrency=4, retry=POLICY, seed=7)
    async with simulator(reads=reads) as sim, client_of(sim) as client:
        found, discovery = await discover(client, DiscoverQuery(project_id=PROJECT), settings)
        expected = running_since(sim, started - DEFAULT_SINCE)
        throttled = sim.stats.read_throttled
        served = sim.stats.reads

    assert set(keys(found)) == expected
    assert discovery.stats.problems == []
    assert discovery.stats.throttled == throttled
    assert throttled <= served // 4  # few: the pacer slows down instead of hammering


async def test_forbidden_and_unknown_jobs_are_problems_and_the_others_are_listed(
    started: datetime,
) -> None:
    world = WorldConfig(project_id=PROJECT, jobs=20, running_ratio=0.5, forbidden_ratio=0.2)
    unknown = "f9d6c8466d614a9788e9a0acf6c15f46"
    async with simulator(world=world, unknown_jobs=frozenset({unknown})) as sim:
        assert sim.world is not None
        forbidden = [job.job_id for job in sim.world.jobs if job.forbidden]
        allowed = [job.job_id for job in sim.world.jobs if not job.forbidden]
        async with client_of(sim) as client:
            query = DiscoverQuery(job_ids=(*forbidden, *allowed, unknown))
            found, discovery = await discover(client, query)
        expected = {key for key in running_since(sim, started - DEFAULT_SINCE) if key[0] in allowed}

    assert set(keys(found)) == expected
    problems = {(p.job_id, p.reason, p.http_status) for p in discovery.stats.problems}
    assert problems == {(job, "forbidden", 403) for job in forbidden} | {
        (unknown, "not_found", 404)
    }


async def test_aksk_signed_reads_are_accepted(started: datetime) -> None:
    ak, sk = "AKEXAMPLE0000000000", "SKEXAMPLE-reads-000000000000000000000000"
    async with simulator(token=None, aksk=(ak, sk)) as sim:
        async with client_of(sim, AkSkAuth(ak, sk, project_id=None)) as client:
            found, discovery = await discover(client, DiscoverQuery(project_id=PROJECT))
        expected = running_since(sim, started - DEFAULT_SINCE)

    assert set(keys(found)) == expected
    assert discovery.stats.problems == []
    assert sim.stats.auth_failures == 0


async def stop(client: CodeArtsClient, found: list[DiscoveredBuild]) -> set[Key]:
    """Stop every build found; the ones the service said it stopped."""
    stopper = Stopper(client, pacer=Pacer(rate=500))
    stopped: set[Key] = set()
    async with stopper.run([build.target for build in found]) as results:
        async for result in results:
            if result.outcome is Outcome.STOPPED:
                stopped.add((result.job_id, int(result.build_no)))
    return stopped


async def test_stopped_builds_are_verified_ended_once_the_stop_takes_effect() -> None:
    settings = VerifySettings(poll_initial=0.1, poll_max=0.3, timeout=10.0, reads=FAST)
    async with simulator() as sim, client_of(sim) as client:
        found, _ = await discover(client, DiscoverQuery(project_id=PROJECT))
        stopped = await stop(client, found)
        verification = Verification(client, found, settings=settings)
        async with verification as verdicts:
            results = [result async for result in verdicts]
        still_running = set(sim.running_builds()) & stopped

    assert stopped == set(keys(found))
    assert {(r.job_id, r.build_no) for r in results} == stopped
    assert {r.verdict for r in results} == {VerifyVerdict.ENDED}
    assert {r.status for r in results} == {"ABORTED"}
    assert still_running == set()
    assert verification.stats.ended == len(stopped)


async def test_ignored_stops_come_out_running_at_the_timeout() -> None:
    world = WorldConfig(
        project_id=PROJECT, jobs=30, running_ratio=0.5, stop_delay=0.2, ignore_stop_ratio=0.4
    )
    # the stops take effect 0.2 s after they are sent: well within the timeout
    settings = VerifySettings(poll_initial=0.1, poll_max=0.2, timeout=0.5, reads=FAST)
    async with simulator(world=world, seed=11) as sim, client_of(sim) as client:
        found, _ = await discover(client, DiscoverQuery(project_id=PROJECT))
        await stop(client, found)
        ignored = set(sim.ignored_stops())
        verification = Verification(client, found, settings=settings)
        async with verification as verdicts:
            results = {(r.job_id, r.build_no): r for r in [r async for r in verdicts]}

    assert ignored  # the seed makes some stops ignored
    assert set(results) == set(keys(found))
    assert {key for key, r in results.items() if r.verdict is VerifyVerdict.RUNNING} == ignored
    assert {key for key, r in results.items() if r.verdict is VerifyVerdict.ENDED} == (
        set(results) - ignored
    )
    assert all(results[key].status == "RUNNING" for key in ignored)
