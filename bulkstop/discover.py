"""Discovery: find the builds running now — what a bulk stop usually starts from.

CodeArts has no "list running builds" API, so discovery takes two steps::

    selection ──> jobs ──(N workers)──> a job's records ──> running? ──> filters ──> builds
    (project, ids,  paged,               in the window,      (codes)                  by job, then
     a file, all)   deduped by id        paged, deduped                               build number

* **Selection** (:class:`DiscoverQuery`): a CodeArts project (all its jobs, paged), explicit
  job ids, a jobs file (:func:`read_jobs_file`: one id a line, or a CSV with a ``job_id``
  column), or every job the credentials can see. Jobs are deduped by id, also when the
  service repeats a page.
* **Records**: each job's builds started in the window, ``page_size`` 100, until a page is
  short or the totals are reached (or a page brings nothing new: the service repeated it).
  The window is asked a day wider on both sides (the query's time zone is undocumented) and
  every record is then judged by its own epoch ``start_time``. A job whose last build
  started before the window (its ``last_build_time``, epoch ms) has no build in it and is not
  asked for. The record APIs are tried in turn when one is not served, and the one that
  answers is kept for the rest of the run (:class:`~bulkstop.reader.ApiChain`).
* **Running?** :func:`bulkstop.codes.build_ended` decides, on the safe side: only a build an
  answer positively calls ended is left out.
* **Filters** (:func:`record_matches`): started since (a duration back or a time; 24 h by
  default), running longer than, branch glob (:func:`fnmatch.fnmatchcase`), commit prefix,
  trigger type and executor (both case-insensitive). A build whose start cannot be placed (a
  time without a zone) passes ``since`` — it may be recent, and missing a running build is
  the worse mistake — but not ``running_longer_than``, which asks for a proven age; a filter
  on a field the answer does not give (the history API gives no branch) does not pass.
* **Output**: :class:`DiscoveredBuild` records, in selection order of their jobs (the
  project's order, the file's) and by build number within a job, handed out as each job is
  done.

Reads go through a :class:`~bulkstop.reader.Reader` on their own :class:`~bulkstop.pacing.Pacer`
(read APIs are limited apart from the stops, and lower), ``concurrency`` jobs at a time. A job
that cannot be read (404, 403, 422 ``DEVCB.00031006``, errors after retries, an answer of the
wrong shape) is a :class:`JobProblem` in :attr:`DiscoverStats.problems`, and the other jobs
are still read; a streak of 401s ends discovery with
:class:`~bulkstop.errors.CredentialsRejected`, raised when the ``async with`` block is left,
after every build already found was handed out.

The shape is the engine's (``STYLE.md``, example 3): :class:`Discovery` is an async context
manager that owns its task group and yields an async iterator::

    discovery = Discovery(client, DiscoverQuery(project_id=PROJECT))
    async with discovery as builds:
        async for build in builds:
            print(build.job_id, build.build_no, build.status)
    print(discovery.stats.jobs_scanned, discovery.stats.problems)
"""

from __future__ import annotations

import csv
import functools
import io
import math
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Final, NamedTuple

import anyio
import anyio.to_thread
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from bulkstop.client import ReadClient
from bulkstop.clock import Clock, utcnow
from bulkstop.errors import CredentialsRejected, InputError
from bulkstop.log import get_logger
from bulkstop.models import JOB_ID_PATTERN, Target, parse_target
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
    JOB_LIST_APIS,
    RECORD_LIST_APIS,
    BuildRecord,
    JobInfo,
    ReadApi,
    jobs_request,
    parse_jobs_page,
    record_window,
    records_parser,
    records_request,
)

__all__ = [
    "DEFAULT_SINCE",
    "DiscoverQuery",
    "DiscoverStats",
    "DiscoveredBuild",
    "Discovery",
    "JobProblem",
    "JobsFile",
    "parse_duration",
    "parse_since",
    "read_jobs_file",
    "record_matches",
]

log = get_logger(__name__)

