"""One read call driven to an answer (bulkstop.reader), on the fake clock with a fake client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from fakeclock import FakeClock
from fakereads import (
    FORBIDDEN,
    JOB_NOT_FOUND_404,
    JOB_NOT_FOUND_422,
    SERVER_ERROR,
    THROTTLED,
    TOKEN_EXPIRED,
    UNAUTHORIZED,
    URL_NOT_FOUND,
    FakeReadClient,
)

from bulkstop.errors import CredentialsRejected
from bulkstop.models import Reply, ReplyKind, TransportFailure
from bulkstop.pacing import Pacer
from bulkstop.reader import (
    ApiChain,
    Reader,
    ReadFailureReason,
    ReadSettings,
    ReadStats,
    read_decision,
)
from bulkstop.reads import (
    BUILD_APIS,
    BuildState,
    ReadApi,
    build_parser,
    build_request,
    parse_build_details,
)
from bulkstop.retry import RetryPolicy, Verdict

pytestmark = pytest.mark.anyio

JOB = "f9d6c8466d614a9788e9a0acf6c15f46"
REQUEST = build_request(ReadApi.SHOW_BUILD_DETAILS, JOB, 20)
BUILDING = {"result": {"building": True}, "status": "success"}
#: no jitter, so that waits are exact: 1, 2, 4 ... seconds
POLICY = RetryPolicy(initial_backoff=1.0, multiplier=2.0, jitter=False, max_attempts=4)


def answers(*sequence: Any) -> Iterator[Any]:
    """The handler answers in turn; the last one for ever after."""
    items = list(sequence)
    while True:
        yield items.pop(0) if len(items) > 1 else items[0]


def make(
    *sequence: Any,
    clock: FakeClock,
    settings: ReadSettings | None = None,
    rate: float = 100.0,
    **client_options: Any,
) -> tuple[Reader, FakeReadClient, list[CredentialsRejected]]:
    stream = answers(*sequence)
    client = FakeReadClient(lambda request: next(stream), clock=clock, **client_options)
    aborts: list[CredentialsRejected] = []
    reader = Reader(
        client,
        Pacer(rate=rate, clock=clock),
        settings or ReadSettings(retry=POLICY, seed=1),
        ReadStats(),
        on_abort=aborts.append,
    )
    return reader, client, aborts


# --- the decision --------------------------------------------------------------------------


def error(status: int | None, code: str = "", kind: ReplyKind = ReplyKind.HTTP_ERROR) -> Reply:
    return Reply(kind=kind, http_status=status, error_code=code)


@pytest.mark.parametrize(
    ("reply", "decision"),
    [
        (error(404, "CB.00060214"), (Verdict.FINAL, ReadFailureReason.NOT_SERVED)),
        (error(404, ""), (Verdict.FINAL, ReadFailureReason.NOT_SERVED)),
        (error(200, "CB.00060214"), (Verdict.FINAL, ReadFailureReason.NOT_SERVED)),
        (error(404, "CB.00060404"), (Verdict.FINAL, ReadFailureReason.NOT_FOUND)),
        (error(422, "DEVCB.00031006"), (Verdict.FINAL, ReadFailureReason.NOT_FOUND)),
        (error(200, "DEVCB.00031006"), (Verdict.FINAL, ReadFailureReason.NOT_FOUND)),
        (error(422, "DEVCB.00039999"), (Verdict.FINAL, ReadFailureReason.REJECTED)),
        (error(403, "CB.00060403"), (Verdict.FINAL, ReadFailureReason.FORBIDDEN)),
        (error(401, "APIG.0301"), (Verdict.FINAL, ReadFailureReason.UNAUTHORIZED)),
        (error(401, "APIG.0307"), (Verdict.STALE_CREDENTIAL, None)),
        (error(400, "CB.00060200"), (Verdict.FINAL, ReadFailureReason.REJECTED)),
        (error(200, "CB.00060200"), (Verdict.FINAL, ReadFailureReason.REJECTED)),
        (error(200, "CB.00060101"), (Verdict.TRANSIENT, None)),
        (error(200, "CB.00060100"), (Verdict.TRANSIENT, None)),
        (error(500, "CB.00060101"), (Verdict.TRANSIENT, None)),
        (error(200, "CB.00060211"), (Verdict.THROTTLED, None)),
        (error(429, "APIG.0308"), (Verdict.THROTTLED, None)),
        (error(None, kind=ReplyKind.TIMEOUT), (Verdict.TRANSIENT, None)),
        (error(200, kind=ReplyKind.BAD_BODY), (Verdict.TRANSIENT, None)),
        (
            Reply(kind=ReplyKind.CONNECTION, transport_failure=TransportFailure.CERTIFICATE),
            (Verdict.FINAL, ReadFailureReason.FAILED),
        ),
    ],
)
def test_read_decision(reply: Reply, decision: tuple[Verdict, ReadFailureReason | None]) -> None:
    assert read_decision(reply) == decision


# --- one call ------------------------------------------------------------------------------


async def test_a_value_comes_back_after_one_call() -> None:
    clock = FakeClock()
    reader, _, _ = make(BUILDING, clock=clock)

    outcome = await reader.call(REQUEST, parse_build_details)

    assert outcome.value == BuildState(False, "building")
    assert outcome.attempts == 1
    assert reader.stats.calls == 1


async def test_transient_failures_are_retried_after_exponential_backoff() -> None:
    clock = FakeClock()
    reader, client, _ = make(SERVER_ERROR, SERVER_ERROR, SERVER_ERROR, BUILDING, clock=clock)

    async with clock.autojump():
        outcome = await reader.call(REQUEST, parse_build_details)

    assert outcome.value is not None
    assert client.times == [0.0, 1.0, 3.0, 7.0]
    assert (reader.stats.calls, reader.stats.retries) == (4, 3)


async def test_transient_failures_end_the_call_after_max_attempts() -> None:
    clock = FakeClock()
    reader, client, _ = make(SERVER_ERROR, clock=clock)

    async with clock.autojump():
        outcome = await reader.call(REQUEST, parse_build_details)

    assert outcome.failure is not None
    assert outcome.failure.reason is ReadFailureReason.FAILED
    assert outcome.failure.message == "HTTP 500 CB.00060101: gave up after 4 failed attempts"
    assert len(client.requests) == POLICY.max_attempts


async def test_a_throttled_read_pauses_the_read_pacer_and_cuts_its_rate() -> None:
    clock = FakeClock()
    reader, client, _ = make(THROTTLED, BUILDING, clock=clock, rate=10.0)

    async with clock.autojump():
        outcome = await reader.call(REQUEST, parse_build_details)

    assert outcome.value is not None
    assert reader.stats.throttled == 1
    assert reader.pacer.throttled == 1
    assert reader.pacer.rate < 10.0
    # the retry waited for the pause (pause_base 0.1 s after the first throttled answer)
    assert client.times == [0.0, 0.1]


async def test_throttling_ends_the_call_after_max_throttled_attempts() -> None:
    clock = FakeClock()
    policy = RetryPolicy(max_throttled_attempts=3)
    reader, client, _ = make(THROTTLED, clock=clock, settings=ReadSettings(retry=policy))

    async with clock.autojump():
        outcome = await reader.call(REQUEST, parse_build_details)

    assert outcome.failure is not None
    assert outcome.failure.reason is ReadFailureReason.FAILED
    assert "still throttled after 3 attempts" in outcome.failure.message
    assert len(client.requests) == 3


async def test_an_expired_token_is_refreshed_and_the_call_retried() -> None:
    clock = FakeClock()
    reader, client, _ = make(TOKEN_EXPIRED, BUILDING, clock=clock)

    async with clock.autojump():
        outcome = await reader.call(REQUEST, parse_build_details)

    assert outcome.value is not None
    assert client.refreshes == [0]
    assert reader.breaker.streak == 0


async def test_an_expired_token_that_cannot_be_refreshed_is_unauthorized() -> None:
    clock = FakeClock()
    reader, client, _ = make(TOKEN_EXPIRED, clock=clock, refresh=False)

    outcome = await reader.call(REQUEST, parse_build_details)

    assert outcome.failure is not None
    assert outcome.failure.reason is ReadFailureReason.UNAUTHORIZED
    assert len(client.requests) == 1


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (JOB_NOT_FOUND_404, ReadFailureReason.NOT_FOUND),
        (JOB_NOT_FOUND_422, ReadFailureReason.NOT_FOUND),
        (FORBIDDEN, ReadFailureReason.FORBIDDEN),
        (URL_NOT_FOUND, ReadFailureReason.NOT_SERVED),
        ({"result": {}}, ReadFailureReason.BAD_ANSWER),
    ],
)
async def test_permanent_answers_are_not_retried(answer: Any, reason: ReadFailureReason) -> None:
    clock = FakeClock()
    reader, client, _ = make(answer, clock=clock)

    outcome = await reader.call(REQUEST, parse_build_details)

    assert outcome.failure is not None
    assert outcome.failure.reason is reason
    assert len(client.requests) == 1


async def test_a_failure_keeps_the_servers_status_code_and_message() -> None:
    clock = FakeClock()
    reader, _, _ = make(JOB_NOT_FOUND_422, clock=clock)

    outcome = await reader.call(REQUEST, parse_build_details)

    assert outcome.failure is not None
    assert outcome.failure.http_status == 422
    assert outcome.failure.error_code == "DEVCB.00031006"
    assert outcome.failure.message == "HTTP 422 DEVCB.00031006: job not found"


async def test_a_deadline_ends_retries_that_could_not_start_in_time() -> None:
    clock = FakeClock()
    policy = RetryPolicy(initial_backoff=1.0, jitter=False, max_attempts=10, deadline=2.5)
    reader, client, _ = make(SERVER_ERROR, clock=clock, settings=ReadSettings(retry=policy))

    async with clock.autojump():
        outcome = await reader.call(REQUEST, parse_build_details)

    assert outcome.failure is not None
    assert "deadline of 2.5 s" in outcome.failure.message
    assert client.times == [0.0, 1.0]  # the next one (at 3.0) would start past the deadline


# --- the auth breaker ----------------------------------------------------------------------


async def test_a_streak_of_401s_trips_the_breaker_once_and_stops_all_calls() -> None:
    clock = FakeClock()
    reader, client, aborts = make(UNAUTHORIZED, clock=clock, settings=ReadSettings(auth_breaker=3))

    async with clock.autojump():
        outcomes = [await reader.call(REQUEST, parse_build_details) for _ in range(5)]

    assert len(client.requests) == 3
    assert len(aborts) == 1
    assert reader.abort_error is aborts[0]
    reasons = [outcome.failure.reason for outcome in outcomes if outcome.failure]
    assert reasons == [ReadFailureReason.UNAUTHORIZED] * 3 + [ReadFailureReason.ABORTED] * 2


async def test_403s_are_the_jobs_problem_and_never_trip_the_breaker() -> None:
    clock = FakeClock()
    reader, client, aborts = make(FORBIDDEN, clock=clock, settings=ReadSettings(auth_breaker=3))

    async with clock.autojump():
        for _ in range(6):
            await reader.call(REQUEST, parse_build_details)

    assert len(client.requests) == 6
    assert aborts == []


async def test_an_answer_between_401s_closes_the_streak() -> None:
    clock = FakeClock()
    sequence = [UNAUTHORIZED, UNAUTHORIZED, BUILDING, UNAUTHORIZED, UNAUTHORIZED]
    reader, _, aborts = make(*sequence, clock=clock, settings=ReadSettings(auth_breaker=3))

    async with clock.autojump():
        for _ in sequence:
            await reader.call(REQUEST, parse_build_details)

    assert aborts == []


# --- concurrency ---------------------------------------------------------------------------


async def test_no_more_than_concurrency_calls_are_in_flight() -> None:
    clock = FakeClock()
    reader, client, _ = make(
        BUILDING, clock=clock, settings=ReadSettings(concurrency=3), rate=1000.0, latency=1.0
    )

    async with clock.autojump(), anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(reader.call, REQUEST, parse_build_details)

    assert client.most_in_flight == 3
    assert len(client.requests) == 10


async def test_calls_start_no_faster_than_the_read_rate() -> None:
    clock = FakeClock()
    reader, client, _ = make(BUILDING, clock=clock, settings=ReadSettings(), rate=2.0)

    async with clock.autojump(), anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(reader.call, REQUEST, parse_build_details)

    assert client.times == [0.0, 0.5, 1.0, 1.5]


# --- the fallback chain --------------------------------------------------------------------


def by_api(answers: dict[ReadApi, Any]) -> Any:
    return lambda request: answers[request.api]


async def test_the_next_api_is_asked_when_one_is_not_served_and_then_remembered() -> None:
    clock = FakeClock()
    record_info = {"status": "success", "result": {"status": "ABORTED"}}
    client = FakeReadClient(
        by_api(
            {
                ReadApi.SHOW_BUILD_DETAILS: URL_NOT_FOUND,
                ReadApi.SHOW_JOB_BUILD_RECORD_DETAIL: URL_NOT_FOUND,
                ReadApi.SHOW_RECORD_DETAIL: record_info,
                ReadApi.SHOW_RECORD_INFO: record_info,
            }
        ),
        clock=clock,
    )
    reader = Reader(client, Pacer(rate=100, clock=clock), ReadSettings(), ReadStats())
    chain = ApiChain(BUILD_APIS)

    async with clock.autojump():
        first = await reader.first_answer(
            chain, lambda api: build_request(api, JOB, 1), build_parser
        )
        second = await reader.first_answer(
            chain, lambda api: build_request(api, JOB, 2), build_parser
        )

    assert first.value == second.value == BuildState(True, "ABORTED")
    assert first.api is second.api is ReadApi.SHOW_RECORD_DETAIL
    assert [request.api for request in client.requests] == [
        ReadApi.SHOW_BUILD_DETAILS,
        ReadApi.SHOW_JOB_BUILD_RECORD_DETAIL,
        ReadApi.SHOW_RECORD_DETAIL,
        ReadApi.SHOW_RECORD_DETAIL,
    ]
    assert chain.api is ReadApi.SHOW_RECORD_DETAIL


async def test_an_api_that_answers_an_error_is_served_and_kept() -> None:
    clock = FakeClock()
    client = FakeReadClient(lambda request: FORBIDDEN, clock=clock)
    reader = Reader(client, Pacer(rate=100, clock=clock), ReadSettings(), ReadStats())
    chain = ApiChain(BUILD_APIS)

    outcome = await reader.first_answer(chain, lambda api: build_request(api, JOB, 1), build_parser)

    assert outcome.failure is not None
    assert outcome.failure.reason is ReadFailureReason.FORBIDDEN
    assert len(client.requests) == 1
    assert chain.api is ReadApi.SHOW_BUILD_DETAILS


async def test_when_no_api_is_served_the_failure_names_them_all() -> None:
    clock = FakeClock()
    client = FakeReadClient(lambda request: URL_NOT_FOUND, clock=clock)
    reader = Reader(client, Pacer(rate=100, clock=clock), ReadSettings(), ReadStats())
    chain = ApiChain(BUILD_APIS)

    async with clock.autojump():
        outcome = await reader.first_answer(
            chain, lambda api: build_request(api, JOB, 1), build_parser
        )

    assert outcome.failure is not None
    assert outcome.failure.reason is ReadFailureReason.NOT_SERVED
    assert outcome.failure.message == (
        "not served by this endpoint: show_build_details, show_job_build_record_detail, "
        "show_record_detail, show_record_info"
    )
    assert chain.api is ReadApi.SHOW_BUILD_DETAILS  # nothing answered: nothing remembered


def test_read_settings_refuse_what_the_apis_cannot_do() -> None:
    with pytest.raises(ValueError, match="page_size"):
        ReadSettings(page_size=101)
    with pytest.raises(ValueError, match="concurrency"):
        ReadSettings(concurrency=0)
