"""Verification: did the stops take effect? Each stopped build is checked until it has ended.

A stop takes a moment to take effect (a build passes through an aborting state), so a check
right after it may still see the build running. Verification polls with backoff until each
build has ended or its ``timeout`` is up, and gives each target one :class:`VerifyResult`:

=========  ===============================================================================
verdict    meaning
=========  ===============================================================================
ended      an answer said positively that the build has ended (:func:`~bulkstop.codes.build_ended`);
           ``status`` is the service's own word for it (e.g. ``ABORTED``)
running    still running at the timeout: the last check answered, and not "ended"
unknown    it could not be checked: the job or build is unknown or forbidden (404, 403,
           422 ``DEVCB.00031006``), no API answers, or errors until the timeout
=========  ===============================================================================

With as few calls as the API allows: targets are grouped by job, and one record-list call
covers up to 100 of a job's builds — asked for the window around the builds' start times when
they are known (a day wider on both sides: the query's zone is undocumented), else for the
last ``unknown_start_lookback``, paging only while that costs less than asking each build
alone. A build the list does not hold is asked by itself (``show_build_details`` and its
fallbacks) from then on. Each group of APIs falls back to the next when one is not served
(404 ``CB.00060214``) and keeps the one that answered for the rest of the run
(:class:`~bulkstop.reader.ApiChain`).

The polling schedule, per job (:func:`poll_delay`, pure): the first check at once (or after
``first_check_after``), then waits of ``min(poll_max, poll_initial × poll_multiplier^(n-1))``,
shortened by up to ``poll_jitter`` of themselves by a random draw, never past the timeout,
which counts from the end of the first check: the last check is made when it is up. Whatever
a ``Retry-After`` asks, no read call of the first check starts after ``timeout`` from its
start, nor any later one more than ``poll_max`` after the timeout is up. Reads go
through a :class:`~bulkstop.reader.Reader` on their own read :class:`~bulkstop.pacing.Pacer`,
with the stop calls' retry policy; a streak of 401s ends verification with
:class:`~bulkstop.errors.CredentialsRejected` (raised when the block is left, after every
target got its verdict: those not settled are ``unknown``).

The shape is discovery's::

    verification = Verification(client, [(job_id, build_no), ...])
    async with verification as verdicts:
        async for result in verdicts:
            print(result.job_id, result.build_no, result.verdict, result.status)
"""

from __future__ import annotations

import enum
import functools
import random
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, NamedTuple

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from bulkstop.client import ReadClient
from bulkstop.clock import Clock, utcnow
from bulkstop.errors import CredentialsRejected
from bulkstop.log import get_logger
from bulkstop.models import Target, parse_target
from bulkstop.pacing import Pacer
from bulkstop.reader import (
    ApiChain,
    Reader,
    ReadFailure,
    ReadFailureReason,
    ReadSettings,
    ReadStats,
)
from bulkstop.reads import (
    BUILD_APIS,
    RECORD_LIST_APIS,
    BuildRecord,
    build_parser,
    build_request,
    record_window,
    records_parser,
    records_request,
)

__all__ = [
    "Verification",
    "VerifyResult",
    "VerifySettings",
    "VerifyStats",
    "VerifyTarget",
    "VerifyVerdict",
    "poll_delay",
]

log = get_logger(__name__)

#: Pages of one job's record list read in one check at most (then builds are asked alone).
_MAX_PAGES: Final = 100
#: Failures that settle a target ``unknown`` at once: asking again cannot change them.
_PERMANENT: Final = frozenset(
    {
        ReadFailureReason.NOT_SERVED,
        ReadFailureReason.NOT_FOUND,
        ReadFailureReason.FORBIDDEN,
        ReadFailureReason.UNAUTHORIZED,
        ReadFailureReason.REJECTED,
    }
)


class VerifyVerdict(enum.StrEnum):
    """The final word on one target (see the module docstring)."""

    ENDED = "ended"
    RUNNING = "running"
    UNKNOWN = "unknown"