#: How far back discovery looks by default: builds started in the last 24 hours.
DEFAULT_SINCE: Final = timedelta(hours=24)
#: The longest duration accepted (``since``, ``running_longer_than``): ten years.
_MAX_DURATION: Final = timedelta(days=3650)
#: Pages of one list read at most: 100 000 records of one job in the window, or jobs (also the
#: most kept, in pages × page size, when a page holds more entries than asked).
_MAX_PAGES: Final = 1000
#: The largest jobs file read (a job id a line: half a million jobs).
_MAX_JOBS_FILE: Final = 16 * 1024 * 1024
_DURATION: Final = re.compile(r"(?:\d{1,9}[smhd])+")
_DURATION_PART: Final = re.compile(r"(\d+)([smhd])")
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: Column names of a job id in a CSV jobs file, normalised (lowercase, no ``_``, ``-``,
#: spaces): the names :mod:`bulkstop.sources` accepts for the job id of a targets file.
_JOB_COLUMNS: Final = frozenset({"jobid", "job", "taskid"})
_SEPARATORS: Final = re.compile(r"[_\-\s]+")


# --- durations and times -------------------------------------------------------------------


def parse_duration(text: str) -> timedelta:
    """``90s``, ``45m``, ``6h``, ``2d`` (or sums of them, ``1h30m``) as a :class:`timedelta`.

    Raises ``ValueError`` with a one-line message for anything else, and for more than ten
    years. Hand-written: four units in one regular expression, where a parsing library would
    also accept forms (``1.5 hours``, ``P1D``) the command line should not.
    """
    compact = text.strip().lower()
    if not _DURATION.fullmatch(compact):
        raise ValueError(f"expected a duration like 90s, 45m, 6h or 2d, got {text!r}")
    seconds = sum(int(n) * _UNITS[unit] for n, unit in _DURATION_PART.findall(compact))
    if seconds > _MAX_DURATION.total_seconds():
        raise ValueError(f"a duration of at most {_MAX_DURATION.days} days, got {text!r}")
    return timedelta(seconds=seconds)


def parse_since(text: str, now: datetime) -> datetime:
    """A duration back from ``now`` (``6h``) or an ISO-8601 time with a zone, as a time."""
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"expected a duration like 6h or 2d, or a time like 2026-11-28T08:00:00+08:00, "
            f"got {text!r}"
        ) from None
    if moment.tzinfo is None:
        raise ValueError(f"a time needs its zone (Z or an offset like +08:00), got {text!r}")
    return moment


# --- the query -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DiscoverQuery:
    """What to look for: one selection of jobs, and filters on their builds.

    Exactly one of ``project_id`` (a CodeArts project's 32-character id, not the IAM project),
    ``job_ids``, ``jobs_file`` or ``all_jobs``. ``since`` is a duration back from the start of
    discovery or an aware time; ``running_longer_than`` a duration; ``branch`` an
    :func:`~fnmatch.fnmatchcase` glob; ``commit`` a prefix of the commit id (any case);
    ``trigger_type`` and ``executor`` compared case-insensitively. A wrong value raises
    ``ValueError`` here, before anything is sent. An explicit job id that is not one is not an
    error: it becomes a :class:`JobProblem`, like a bad line of a jobs file.
    """

    project_id: str | None = None
    job_ids: tuple[str, ...] = ()
    jobs_file: str | None = None
    all_jobs: bool = False
    since: timedelta | datetime = DEFAULT_SINCE
    running_longer_than: timedelta | None = None
    branch: str | None = None
    commit: str | None = None
    trigger_type: str | None = None
    executor: str | None = None

    def __post_init__(self) -> None:
        chosen = [
            name
            for name, given in (
                ("project_id", self.project_id is not None),
                ("job_ids", bool(self.job_ids)),
                ("jobs_file", self.jobs_file is not None),
                ("all_jobs", self.all_jobs),
            )
            if given
        ]
        if len(chosen) != 1:
            raise ValueError(
                "give exactly one of project_id, job_ids, jobs_file, all_jobs"
                + (f" (got {', '.join(chosen)})" if chosen else "")
            )
        if isinstance(self.job_ids, str):
            raise ValueError("job_ids is a sequence of job ids, not one string")
        if self.project_id is not None and not JOB_ID_PATTERN.fullmatch(self.project_id):
            raise ValueError(
                f"project_id: must be 32 characters of [0-9a-z], got {self.project_id!r}"
            )
        since = self.since
        if isinstance(since, datetime):
            if since.tzinfo is None:
                raise ValueError("since: a time needs its zone")
        elif not timedelta(0) <= since <= _MAX_DURATION:
            raise ValueError(f"since: a duration from 0 to {_MAX_DURATION.days} days")
        older = self.running_longer_than
        if older is not None and not timedelta(0) <= older <= _MAX_DURATION:
            raise ValueError(f"running_longer_than: a duration from 0 to {_MAX_DURATION.days} days")
        for name in ("branch", "commit", "trigger_type", "executor"):
            value = getattr(self, name)
            if value is not None and not value.strip():
                raise ValueError(f"{name}: must not be empty when given")

    def since_time(self, now: datetime) -> datetime:
        """The earliest start a build may have to be found."""
        return self.since if isinstance(self.since, datetime) else now - self.since


