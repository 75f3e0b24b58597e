"""The engine against a scripted fake client on a fake clock: exact behaviour, no network."""

from __future__ import annotations

import contextlib
import os
import threading
import tracemalloc
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field

import anyio
import pytest
from fakeclock import FakeClock

from bulkstop import (
    CredentialsRejected,
    FailureThreshold,
    InputRow,
    Outcome,
    Pacer,
    Reply,
    ReplyKind,
    Result,
    RetryPolicy,
    RunAborted,
    RunSettings,
    ServerFailing,
    Stopper,
    SystematicFailure,
    SystematicFault,
    Target,
    TransportFailure,
)
from bulkstop.models import TargetKey
from bulkstop.sources import TargetSource, open_source

pytestmark = pytest.mark.anyio

JOB = "f9d6c8466d614a9788e9a0acf6c15f46"
OK = Reply(kind=ReplyKind.STOPPED, http_status=200, request_id="r-ok")
NOT = Reply(kind=ReplyKind.NOT_STOPPED, http_status=200)
E500 = Reply(
    kind=ReplyKind.HTTP_ERROR, http_status=500, error_code="CB.00060101", maybe_applied=True
)
T429 = Reply(kind=ReplyKind.HTTP_ERROR, http_status=429, error_code="APIG.0308")
#: an unknown job: a 404 about the target (the simulator's code for it)
E404 = Reply(kind=ReplyKind.HTTP_ERROR, http_status=404, error_code="CB.00060404")
E401 = Reply(kind=ReplyKind.HTTP_ERROR, http_status=401, error_code="APIG.0301")
STALE = Reply(kind=ReplyKind.HTTP_ERROR, http_status=401, error_code="APIG.0307")
#: answers that say the call itself is wrong, whatever the target
URL_NOT_FOUND = Reply(kind=ReplyKind.HTTP_ERROR, http_status=404, error_code="CB.00060214")
GATEWAY_404 = Reply(kind=ReplyKind.HTTP_ERROR, http_status=404, error_msg="HTTP 404 with text/html")
NO_SUCH_HOST = Reply(
    kind=ReplyKind.CONNECTION,
    error_msg="cannot resolve host gw.invalid",
    transport_failure=TransportFailure.DNS,
)
REFUSED = Reply(
    kind=ReplyKind.CONNECTION,
    error_msg="connection refused by 127.0.0.1:9",
    transport_failure=TransportFailure.REFUSED,
)
UNTRUSTED = Reply(
    kind=ReplyKind.CONNECTION,
    error_msg="certificate of 127.0.0.1:8443 not trusted: self-signed certificate",
    transport_failure=TransportFailure.CERTIFICATE,
)

Script = Callable[[Target, int], Reply]


class FakeClient:
    """Answers from a script ``(target, n-th call for it) -> Reply`` after ``latency``."""

    def __init__(self, clock: FakeClock, script: Script, latency: float = 0.01) -> None:
        self.clock = clock
        self.script = script
        self.latency = latency
        self.calls: list[tuple[float, int]] = []
        self.per_target: Counter[int] = Counter()
        self.refreshes: list[int] = []
        self.refresh_ok = True

    async def stop(self, target: Target) -> Reply:
        self.calls.append((self.clock.now(), target.build_no))
        self.per_target[target.build_no] += 1
        await self.clock.sleep(self.latency)
        return self.script(target, self.per_target[target.build_no])

    async def refresh_credentials(self, generation: int) -> bool:
        self.refreshes.append(generation)
        return self.refresh_ok


def always(reply: Reply) -> Script:
    return lambda target, n: reply


def targets(n: int) -> list[tuple[str, int]]:
    return [(JOB, i) for i in range(1, n + 1)]


async def run_all(
    client: FakeClient,
    rows: object,
    *,
    rate: float = 1000.0,
    settings: RunSettings | None = None,
    **run_kwargs: object,
) -> list[Result]:
    clock = client.clock
    stopper = Stopper(
        client,
        pacer=Pacer(rate=rate, clock=clock),
        settings=settings or RunSettings(concurrency=4, seed=7),
        clock=clock,
    )
    out: list[Result] = []
    async with clock.autojump():
        async with stopper.run(rows, **run_kwargs) as results:  # type: ignore[arg-type]
            async for result in results:
                out.append(result)
    return out


async def test_results_in_batches_are_the_results_one_by_one() -> None:
    # Results.batch() gives, a batch at a time, what ``async for`` gives one by one: every
    # row's result once, and an empty batch at the end.
    rows = [(JOB, n) for n in range(1, 41)] + [(JOB, 3), ("bad id", 1)]
    clock = FakeClock()
    client = FakeClient(
        clock, lambda target, attempt: E500 if target.build_no == 7 and attempt == 1 else OK
    )
    stopper = Stopper(
        client,
        pacer=Pacer(rate=1000.0, clock=clock),
        settings=RunSettings(concurrency=4, seed=7),
        clock=clock,
    )
    batches: list[list[Result]] = []
    async with clock.autojump():
        async with stopper.run(rows) as results:
            while batch := await results.batch():
                batches.append(batch)
            assert await results.batch() == []  # the end stays the end
    assert all(batches)
    assert len(batches) < len(rows)  # some came together
    out = [result for batch in batches for result in batch]
    assert sorted(result.line for result in out) == list(range(1, len(rows) + 1))
    outcomes = Counter(result.outcome for result in out)
    assert outcomes == {Outcome.STOPPED: 40, Outcome.DUPLICATE: 1, Outcome.INVALID: 1}
    assert next(result for result in out if result.build_no == "7").attempts == 2


