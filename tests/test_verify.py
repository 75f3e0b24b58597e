"""Verification (bulkstop.verify) against a fake read service on the fake clock: the polling
schedule at exact times, the cheapest calls, the fallbacks and every verdict."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fakeclock import FakeClock
from fakereads import (
    FORBIDDEN,
    JOB_NOT_FOUND_404,
    JOB_NOT_FOUND_422,
    SERVER_ERROR,
    UNAUTHORIZED,
    URL_NOT_FOUND,
    FakeBuild,
    FakeJob,
    FakeReadClient,
    FakeService,
    parse_window,
)

from bulkstop.discover import DiscoveredBuild
from bulkstop.errors import CredentialsRejected
from bulkstop.models import Target
from bulkstop.pacing import Pacer
from bulkstop.reader import ReadSettings
from bulkstop.reads import ReadApi
from bulkstop.retry import RetryPolicy
from bulkstop.verify import (
    Verification,
    VerifyResult,
    VerifySettings,
    VerifyStats,
    VerifyTarget,
    VerifyVerdict,
    poll_delay,
)

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
POLICY = RetryPolicy(initial_backoff=0.5, max_backoff=0.5, jitter=False, max_attempts=2)
#: no jitter: waits of 2, 4, 8, 16, 20, 20, ... seconds, for 120 s after the first check
EXACT = VerifySettings(poll_jitter=0.0, reads=ReadSettings(retry=POLICY))
LIST = ReadApi.LIST_BUILD_INFO_RECORD_BY_JOB_ID
DETAILS = ReadApi.SHOW_BUILD_DETAILS


def job_id(n: int) -> str:
    return f"{n:032x}"


class Stopping(FakeService):
    """Builds that are ``ABORTING`` until their stop takes effect at a time of the fake clock."""

    def __init__(self, jobs: list[FakeJob], clock: FakeClock, ends: dict[Any, float]) -> None:
        super().__init__(jobs)
        self.clock = clock
        self.ends = ends

    def __call__(self, request: Any) -> Any:
        for job in self.jobs:
            for build in job.builds:
                end = self.ends.get((job.job_id, build.number))
                if end is not None:
                    build.state = "ABORTED" if self.clock.now() >= end else "ABORTING"
        return super().__call__(request)


def fake_job(n: int, *numbers: int, state: str = "RUNNING", **fields: Any) -> FakeJob:
    builds = [FakeBuild(number, state, NOW - HOUR) for number in numbers]
    return FakeJob(job_id(n), f"job-{n}", builds, **fields)


async def verify(
    service: FakeService | Any,
    targets: list[Any],
    *,
    clock: FakeClock,
    settings: VerifySettings = EXACT,
    draw: Any = None,
) -> tuple[list[VerifyResult], VerifyStats, FakeReadClient]:
    client = FakeReadClient(service, clock=clock)
    verification = Verification(
        client,
        targets,
        settings=settings,
        pacer=Pacer(rate=1000, burst=10, clock=clock),  # a few calls at once start together
        wall=lambda: NOW,
        draw=draw,
    )
    async with clock.autojump(), verification as verdicts:
        results = [result async for result in verdicts]
    return results, verification.stats, client


# --- the schedule --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("poll", "draw", "wait"),
    [(1, 0.0, 2.0), (2, 0.0, 4.0), (3, 0.0, 8.0), (4, 0.0, 16.0), (5, 0.0, 20.0), (9, 0.0, 20.0),
     (1, 0.5, 1.75), (4, 0.5, 14.0), (6, 0.999, 15.005), (10_000, 0.0, 20.0)],
)  # fmt: skip
def test_poll_delay_grows_exponentially_to_its_cap_less_its_jitter(
    poll: int, draw: float, wait: float
) -> None:
    assert poll_delay(VerifySettings(), poll, draw) == pytest.approx(wait)


def test_poll_delay_counts_from_one() -> None:
    with pytest.raises(ValueError, match="starts at 1"):
        poll_delay(VerifySettings(), 0, 0.5)


async def test_a_build_that_keeps_running_is_checked_on_schedule_until_the_timeout() -> None:
    clock = FakeClock()
    service = FakeService([fake_job(1, 7)])

    results, stats, client = await verify(service, [(job_id(1), 7)], clock=clock)

    assert client.times == [0.0, 2.0, 6.0, 14.0, 30.0, 50.0, 70.0, 90.0, 110.0, 120.0]
    assert results == [
        VerifyResult(
            job_id(1),
            7,
            VerifyVerdict.RUNNING,
            "RUNNING",
            10,
            "still running after 120 s of checks",
        )
    ]
    assert (stats.running, stats.checks, stats.calls) == (1, 10, 10)


async def test_the_jitter_draw_shortens_each_wait() -> None:
    clock = FakeClock()
    service = FakeService([fake_job(1, 7)])
    settings = VerifySettings(poll_jitter=0.25, timeout=60.0)

    _, _, client = await verify(
        service, [(job_id(1), 7)], clock=clock, settings=settings, draw=lambda: 0.5
    )

    assert client.times == [0.0, 1.75, 5.25, 12.25, 26.25, 43.75, 60.0]


async def test_a_stop_that_takes_effect_later_ends_at_the_next_check() -> None:
    clock = FakeClock()
    service = Stopping([fake_job(1, 7)], clock, {(job_id(1), 7): 5.0})

    results, stats, client = await verify(service, [(job_id(1), 7)], clock=clock)

    assert client.times == [0.0, 2.0, 6.0]
    assert results == [VerifyResult(job_id(1), 7, VerifyVerdict.ENDED, "ABORTED", 3)]
    assert stats.ended == 1


async def test_the_first_check_may_wait() -> None:
    clock = FakeClock()
    service = FakeService([fake_job(1, 7, state="ABORTED")])
    settings = VerifySettings(first_check_after=3.0)

    results, _, client = await verify(service, [(job_id(1), 7)], clock=clock, settings=settings)

    assert client.times == [3.0]
    assert results[0].verdict is VerifyVerdict.ENDED


async def test_a_zero_timeout_checks_once() -> None:
    clock = FakeClock()
    service = FakeService([fake_job(1, 7)])

    results, _, client = await verify(
        service, [(job_id(1), 7)], clock=clock, settings=VerifySettings(timeout=0.0)
    )

    assert client.times == [0.0]
    assert results[0].verdict is VerifyVerdict.RUNNING


# --- the cheapest calls --------------------------------------------------------------------


async def test_one_list_call_checks_all_of_a_jobs_builds() -> None:
    clock = FakeClock()
    ends = {(job_id(1), 1): 1.0, (job_id(1), 2): 1.0, (job_id(1), 3): 3.0}
    service = Stopping([fake_job(1, 1, 2, 3)], clock, ends)

    results, stats, client = await verify(
        service, [(job_id(1), 1), (job_id(1), 2), (job_id(1), 3)], clock=clock
    )

    assert [request.api for request in client.requests] == [LIST, LIST, LIST]
    assert client.times == [0.0, 2.0, 6.0]
    assert {(r.build_no, r.verdict, r.checks) for r in results} == {
        (1, VerifyVerdict.ENDED, 2),
        (2, VerifyVerdict.ENDED, 2),
        (3, VerifyVerdict.ENDED, 3),
    }
    assert stats.calls == 3


async def test_each_job_is_listed_and_polled_on_its_own() -> None:
    clock = FakeClock()
    service = Stopping([fake_job(1, 1), fake_job(2, 5)], clock, {(job_id(1), 1): 1.0})

    results, _, client = await verify(
        service, [(job_id(1), 1), (job_id(2), 5)], clock=clock, settings=VerifySettings(
            poll_jitter=0.0, timeout=10.0
        )
    )  # fmt: skip

    by_job: dict[str, list[float]] = {}
    for request, at in zip(client.requests, client.times, strict=True):
        by_job.setdefault(request.path[2], []).append(at)
    assert by_job == {job_id(1): [0.0, 2.0], job_id(2): [0.0, 2.0, 6.0, 10.0]}
    assert [(r.job_id, r.verdict) for r in results] == [
        (job_id(1), VerifyVerdict.ENDED),
        (job_id(2), VerifyVerdict.RUNNING),
    ]


async def test_the_window_is_asked_around_known_start_times() -> None:
    clock = FakeClock()
    service = FakeService([fake_job(1, 1, 2, state="ABORTED")])
    targets = [
        VerifyTarget(job_id(1), 1, NOW - 5 * HOUR),
        DiscoveredBuild(job_id(1), 2, "", "RUNNING", NOW - HOUR, "", "", "", ""),
    ]

    _, _, client = await verify(service, targets, clock=clock)

    (request,) = client.requests
    assert parse_window(request) == (NOW - 29 * HOUR, NOW + 23 * HOUR)


async def test_the_window_of_builds_of_unknown_start_is_the_lookback() -> None:
    clock = FakeClock()
    service = FakeService([fake_job(1, 1, state="ABORTED")])

    _, _, client = await verify(service, [(job_id(1), 1)], clock=clock)

    (request,) = client.requests
    assert parse_window(request) == (NOW - timedelta(days=8), NOW + timedelta(days=1))


async def test_a_build_missing_from_the_list_is_asked_alone_from_then_on() -> None:
    clock = FakeClock()
    job = fake_job(1, 1)
    service = FakeService([job])
    hidden = FakeBuild(2, "ABORTING", NOW - 10 * 24 * HOUR)  # older than the lookback
    job.builds.insert(0, hidden)

    results, _, client = await verify(
        service,
        [(job_id(1), 1), (job_id(1), 2)],
        clock=clock,
        settings=VerifySettings(poll_jitter=0.0, timeout=2.0),
    )

    assert [request.api for request in client.requests] == [LIST, DETAILS, LIST, DETAILS]
    assert [r.verdict for r in results] == [VerifyVerdict.RUNNING, VerifyVerdict.RUNNING]


async def test_paging_stops_once_asking_the_missing_builds_alone_is_cheaper() -> None:
    clock = FakeClock()
    job = fake_job(1, *range(1, 251))  # 250 builds in the window, newest first
    service = FakeService([job])

    results, _, client = await verify(
        service, [(job_id(1), 3)], clock=clock, settings=VerifySettings(timeout=0.0)
    )

    assert [request.api for request in client.requests] == [LIST, DETAILS]
    assert results[0].status == "building"  # show_build_details' word for it


async def test_when_no_record_list_is_served_every_build_is_asked_alone() -> None:
    clock = FakeClock()
    service = FakeService([fake_job(1, 1, 2, state="ABORTED")])
    service.not_served |= {LIST, ReadApi.LIST_BUILD_INFO_RECORD, ReadApi.SHOW_LIST_HISTORY}
    settings = VerifySettings(reads=ReadSettings(concurrency=1))

    results, _, client = await verify(
        service, [(job_id(1), 1), (job_id(1), 2)], clock=clock, settings=settings
    )

    assert [request.api for request in client.requests] == [
        LIST,
        ReadApi.LIST_BUILD_INFO_RECORD,
        ReadApi.SHOW_LIST_HISTORY,
        DETAILS,
        DETAILS,
    ]
    assert [r.verdict for r in results] == [VerifyVerdict.ENDED, VerifyVerdict.ENDED]


async def test_a_job_polled_after_the_record_lists_went_unserved_is_asked_build_by_build() -> None:
    clock = FakeClock()
    service = Stopping([fake_job(1, 1), fake_job(2, 1)], clock, {(job_id(2), 1): 1.0})
    lists = (LIST, ReadApi.LIST_BUILD_INFO_RECORD, ReadApi.SHOW_LIST_HISTORY)
    served = [2]  # the record lists answer twice (each job's first check), then no more

    def handler(request: Any) -> Any:
        if request.api in lists:
            if not served[0]:
                return URL_NOT_FOUND
            served[0] -= 1
        return service(request)

    draws = iter([0.9] + [0.0] * 20)  # job 1 polls again at 1.55 s, job 2 at 2 s
    settings = VerifySettings(timeout=4.0, reads=ReadSettings(concurrency=1))

    results, _, client = await verify(
        handler, [(job_id(1), 1), (job_id(2), 1)], clock=clock, settings=settings,
        draw=lambda: next(draws),
    )  # fmt: skip

    second_job = [r.api for r in client.requests if r.path[2] == job_id(2)]
    assert second_job == [LIST, DETAILS]  # job 1 found the lists gone: job 2 does not ask them
    assert {r.job_id: r.verdict for r in results}[job_id(2)] is VerifyVerdict.ENDED


async def test_one_build_apis_fall_back_and_the_one_that_answers_is_kept() -> None:
    clock = FakeClock()
    service = FakeService([fake_job(1, 1, 2, state="ABORTED")])
    service.not_served |= {LIST, ReadApi.LIST_BUILD_INFO_RECORD, ReadApi.SHOW_LIST_HISTORY}
    service.not_served |= {DETAILS, ReadApi.SHOW_JOB_BUILD_RECORD_DETAIL}
    settings = VerifySettings(reads=ReadSettings(concurrency=1))

    results, _, client = await verify(
        service, [(job_id(1), 1), (job_id(1), 2)], clock=clock, settings=settings
    )

    asked = [request.api for request in client.requests][3:]
    assert asked == [
        DETAILS,
        ReadApi.SHOW_JOB_BUILD_RECORD_DETAIL,
        ReadApi.SHOW_RECORD_DETAIL,
        ReadApi.SHOW_RECORD_DETAIL,
    ]
    assert [(r.verdict, r.status) for r in results] == [(VerifyVerdict.ENDED, "ABORTED")] * 2


# --- verdicts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "status", "code"),
    [(JOB_NOT_FOUND_404, 404, "CB.00060404"), (FORBIDDEN, 403, "CB.00060403"),
     (JOB_NOT_FOUND_422, 422, "DEVCB.00031006")],
)  # fmt: skip
async def test_a_job_that_cannot_be_read_is_unknown_at_once(
    failure: Any, status: int, code: str
) -> None:
    clock = FakeClock()
    service = FakeService([fake_job(1, 1, failure=failure)])

    (result,), _, client = await verify(service, [(job_id(1), 1)], clock=clock)

    assert len(client.requests) == 1
    assert (result.verdict, result.http_status, result.error_code) == (
        VerifyVerdict.UNKNOWN,
        status,
        code,
    )
    assert result.checks == 0
    assert result.detail.startswith(f"HTTP {status} {code}")


async def test_a_build_the_service_does_not_know_is_unknown() -> None:
    clock = FakeClock()
    service = FakeService([fake_job(1, 1)])

    (result,), _, client = await verify(service, [(job_id(1), 99)], clock=clock)

    assert [request.api for request in client.requests] == [LIST, DETAILS]
    assert result.verdict is VerifyVerdict.UNKNOWN
    assert result.error_code == "CB.00060405"


async def test_errors_until_the_timeout_leave_the_target_unknown() -> None:
    clock = FakeClock()
    settings = VerifySettings(poll_jitter=0.0, timeout=6.0, reads=ReadSettings(retry=POLICY))

    (result,), stats, client = await verify(
        lambda request: SERVER_ERROR, [(job_id(1), 1)], clock=clock, settings=settings
    )

    assert result.verdict is VerifyVerdict.UNKNOWN
    assert result.detail == "HTTP 500 CB.00060101: gave up after 2 failed attempts"
    assert result.http_status == 500
    # each check is two attempts 0.5 s apart; the timeout counts from the end of the first
    assert client.times == [0.0, 0.5, 2.5, 3.0, 6.5, 7.0]
    assert stats.unknown == 1


async def test_a_build_seen_running_then_not_checkable_is_unknown_naming_its_last_word() -> None:
    clock = FakeClock()
    service = FakeService([fake_job(1, 1, state="ABORTING")])
    answered = [False]

    def handler(request: Any) -> Any:  # the first call is answered, every later one fails
        if answered[0]:
            return SERVER_ERROR
        answered[0] = True
        return service(request)

    settings = VerifySettings(poll_jitter=0.0, timeout=2.0, reads=ReadSettings(retry=POLICY))
    (result,), _, _ = await verify(handler, [(job_id(1), 1)], clock=clock, settings=settings)

    assert result.verdict is VerifyVerdict.UNKNOWN
    assert result.detail == (
        "HTTP 500 CB.00060101: gave up after 2 failed attempts (the last answer said 'ABORTING')"
    )


async def test_a_check_that_fails_once_is_asked_again_at_the_next_poll() -> None:
    clock = FakeClock()
    service = FakeService([fake_job(1, 1, state="ABORTED")])
    service.script[LIST] = [SERVER_ERROR, SERVER_ERROR]

    (result,), _, _ = await verify(service, [(job_id(1), 1)], clock=clock)

    assert (result.verdict, result.checks) == (VerifyVerdict.ENDED, 1)


async def test_a_streak_of_401s_ends_verification_and_every_target_gets_a_verdict() -> None:
    clock = FakeClock()
    client = FakeReadClient(lambda request: UNAUTHORIZED, clock=clock)
    targets = [(job_id(n), 1) for n in range(1, 9)]
    verification = Verification(
        client,
        targets,
        settings=VerifySettings(reads=ReadSettings(auth_breaker=3, concurrency=1)),
        pacer=Pacer(rate=1000, clock=clock),
        wall=lambda: NOW,
    )

    async with clock.autojump():
        with pytest.raises(CredentialsRejected):
            async with verification as verdicts:
                results = [result async for result in verdicts]

    assert len(client.requests) == 3
    assert len(results) == 8
    assert {result.verdict for result in results} == {VerifyVerdict.UNKNOWN}
    assert verification.stats.finished


async def test_targets_are_deduped_and_may_be_given_in_any_form() -> None:
    clock = FakeClock()
    service = FakeService([fake_job(1, 1, 2, 3, state="ABORTED")])
    targets = [Target(job_id(1), 1), (job_id(1), 1), VerifyTarget(job_id(1), 2), (job_id(1), "3")]

    results, stats, _ = await verify(service, targets, clock=clock)

    assert sorted(r.build_no for r in results) == [1, 2, 3]
    assert stats.targets == 3


@pytest.mark.parametrize(
    ("target", "message"),
    [(("nope", 1), "target 0: job_id"), (("f" * 32, 0), "target 0: build_no"),
     ("x", "target 0: expected"), (VerifyTarget("f" * 32, 1, datetime(2026, 1, 1)), "aware")],
)  # fmt: skip
def test_a_wrong_target_is_refused_before_anything_is_sent(target: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Verification(FakeReadClient(lambda request: None), [target])


async def test_leaving_the_block_early_stops_verification() -> None:
    clock = FakeClock()
    service = FakeService([fake_job(n, 1, state="ABORTED" if n == 1 else "RUNNING")
                           for n in range(1, 4)])  # fmt: skip
    client = FakeReadClient(service, clock=clock)
    verification = Verification(
        client,
        [(job_id(n), 1) for n in range(1, 4)],
        pacer=Pacer(rate=1000, clock=clock),
        wall=lambda: NOW,
    )

    async with clock.autojump(), verification as verdicts:
        async for _ in verdicts:
            break

    assert not verification.stats.finished
    assert len(client.requests) <= 6