class VerifyTarget(NamedTuple):
    """A build to check; ``start_time`` (when known) narrows the record list's window."""

    job_id: str
    build_no: int
    start_time: datetime | None = None


class VerifyResult(NamedTuple):
    """One target's verdict (the record of a verification, one per target)."""

    job_id: str
    build_no: int
    verdict: VerifyVerdict
    #: the service's own word at the last answer (``ABORTED``, ``RUNNING``); empty if none
    status: str = ""
    #: how many answers about the build were read
    checks: int = 0
    #: bulkstop's explanation of a ``running`` or ``unknown`` verdict
    detail: str = ""
    http_status: int | None = None
    error_code: str = ""
    request_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifySettings:
    """How verification polls.

    Attributes:
        timeout: seconds a build still running at its first check is polled for.
        first_check_after: seconds before the first check (0: at once).
        poll_initial / poll_max / poll_multiplier: the waits between checks (exponential).
        poll_jitter: the share of a wait a random draw may take off it, in [0, 1].
        unknown_start_lookback: how far back the record list is asked for builds whose start
            is not known.
        reads: concurrency, read rate, retry policy, page size of the read calls.
    """

    timeout: float = 120.0
    first_check_after: float = 0.0
    poll_initial: float = 2.0
    poll_max: float = 20.0
    poll_multiplier: float = 2.0
    poll_jitter: float = 0.25
    unknown_start_lookback: timedelta = timedelta(days=7)
    reads: ReadSettings = field(default_factory=ReadSettings)

    def __post_init__(self) -> None:
        if not self.timeout >= 0:
            raise ValueError("timeout must be ≥ 0 seconds")
        if not self.first_check_after >= 0:
            raise ValueError("first_check_after must be ≥ 0 seconds")
        if not (0 < self.poll_initial <= self.poll_max):
            raise ValueError("poll_initial must be > 0 and at most poll_max")
        if self.poll_multiplier < 1:
            raise ValueError("poll_multiplier must be ≥ 1")
        if not 0 <= self.poll_jitter <= 1:
            raise ValueError("poll_jitter must be in [0, 1]")
        if self.unknown_start_lookback <= timedelta(0):
            raise ValueError("unknown_start_lookback must be positive")


def poll_delay(settings: VerifySettings, poll: int, draw: float) -> float:
    """The wait before check ``poll + 1`` (``poll`` 1 for the wait after the first check).

    ``cap = min(poll_max, poll_initial × poll_multiplier^(poll-1))`` and the wait is
    ``cap × (1 - poll_jitter × draw)``, ``draw`` a uniform number in ``[0, 1)`` supplied by
    the caller, so the function is pure.
    """
    if poll < 1:
        raise ValueError("poll starts at 1")
    exponent = min(poll - 1, 64)  # large enough to pass any cap, small enough for floats
    cap = min(settings.poll_max, settings.poll_initial * settings.poll_multiplier**exponent)
    return cap * (1.0 - settings.poll_jitter * draw)


@dataclass(slots=True)
class VerifyStats(ReadStats):
    """Live counters of one verification."""

    #: distinct targets given
    targets: int = 0
    #: answers about one build read (a record found in a list, or a one-build answer)
    checks: int = 0
    #: verdicts handed out, and how many of each
    settled: int = 0
    ended: int = 0
    running: int = 0
    unknown: int = 0
    #: set once every target has its verdict
    finished: bool = False


@dataclass(slots=True)
class _Pending:
    """One target still being checked."""

    target: VerifyTarget
    listable: bool = True  # look for it in the job's record list (until it is not there)
    checks: int = 0
    status: str = ""
    failure: ReadFailure | None = None  # the last check failed this way (None: it answered)
    settled: bool = False