@dataclass
class FakeCarried:
    """A resume's carried records, as the engine asks them."""

    records: dict[TargetKey, Result] = field(default_factory=dict)
    maybe: set[TargetKey] = field(default_factory=set)
    asked: list[tuple[TargetKey, int]] = field(default_factory=list)

    def get(self, key: TargetKey, line: int) -> Result | None:
        self.asked.append((key, line))
        return self.records.get(key)

    def maybe_applied(self, key: TargetKey) -> bool:
        return key in self.maybe

    def sighted(self, key: TargetKey) -> bool | None:
        return None  # the engine's own dedupe decides


def by_build(results: list[Result]) -> dict[str, Result]:
    return {r.build_no: r for r in results if r.outcome not in (Outcome.INVALID, Outcome.DUPLICATE)}


async def test_every_row_gets_exactly_one_result() -> None:
    client = FakeClient(FakeClock(), always(OK))
    rows = [*targets(20), (JOB, 3), ("BAD", 1), (JOB, "x")]
    results = await run_all(client, rows)
    assert sorted(r.line for r in results) == list(range(1, 24))
    outcomes = Counter(r.outcome for r in results)
    assert outcomes == {Outcome.STOPPED: 20, Outcome.DUPLICATE: 1, Outcome.INVALID: 2}
    assert len(client.calls) == 20  # duplicates and invalid rows are never sent


async def test_invalid_row_names_field() -> None:
    results = await run_all(FakeClient(FakeClock(), always(OK)), [(JOB, 0)])
    assert results[0].outcome is Outcome.INVALID
    assert results[0].detail == "build_no: must be an integer ≥ 1, got 0"


@pytest.mark.parametrize(
    "row",
    [(JOB, 2**31), (JOB, "2147483648"), InputRow.from_values(1, JOB, "2147483648")],
    ids=["int", "digits", "input-row"],
)
async def test_build_no_beyond_int32_is_invalid_and_never_sent(row: object) -> None:
    client = FakeClient(FakeClock(), always(OK))
    results = await run_all(client, [row])
    assert [(r.outcome, r.detail) for r in results] == [
        (Outcome.INVALID, "build_no: must be at most 2147483647, got 2147483648")
    ]
    assert client.calls == []


async def test_transient_failures_retry_with_exact_backoff() -> None:
    clock = FakeClock()
    client = FakeClient(clock, lambda t, n: E500 if n < 3 else OK)
    policy = RetryPolicy(jitter=False, initial_backoff=0.5)
    results = await run_all(client, targets(1), settings=RunSettings(retry=policy))
    assert [t for t, _ in client.calls] == pytest.approx([0.0, 0.51, 1.52])
    assert results[0].outcome is Outcome.STOPPED
    assert results[0].attempts == 3


async def test_permanent_errors_are_not_retried() -> None:
    client = FakeClient(FakeClock(), always(E404))
    results = await run_all(client, targets(3))
    assert {r.outcome for r in results} == {Outcome.NOT_FOUND}
    assert len(client.calls) == 3


async def test_transient_until_attempts_run_out_is_failed() -> None:
    client = FakeClient(FakeClock(), always(E500))
    policy = RetryPolicy(max_attempts=3, jitter=False)
    results = await run_all(client, targets(1), settings=RunSettings(retry=policy))
    assert results[0].outcome is Outcome.FAILED
    assert results[0].attempts == 3
    assert results[0].detail.startswith("gave up after 3 failed attempts")
    assert results[0].error_code == "CB.00060101"


async def test_not_stopped_after_ambiguous_attempt_is_uncertain() -> None:
    client = FakeClient(FakeClock(), lambda t, n: E500 if n == 1 else NOT)
    results = await run_all(client, targets(1))
    assert results[0].outcome is Outcome.UNCERTAIN
    assert "attempt 1 (HTTP 500 CB.00060101)" in results[0].detail


async def test_not_stopped_after_unambiguous_throttle_stays_not_stopped() -> None:
    client = FakeClient(FakeClock(), lambda t, n: T429 if n == 1 else NOT)
    results = await run_all(client, targets(1))
    assert results[0].outcome is Outcome.NOT_STOPPED


async def test_maybe_applied_from_an_earlier_run_makes_not_stopped_uncertain() -> None:
    client = FakeClient(FakeClock(), always(NOT))
    results = await run_all(client, targets(2), carried=FakeCarried(maybe={TargetKey(JOB, 2)}))
    assert by_build(results)["1"].outcome is Outcome.NOT_STOPPED
    assert by_build(results)["2"].outcome is Outcome.UNCERTAIN


async def test_throttling_pauses_and_does_not_consume_transient_attempts() -> None:
    client = FakeClient(FakeClock(), lambda t, n: T429 if n <= 6 else OK)
    policy = RetryPolicy(max_attempts=2)
    results = await run_all(client, targets(1), settings=RunSettings(retry=policy))
    assert results[0].outcome is Outcome.STOPPED
    assert results[0].attempts == 7


async def test_a_spent_retry_budget_makes_retries_wait_for_time_never_fail() -> None:
    """Four workers whose retries all find the budget empty: each waits for the budget to be
    refilled by time alone (one token a second), and all four still get their retry."""
    clock = FakeClock()
    client = FakeClient(clock, lambda t, n: E500 if n == 1 else OK)
    settings = RunSettings(
        concurrency=4,
        retry=RetryPolicy(jitter=False, initial_backoff=0.0),
        budget_reserve=0,
        budget_ratio=0.0,
        budget_refill=1.0,
    )
    stopper = Stopper(client, pacer=Pacer(rate=1000, clock=clock), settings=settings, clock=clock)
    async with clock.autojump():
        run = stopper.run(targets(4))
        async with run as results:
            out = [result async for result in results]
    # first attempts at 0, 1, 2, 3 ms fail 10 ms later; the retries come one a second
    retries = [t for t, _ in client.calls[4:]]
    assert retries == pytest.approx([1.01, 2.01, 3.01, 4.01])
    assert [(r.outcome, r.attempts) for r in out] == [(Outcome.STOPPED, 2)] * 4
    assert run.stats.budget_waits == 4
    assert stopper.pacer.rate < 1000  # and the pacer was told to slow down