def record_matches(query: DiscoverQuery, record: BuildRecord, now: datetime) -> bool:
    """Whether a running build passes the query's filters (see the module docstring). Pure."""
    start = record.start_time
    if start is not None and start < query.since_time(now):
        return False
    older = query.running_longer_than
    if older is not None and (start is None or now - start < older):
        return False
    branch = query.branch
    if branch is not None and not (record.branch and fnmatchcase(record.branch, branch)):
        return False
    commit = query.commit
    if commit is not None and not record.commit_id.lower().startswith(commit.strip().lower()):
        return False
    trigger = query.trigger_type
    if trigger is not None and record.trigger_type.casefold() != trigger.strip().casefold():
        return False
    executor = query.executor
    return executor is None or record.executor.casefold() == executor.strip().casefold()


# --- records -------------------------------------------------------------------------------


class DiscoveredBuild(NamedTuple):
    """One running build found (the report of a discovery, one per build)."""

    job_id: str
    build_no: int
    #: empty for a job given by id (the record lists do not name their job)
    job_name: str
    #: the service's own word for its state (e.g. ``RUNNING``)
    status: str
    #: ``None`` when the answer gives no time that can be placed
    start_time: datetime | None
    branch: str
    commit_id: str
    trigger_type: str
    executor: str

    @property
    def target(self) -> Target:
        """The build as a stop target."""
        return Target(self.job_id, self.build_no)


class JobProblem(NamedTuple):
    """A job (or the project, or a line of a jobs file) that could not be read as asked."""

    #: the job's id; empty for the project's list or a line without a usable id
    job_id: str
    #: one line: where, and what went wrong (the server's code and message when it sent one)
    message: str
    #: :class:`~bulkstop.reader.ReadFailureReason` value, ``invalid`` for a bad input line,
    #: ``unreadable`` for entries of an answer left out
    reason: str
    http_status: int | None = None
    error_code: str = ""
    request_id: str = ""


class JobsFile(NamedTuple):
    """A jobs file as read: its ``(line, job_id)`` pairs and its unusable lines."""

    name: str
    jobs: tuple[tuple[int, str], ...]
    problems: tuple[JobProblem, ...]


@dataclass(slots=True)
class DiscoverStats(ReadStats):
    """Live counters of one discovery (read them any time, e.g. for a progress line)."""

    #: jobs selected so far (listed, given, or read from the file; deduped)
    jobs: int = 0
    #: jobs whose records were read to the end
    jobs_scanned: int = 0
    #: jobs not asked for records: their last build started before the window
    jobs_skipped: int = 0
    #: builds listed in the window (deduped)
    builds_seen: int = 0
    #: running builds handed out
    running: int = 0
    #: running builds the filters left out
    filtered_out: int = 0
    #: what could not be read, one entry per job (or line, or list)
    problems: list[JobProblem] = field(default_factory=list)
    #: the record list API in use (the one that answered)
    records_api: str = ""
    #: set once discovery has ended (every job read, or the run aborted)
    finished: bool = False


