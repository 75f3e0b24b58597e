"""The engine: every input row in, exactly one :class:`~bulkstop.models.Result` out.

::

    rows ──> producer ──(validate, dedupe, carried)──> work stream ──> N workers ──> results
                 └── invalid / duplicate / carried rows go straight to results ──┘

Each worker takes a target and drives it to a final outcome: wait for the :class:`Pacer`,
call the client, let :func:`~bulkstop.retry.classify` judge the reply, tell the pacer and the
run's guards, and do what :func:`~bulkstop.decision.decide` says — settle, retry after a wait,
refresh the credential or give up, as the :class:`~bulkstop.retry.RetryPolicy` allows. The
loop does the I/O and the waiting; the decision is a pure function of values. A target ends
``failed`` only by its own attempts or its own deadline; the run-wide
:class:`~bulkstop.retry.RetryBudget` only makes retries wait (and the pacer slow down), and no
wait — backoff, ``Retry-After``, budget or a throttling pause — carries a target past its
deadline. One target's failure never stops the others; no row is ever dropped: when the run is
stopped early (:meth:`StopRun.drain`, a failure threshold, the auth breaker, a failing server,
first answers that show the call itself is wrong), the remaining rows still come out, as
``aborted``.

The run's first answered targets are judged by a
:class:`~bulkstop.guards.SystematicFaultGuard`: a target whose first answer shows a systematic
fault (the stop API not served, a host that does not resolve, a refused connection, an
untrusted certificate) is held — neither settled nor retried — until the guard clears (then it
goes on as usual) or trips (then it ends ``aborted`` with the rest, so that ``--resume`` sends
it again once the call is fixed). Holding never deadlocks: when every live worker holds a
target, nothing more can be learnt and the guard concludes on what it saw.

The public shape: a :class:`Stopper` holds the configuration and its ``run(rows)`` is an async
context manager that owns the task group and hands out a receive stream of results (the task
group never spans a ``yield`` of an async generator)::

    async with CodeArtsClient(endpoint, TokenAuth(token)) as client:
        stopper = Stopper(client, pacer=Pacer(rate=10))
        async with stopper.run([("f9d6c8466d614a9788e9a0acf6c15f46", 20)]) as results:
            async for result in results:
                print(result.outcome)
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Callable,
    Iterable,
    Sequence,
)
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Protocol

import anyio

from bulkstop.client import StopClient
from bulkstop.clock import Clock, utcnow
from bulkstop.codes import AUTH_FAILURE_STATUSES, FORBIDDEN_STATUS
from bulkstop.decision import (
    Action,
    RetryState,
    Step,
    decide,
    describe_reply,
    draws_backoff,
    honoured_retry_after,
    out_of_time,
)
from bulkstop.dedupe import SeenTargets
from bulkstop.errors import CredentialsRejected, RunAborted, ServerFailing, SystematicFailure
from bulkstop.guards import (
    AuthBreaker,
    FailingServerGuard,
    FailureThreshold,
    SystematicFaultGuard,
)
from bulkstop.handoff import HandOff
from bulkstop.log import get_logger
from bulkstop.models import (
    ACCEPTABLE,
    InputRow,
    Outcome,
    Reply,
    Result,
    Target,
    TargetKey,
    new_named_tuple,
    parse_target,
)
from bulkstop.pacing import Pacer
from bulkstop.retry import Decision, RetryBudget, RetryPolicy, SystematicFault, Verdict, classify
from bulkstop.sources import InlineRows, ReadAhead

__all__ = ["Carried", "Results", "RunObserver", "RunSettings", "RunStats", "StopRun", "Stopper"]

log = get_logger(__name__)

RowLike = InputRow | Target | tuple[str, Any]


class RunObserver(Protocol):
    """Told about a target just before its first attempt is sent (the report's journal).

    An observer that also has ``attempting_many(targets)`` (a sequence of ``(line, job_id,
    build_no)``), as :class:`~bulkstop.report.ReportWriter` has, is told in batches instead:
    the target about to be sent and up to :data:`ANNOUNCE_AHEAD` - 1 of the targets queued
    behind it, whose first attempts come next, all before the first of them is sent. One
    call (one write of the journal) then covers up to that many targets.
    """

    def attempting(self, line: int, job_id: str, build_no: int) -> None: ...


#: The most targets one ``attempting_many`` announces: the one about to be sent and those
#: queued next (the workers' queue holds twice the run's concurrency, so a batch is at
#: most that: 2 at concurrency 1). Not capped at the concurrency: at 8, a cap there halved the
#: batches and doubled the journal's writes for markers, about 0.35 µs a target.
ANNOUNCE_AHEAD: Final = 16


class Carried(Protocol):
    """What a resume carries over from earlier runs, asked once per distinct target.

    :class:`bulkstop.report.CarriedRecords` is the one a report gives.
    """

    def get(self, key: TargetKey, line: int) -> Result | None:
        """The record to hand out instead of sending the target at input ``line``, or
        ``None``: send it."""
        ...

    def maybe_applied(self, key: TargetKey) -> bool:
        """Whether an earlier run may already have stopped a target about to be sent (a
        "not stopped" answer is then ``uncertain``)."""
        ...

    def sighted(self, key: TargetKey) -> bool | None:
        """Whether this is the first row of the run to name ``key``; ``None`` when the earlier
        runs never met the target (the engine's own dedupe then decides). A resume of a large
        report dedupes its known targets where it already holds them, at no extra memory."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSettings:
    """How a run behaves, beyond pacing (which is the :class:`Pacer`'s).

    Attributes:
        concurrency: targets in flight at once.
        retry: the per-target retry policy.
        budget_ratio / budget_reserve / budget_refill: the run-wide retry budget (see
            RetryBudget): tokens per first attempt, tokens at the start (and most kept), and
            tokens per second (``None``: ``budget_ratio`` × the pacer's rate ceiling).
        max_failures: abort the run when exceeded (``None``: never).
        auth_breaker: abort after this many authentication failures in a row (0: never); an
            expired token (401 APIG.0307) counts only when it could not be refreshed.
        failing_server_window / failing_server_share: abort when the server failed at least
            that share of the calls answered in the last that many seconds (window 0: never;
            see FailingServerGuard).
        systematic_limit: end the run when this many first answered targets all show the
            same systematic fault (0: never; see SystematicFaultGuard).
        run: the number stamped on this run's results (resumes count up).
        seed: seed of the jitter draws (``None``: unpredictable).
        dry_run: validate, dedupe and carry over as a run would, but send nothing: every
            target that would be sent ends ``dry_run``.
    """

    concurrency: int = 8
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    budget_ratio: float = 0.2
    budget_reserve: float = 20.0
    budget_refill: float | None = None
    max_failures: FailureThreshold | None = None
    auth_breaker: int = 5
    failing_server_window: float = 30.0
    failing_server_share: float = 0.95
    systematic_limit: int = 5
    run: int = 1
    seed: int | None = None
    dry_run: bool = False

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be ≥ 1")
        if self.budget_refill is not None and not self.budget_refill > 0:
            raise ValueError("budget_refill must be > 0 tokens a second")


@dataclass(slots=True)
class RunStats:
    """Live counters of one run (read them any time, e.g. for a progress display).

    Attributes:
        rows: input rows read so far.
        outcomes: results handed out so far, per outcome (see :attr:`done`, :meth:`count`).
        requests: stop calls sent (a call cancelled in flight counts).
        retries: calls after a target's first.
        throttled: throttling answers.
        budget_waits: retries that found the retry budget spent and waited for it.
        carried_over: targets whose record an earlier run settled, handed out again.
        in_flight: calls under way now.
        started / finished: the run's clock at its start and its end (``None`` before).
        ended_early: why the run stopped before its input did (the reason given to
            :meth:`StopRun.drain`, or a guard's message).
        aborted_by: the guard's error that ended the run.
    """

    rows: int = 0
    outcomes: dict[Outcome, int] = field(default_factory=dict)
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    budget_waits: int = 0
    carried_over: int = 0
    in_flight: int = 0
    started: float = 0.0
    finished: float | None = None
    ended_early: str | None = None
    aborted_by: RunAborted | None = None

    @property
    def done(self) -> int:
        return sum(self.outcomes.values())

    def count(self, outcome: Outcome) -> int:
        return self.outcomes.get(outcome, 0)


class _Item:
    """One target's progress, kept outside the coroutine so a cancelled item still reports.

    Attributes:
        line: the input line of the row that named it.
        target: what to stop.
        state: what its answers used up so far (see :mod:`bulkstop.decision`).
        attempts: attempts sent so far.
        started_at / started_mono: when its first attempt started (wall clock, for the
            report; the run's clock, for its deadline and ``elapsed_ms``).
        last: its latest answer.
        in_flight: an attempt is under way.
        judged: its first answer was shown to the first-answers guard.
        announced: the observer was told its first attempt comes (see :class:`RunObserver`).
    """

    __slots__ = (
        "announced",
        "attempts",
        "in_flight",
        "judged",
        "last",
        "line",
        "started_at",
        "started_mono",
        "state",
        "target",
    )

    def __init__(self, line: int, target: Target, *, maybe_applied: bool) -> None:
        self.line = line
        self.target = target
        self.state = _MAYBE_APPLIED if maybe_applied else _FRESH
        self.attempts = 0
        self.started_at: datetime | None = None
        self.started_mono: float | None = None
        self.last: Reply | None = None
        self.in_flight = False
        self.judged = False
        self.announced = False

    def __repr__(self) -> str:
        return (
            f"_Item(line={self.line}, target={self.target!r}, attempts={self.attempts}, "
            f"in_flight={self.in_flight}, state={self.state!r})"
        )


# The enum members the engine compares with for every target, bound to module names once: on
# Python 3.11 reading a member through its class (``Verdict.THROTTLED``) goes through
# EnumType's ``__getattr__`` hook, about 75 ns against 5 for a module name. The engine and
# decide() made about 15 such reads a target, 1.2 µs of the library's 10 (measured with
# ``benchmarks/bench.py breakdown``).
_TRANSIENT: Final = Verdict.TRANSIENT
_THROTTLED: Final = Verdict.THROTTLED
_STALE_CREDENTIAL: Final = Verdict.STALE_CREDENTIAL
_HOLD: Final = Action.HOLD
_SETTLE: Final = Action.SETTLE
_GIVE_UP: Final = Action.GIVE_UP
_ABORT: Final = Action.ABORT
_REFRESH: Final = Action.REFRESH
_ABORTED: Final = Outcome.ABORTED
_FAILED: Final = Outcome.FAILED

_FRESH = RetryState()
_MAYBE_APPLIED = RetryState(maybe_applied=True)  # an earlier run may have stopped it


def _result(
    item: _Item,
    outcome: Outcome,
    run: int,
    clock: Clock,
    detail: str = "",
    now: float | None = None,
) -> Result:
    """``item``'s record; ``now`` is the run's clock at its end when the caller read it."""
    last = item.last
    finished = None
    elapsed = None
    if item.attempts:
        finished = utcnow()
    if item.started_mono is not None:
        elapsed = round(((clock.now() if now is None else now) - item.started_mono) * 1000)
    target = item.target
    # One is made per row: all of Result's fields in order (see new_named_tuple).
    if last is None:
        status, code, message, request_id = None, "", "", ""
    else:
        status, code, message, request_id = (
            last.http_status,
            last.error_code,
            last.error_msg,
            last.request_id,
        )
    return new_named_tuple(
        Result,
        (
            item.line,
            target.job_id,
            str(target.build_no),
            outcome,
            status,
            code,
            message,
            request_id,
            item.attempts,
            item.started_at,
            finished,
            elapsed,
            detail,
            item.state.maybe_applied or item.in_flight,
            run,
            "",  # verified: a run's record is not verified yet
            "",  # build_status
        ),
    )


#: What a systematic fault means, for a reply that carries no message of its own.
_FAULT_TEXT: dict[SystematicFault, str] = {
    SystematicFault.API_NOT_SERVED: "the endpoint does not serve this stop API",
    SystematicFault.DNS: "the endpoint's host does not resolve",
    SystematicFault.REFUSED: "the endpoint refuses connections",
    SystematicFault.CERTIFICATE: "the endpoint's certificate is not trusted",
}


class Results:
    """The results of a run, as they complete: ``async for result in results``."""

    __slots__ = ("_queue",)

    def __init__(self, queue: HandOff[Result]) -> None:
        self._queue = queue

    def __aiter__(self) -> Results:
        return self

    async def __anext__(self) -> Result:
        queue = self._queue
        result = queue.get_nowait()
        if result is None and (result := await queue.get()) is None:
            raise StopAsyncIteration
        return result

    async def batch(self) -> list[Result]:
        """The results completed and not yet taken, in order, waiting for the first when
        there is none; an empty list once every result was delivered.

        What ``async for`` gives one by one, without a step of the iteration per result::

            while batch := await results.batch():
                for result in batch:
                    ...
        """
        return await self._queue.get_all()


class Stopper:
    """Stops builds: configuration shared by one or more :meth:`run` calls.

    Args:
        client: anything with ``stop(target) -> Reply`` and ``refresh_credentials``.
        pacer: rate limiter + throttling control; share one between runs to share the rate.
        settings: concurrency, retry policy, guards.
        clock: time source for waits (tests pass a fake one); defaults to the pacer's.
        observer: told before each target's first attempt (the report journal).
    """

    def __init__(
        self,
        client: StopClient,
        *,
        pacer: Pacer | None = None,
        settings: RunSettings | None = None,
        clock: Clock | None = None,
        observer: RunObserver | None = None,
    ) -> None:
        self.client = client
        self.pacer = pacer if pacer is not None else Pacer(clock=clock)
        self.settings = settings if settings is not None else RunSettings()
        self.clock: Clock = clock if clock is not None else self.pacer.clock
        self.observer = observer

    def __repr__(self) -> str:
        return f"Stopper({self.client!r}, {self.pacer!r}, {self.settings!r})"

    def run(
        self,
        rows: Iterable[RowLike] | AsyncIterable[RowLike],
        *,
        carried: Carried | None = None,
    ) -> StopRun:
        """Start stopping ``rows``; use the returned object with ``async with``.

        ``rows`` may be :class:`InputRow` (from :func:`bulkstop.sources.open_source`),
        :class:`Target`, or ``(job_id, build_no)`` pairs, as a sync or async iterable. A sync
        iterable other than a list or tuple is read on a thread of its own
        (:class:`~bulkstop.sources.ReadAhead`, as a source that may wait reads itself), so
        that a slow one never holds up the event loop, and each row goes out as soon as it is
        read; a source that never waits (a regular file) is read on the event loop.
        ``carried`` (a resume's) is asked about each distinct target: one it hands a record
        for is not sent, and that record comes out in its place; one it says may have been
        stopped already is reported ``uncertain`` on a "not stopped" answer.
        """
        return StopRun(self, rows, carried)


class StopRun(anyio.AsyncContextManagerMixin):
    """One run. ``async with`` it to receive results as they complete.

    Leaving the block early cancels what is still running and stops reading the input (a
    thread reading it ends; a source is not read further). When the run was aborted by a
    guard, leaving the block raises :class:`~bulkstop.errors.RunAborted` (after every row's
    result was handed out).

    Attributes:
        settings: the stopper's :class:`RunSettings`.
        stats: live counters (:class:`RunStats`).
        budget: the run's :class:`~bulkstop.retry.RetryBudget`.
        breaker / server_health / first_answers: the run's guards (:mod:`bulkstop.guards`).
        abort_error: the guard's error that ended the run, if one did.
    """

    def __init__(
        self,
        stopper: Stopper,
        rows: Iterable[RowLike] | AsyncIterable[RowLike],
        carried: Carried | None,
    ) -> None:
        self._stopper = stopper
        self._rows = rows
        self._carried = carried
        settings = stopper.settings
        self.settings = settings
        self.stats = RunStats()
        refill = settings.budget_refill
        if refill is None:
            refill = settings.budget_ratio * stopper.pacer.control.max_rate
        self.budget = RetryBudget(
            ratio=settings.budget_ratio,
            reserve=settings.budget_reserve,
            refill=refill,
            now=stopper.clock.now(),
        )
        self.breaker = AuthBreaker(settings.auth_breaker)
        self.server_health = FailingServerGuard(
            settings.failing_server_window, share=settings.failing_server_share
        )
        self.first_answers = SystematicFaultGuard(settings.systematic_limit)
        self._fault_example: Reply | None = None
        self._judged: anyio.Event | None = None  # set once first_answers cleared or tripped
        self._holding = 0  # workers holding a target until first_answers decides
        self._workers_left = settings.concurrency
        self._closing = False  # the consumer left: what is cancelled now proves nothing
        self.abort_error: RunAborted | None = None
        self._stop_reason: str | None = None
        self._random = random.Random(settings.seed)  # noqa: S311 - jitter, not security
        self._seen = SeenTargets()  # every target met so far, for the dedupe
        self._input: ReadAhead[Any] | None = None  # the input, when it is read on a thread
        self._waiting: set[anyio.CancelScope] = set()
        self._in_flight: set[anyio.CancelScope] = set()
        self._sent_finished = 0
        self._sent_failures = 0
        # The observer's batch call, if it has one, and how many targets one call covers.
        self._announce_many: Callable[[Sequence[tuple[int, str, int]]], None] | None = getattr(
            stopper.observer, "attempting_many", None
        )
        self._announce_ahead = ANNOUNCE_AHEAD
        self._queue: HandOff[_Item] | None = None  # the workers' queue, while the run runs

    def __repr__(self) -> str:
        stats = self.stats
        return (
            f"StopRun(rows={stats.rows}, done={stats.done}, in_flight={stats.in_flight}, "
            f"requests={stats.requests}, stopping={self._stop_reason!r}, {self._seen!r})"
        )

    # -- control -------------------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        """Whether the run stopped starting attempts (drained, or ended by a guard)."""
        return self._stop_reason is not None

    def drain(self, reason: str = "interrupted") -> None:
        """Start no new attempt; let calls in flight finish; the rest ends ``aborted``.

        The rest of a file is read and reported; a pipe opened by
        :func:`~bulkstop.sources.open_source` is read no further than it has been (its writer
        may never close it), so the rows not yet read from it get no record.
        """
        if self._stop_reason is None:
            self._stop_reason = reason
            self.stats.ended_early = reason
            log.info("run.draining", reason=reason)
        for scope in list(self._waiting):
            scope.cancel()
        if self._input is not None:
            self._input.stop_waiting()

    def cancel_in_flight(self) -> None:
        """Also cancel the calls in flight (they are reported ``aborted``)."""
        self.drain(self._stop_reason or "interrupted")
        for scope in list(self._in_flight):
            scope.cancel()

    def _abort(self, error: RunAborted) -> None:
        if self.abort_error is None:
            self.abort_error = error
            self.stats.aborted_by = error
            log.error("run.aborted", reason=str(error))
        self.drain(str(error))

    # -- lifecycle -----------------------------------------------------------------------

    @asynccontextmanager
    async def __asynccontextmanager__(self) -> AsyncIterator[Results]:
        settings = self.settings
        # one sender for the producer and one per worker
        out = HandOff[Result](high=settings.concurrency * 4, senders=settings.concurrency + 1)
        queue = self._queue = HandOff[_Item](high=settings.concurrency * 2)
        self._judged = anyio.Event()
        self.stats.started = self._stopper.clock.now()
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._produce, queue, out)
            for _ in range(settings.concurrency):
                tg.start_soon(self._work, queue, out)
            try:
                yield Results(out)
            finally:
                # The consumer left: cancel whatever still runs (nothing does after a full read).
                self._closing = True
                tg.cancel_scope.cancel()
        self.stats.finished = self._stopper.clock.now()
        if self.abort_error is not None:
            raise self.abort_error

    # -- producer ------------------------------------------------------------------------

    async def _row_batches(self) -> AsyncGenerator[Sequence[RowLike]]:
        """The input rows in order, as many at a time as are at hand: a step of an async
        iteration per row cost more than validating the row."""
        rows = self._rows
        if isinstance(rows, list | tuple):  # in memory: nothing to wait for
            yield rows
            return
        if not isinstance(rows, AsyncIterable):
            # Reading may wait (a generator reading a socket): read it on a thread of its own,
            # so that the event loop, and every request in flight, keeps moving meanwhile.
            rows = ReadAhead(rows)
        iterator = aiter(rows)  # a TargetSource's is a ReadAhead, or InlineRows for a file
        if not isinstance(iterator, InlineRows | ReadAhead):
            async for row in iterator:  # a caller's own async iterable: a row at a time
                yield (row,)
            return
        if isinstance(iterator, ReadAhead):
            self._input = iterator
            if self.stopping:
                iterator.stop_waiting()
        try:
            while batch := await iterator.batch():
                yield batch
        finally:
            if isinstance(iterator, ReadAhead):
                iterator.stop()  # a run that ended early reads no further (at the end: no-op)

    def _to_row(self, row: RowLike, index: int) -> InputRow:
        if isinstance(row, InputRow):
            return row
        if isinstance(row, Target):
            return InputRow(
                line=index,
                target=row,
                error=None,
                raw_job_id=row.job_id,
                raw_build_no=str(row.build_no),
            )
        if isinstance(row, tuple) and len(row) == 2:
            return InputRow.from_values(index, row[0], row[1])
        return InputRow.invalid(index, f"expected (job_id, build_no), got {type(row).__name__}")

    def _local(
        self, line: int, job_id: str, build_no: str, outcome: Outcome, detail: str
    ) -> Result:
        """A record for a row that is never sent (invalid, duplicate, or a dry run's)."""
        return Result(
            line=line,
            job_id=job_id,
            build_no=build_no,
            outcome=outcome,
            detail=detail,
            run=self.settings.run,
        )

    async def _produce(self, queue: HandOff[_Item], out: HandOff[Result]) -> None:
        try:
            await self._produce_into(queue, out)
        finally:
            queue.sender_done()
            out.sender_done()

    async def _produce_into(self, queue: HandOff[_Item], out: HandOff[Result]) -> None:
        async with contextlib.aclosing(self._row_batches()) as batches:
            index = 0
            async for batch in batches:
                await self._produce_from(batch, index, queue, out)
                index += len(batch)

    async def _produce_from(
        self, rows: Sequence[RowLike], index: int, queue: HandOff[_Item], out: HandOff[Result]
    ) -> None:
        """Validate, dedupe and queue ``rows``, the input's rows after its first ``index``."""
        for raw in rows:
            index += 1
            self.stats.rows += 1
            if type(raw) is tuple and len(raw) == 2:
                # plain (job_id, build_no) pairs: validate without building an InputRow
                parsed = parse_target(raw[0], raw[1])
                if isinstance(parsed, str):
                    invalid = self._local(index, str(raw[0]), str(raw[1]), Outcome.INVALID, parsed)
                    await self._emit(out, invalid)
                    continue
                line, target = index, parsed
            else:
                row = self._to_row(raw, index)
                if row.target is None:
                    invalid = self._local(
                        row.line,
                        row.raw_job_id,
                        row.raw_build_no,
                        Outcome.INVALID,
                        row.error or "invalid",
                    )
                    await self._emit(out, invalid)
                    continue
                line, target = row.line, row.target
            key = target.key
            first = None if self._carried is None else self._carried.sighted(key)
            if not (self._seen.add(key) if first is None else first):
                detail = (
                    f"same target as an earlier row; sent once ({target.job_id}:{target.build_no})"
                )
                duplicate = self._local(
                    line, target.job_id, str(target.build_no), Outcome.DUPLICATE, detail
                )
                await self._emit(out, duplicate)
                continue
            maybe_applied = False
            if self._carried is not None:
                record = self._carried.get(key, line)
                if record is not None:
                    if record.outcome is not Outcome.SKIPPED:  # --only-outcome: carries nothing
                        self.stats.carried_over += 1
                    await self._emit(out, record)
                    continue
                maybe_applied = self._carried.maybe_applied(key)
            if self.settings.dry_run:  # exactly the targets a run would send, none sent
                planned = self._local(
                    line, target.job_id, str(target.build_no), Outcome.DRY_RUN, "would be sent"
                )
                await self._emit(out, planned)
                continue
            item = _Item(line, target, maybe_applied=maybe_applied)
            if self._stop_reason is not None:
                await self._emit(out, self._aborted(item))
                continue
            if not queue.offer(item):
                await queue.put(item)

    async def _emit(self, out: HandOff[Result], result: Result) -> None:
        await out.put(result)
        self._count(result)

    def _count(self, result: Result) -> None:
        outcomes = self.stats.outcomes  # counted once delivered
        outcomes[result.outcome] = outcomes.get(result.outcome, 0) + 1

    # -- workers -------------------------------------------------------------------------

    async def _work(self, queue: HandOff[_Item], out: HandOff[Result]) -> None:
        try:
            await self._work_through(queue, out)
        finally:
            self._workers_left -= 1
            self._conclude_if_stuck()
            out.sender_done()

    async def _work_through(self, queue: HandOff[_Item], out: HandOff[Result]) -> None:
        # One cancel scope per worker, not per target: cancel_in_flight() cancels it,
        # and what was under way is then reported here, outside the scope.
        scope = anyio.CancelScope()
        self._in_flight.add(scope)
        current: _Item | None = None  # taken, no result yet
        pending: Result | None = None  # result made, not yet delivered
        outcomes = self.stats.outcomes  # counted once delivered
        with scope:
            while (item := queue.get_nowait()) is not None or (
                item := await queue.get()
            ) is not None:
                current = item
                if self._stop_reason is not None:
                    result = self._aborted(item)
                else:
                    result = await self._stop_one(item)
                current, pending = None, result
                if result.attempts and result.outcome is not _ABORTED:
                    self._account(result)  # sent and finished: the failure threshold's
                if not out.offer(result):
                    await out.put(result)
                # _count(result), written out: this runs for every target
                outcomes[result.outcome] = outcomes.get(result.outcome, 0) + 1
                pending = None
        self._in_flight.discard(scope)
        if not scope.cancelled_caught:
            return
        if pending is not None:
            await self._emit(out, pending)
        elif current is not None:
            await self._emit(out, self._aborted(current, "cancelled"))
        while (item := await queue.get()) is not None:
            await self._emit(out, self._aborted(item, "cancelled"))

    def _account(self, result: Result) -> None:
        if result.attempts == 0 or result.outcome is _ABORTED:
            return
        self._sent_finished += 1
        if result.outcome not in ACCEPTABLE:
            self._sent_failures += 1
            log.warning(
                "stop.failed",
                job_id=result.job_id,
                build_no=result.build_no,
                outcome=result.outcome.value,
                http_status=result.http_status,
                error_code=result.error_code,
                detail=result.detail,
                attempts=result.attempts,
            )
        threshold = self.settings.max_failures
        if threshold is not None and threshold.exceeded(self._sent_failures, self._sent_finished):
            self._abort(
                RunAborted(
                    f"failure threshold reached: {self._sent_failures} of {self._sent_finished}"
                    f" targets failed ({threshold.describe()} allowed)"
                )
            )

    async def _acquire(self, pacer: Pacer, until: float | None) -> float | None:
        """Wait for the pacer where :meth:`drain` can interrupt; ``None`` when it did, or when
        no slot can be had by ``until`` (a target's deadline)."""
        with anyio.CancelScope() as scope:
            self._waiting.add(scope)
            try:
                if until is None:
                    return await pacer.acquire()
                return await pacer.acquire(until)
            finally:
                self._waiting.discard(scope)
        return None

    async def _wait(self, seconds: float) -> bool:
        """Sleep for a backoff; ``False`` when the run started stopping meanwhile."""
        with anyio.CancelScope() as scope:
            self._waiting.add(scope)
            try:
                if not self.stopping:
                    await self._stopper.clock.sleep(seconds)
            finally:
                self._waiting.discard(scope)
        return not self.stopping

    async def _stop_one(self, item: _Item) -> Result:
        """Drive one target to its result: take a start, call, do what :func:`decide` says."""
        stopper = self._stopper
        clock, pacer, client = stopper.clock, stopper.pacer, stopper.client
        policy = self.settings.retry
        stats = self.stats
        target = item.target
        while True:
            if self._stop_reason is not None:
                return self._aborted(item)
            until = None  # a retry must start within the target's deadline, or not at all
            if policy.deadline is not None and item.started_mono is not None:
                until = item.started_mono + policy.deadline
            started = pacer.try_acquire() if until is None else None
            if started is None:
                started = await self._acquire(pacer, until)
            if self._stop_reason is not None or (started is None and until is None):
                return self._aborted(item)
            if started is None:  # no slot before the deadline: a pause or a queue ends later
                return self._settle(item, out_of_time(item.state, policy))
            if item.attempts == 0:
                item.started_at = utcnow()
                item.started_mono = started
                self.budget.deposit(started)
                if not item.announced and stopper.observer is not None:
                    self._announce(item, stopper.observer)
            else:
                stats.retries += 1
            item.attempts += 1
            item.in_flight = True
            stats.in_flight += 1
            stats.requests += 1  # counted when sent: a cancelled call was still a request
            try:
                reply = await client.stop(target)
            finally:
                stats.in_flight -= 1
            item.in_flight = False
            item.last = reply
            judged = classify(reply)
            now = clock.now()
            self._feed(judged, reply, started, now, target)
            step = self._decide(item, judged, reply, now)
            if step.action is _HOLD:
                item.judged = True
                if await self._judge_first_answer(judged.fault, reply) and self.stopping:
                    return self._aborted(item)  # held, then the run ended: settle nothing
                now = clock.now()
                step = self._decide(item, judged, reply, now)
            if step.state is not None:
                item.state = step.state
            action = step.action
            if action is _SETTLE or action is _GIVE_UP:
                if judged.verdict is _STALE_CREDENTIAL:
                    self._record_auth(reply, target.job_id)  # refreshed twice, expired again
                return self._settle(item, step, now)
            if action is _ABORT:
                return self._aborted(item)
            if action is _REFRESH:
                if not await client.refresh_credentials(reply.credential_generation):
                    self._record_auth(reply, target.job_id)
                    return self._settle(item, step)
                continue
            if step.takes_budget:
                withdrawal = self.budget.withdraw(now)
                if withdrawal.wait > 0:
                    # Backpressure, not a verdict: the retry waits for it, and the run slows.
                    stats.budget_waits += 1
                    if withdrawal.slow_down:
                        self._slow_down(pacer, started, withdrawal.wait)
            log.info(
                "stop.retry_scheduled",
                job_id=target.job_id,
                build_no=target.build_no,
                attempt=item.attempts,
                reason=step.detail,
                wait=round(step.wait, 3),
                throttled=judged.verdict is _THROTTLED,
            )
            if step.wait > 0 and not await self._wait(step.wait):
                return self._aborted(item)

    def _announce(self, item: _Item, observer: RunObserver) -> None:
        """Tell the observer that ``item``'s first attempt comes, with the targets queued
        next when it takes them in batches (see :class:`RunObserver`).

        The targets count as announced only once the observer has returned: when it raises (a
        full disk), none of them is sent on the strength of a note that was not written.
        """
        many = self._announce_many
        queue = self._queue
        if many is None or queue is None:
            observer.attempting(item.line, item.target.job_id, item.target.build_no)
            item.announced = True
            return
        items = [item]
        items += [queued for queued in queue.peek(self._announce_ahead - 1) if not queued.announced]
        many([(one.line, one.target.job_id, one.target.build_no) for one in items])
        for one in items:
            one.announced = True

    def _feed(
        self, judged: Decision, reply: Reply, started: float, now: float, target: Target
    ) -> None:
        """Tell the pacer and the run's guards about one answer (received at ``now``)."""
        stopper = self._stopper
        pacer = stopper.pacer
        verdict = judged.verdict
        # the pacer's own time of the answer: ``now`` when it keeps the run's clock
        answered = now if pacer.clock is stopper.clock else None
        if verdict is _THROTTLED:
            self.stats.throttled += 1
            before = pacer.rate
            pause = pacer.on_throttled(started, honoured_retry_after(reply, self.settings.retry))
            if pacer.rate != before:
                log.info("pacing.rate_cut", rate=round(pacer.rate, 2), previous=round(before, 2))
            log.debug(
                "stop.throttled",
                job_id=target.job_id,
                build_no=target.build_no,
                pause=round(pause, 3),
            )
        elif verdict is _TRANSIENT:
            pacer.on_failed(started, answered)
        else:
            pacer.on_accepted(started, answered)
        if verdict is _STALE_CREDENTIAL:
            # Judged after the refresh: every worker in flight sees the expiry at once, and a
            # renewed token means the credentials are fine.
            return
        if self.breaker.streak or reply.http_status in AUTH_FAILURE_STATUSES:
            self._record_auth(reply, target.job_id)  # else nothing to record: the common case
        health = self.server_health
        if verdict is not _THROTTLED and health.window:
            failed = verdict is _TRANSIENT or judged.outcome is _FAILED
            if health.record(now, failed):
                self._abort(ServerFailing(health.describe()))

    def _decide(self, item: _Item, judged: Decision, reply: Reply, now: float) -> Step:
        """:func:`decide` on the run as it is at ``now``."""
        policy = self.settings.retry
        guard = self.first_answers
        first_answer = not item.judged and guard.watching
        # Draw only what decide() will use, so that a seeded run's jitter does not depend on
        # which targets gave up or were held (only a transient failure can use a draw).
        backoff = judged.verdict is _TRANSIENT and draws_backoff(
            judged, item.state, policy, first_answer=first_answer
        )
        return decide(
            judged,
            reply,
            item.state,
            policy,
            attempt=item.attempts,
            now=now,
            started=item.started_mono,
            draw=self._random.random() if backoff else 0.0,
            budget_wait=self.budget.wait_for_token(now) if backoff else 0.0,
            paused_until=self._stopper.pacer.gate.until,
            first_answer=first_answer,
            call_is_wrong=guard.tripped,
        )

    def _settle(self, item: _Item, step: Step, now: float | None = None) -> Result:
        assert step.outcome is not None
        return _result(
            item, step.outcome, self.settings.run, self._stopper.clock, step.detail, now
        )

    def _aborted(self, item: _Item, unless: str = "run stopped") -> Result:
        """An ``aborted`` record for ``item``: why the run stopped (``unless`` it was not)."""
        detail = self._stop_reason or unless
        if item.in_flight or item.state.maybe_applied:
            detail += "; a stop call was in flight and may have taken effect"
        return _result(item, Outcome.ABORTED, self.settings.run, self._stopper.clock, detail)

    def _slow_down(self, pacer: Pacer, started: float, budget_wait: float) -> None:
        """The retry budget is spent: tell the pacer (rule 5 of :mod:`bulkstop.pacing`)."""
        before = pacer.rate
        if pacer.slow_down(started):
            log.info(
                "pacing.slowed_down",
                reason="retry budget spent",
                rate=round(pacer.rate, 2),
                previous=round(before, 2),
                budget_wait=round(budget_wait, 3),
            )

    # -- the first answers: is the call itself wrong? -------------------------------------

    async def _judge_first_answer(self, fault: SystematicFault | None, reply: Reply) -> bool:
        """Show a target's first answer to the guard; hold the target while it shows a fault
        and the guard has not decided. Returns whether it was held."""
        guard = self.first_answers
        if fault is not None:
            self._fault_example = reply
        if guard.record(fault):
            self._end_systematically()
        elif not guard.watching:
            self._first_answers_decided()
        else:
            await self._hold()
            return True
        return False

    async def _hold(self) -> None:
        """Wait, where :meth:`drain` can interrupt, until the first answers are judged."""
        judged = self._judged
        assert judged is not None
        self._holding += 1
        try:
            self._conclude_if_stuck()
            if not judged.is_set():
                with anyio.CancelScope() as scope:
                    self._waiting.add(scope)
                    try:
                        await judged.wait()
                    finally:
                        self._waiting.discard(scope)
        finally:
            self._holding -= 1

    def _conclude_if_stuck(self) -> None:
        """Every live worker holds a target: no further answer can come, so decide now."""
        if self._closing or not self._holding or self._holding < self._workers_left:
            return
        if self.first_answers.conclude():
            self._end_systematically()

    def _first_answers_decided(self) -> None:
        if self._judged is not None:
            self._judged.set()

    def _end_systematically(self) -> None:
        guard = self.first_answers
        example = self._fault_example
        assert guard.fault is not None
        assert example is not None
        fault = SystematicFault(guard.fault)
        count = f"{guard.seen} of {guard.seen} first calls"
        if fault is SystematicFault.API_NOT_SERVED:
            code = example.error_code or "without a CodeArts error code"
            evidence = f"{example.http_status} {code} for {count}"
            message = f"the endpoint does not serve this stop API ({evidence})"
        else:
            evidence = count
            message = f"{example.error_msg or _FAULT_TEXT[fault]} ({evidence})"
        self._abort(SystematicFailure(message, fault=fault, targets=guard.seen, evidence=evidence))
        self._first_answers_decided()

    def _record_auth(self, reply: Reply, job_id: str) -> None:
        """Feed the auth breaker one answer; abort the run when it trips."""
        failed = reply.http_status in AUTH_FAILURE_STATUSES
        forbidden = job_id if reply.http_status == FORBIDDEN_STATUS else None
        if self.breaker.record(failed, forbidden_job=forbidden):
            self._abort(
                CredentialsRejected(
                    f"{self.breaker.streak} authentication failures in a row "
                    f"(last: {describe_reply(reply)}): the credentials are the problem; "
                    "stopping before the key gets locked"
                )
            )