async def test_a_retry_its_deadline_forbids_takes_no_budget_and_does_not_slow_the_run() -> None:
    clock = FakeClock()
    client = FakeClient(clock, always(E500))
    settings = RunSettings(
        concurrency=1,
        retry=RetryPolicy(jitter=False, initial_backoff=0.0, deadline=0.5),
        budget_reserve=0,
        budget_ratio=0.0,
        budget_refill=1.0,
    )
    stopper = Stopper(client, pacer=Pacer(rate=1000, clock=clock), settings=settings, clock=clock)
    async with clock.autojump():
        run = stopper.run(targets(1))
        async with run as results:
            out = [result async for result in results]
    # the retry would wait 0.99 s for the empty budget, past its 0.5 s deadline: not sent
    assert [(r.outcome, r.attempts) for r in out] == [(Outcome.FAILED, 1)]
    assert out[0].detail.startswith("deadline of 0.5 s reached")
    assert (run.stats.budget_waits, run.budget.waits, stopper.pacer.rate) == (0, 0, 1000)


async def test_the_request_rate_under_a_failing_server_drops() -> None:
    """Every call fails (and the failing-server guard is off, so the run goes on): the
    retries soon find the budget spent and wait, the pacer is told to slow down while the
    debt deepens, and the server sees a fraction of the requests it saw at first."""
    clock = FakeClock()
    client = FakeClient(clock, always(E500))
    settings = RunSettings(concurrency=8, seed=7, failing_server_window=0)
    pacer = Pacer(rate=10, clock=clock)
    stopper = Stopper(client, pacer=pacer, settings=settings, clock=clock)
    run = stopper.run(targets(1000))

    async def stop_after_a_minute() -> None:
        await clock.sleep(60.0)
        run.drain("enough")

    async with clock.autojump(), anyio.create_task_group() as tg:
        tg.start_soon(stop_after_a_minute)
        async with run as results:
            out = [result async for result in results]

    def requests_between(start: float, end: float) -> int:
        return sum(start <= t < end for t, _ in client.calls)

    assert requests_between(0.0, 1.0) == 11  # 10/s, and the reserve pays the first retries
    # five cuts of 30 % while the debt deepened (defaults: reserve 20, 0.2 a first attempt,
    # refill 2 tokens a second); then the debt held, and failures never raise the rate
    assert pacer.control.cuts == 5
    assert pacer.rate == pytest.approx(10 * 0.7**5)
    assert requests_between(50.0, 60.0) == 16  # every attempt is paced: ≤ 10 s × 1.68/s + 1
    assert run.stats.budget_waits == 40
    failed = [r for r in out if r.outcome is Outcome.FAILED]
    assert failed  # and each by its own attempts only
    assert {r.attempts for r in failed} == {RetryPolicy().max_attempts}


async def test_a_failing_server_ends_the_run_and_leaves_the_rest_to_resume() -> None:
    clock = FakeClock()
    client = FakeClient(clock, always(E500))
    settings = RunSettings(concurrency=4, seed=7, failing_server_window=10.0)
    stopper = Stopper(client, pacer=Pacer(rate=10, clock=clock), settings=settings, clock=clock)
    out: list[Result] = []
    async with clock.autojump():
        run = stopper.run(targets(200))
        with pytest.raises(
            ServerFailing, match=r"^the server failed 100 % of calls for the last 10 s"
        ):
            async with run as results:
                async for result in results:
                    out.append(result)
    assert len(out) == 200
    # the first answer came at 0.01; the first one 10 s later (to the call sent at 10.41)
    # ended the run, and nothing was sent after it
    assert client.calls[-1][0] == pytest.approx(10.41)
    counts = Counter(r.outcome for r in out)
    assert set(counts) == {Outcome.FAILED, Outcome.ABORTED}
    assert all(r.attempts == 5 for r in out if r.outcome is Outcome.FAILED)
    assert counts[Outcome.ABORTED] > 150  # left unsent, for --resume
    assert isinstance(run.stats.aborted_by, ServerFailing)
    assert run.stats.ended_early == str(run.stats.aborted_by)


async def test_deadline_stops_retrying() -> None:
    client = FakeClient(FakeClock(), always(E500))
    policy = RetryPolicy(jitter=False, initial_backoff=1.0, deadline=2.5)
    results = await run_all(client, targets(1), settings=RunSettings(retry=policy))
    # attempts at 0, 1.01, 3.02 would exceed 2.5 s: two attempts, then the deadline
    assert results[0].attempts == 2
    assert results[0].detail.startswith("deadline of 2.5 s reached")


async def test_stale_token_is_refreshed_then_retried() -> None:
    client = FakeClient(FakeClock(), lambda t, n: STALE if n == 1 else OK)
    results = await run_all(client, targets(1))
    assert results[0].outcome is Outcome.STOPPED
    assert client.refreshes == [0]


async def test_unrefreshable_token_is_unauthorized() -> None:
    client = FakeClient(FakeClock(), always(STALE))
    client.refresh_ok = False
    results = await run_all(client, targets(1), settings=RunSettings(auth_breaker=0))
    assert results[0].outcome is Outcome.UNAUTHORIZED
    assert "could not be refreshed" in results[0].detail