# --- the jobs file -------------------------------------------------------------------------


def read_jobs_file(path: str | os.PathLike[str]) -> JobsFile:
    """Read a jobs file: one job id a line, or a CSV whose header names a ``job_id`` column.

    The conventions of :mod:`bulkstop.sources`: UTF-8 with or without a BOM, LF or CRLF, the
    column names ``job_id``/``jobid``/``job-id``/``job``/``task_id``/``taskid`` in any case,
    other columns ignored, blank lines skipped. A CSV is recognised by a first line that has a
    comma or is one of those names. A line whose id is not one is a :class:`JobProblem`
    naming the file, the line and the field; a repeated id is read once. A file that cannot be
    read as a whole raises :class:`~bulkstop.errors.InputError` (one line, naming the file).
    """
    name = os.fspath(path)
    shown = name if name.isprintable() else repr(name)[1:-1]
    try:
        with open(path, "rb") as stream:
            data = stream.read(_MAX_JOBS_FILE + 1)
    except FileNotFoundError as exc:
        raise InputError(f"{shown}: no such file") from exc
    except IsADirectoryError as exc:
        raise InputError(f"{shown}: is a directory, not a file") from exc
    except PermissionError as exc:
        raise InputError(f"{shown}: permission denied") from exc
    except OSError as exc:
        raise InputError(f"{shown}: cannot read: {exc.strerror or exc}") from exc
    if len(data) > _MAX_JOBS_FILE:
        raise InputError(f"{shown}: larger than {_MAX_JOBS_FILE // (1024 * 1024)} MiB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{shown}: not UTF-8 (byte {exc.start})") from exc
    if "\x00" in text:
        raise InputError(f"{shown}:{text[: text.index(chr(0))].count(chr(10)) + 1}: NUL byte")
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    first = next((number for number, line in enumerate(lines, 1) if line.strip()), None)
    if first is None:
        return JobsFile(shown, (), ())
    head = lines[first - 1]
    if "," in head or _normalise(head) in _JOB_COLUMNS:
        entries = _csv_job_ids(shown, text)
    else:
        entries = ((number, line.strip()) for number, line in enumerate(lines, 1) if line.strip())
    jobs: list[tuple[int, str]] = []
    problems: list[JobProblem] = []
    seen: set[str] = set()
    for line, value in entries:
        problem = _job_id_problem(value)
        if problem is not None:
            problems.append(JobProblem("", f"{shown}:{line}: {problem}", "invalid"))
        elif value not in seen:
            seen.add(value)
            jobs.append((line, value))
    return JobsFile(shown, tuple(jobs), tuple(problems))


def _normalise(name: str) -> str:
    return _SEPARATORS.sub("", name.strip().lower())


def _job_id_problem(value: str) -> str | None:
    """The message :func:`~bulkstop.models.parse_target` gives for a job id, or ``None``."""
    parsed = parse_target(value, 1)
    return parsed if isinstance(parsed, str) else None


def _csv_job_ids(name: str, text: str) -> Iterator[tuple[int, str]]:
    """``(line, job id)`` of each CSV record (the line it starts on); the header first."""
    reader = csv.reader(io.StringIO(text, newline=""))
    start = 1
    try:
        header = next(reader)
        while not header:  # blank lines before the header
            start = reader.line_num + 1
            header = next(reader)
    except csv.Error as exc:
        raise InputError(f"{name}:{start}: not valid CSV: {exc}") from exc
    columns = [index for index, column in enumerate(header) if _normalise(column) in _JOB_COLUMNS]
    if len(columns) != 1:
        found = ", ".join(repr(column[:40]) for column in header[:10])
        why = "no job id column" if not columns else "more than one job id column"
        raise InputError(
            f"{name}:{start}: the header has {why} (found {found}); expected one of "
            "job_id, jobid, job-id, job, task_id, taskid"
        )
    (column,) = columns
    while True:
        start = reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise InputError(f"{name}:{start}: not valid CSV: {exc}") from exc
        if record:
            yield start, (record[column].strip() if column < len(record) else "")