def _targets(targets: Iterable[Any]) -> list[VerifyTarget]:
    """Every target as a :class:`VerifyTarget`, deduped; a wrong one raises ``ValueError``."""
    found: dict[tuple[str, int], VerifyTarget] = {}
    for position, item in enumerate(targets):
        start = getattr(item, "start_time", None)
        if isinstance(item, Target) or (hasattr(item, "job_id") and hasattr(item, "build_no")):
            job_id, build_no = item.job_id, item.build_no
        elif isinstance(item, tuple) and len(item) == 2:
            job_id, build_no = item
        else:
            raise ValueError(f"target {position}: expected (job_id, build_no), got {item!r}")
        parsed = parse_target(job_id, build_no)
        if isinstance(parsed, str):
            raise ValueError(f"target {position}: {parsed}")
        if start is not None and not (isinstance(start, datetime) and start.tzinfo is not None):
            raise ValueError(f"target {position}: start_time must be an aware datetime")
        found.setdefault(parsed.key, VerifyTarget(parsed.job_id, parsed.build_no, start))
    return list(found.values())


class Verification(anyio.AsyncContextManagerMixin):
    """One verification (see the module docstring): ``async with`` it to receive the verdicts.

    Args:
        client: anything with the :class:`~bulkstop.client.ReadClient` shape.
        targets: builds that were sent stops: :class:`~bulkstop.models.Target`,
            :class:`VerifyTarget`, :class:`~bulkstop.discover.DiscoveredBuild` (their start
            times narrow the window) or ``(job_id, build_no)`` pairs. Repeats are checked once;
            a target that is not one raises ``ValueError`` here, before anything is sent.
        settings: the polling schedule and the read settings.
        pacer: the read pacer (default: one of its own at ``settings.reads.rate``).
        clock: time source for waits (default: the pacer's).
        wall: the current time, aware (default: UTC now): the window of unknown starts.
        draw: the random draw of the polling jitter, uniform in [0, 1) (default: seeded by
            ``settings.reads.seed``).

    Attributes:
        targets: the distinct targets, in the order given.
        stats: the live :class:`VerifyStats`.
        abort_error: the :class:`~bulkstop.errors.CredentialsRejected` that ended it, if any.
        pacer: the read pacer in use.
    """

    def __init__(
        self,
        client: ReadClient,
        targets: Iterable[Target | VerifyTarget | tuple[str, int] | Any],
        *,
        settings: VerifySettings | None = None,
        pacer: Pacer | None = None,
        clock: Clock | None = None,
        wall: Callable[[], datetime] = utcnow,
        draw: Callable[[], float] | None = None,
    ) -> None:
        self.settings = settings if settings is not None else VerifySettings()
        reads = self.settings.reads
        self.targets = _targets(targets)
        self.pacer = pacer if pacer is not None else Pacer(rate=reads.rate, clock=clock)
        self.clock: Clock = clock if clock is not None else self.pacer.clock
        self.stats = VerifyStats(targets=len(self.targets))
        self.abort_error: CredentialsRejected | None = None
        self._wall = wall
        self._draw = draw if draw is not None else random.Random(reads.seed).random  # noqa: S311
        self._reader = Reader(
            client, self.pacer, reads, self.stats, clock=self.clock, on_abort=self._abort
        )
        self._lists = ApiChain(RECORD_LIST_APIS)
        self._builds = ApiChain(BUILD_APIS)
        self._lists_served = True
        self._work: anyio.CancelScope | None = None
        self._send: MemoryObjectSendStream[VerifyResult] | None = None

    def _abort(self, error: CredentialsRejected) -> None:
        if self.abort_error is None:
            self.abort_error = error
        if self._work is not None:
            self._work.cancel()

    @asynccontextmanager
    async def __asynccontextmanager__(self) -> AsyncIterator[AsyncIterator[VerifyResult]]:
        # Room for every verdict: handing one out never waits, so a verdict is never lost
        # to a cancellation between "settled" and "sent".
        send, receive = anyio.create_memory_object_stream[VerifyResult](max(1, len(self.targets)))
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._run, send)
            try:
                with receive:
                    yield receive
            finally:
                tg.cancel_scope.cancel()  # the consumer left: stop (nothing runs after a full read)
        if self.abort_error is not None:
            raise self.abort_error

    async def _run(self, send: MemoryObjectSendStream[VerifyResult]) -> None:
        groups: dict[str, list[_Pending]] = {}
        for target in self.targets:
            groups.setdefault(target.job_id, []).append(_Pending(target))
        async with send:
            self._send = send
            with anyio.CancelScope() as self._work:
                async with anyio.create_task_group() as tg:
                    for job_id, pending in groups.items():
                        tg.start_soon(self._verify_job, job_id, pending)
            if self.abort_error is not None:
                why = f"not checked to the end: {self.abort_error}"
                for pending in groups.values():
                    for item in pending:
                        if not item.settled:
                            self._settle(item, VerifyVerdict.UNKNOWN, why, item.failure)
            self.stats.finished = True
            stats = self.stats
            log.info(
                "verify.finished",
                targets=stats.targets,
                ended=stats.ended,
                running=stats.running,
                unknown=stats.unknown,
                calls=stats.calls,
            )

    def _settle(
        self,
        item: _Pending,
        verdict: VerifyVerdict,
        detail: str = "",
        failure: ReadFailure | None = None,
    ) -> None:
        if item.settled:
            return
        item.settled = True
        stats = self.stats
        stats.settled += 1
        if verdict is VerifyVerdict.ENDED:
            stats.ended += 1
        elif verdict is VerifyVerdict.RUNNING:
            stats.running += 1
        else:
            stats.unknown += 1
        target = item.target
        result = VerifyResult(
            job_id=target.job_id,
            build_no=target.build_no,
            verdict=verdict,
            status=item.status,
            checks=item.checks,
            detail=detail,
            http_status=failure.http_status if failure else None,
            error_code=failure.error_code if failure else "",
            request_id=failure.request_id if failure else "",
        )
        if verdict is not VerifyVerdict.ENDED:
            log.warning(
                "verify.not_ended",
                job_id=target.job_id,
                build_no=target.build_no,
                verdict=verdict.value,
                detail=detail,
            )
        assert self._send is not None
        self._send.send_nowait(result)

    # -- one job's targets ---------------------------------------------------------------

    async def _verify_job(self, job_id: str, pending: list[_Pending]) -> None:
        settings, clock = self.settings, self.clock
        if settings.first_check_after > 0:
            await clock.sleep(settings.first_check_after)
        # Every check is bounded, the first one too: a server answering "retry after a day"
        # cannot hold a verification past its timeout. The last check, made when the timeout
        # is up, gets one longest poll wait to get its turn and its retries.
        await self._check(job_id, pending, clock.now() + settings.timeout)
        deadline = clock.now() + settings.timeout
        calls_until = deadline + settings.poll_max
        polls = 0
        while True:
            pending = [item for item in pending if not item.settled]
            if not pending:
                return
            now = clock.now()
            if now >= deadline:
                break
            polls += 1
            await clock.sleep(min(poll_delay(settings, polls, self._draw()), deadline - now))
            await self._check(job_id, pending, calls_until)
        for item in pending:
            if item.failure is None and item.checks:
                detail = f"still running after {settings.timeout:g} s of checks"
                self._settle(item, VerifyVerdict.RUNNING, detail)
            else:
                failure = item.failure
                detail = failure.message if failure else "no answer about it"
                if item.checks:
                    detail += f" (the last answer said {item.status!r})"
                self._settle(item, VerifyVerdict.UNKNOWN, detail, failure)

    async def _check(self, job_id: str, pending: list[_Pending], until: float) -> None:
        """One round: the job's record list for the builds it may hold, then the rest alone;
        no read call starts after ``until``."""
        if not self._lists_served:  # learnt meanwhile, from another job
            for item in pending:
                item.listable = False
        listable = [item for item in pending if item.listable and not item.settled]
        if listable:
            await self._check_listed(job_id, listable, until)
        for item in pending:
            if not item.settled and not item.listable:
                await self._check_alone(job_id, item, until)

    async def _check_listed(self, job_id: str, items: list[_Pending], until: float) -> None:
        now = self._wall()
        starts = [item.target.start_time for item in items]
        known = [start for start in starts if start is not None]
        if len(known) == len(starts):
            window = record_window(min(known), max(known))
        else:
            low = min([now - self.settings.unknown_start_lookback, *known])
            window = record_window(low, max([now, *known]))
        wanted = {item.target.build_no: item for item in items}
        found: dict[int, BuildRecord] = {}
        listed: set[int] = set()
        size = self.settings.reads.page_size
        for page_index in range(_MAX_PAGES):
            outcome = await self._reader.first_answer(
                self._lists,
                functools.partial(
                    records_request,
                    job_id=job_id,
                    window=window,
                    page_index=page_index,
                    page_size=size,
                    now=now,
                ),
                records_parser,
                until=until,
            )
            failure = outcome.failure
            if failure is not None:
                await self._list_failed(items, failure)
                return
            page = outcome.value
            assert page is not None
            before = len(listed)
            for record in page.records:
                listed.add(record.build_no)
                if record.build_no in wanted:
                    found.setdefault(record.build_no, record)
            missing = len(wanted) - len(found)
            if not missing or page.entries < size or len(listed) == before:
                break  # all found, the last page, or the service repeated one
            if page.total_records is not None and (page_index + 1) * size >= page.total_records:
                break
            if page.total_pages is not None and page_index + 1 >= page.total_pages:
                break
            if page_index + 1 >= missing:
                break  # asking the missing builds alone is as cheap as reading on
        for number, item in wanted.items():
            listing = found.get(number)
            if listing is None:
                item.listable = False  # not in the list: asked by itself from now on
                continue
            await self._answered(item, listing.ended, listing.status)

    async def _list_failed(self, items: list[_Pending], failure: ReadFailure) -> None:
        reason = failure.reason
        if reason is ReadFailureReason.ABORTED:
            return
        if reason is ReadFailureReason.NOT_SERVED:
            self._lists_served = False  # no record list here: every build is asked alone
            for item in items:
                item.listable = False
            return
        if reason in _PERMANENT:  # the job itself: unknown, forbidden
            for item in items:
                self._settle(item, VerifyVerdict.UNKNOWN, failure.message, failure)
            return
        for item in items:  # failed after retries: try again at the next check
            item.failure = failure

    async def _check_alone(self, job_id: str, item: _Pending, until: float) -> None:
        outcome = await self._reader.first_answer(
            self._builds,
            functools.partial(build_request, job_id=job_id, build_no=item.target.build_no),
            build_parser,
            until=until,
        )
        failure = outcome.failure
        state = outcome.value
        asked = item.target.build_no
        if failure is None and state is not None and state.build_no not in (None, asked):
            # An answer about another build says nothing about this one: not "ended" on its
            # word; asked again at the next check.
            message = f"the answer was about build {state.build_no}, not build {asked}"
            failure = ReadFailure(ReadFailureReason.BAD_ANSWER, message)
            item.failure = failure
            return
        if failure is None:
            assert state is not None
            await self._answered(item, state.ended, state.status)
        elif failure.reason is ReadFailureReason.ABORTED:
            return
        elif failure.reason in _PERMANENT:
            self._settle(item, VerifyVerdict.UNKNOWN, failure.message, failure)
        else:
            item.failure = failure

    async def _answered(self, item: _Pending, ended: bool, status: str) -> None:
        item.checks += 1
        item.status = status
        item.failure = None
        self.stats.checks += 1
        if ended:
            self._settle(item, VerifyVerdict.ENDED)

    def __repr__(self) -> str:
        stats = self.stats
        return (
            f"Verification(targets={stats.targets}, ended={stats.ended}, "
            f"running={stats.running}, unknown={stats.unknown}, calls={stats.calls})"
        )