async def test_auth_breaker_aborts_and_bounds_requests() -> None:
    clock = FakeClock()
    client = FakeClient(clock, always(E401))
    stopper = Stopper(
        client,
        pacer=Pacer(rate=1000, clock=clock),
        settings=RunSettings(concurrency=4, auth_breaker=3),
        clock=clock,
    )
    out: list[Result] = []
    async with clock.autojump():
        with pytest.raises(CredentialsRejected, match="credentials are the problem"):
            async with stopper.run(targets(50)) as results:
                async for result in results:
                    out.append(result)
    assert len(out) == 50
    assert len(client.calls) <= 3 + 4
    counts = Counter(r.outcome for r in out)
    assert counts[Outcome.ABORTED] == 50 - counts[Outcome.UNAUTHORIZED]


async def test_failure_threshold_aborts_run() -> None:
    clock = FakeClock()
    client = FakeClient(clock, lambda t, n: E404 if t.build_no % 2 else OK)
    stopper = Stopper(
        client,
        pacer=Pacer(rate=1000, clock=clock),
        settings=RunSettings(concurrency=1, max_failures=FailureThreshold(count=3)),
        clock=clock,
    )
    out: list[Result] = []
    async with clock.autojump():
        with pytest.raises(RunAborted, match="failure threshold reached: 4 of"):
            async with stopper.run(targets(40)) as results:
                async for result in results:
                    out.append(result)
    assert len(out) == 40
    assert Counter(r.outcome for r in out)[Outcome.NOT_FOUND] == 4
    assert len(client.calls) < 40


async def test_drain_marks_the_rest_aborted_and_lets_in_flight_finish() -> None:
    clock = FakeClock()
    client = FakeClient(clock, always(OK), latency=1.0)
    stopper = Stopper(
        client,
        pacer=Pacer(rate=1000, clock=clock),
        settings=RunSettings(concurrency=2),
        clock=clock,
    )
    out: list[Result] = []
    async with clock.autojump():
        run = stopper.run(targets(10))
        async with run as results:
            await clock.sleep(0.5)  # two calls in flight
            run.drain("test")
            async for result in results:
                out.append(result)
    counts = Counter(r.outcome for r in out)
    assert counts == {Outcome.STOPPED: 2, Outcome.ABORTED: 8}
    assert len(client.calls) == 2


async def test_cancel_in_flight_records_them_aborted_and_maybe_applied() -> None:
    clock = FakeClock()
    client = FakeClient(clock, always(OK), latency=100.0)
    stopper = Stopper(
        client,
        pacer=Pacer(rate=1000, clock=clock),
        settings=RunSettings(concurrency=2),
        clock=clock,
    )
    out: list[Result] = []
    async with clock.autojump():
        run = stopper.run(targets(3))
        async with run as results:
            await clock.sleep(1.0)
            run.cancel_in_flight()
            async for result in results:
                out.append(result)
    assert [r.outcome for r in out] == [Outcome.ABORTED] * 3
    in_flight = [r for r in out if r.attempts == 1]
    assert len(in_flight) == 2
    assert all("may have taken effect" in r.detail for r in in_flight)
    assert [r.maybe_applied for r in out if r.attempts == 0] == [False]
    assert all(r.maybe_applied for r in in_flight)


async def test_the_maybe_applied_flag_records_ambiguous_attempts_only() -> None:
    script: dict[int, Script] = {
        1: always(OK),  # plain success
        2: lambda t, n: E500 if n == 1 else OK,  # an ambiguous attempt, then success
        3: lambda t, n: T429 if n == 1 else NOT,  # turned away at the gateway: not ambiguous
    }
    client = FakeClient(FakeClock(), lambda t, n: script[t.build_no](t, n))
    results = by_build(await run_all(client, targets(3)))
    assert {b: (r.outcome, r.maybe_applied) for b, r in results.items()} == {
        "1": (Outcome.STOPPED, False),
        "2": (Outcome.STOPPED, True),
        "3": (Outcome.NOT_STOPPED, False),
    }


async def test_a_failure_says_an_earlier_run_may_have_stopped_it() -> None:
    client = FakeClient(FakeClock(), always(UNTRUSTED))
    settings = RunSettings(systematic_limit=0)
    carried = FakeCarried(maybe={TargetKey(JOB, 1)})
    results = await run_all(client, targets(1), settings=settings, carried=carried)
    assert [(r.outcome, r.detail) for r in results] == [
        (
            Outcome.FAILED,
            "certificate not trusted: permanent, not retried; an earlier run may have stopped it",
        )
    ]


async def test_an_earlier_runs_maybe_applied_outlives_an_abort_before_any_attempt() -> None:
    # build 2 was in flight when an earlier run crashed; this run is drained before sending
    clock = FakeClock()
    client = FakeClient(clock, always(OK))
    stopper = Stopper(client, pacer=Pacer(rate=1000, clock=clock), clock=clock)
    async with clock.autojump():
        run = stopper.run(targets(2), carried=FakeCarried(maybe={TargetKey(JOB, 2)}))
        async with run as results:
            run.drain("test")
            out = {r.build_no: r async for r in results}
    assert client.calls == []
    assert (out["2"].outcome, out["2"].attempts, out["2"].maybe_applied) == (
        Outcome.ABORTED,
        0,
        True,
    )
    assert out["1"].maybe_applied is False


async def test_async_iterable_and_generator_inputs() -> None:
    async def agen() -> AsyncIterator[tuple[str, int]]:
        for row in targets(5):
            yield row

    def gen() -> Iterator[tuple[str, int]]:
        yield from targets(5)

    for rows in (agen(), gen()):
        results = await run_all(FakeClient(FakeClock(), always(OK)), rows)
        assert sorted(int(r.build_no) for r in results) == [1, 2, 3, 4, 5]


