"""The engine against a scripted fake client on a fake clock: exact behaviour, no network."""

from __future__ import annotations

import contextlib
import os
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Iterator

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
    Stopper,
    Target,
)
from bulkstop.sources import TargetSource, open_source

pytestmark = pytest.mark.anyio

JOB = "f9d6c8466d614a9788e9a0acf6c15f46"
OK = Reply(kind=ReplyKind.STOPPED, http_status=200, request_id="r-ok")
NOT = Reply(kind=ReplyKind.NOT_STOPPED, http_status=200)
E500 = Reply(
    kind=ReplyKind.HTTP_ERROR, http_status=500, error_code="CB.00060101", maybe_applied=True
)
T429 = Reply(kind=ReplyKind.HTTP_ERROR, http_status=429, error_code="APIG.0308")
E404 = Reply(kind=ReplyKind.HTTP_ERROR, http_status=404, error_code="CB.00060214")
E401 = Reply(kind=ReplyKind.HTTP_ERROR, http_status=401, error_code="APIG.0301")
STALE = Reply(kind=ReplyKind.HTTP_ERROR, http_status=401, error_code="APIG.0307")

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
    results = await run_all(client, targets(2), maybe_applied=[(JOB, "2")])
    assert by_build(results)["1"].outcome is Outcome.NOT_STOPPED
    assert by_build(results)["2"].outcome is Outcome.UNCERTAIN


async def test_throttling_pauses_and_does_not_consume_transient_attempts() -> None:
    client = FakeClient(FakeClock(), lambda t, n: T429 if n <= 6 else OK)
    policy = RetryPolicy(max_attempts=2)
    results = await run_all(client, targets(1), settings=RunSettings(retry=policy))
    assert results[0].outcome is Outcome.STOPPED
    assert results[0].attempts == 7


async def test_retry_budget_exhaustion_fails_fast_with_reason() -> None:
    client = FakeClient(FakeClock(), always(E500))
    settings = RunSettings(
        concurrency=2, budget_reserve=2, budget_ratio=0.0, retry=RetryPolicy(max_attempts=5)
    )
    results = await run_all(client, targets(4), settings=settings)
    assert {r.outcome for r in results} == {Outcome.FAILED}
    assert len(client.calls) == 4 + 2  # four first attempts, two retries from the reserve
    assert sum("retry budget" in r.detail for r in results) >= 2


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


async def test_an_earlier_runs_maybe_applied_outlives_an_abort_before_any_attempt() -> None:
    # build 2 was in flight when an earlier run crashed; this run is drained before sending
    clock = FakeClock()
    client = FakeClient(clock, always(OK))
    stopper = Stopper(client, pacer=Pacer(rate=1000, clock=clock), clock=clock)
    async with clock.autojump():
        run = stopper.run(targets(2), maybe_applied=[(JOB, "2")])
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


async def test_carried_over_targets_are_not_sent() -> None:
    earlier = Result(line=9, job_id=JOB, build_no="2", outcome=Outcome.STOPPED, run=1)
    client = FakeClient(FakeClock(), always(OK))
    results = await run_all(
        client,
        targets(3),
        settings=RunSettings(run=2),
        carry_over={(JOB, "2"): earlier},
    )
    assert by_build(results)["2"] is earlier
    assert sorted(b for _, b in client.calls) == [1, 3]
    assert {r.run for r in results if r.build_no != "2"} == {2}


async def test_leaving_early_cancels_the_rest() -> None:
    clock = FakeClock()
    client = FakeClient(clock, always(OK))
    stopper = Stopper(client, pacer=Pacer(rate=10, clock=clock), clock=clock)
    async with clock.autojump(), stopper.run(targets(100)) as results:
        async for _ in results:
            break
    assert len(client.calls) < 100


async def test_dedupe_handles_huge_build_numbers() -> None:
    rows = [(JOB, 5), (JOB, 2**30), (JOB, 5), (JOB, 2**30), (JOB, 7)]  # past the 2**24 bitmap
    results = await run_all(FakeClient(FakeClock(), always(OK)), rows)
    assert Counter(r.outcome for r in results) == {Outcome.STOPPED: 3, Outcome.DUPLICATE: 2}


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