# --- discovery -----------------------------------------------------------------------------


class _Job(NamedTuple):
    position: int  # in selection order
    info: JobInfo


class _InOrder:
    """Hands out each job's builds in job order, as soon as every earlier job is done.

    Workers finish jobs out of order; a job's builds wait here only until the jobs before it
    are done, so the output is in selection order and still streams.
    """

    __slots__ = ("_done", "_next", "_send", "_stats")

    def __init__(self, send: MemoryObjectSendStream[DiscoveredBuild], stats: DiscoverStats) -> None:
        self._send = send
        self._stats = stats
        self._next = 0
        self._done: dict[int, list[DiscoveredBuild]] = {}

    def put(self, index: int, builds: list[DiscoveredBuild]) -> None:
        self._done[index] = builds
        while self._next in self._done:
            self._hand_out(self._done.pop(self._next))
            self._next += 1

    def flush(self) -> None:
        """Hand out whatever is done, in order, after the run ended early."""
        for index in sorted(self._done):
            self._hand_out(self._done.pop(index))

    def _hand_out(self, builds: list[DiscoveredBuild]) -> None:
        for build in builds:
            self._send.send_nowait(build)  # an unbounded stream: never waits
            self._stats.running += 1


class Discovery(anyio.AsyncContextManagerMixin):
    """One discovery (see the module docstring): ``async with`` it to receive the builds.

    Args:
        client: anything with the :class:`~bulkstop.client.ReadClient` shape.
        query: what to look for.
        settings: concurrency, read rate, retry policy, page size.
        pacer: the read pacer (default: one of its own at ``settings.rate``; never the
            stops' pacer: the read APIs are limited apart).
        clock: time source for waits (default: the pacer's).
        wall: the current time, aware (default: UTC now); ``since`` counts back from it.

    Leaving the block early cancels what is still running. A run ended by the auth breaker
    raises :class:`~bulkstop.errors.CredentialsRejected` when the block is left.

    Attributes:
        stats: the live :class:`DiscoverStats` (problems included).
        abort_error: the :class:`~bulkstop.errors.CredentialsRejected` that ended it, if any.
        pacer: the read pacer in use.
    """

    def __init__(
        self,
        client: ReadClient,
        query: DiscoverQuery,
        *,
        settings: ReadSettings | None = None,
        pacer: Pacer | None = None,
        clock: Clock | None = None,
        wall: Callable[[], datetime] = utcnow,
    ) -> None:
        self.query = query
        self.settings = settings if settings is not None else ReadSettings()
        self.pacer = pacer if pacer is not None else Pacer(rate=self.settings.rate, clock=clock)
        self.clock: Clock = clock if clock is not None else self.pacer.clock
        self.stats = DiscoverStats()
        self.abort_error: CredentialsRejected | None = None
        self._wall = wall
        self._reader = Reader(
            client, self.pacer, self.settings, self.stats, clock=self.clock, on_abort=self._abort
        )
        self._records = ApiChain(RECORD_LIST_APIS)
        self._work: anyio.CancelScope | None = None

    def _abort(self, error: CredentialsRejected) -> None:
        if self.abort_error is None:
            self.abort_error = error
        if self._work is not None:
            self._work.cancel()

    @asynccontextmanager
    async def __asynccontextmanager__(self) -> AsyncIterator[AsyncIterator[DiscoveredBuild]]:
        jobs_file = None
        if self.query.jobs_file is not None:
            jobs_file = await anyio.to_thread.run_sync(read_jobs_file, self.query.jobs_file)
        now = self._wall()
        if now.tzinfo is None:
            raise ValueError("wall() must give an aware datetime")
        # Unbounded (the running builds are few): handing one out never waits, so no build
        # found is lost to a cancellation between "done" and "sent".
        send, receive = anyio.create_memory_object_stream[DiscoveredBuild](math.inf)
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._run, send, now, jobs_file)
            try:
                with receive:
                    yield receive
            finally:
                tg.cancel_scope.cancel()  # the consumer left: stop (nothing runs after a full read)
        if self.abort_error is not None:
            raise self.abort_error

    async def _run(
        self,
        send: MemoryObjectSendStream[DiscoveredBuild],
        now: datetime,
        jobs_file: JobsFile | None,
    ) -> None:
        concurrency = self.settings.concurrency
        async with send:
            out = _InOrder(send, self.stats)
            jobs_send, jobs_receive = anyio.create_memory_object_stream[_Job](concurrency * 2)
            with anyio.CancelScope() as self._work, jobs_receive:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._select, jobs_send, jobs_file)
                    for _ in range(concurrency):
                        tg.start_soon(self._scan_jobs, jobs_receive, out, now)
            out.flush()
            self.stats.finished = True
            log.info(
                "discover.finished",
                jobs=self.stats.jobs,
                running=self.stats.running,
                problems=len(self.stats.problems),
                calls=self.stats.calls,
            )

    def _problem(self, job_id: str, where: str, failure: ReadFailure) -> None:
        problem = JobProblem(
            job_id,
            f"{where}: {failure.message}",
            failure.reason.value,
            failure.http_status,
            failure.error_code,
            failure.request_id,
        )
        self.stats.problems.append(problem)
        log.warning(
            "discover.unreadable", job_id=job_id, reason=problem.reason, detail=problem.message
        )

    # -- the jobs ------------------------------------------------------------------------

    async def _select(self, send: MemoryObjectSendStream[_Job], jobs_file: JobsFile | None) -> None:
        query = self.query
        async with send:
            index = 0
            seen: set[str] = set()

            async def offer(job: JobInfo) -> None:
                nonlocal index
                if job.job_id in seen:
                    return
                seen.add(job.job_id)
                self.stats.jobs += 1
                await send.send(_Job(index, job))
                index += 1

            if query.project_id is not None:
                await self._list_jobs(JOB_LIST_APIS, query.project_id, offer)
            elif query.all_jobs:
                await self._list_jobs((ReadApi.LIST_JOB,), None, offer)
            else:
                if jobs_file is not None:
                    self.stats.problems.extend(jobs_file.problems)
                    given = [job_id for _, job_id in jobs_file.jobs]
                else:
                    given = []
                    for job_id in query.job_ids:
                        problem = _job_id_problem(job_id)
                        if problem is None:
                            given.append(job_id)
                        else:
                            self.stats.problems.append(JobProblem("", problem, "invalid"))
                for job_id in given:
                    await offer(JobInfo(job_id))

    async def _list_jobs(
        self,
        apis: tuple[ReadApi, ...],
        project_id: str | None,
        offer: Callable[[JobInfo], Awaitable[None]],
    ) -> None:
        chain = ApiChain(apis)
        size = self.settings.page_size
        where = f"project {project_id}" if project_id is not None else "the job list"
        new_ids: set[str] = set()
        most = _MAX_PAGES * size  # jobs taken from the list, however long its pages are
        for page_index in range(_MAX_PAGES):
            outcome = await self._reader.first_answer(
                chain,
                functools.partial(
                    jobs_request, project_id=project_id, page_index=page_index, page_size=size
                ),
                lambda api: parse_jobs_page,
            )
            if outcome.failure is not None:
                if outcome.failure.reason is not ReadFailureReason.ABORTED:
                    self._problem("", f"{where}, page {page_index}", outcome.failure)
                if outcome.failure.reason is ReadFailureReason.UNAUTHORIZED:
                    # The selection itself was refused to this credential: no job of it can be
                    # listed, so this is the credential's failure (the breaker's), not a job's.
                    self._abort(
                        CredentialsRejected(
                            f"{where}: the credential was rejected: {outcome.failure.message}"
                        )
                    )
                return
            page = outcome.value
            assert page is not None
            if page.unreadable:
                self._unreadable("", f"{where}, page {page_index}", page.unreadable)
            before = len(new_ids)
            for job in page.jobs:
                if len(new_ids) >= most:
                    break
                new_ids.add(job.job_id)
                await offer(job)
            if len(new_ids) >= most:
                # A page may hold more than asked: the jobs taken are bounded, not the pages.
                self._unreadable("", where, (f"stopped at {most} jobs",))
                return
            if page.entries < size or len(new_ids) == before:
                return  # the last page, or the service repeated one
            if page.total is not None and (page_index + 1) * size >= page.total:
                return
        self._unreadable("", where, (f"stopped after {_MAX_PAGES} pages",))

    def _unreadable(self, job_id: str, where: str, messages: tuple[str, ...]) -> None:
        problem = JobProblem(
            job_id, f"{where}: entries left out: {'; '.join(messages)}", "unreadable"
        )
        self.stats.problems.append(problem)
        log.warning("discover.entries_left_out", job_id=job_id, detail=problem.message)

    # -- each job's records --------------------------------------------------------------

    async def _scan_jobs(
        self, jobs: MemoryObjectReceiveStream[_Job], out: _InOrder, now: datetime
    ) -> None:
        async for job in jobs:
            out.put(job.position, await self._scan(job.info, now))

    async def _scan(self, job: JobInfo, now: datetime) -> list[DiscoveredBuild]:
        query, stats, size = self.query, self.stats, self.settings.page_size
        since = query.since_time(now)
        if job.last_build_time is not None and job.last_build_time < since:
            stats.jobs_skipped += 1  # its last build, hence every build, started before
            return []
        window = record_window(min(since, now), now)
        where = f"job {job.job_id}"
        seen: dict[int, BuildRecord] = {}
        most = _MAX_PAGES * size  # records kept of one job, however long its pages are
        read = True
        for page_index in range(_MAX_PAGES):
            outcome = await self._reader.first_answer(
                self._records,
                functools.partial(
                    records_request,
                    job_id=job.job_id,
                    window=window,
                    page_index=page_index,
                    page_size=size,
                    now=now,
                ),
                records_parser,
            )
            stats.records_api = self._records.api.value
            if outcome.failure is not None:
                if outcome.failure.reason is not ReadFailureReason.ABORTED:
                    self._problem(job.job_id, where, outcome.failure)
                read = False  # what earlier pages found is still handed out
                break
            page = outcome.value
            assert page is not None
            if page.unreadable:
                self._unreadable(job.job_id, f"{where}, page {page_index}", page.unreadable)
            before = len(seen)
            for record in page.records:
                if len(seen) >= most:
                    break
                seen.setdefault(record.build_no, record)
            if len(seen) >= most:
                # A page may hold more than asked: memory is bounded by the records kept.
                self._unreadable(job.job_id, where, (f"stopped at {most} records",))
                break
            if page.entries < size or len(seen) == before:
                break  # the last page, or the service repeated one
            if page.total_records is not None and (page_index + 1) * size >= page.total_records:
                break
            if page.total_pages is not None and page_index + 1 >= page.total_pages:
                break
        else:
            self._unreadable(job.job_id, where, (f"stopped after {_MAX_PAGES} pages",))
        stats.jobs_scanned += read
        stats.builds_seen += len(seen)
        running = [record for record in seen.values() if not record.ended]
        found = [record for record in running if record_matches(query, record, now)]
        stats.filtered_out += len(running) - len(found)
        return [
            DiscoveredBuild(
                job_id=job.job_id,
                build_no=record.build_no,
                job_name=job.job_name,
                status=record.status,
                start_time=record.start_time,
                branch=record.branch,
                commit_id=record.commit_id,
                trigger_type=record.trigger_type,
                executor=record.executor,
            )
            for record in sorted(found, key=lambda record: record.build_no)
        ]

    def __repr__(self) -> str:
        stats = self.stats
        return (
            f"Discovery(jobs={stats.jobs}, scanned={stats.jobs_scanned}, "
            f"running={stats.running}, problems={len(stats.problems)}, calls={stats.calls})"
        )