# --- input from a pipe ---------------------------------------------------------------------

HEADER = "job_id,build_no\n"


@contextlib.contextmanager
def pipe_source(read_fd: int) -> Iterator[TargetSource]:
    """A CSV source reading the pipe ``read_fd`` as stdin."""
    with open(read_fd, "rb") as stream, open_source("-", "csv", stdin=stream) as source:
        yield source


@contextlib.contextmanager
def open_pipe_source(written: str) -> Iterator[TargetSource]:
    """A CSV source reading a real pipe that holds ``written`` and stays open meanwhile."""
    read_fd, write_fd = os.pipe()
    os.write(write_fd, written.encode())
    with open(read_fd, "rb") as stream:
        try:
            with open_source("-", "csv", stdin=stream) as source:
                yield source
        finally:
            os.close(write_fd)  # before the read end, which a blocked read would hold


@pytest.mark.parametrize(
    "as_rows",
    [lambda source: source, lambda source: (row for row in source)],
    ids=["the-source", "a-generator"],
)
async def test_a_row_from_a_pipe_is_sent_before_the_next_one_is_written(
    as_rows: Callable[[TargetSource], Iterable[object]],
) -> None:
    first_sent = threading.Event()
    writer_saw_it: list[bool] = []
    client = FakeClient(FakeClock(), always(OK))
    stop = client.stop

    async def stop_and_tell(target: Target) -> Reply:
        first_sent.set()
        return await stop(target)

    client.stop = stop_and_tell  # type: ignore[method-assign]
    read_fd, write_fd = os.pipe()

    def writer() -> None:
        with open(write_fd, "wb", buffering=0) as pipe:
            pipe.write(f"{HEADER}{JOB},1\n".encode())
            # Bounded, so that a run that waits for more input fails instead of hanging.
            writer_saw_it.append(first_sent.wait(timeout=10))
            pipe.write(f"{JOB},2\n".encode())

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        with pipe_source(read_fd) as source:
            results = await run_all(client, as_rows(source))
    finally:
        first_sent.set()
        thread.join(timeout=10)
    assert writer_saw_it == [True]
    assert sorted((r.line, r.outcome) for r in results) == [
        (2, Outcome.STOPPED),
        (3, Outcome.STOPPED),
    ]


@pytest.mark.parametrize(
    ("how", "outcomes"),
    [
        ("drained", [Outcome.ABORTED] * 3),
        ("auth-breaker", [Outcome.UNAUTHORIZED, Outcome.ABORTED, Outcome.ABORTED]),
    ],
)
async def test_a_run_stopped_early_ends_though_its_pipe_never_closes(
    how: str, outcomes: list[Outcome]
) -> None:
    clock = FakeClock()
    client = FakeClient(clock, always(E401))
    stopper = Stopper(
        client,
        pacer=Pacer(rate=1000, clock=clock),
        settings=RunSettings(concurrency=1, auth_breaker=1),
        clock=clock,
    )
    out: list[Result] = []
    with open_pipe_source(f"{HEADER}{JOB},1\n{JOB},2\n{JOB},3\n") as source:
        run = stopper.run(source)
        # Bounded: a run that waits for the writer to close the pipe fails instead of hanging.
        with anyio.fail_after(10):
            async with clock.autojump():
                with contextlib.suppress(RunAborted):
                    async with run as results:
                        if how == "drained":
                            run.drain("test")
                        async for result in results:
                            out.append(result)
    # Every row read before the run stopped has its record; nothing more was waited for.
    assert sorted((r.line, r.outcome) for r in out) == list(zip([2, 3, 4], outcomes, strict=True))


async def test_leaving_a_run_early_stops_reading_its_pipe() -> None:
    clock = FakeClock()
    client = FakeClient(clock, always(OK))
    stopper = Stopper(client, pacer=Pacer(rate=1000, clock=clock), clock=clock)
    with open_pipe_source(f"{HEADER}{JOB},1\n") as source:
        with anyio.fail_after(10):
            async with clock.autojump(), stopper.run(source) as results:
                async for _ in results:
                    break
        # The thread that read the pipe has ended, though the pipe is still open.
        assert aiter(source).join(timeout=10)


async def test_carried_targets_are_not_sent_and_their_record_comes_out() -> None:
    earlier = Result(line=2, job_id=JOB, build_no="2", outcome=Outcome.STOPPED, run=1)
    client = FakeClient(FakeClock(), always(OK))
    carried = FakeCarried(records={TargetKey(JOB, 2): earlier})
    results = await run_all(client, targets(3), settings=RunSettings(run=2), carried=carried)
    assert by_build(results)["2"] is earlier
    assert sorted(b for _, b in client.calls) == [1, 3]
    assert {r.run for r in results if r.build_no != "2"} == {2}


async def test_carried_is_asked_about_each_target_at_the_line_of_its_row() -> None:
    rows = [(JOB, 3), (JOB, 2), (JOB, 3), (JOB, 1)]  # one duplicate, asked about once
    carried = FakeCarried()

    await run_all(FakeClient(FakeClock(), always(OK)), rows, carried=carried)

    assert carried.asked == [(TargetKey(JOB, 3), 1), (TargetKey(JOB, 2), 2), (TargetKey(JOB, 1), 4)]


async def test_leaving_early_cancels_the_rest() -> None:
    clock = FakeClock()
    client = FakeClient(clock, always(OK))
    stopper = Stopper(client, pacer=Pacer(rate=10, clock=clock), clock=clock)
    async with clock.autojump(), stopper.run(targets(100)) as results:
        async for _ in results:
            break
    assert len(client.calls) < 100


async def test_dedupe_handles_huge_build_numbers() -> None:
    rows = [(JOB, 5), (JOB, 2**30), (JOB, 5), (JOB, 2**30), (JOB, 7)]
    results = await run_all(FakeClient(FakeClock(), always(OK)), rows)
    assert Counter(r.outcome for r in results) == {Outcome.STOPPED: 3, Outcome.DUPLICATE: 2}


async def test_a_distinct_target_costs_the_run_at_most_32_bytes() -> None:
    """Every target of a job of its own, the shape a bitmap of build numbers per job paid
    ~500 bytes a target for. The memory a run keeps per target is its dedupe's."""

    class Instant:
        async def stop(self, target: Target) -> Reply:
            return OK

        async def refresh_credentials(self, generation: int) -> bool:
            return False

    async def peak_after(rows: list[tuple[str, int]]) -> int:
        # A fixed rate: adaptive pacing keeps a second's worth of start times, which at an
        # unlimited rate is memory per request, not per target.
        pacer = Pacer(rate=1e9, burst=64, adaptive=False)
        stopper = Stopper(Instant(), pacer=pacer, settings=RunSettings(concurrency=8))
        tracemalloc.start()
        try:
            async with stopper.run(rows) as results:
                async for _ in results:
                    pass
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    def distinct_jobs(n: int) -> list[tuple[str, int]]:
        return [(f"{i:032x}", 1 + (i * 7919) % 5000) for i in range(n)]

    small, large = distinct_jobs(1_000), distinct_jobs(7_000)
    assert (await peak_after(large) - await peak_after(small)) / 6_000 <= 32


async def test_results_carry_report_fields() -> None:
    results = await run_all(FakeClient(FakeClock(), always(OK)), targets(1))
    result = results[0]
    assert result.http_status == 200
    assert result.request_id == "r-ok"
    assert result.started_at is not None
    assert result.finished_at is not None
    assert result.elapsed_ms == 10
    assert result.run == 1


async def test_rate_limit_shapes_start_times() -> None:
    clock = FakeClock()
    client = FakeClient(clock, always(OK))
    await run_all(client, targets(5), rate=4)
    assert [t for t, _ in client.calls] == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])


async def test_a_run_shows_its_live_state() -> None:
    clock = FakeClock()
    stopper = Stopper(FakeClient(clock, always(OK)), pacer=Pacer(rate=1000, clock=clock))
    async with clock.autojump():
        run = stopper.run([*targets(3), (JOB, 3)])
        async with run as results:
            out = [result async for result in results]
    assert len(out) == 4
    assert repr(run).startswith(
        "StopRun(rows=4, done=4, in_flight=0, requests=3, stopping=None, SeenTargets(targets=3,"
    )


def test_anyio_run_drives_the_engine() -> None:
    async def main() -> int:
        results = await run_all(FakeClient(FakeClock(), always(OK)), targets(3))
        return len(results)

    assert anyio.run(main) == 3


async def test_two_runs_sharing_one_pacer_share_its_rate() -> None:
    clock = FakeClock()
    pacer = Pacer(rate=10, clock=clock)
    first = FakeClient(clock, always(OK))
    second = FakeClient(clock, always(OK))
    settings = RunSettings(concurrency=2)

    async def drive(client: FakeClient, rows: list[tuple[str, int]]) -> None:
        stopper = Stopper(client, pacer=pacer, settings=settings, clock=clock)
        async with stopper.run(rows) as results:
            async for _ in results:
                pass

    async with clock.autojump(), anyio.create_task_group() as tg:
        tg.start_soon(drive, first, targets(5))
        tg.start_soon(drive, second, [(JOB.replace("f", "e"), i) for i in range(1, 6)])
    starts = sorted(t for t, _ in first.calls + second.calls)
    assert starts == pytest.approx([i / 10 for i in range(10)])


async def test_expiring_token_does_not_trip_the_auth_breaker_when_refreshed() -> None:
    # every worker in flight sees the expiry at once; a renewed token means all is well
    client = FakeClient(FakeClock(), lambda t, n: STALE if n == 1 else OK)
    settings = RunSettings(concurrency=8, auth_breaker=2)
    results = await run_all(client, targets(20), settings=settings)
    assert {r.outcome for r in results} == {Outcome.STOPPED}
    assert len(client.refreshes) == 20


async def test_unrefreshable_expired_token_trips_the_auth_breaker() -> None:
    clock = FakeClock()
    client = FakeClient(clock, always(STALE))
    client.refresh_ok = False
    stopper = Stopper(
        client,
        pacer=Pacer(rate=1000, clock=clock),
        settings=RunSettings(concurrency=2, auth_breaker=3),
        clock=clock,
    )
    out: list[Result] = []
    async with clock.autojump():
        with pytest.raises(CredentialsRejected):
            async with stopper.run(targets(30)) as results:
                async for result in results:
                    out.append(result)
    assert len(out) == 30
    assert len(client.calls) <= 3 + 2


# -- a deadline is never passed by a wait ------------------------------------------------------


async def test_a_retry_after_longer_than_the_deadline_ends_the_target_at_once() -> None:
    throttled = T429._replace(retry_after=60.0)  # "come back in a minute"
    client = FakeClient(FakeClock(), lambda t, n: throttled if n == 1 else OK)
    policy = RetryPolicy(deadline=10.0)
    results = await run_all(client, targets(1), settings=RunSettings(retry=policy))
    assert [t for t, _ in client.calls] == [0.0]  # never sent again
    result = results[0]
    assert (result.outcome, result.attempts, result.elapsed_ms) == (Outcome.FAILED, 1, 10)
    assert result.detail == "deadline of 10 s reached before the next attempt could start"


async def test_a_throttling_pause_of_another_target_never_carries_a_target_past_its_deadline() -> (
    None
):
    throttled = T429._replace(retry_after=60.0)
    script: dict[int, Script] = {
        1: lambda t, n: throttled if n == 1 else OK,  # pauses the whole run for 60 s
        2: lambda t, n: E500 if n == 1 else OK,  # wants a retry after a 0.5 s backoff
    }
    client = FakeClient(FakeClock(), lambda t, n: script[t.build_no](t, n))
    policy = RetryPolicy(deadline=10.0, jitter=False, initial_backoff=0.5)
    results = by_build(await run_all(client, targets(2), settings=RunSettings(retry=policy)))
    assert len(client.calls) == 2
    assert {b: (r.outcome, r.attempts) for b, r in results.items()} == {
        "1": (Outcome.FAILED, 1),
        "2": (Outcome.FAILED, 1),
    }
    assert results["2"].elapsed_ms == 10  # settled at its answer, not after the pause


# -- the first answers: is the call itself wrong? ----------------------------------------------


async def first_answers_run(
    script: Script, rows: int, *, concurrency: int = 8, limit: int = 5
) -> tuple[list[Result], FakeClient, SystematicFailure | None]:
    clock = FakeClock()
    client = FakeClient(clock, script)
    settings = RunSettings(concurrency=concurrency, systematic_limit=limit, seed=7)
    stopper = Stopper(client, pacer=Pacer(rate=1000, clock=clock), settings=settings, clock=clock)
    out: list[Result] = []
    error: SystematicFailure | None = None
    async with clock.autojump():
        try:
            async with stopper.run(targets(rows)) as results:
                async for result in results:
                    out.append(result)
        except SystematicFailure as exc:
            error = exc
    return out, client, error


@pytest.mark.parametrize(
    ("reply", "fault", "message"),
    [
        (
            URL_NOT_FOUND,
            SystematicFault.API_NOT_SERVED,
            "the endpoint does not serve this stop API (404 CB.00060214 for 5 of 5 first calls)",
        ),
        (
            GATEWAY_404,
            SystematicFault.API_NOT_SERVED,
            "the endpoint does not serve this stop API "
            "(404 without a CodeArts error code for 5 of 5 first calls)",
        ),
        (NO_SUCH_HOST, SystematicFault.DNS, "cannot resolve host gw.invalid (5 of 5 first calls)"),
        (
            REFUSED,
            SystematicFault.REFUSED,
            "connection refused by 127.0.0.1:9 (5 of 5 first calls)",
        ),
        (
            UNTRUSTED,
            SystematicFault.CERTIFICATE,
            "certificate of 127.0.0.1:8443 not trusted: self-signed certificate "
            "(5 of 5 first calls)",
        ),
    ],
    ids=["url-not-found", "404-not-codearts", "dns", "refused", "certificate"],
)
async def test_first_answers_that_all_show_the_call_is_wrong_end_the_run(
    reply: Reply, fault: SystematicFault, message: str
) -> None:
    out, client, error = await first_answers_run(always(reply), 100)
    assert error is not None
    assert (str(error), error.fault, error.targets) == (message, fault, 5)
    assert len(out) == 100
    # nothing settled: the few that were sent are aborted like the rest, so --resume sends
    # them again once the call is fixed
    assert {r.outcome for r in out} == {Outcome.ABORTED}
    sent = [r for r in out if r.attempts]
    assert 5 <= len(sent) == len(client.calls) <= 5 + 8  # the five, and calls in flight
    assert all(r.attempts == 1 for r in sent)  # held, not retried


async def test_a_per_target_404_never_ends_the_run() -> None:
    out, _, error = await first_answers_run(always(E404), 50)  # unknown jobs, all of them
    assert error is None
    assert {r.outcome for r in out} == {Outcome.NOT_FOUND}


async def test_a_first_answer_without_a_fault_clears_the_check_for_the_rest_of_the_run() -> None:
    out, _, error = await first_answers_run(
        lambda t, n: OK if t.build_no == 1 else URL_NOT_FOUND, 20, concurrency=1
    )
    assert error is None
    assert Counter(r.outcome for r in out) == {Outcome.STOPPED: 1, Outcome.NOT_FOUND: 19}


async def test_a_held_target_goes_on_as_usual_once_the_check_clears() -> None:
    # build 1 cannot connect at first (held: neither settled nor retried yet), build 2 is
    # stopped: the call works, so build 1 is retried and stopped too
    script: dict[int, Script] = {1: lambda t, n: REFUSED if n == 1 else OK, 2: always(OK)}
    out, client, error = await first_answers_run(
        lambda t, n: script[t.build_no](t, n), 2, concurrency=2
    )
    assert error is None
    assert {r.build_no: (r.outcome, r.attempts) for r in out} == {
        "1": (Outcome.STOPPED, 2),
        "2": (Outcome.STOPPED, 1),
    }
    assert [b for _, b in client.calls] == [1, 2, 1]


async def test_an_untrusted_certificate_is_not_retried_once_the_check_cleared() -> None:
    out, client, error = await first_answers_run(
        lambda t, n: OK if t.build_no == 1 else UNTRUSTED, 2, concurrency=1
    )
    assert error is None
    assert len(client.calls) == 2
    failed = by_build(out)["2"]
    assert (failed.outcome, failed.attempts) == (Outcome.FAILED, 1)
    assert failed.detail == "certificate not trusted: permanent, not retried"


@pytest.mark.parametrize(
    ("rows", "concurrency", "judged_on"),
    [(100, 2, 2), (3, 8, 3), (1, 8, 1)],
    ids=["fewer-workers-than-the-limit", "short-input", "one-row"],
)
async def test_holding_targets_cannot_stall_the_run(
    rows: int, concurrency: int, judged_on: int
) -> None:
    """When every live worker holds a target, no further answer can come: the check concludes
    on what it saw instead of waiting for ever."""
    out, _, error = await first_answers_run(always(URL_NOT_FOUND), rows, concurrency=concurrency)
    assert error is not None
    assert error.targets == judged_on
    assert str(error).endswith(f"for {judged_on} of {judged_on} first calls)")
    assert len(out) == rows
    assert {r.outcome for r in out} == {Outcome.ABORTED}


async def test_leaving_early_while_targets_are_held_ends_the_run_quietly() -> None:
    class SlowForBuild3(FakeClient):
        async def stop(self, target: Target) -> Reply:
            if target.build_no == 3:
                await self.clock.sleep(100.0)  # keeps one worker busy, holding nothing
            return await super().stop(target)

    clock = FakeClock()
    client = SlowForBuild3(clock, lambda t, n: OK if t.build_no == 3 else URL_NOT_FOUND)
    stopper = Stopper(
        client,
        pacer=Pacer(rate=1000, clock=clock),
        settings=RunSettings(concurrency=3),
        clock=clock,
    )
    rows = [(JOB, 3), (JOB, 1), (JOB, 2), ("BAD", 1), *targets(10)[3:]]
    async with clock.autojump():
        run = stopper.run(rows)
        async with run as results:
            async for _ in results:  # the invalid row
                await clock.sleep(1.0)  # builds 1 and 2 are held by now
                break
    # the cancelled workers proved nothing: no verdict on the call, no exception
    assert run.first_answers.watching
    assert run.abort_error is None


async def test_the_first_answers_check_can_be_turned_off() -> None:
    out, _, error = await first_answers_run(always(URL_NOT_FOUND), 20, limit=0)
    assert error is None
    assert {r.outcome for r in out} == {Outcome.NOT_FOUND}


class Announcements:
    """An observer that takes announcements in batches, as the report's journal does; it
    notes which targets the client had been sent by then."""

    def __init__(self, client: FakeClient) -> None:
        self.client = client
        self.batches: list[list[tuple[int, str, int]]] = []
        self.sent_before: list[set[int]] = []

    def attempting(self, line: int, job_id: str, build_no: int) -> None:
        raise AssertionError("an observer with attempting_many is told in batches")

    def attempting_many(self, batch: list[tuple[int, str, int]]) -> None:
        self.batches.append(list(batch))
        self.sent_before.append({build_no for _, build_no in self.client.calls})


class OneByOne:
    """An observer without a batch call: told once per target, right before its first call."""

    def __init__(self, client: FakeClient) -> None:
        self.client = client
        self.told: list[int] = []

    def attempting(self, line: int, job_id: str, build_no: int) -> None:
        assert build_no not in {sent for _, sent in self.client.calls}
        self.told.append(build_no)


async def run_observed(client: FakeClient, observer: object, n: int, concurrency: int) -> None:
    clock = client.clock
    stopper = Stopper(
        client,
        pacer=Pacer(rate=1e6, burst=concurrency, clock=clock),
        settings=RunSettings(concurrency=concurrency, seed=7),
        clock=clock,
        observer=observer,  # type: ignore[arg-type]
    )
    async with clock.autojump(), stopper.run(targets(n)) as results:
        assert len([result async for result in results]) == n


@pytest.mark.parametrize(("concurrency", "most"), [(1, 2), (8, 16), (64, 16)])
async def test_targets_are_announced_in_batches_each_once_before_it_is_sent(
    concurrency: int, most: int
) -> None:
    client = FakeClient(FakeClock(), lambda t, n: E500 if n == 1 and t.build_no % 7 == 0 else OK)
    observer = Announcements(client)
    await run_observed(client, observer, 300, concurrency)

    announced = [build_no for batch in observer.batches for _, _, build_no in batch]
    assert sorted(announced) == list(range(1, 301))  # each target once, retried ones too
    assert all(line == build_no for batch in observer.batches for line, _, build_no in batch)
    assert max(len(batch) for batch in observer.batches) == most  # min(2 × concurrency, 16)
    for batch, sent in zip(observer.batches, observer.sent_before, strict=True):
        assert not {build_no for _, _, build_no in batch} & sent  # none of them sent yet
    assert len(observer.batches) <= 300 // 2  # one call covers several targets


async def test_an_observer_without_a_batch_call_is_told_once_per_target_before_it() -> None:
    client = FakeClient(FakeClock(), always(OK))
    observer = OneByOne(client)
    await run_observed(client, observer, 50, 8)
    assert sorted(observer.told) == list(range(1, 51))


class FailingAnnouncements(Announcements):
    """Its second batch fails, as a write on a full disk does."""

    def attempting_many(self, batch: list[tuple[int, str, int]]) -> None:
        if len(self.batches) == 1:
            self.failed = [build_no for _, _, build_no in batch]
            raise OSError(28, "No space left on device")
        super().attempting_many(batch)


async def test_no_target_of_a_batch_whose_note_failed_is_ever_sent() -> None:
    client = FakeClient(FakeClock(), always(OK))
    observer = FailingAnnouncements(client)
    with pytest.raises(ExceptionGroup) as caught:  # the run's task groups wrap it
        await run_observed(client, observer, 300, 8)
    assert caught.group_contains(OSError, match="No space left on device")
    noted = {build_no for batch in observer.batches for _, _, build_no in batch}
    sent = {build_no for _, build_no in client.calls}
    assert observer.failed
    assert sent <= noted
    assert not sent & set(observer.failed)
