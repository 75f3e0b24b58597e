"""A whole run, from an input to its report: what ``bulkstop run`` does between its options and
its summary, as one library call.

::

    settings = JobSettings(input="targets.csv", report=Path("stopped.csv"), region="cn-north-4")
    async with Job(settings) as job:    # everything that can refuse the run, before a stop is sent
        outcome = await job.run()       # the run, to its finalized report
    print(outcome.exit_code, outcome.report, outcome.stats.count(Outcome.STOPPED))

Entering a :class:`Job` prepares, in this order, everything that can refuse the run before a
stop is sent, and raises :class:`~bulkstop.errors.UsageError` (or a subclass) with a one-line
message when something does; nothing is left locked or open then:

1. the report: its extension; for a resume the report opened against the input by
   :func:`~bulkstop.report.open_resume`; for a new report, a report that is not the input
   itself, locked, and not an existing report unless ``overwrite``; then the input;
2. the endpoint: the built-in simulator (``simulate``), or ``endpoint`` / ``region``;
3. the client (TLS, the transport rule for plain http), the one credential the settings and
   the environment configure (:func:`~bulkstop.credentials.resolve_auth`), made ready (an IAM
   password is exchanged for a token here; a refused login is a ``UsageError`` too): both
   :func:`bulkstop.connection.connect`, which discovery and verification use as well;
4. the report's writer.

:meth:`Job.run` then sends the stops (:class:`~bulkstop.engine.Stopper`), writes every result
to the report as it comes, and finalizes the report (with ``verify``, then checks that every
target it sent has ended and writes the verdicts into the report); the :class:`JobOutcome` it
returns says how the run ended, with the :class:`~bulkstop.errors.ExitCode` the command line
exits with. A guard's abort is part of the outcome, not an exception. :meth:`Job.drain` and
:meth:`Job.cancel_in_flight` end a run early from outside (a signal handler, say), and
:class:`JobEvents` tells the caller what happens as it happens (a progress display); the
library itself never prints.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Protocol, Self

import anyio

from bulkstop.auth import Auth
from bulkstop.client import CodeArtsClient, resolve_endpoint
from bulkstop.clock import utcnow
from bulkstop.connection import ConnectionSettings, connect, connect_simulated
from bulkstop.credentials import CredentialOptions
from bulkstop.engine import Carried, RunSettings, RunStats, Stopper, StopRun
from bulkstop.errors import ExitCode, RunAborted, UsageError
from bulkstop.log import get_logger
from bulkstop.models import ACCEPTABLE, Outcome, Result
from bulkstop.pacing import Pacer
from bulkstop.remember import remembered_values
from bulkstop.report import (
    ReportLock,
    ReportWriter,
    default_report_path,
    refuse_report_as_input,
    report_format,
    write_settings,
)
from bulkstop.retry import RetryPolicy
from bulkstop.sources import TargetSource, open_source

if TYPE_CHECKING:
    from bulkstop.dryrun import NoCalls, PlanOnly
    from bulkstop.guards import FailureThreshold
    from bulkstop.report import CarriedRecords
    from bulkstop.verify import VerifySettings
    from bulkstop.verifying import VerifyOutcome

__all__ = ["Job", "JobEvents", "JobOutcome", "JobSettings"]

log = get_logger(__name__)

#: Outcomes that leave the exit code 0: a dry run's planned targets and the rows a subset did
#: not choose are fine too.
_FINE = ACCEPTABLE | {Outcome.DRY_RUN, Outcome.SKIPPED}


@dataclass(frozen=True, slots=True, kw_only=True)
class JobSettings:
    """Everything a job is asked to do: the options of ``bulkstop run``, as one value.

    Attributes:
        input: the input's path, or ``"-"`` for stdin (then ``input_format`` is required).
        input_format: ``csv``, ``json`` or ``jsonl``; ``None``: from the input's extension.
        report: the report's path (``.csv``, ``.jsonl`` or ``.json``); ``None``: a
            timestamped CSV in the current directory.
        resume: continue the run recorded in ``report`` (which must exist).
        overwrite: replace an existing report instead of refusing to touch it.
        retry_failed: with ``resume``, also send targets that ended failed or uncertain.
        endpoint / region: where CodeArts is; an endpoint wins over a region.
        api: which stop API to call (``legacy``, ``v3``, ``v1``).
        token_file / project_id / project_name / iam_endpoint: the credential options; the
            credential itself comes from the environment (see :mod:`bulkstop.credentials`).
        ca_bundle: a PEM file of extra CA certificates to trust.
        insecure_http: allow plain ``http://`` to a non-loopback endpoint (CodeArts or IAM).
        concurrency / rate / burst / adaptive: calls in flight, starts a second, starts back
            to back, and whether throttling lowers the rate (see :class:`~bulkstop.Pacer`).
        max_attempts / timeout / deadline: attempts per target, seconds per call, seconds per
            target from its first attempt (``None``: no deadline).
        max_failures / auth_breaker / failing_server_window: the guards that end a run early
            (see :class:`~bulkstop.RunSettings`).
        simulate: run against the built-in simulator on 127.0.0.1: nothing real is stopped.
        allow_settings_change: with ``resume``, allow settings that would make the earlier
            records mean something else (see :mod:`bulkstop.remember`).
        dry_run: read, validate, dedupe and plan as a run would, contact nothing and need no
            credential: every target a run would send ends ``dry_run`` (see
            :mod:`bulkstop.dryrun`; a dry run of a resume writes no report).
        verify / verify_timeout / read_rate / read_concurrency: after the stops, check that
            every target this run sent has ended (polling up to ``verify_timeout`` seconds,
            with read calls paced apart from the stops) and write the verdicts into the
            report (see :mod:`bulkstop.verifying`).
        only_outcome: the input is an earlier report; send only the targets whose latest
            record there has one of these outcomes, the rest end ``skipped`` (see
            :mod:`bulkstop.subset`).

    Every run keeps its settings beside its report (all but
    :data:`bulkstop.remember.NOT_REMEMBERED`); a resume refuses to change the endpoint,
    region, simulator or API they record unless ``allow_settings_change``.

    Contradictory settings raise :class:`~bulkstop.errors.UsageError` at construction.
    """

    input: str
    input_format: str | None = None
    report: Path | None = None
    resume: bool = False
    overwrite: bool = False
    retry_failed: bool = False
    endpoint: str | None = None
    region: str | None = None
    api: str = "legacy"
    token_file: Path | None = None
    project_id: str | None = None
    project_name: str | None = None
    iam_endpoint: str | None = None
    ca_bundle: Path | None = None
    insecure_http: bool = False
    concurrency: int = 8
    rate: float = 10.0
    burst: int = 1
    adaptive: bool = True
    max_attempts: int = 5
    timeout: float = 30.0
    deadline: float | None = None
    max_failures: FailureThreshold | None = None
    auth_breaker: int = 5
    failing_server_window: float = 30.0
    simulate: bool = False
    # -- verification after the stops (``run --verify``) --
    #: check that every target the run sent has ended, and write the verdicts to the report
    verify: bool = False
    #: seconds a build still running at its first check is polled for
    verify_timeout: float = 120.0
    #: read calls a second (the read APIs are limited apart from the stops, and lower)
    read_rate: float = 1.0
    #: read calls in flight at once
    read_concurrency: int = 4
    allow_settings_change: bool = False
    dry_run: bool = False
    only_outcome: frozenset[Outcome] | None = None

    def __post_init__(self) -> None:
        if self.retry_failed and not self.resume:
            raise UsageError("--retry-failed needs --resume")
        if self.resume and self.report is None:
            raise UsageError("--resume needs --report PATH (the report of the run to continue)")
        if self.only_outcome is not None:
            from bulkstop.subset import refuse_stdin  # a subset's code for a subset only

            refuse_stdin(self.input)

    def connection(self) -> ConnectionSettings:
        """Where CodeArts is and how to reach it."""
        return ConnectionSettings(
            endpoint=self.endpoint,
            region=self.region,
            api=self.api,
            token_file=self.token_file,
            project_id=self.project_id,
            project_name=self.project_name,
            iam_endpoint=self.iam_endpoint,
            ca_bundle=self.ca_bundle,
            insecure_http=self.insecure_http,
            timeout=self.timeout,
            pool_size=self.concurrency,
        )

    def credential_options(self) -> CredentialOptions:
        """The command-line side of choosing the credential."""
        return self.connection().credential_options()

    def run_settings(self, run: int) -> RunSettings:
        """The engine's settings for the run numbered ``run``."""
        return RunSettings(
            concurrency=self.concurrency,
            retry=RetryPolicy(max_attempts=self.max_attempts, deadline=self.deadline),
            max_failures=self.max_failures,
            auth_breaker=self.auth_breaker,
            failing_server_window=self.failing_server_window,
            run=run,
            dry_run=self.dry_run,
        )

    def pacer(self) -> Pacer:
        """A new pacer at the settings' rate, burst and adaptivity."""
        return Pacer(rate=self.rate, burst=self.burst, adaptive=self.adaptive)

    def client(self, endpoint: str, auth: Auth | None) -> CodeArtsClient:
        """The CodeArts client the settings ask for (it vets the endpoint itself)."""
        return self.connection().client(endpoint, auth)

    def verify_settings(self) -> VerifySettings:
        """How ``verify`` polls: the timeout, and the read calls' pacing and retries."""
        from bulkstop.reader import ReadSettings
        from bulkstop.verify import VerifySettings

        reads = ReadSettings(
            concurrency=self.read_concurrency,
            rate=self.read_rate,
            retry=RetryPolicy(max_attempts=self.max_attempts),
            auth_breaker=self.auth_breaker,
        )
        return VerifySettings(timeout=self.verify_timeout, reads=reads)


class JobEvents(Protocol):
    """What a job tells its caller as it goes: any object with these methods.

    Subclass it to override only the methods you need: the others do nothing. They are
    called on the event loop and must return quickly (update a display, print a line).
    """

    def simulating(self, url: str) -> None:
        """The built-in simulator serves at ``url``: no cloud service is contacted."""
        return None

    def started(self) -> None:
        """The run starts: rows are read and stops sent from now on."""
        return None

    def result(self, result: Result) -> None:
        """``result`` was written to the report (read :attr:`Job.stats` for the counts)."""
        return None

    def ended(self) -> None:
        """The run ended, normally or not: no more results; the report is finalized next."""
        return None


class _Unheard(JobEvents):
    """Events nobody listens to."""


@dataclass(frozen=True, slots=True, kw_only=True)
class JobOutcome:
    """How a job ended.

    Attributes:
        exit_code: what the command line exits with: ``OK`` when every valid target ended
            ``stopped`` or ``not_stopped`` (or ``dry_run``, ``skipped``), ``ROWS`` when some
            row ended otherwise, the
            guard's own code (``exc.exit_code``) when one ended the run, ``INTERRUPTED``
            when :meth:`Job.drain` did.
        stats: the run's counters; ``stats.aborted_by`` is the guard that ended it, if one
            did, and ``stats.ended_early`` why it ended before its input did.
        report: the finalized report.
        rate: the pacer's rate at the end, in calls a second.
        interrupted: the run was drained from outside (not by a guard).
    """

    exit_code: ExitCode
    stats: RunStats
    report: Path
    rate: float
    interrupted: bool
    #: with ``verify``: how the verification of the sent targets ended (``None``: not verified)
    verification: VerifyOutcome | None = None

    @property
    def aborted_by(self) -> RunAborted | None:
        """The guard's error that ended the run, if one did."""
        return self.stats.aborted_by


@dataclass(frozen=True, slots=True)
class _Prepared:
    """What entering a job made ready for its run."""

    source: TargetSource
    writer: ReportWriter | PlanOnly
    pacer: Pacer
    run: StopRun
    #: the run's number (resumes count up) and what it carries over from earlier runs
    number: int
    carried: CarriedRecords | None
    endpoint: str
    #: the client of the stops (of a dry run: one that is never called)
    client: CodeArtsClient | NoCalls
    lock: ReportLock


class Job:
    """A whole run, from an input to its finalized report; see the module.

    ``async with Job(settings) as job:`` prepares (or raises ``UsageError``), ``await
    job.run()`` runs once, and leaving the block closes what the job opened: the client, the
    simulator, the input, the report (a report not finalized stays a journal that a resume
    continues) and its lock.

    Args:
        settings: what to do.
        environ: where the credential variables are read (default ``os.environ``).
        stdin: the stream ``input="-"`` reads (default ``sys.stdin.buffer``).
        events: told what happens as it happens.

    Attributes:
        settings: as given.
        report: the report's path (known once entered).
        phase: ``new``, ``prepared`` (entered), ``running``, ``finished`` (the report is
            finalized) or ``closed`` (left).
    """

    __slots__ = (
        "_auth",
        "_environ",
        "_events",
        "_prepared",
        "_stack",
        "_stdin",
        "phase",
        "report",
        "settings",
    )

    def __init__(
        self,
        settings: JobSettings,
        *,
        environ: Mapping[str, str] | None = None,
        stdin: IO[bytes] | None = None,
        events: JobEvents | None = None,
    ) -> None:
        self.settings = settings
        self.report: Path | None = settings.report
        self._environ = os.environ if environ is None else environ
        self._stdin = stdin
        self._events = events if events is not None else _Unheard()
        self._auth: Auth | None = None
        self._prepared: _Prepared | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self.phase = "new"

    def __repr__(self) -> str:
        done = "" if self._prepared is None else f" done={self._prepared.run.stats.done}"
        report = "" if self.report is None else f" → {str(self.report)!r}"
        return f"<Job {self.settings.input!r}{report} {self.phase}{done}>"

    # -- what a caller reads and does while the job runs ----------------------------------

    def secret_values(self) -> list[str]:
        """The secrets of the job's credential right now (a refreshed token too), for log
        redaction: hand this method to a redactor before entering. Never log these."""
        return [] if self._auth is None else self._auth.secret_values()

    @property
    def stats(self) -> RunStats:
        """The run's live counters (all zero before :meth:`run`)."""
        return self._ready().run.stats

    @property
    def rate(self) -> float:
        """The pacer's current rate, in calls a second."""
        return self._ready().pacer.rate

    def drain(self, reason: str = "interrupted") -> None:
        """Start no new stop call; let calls in flight finish; the rest ends ``aborted``.

        Before :meth:`run` it makes the run end at once, every row ``aborted``."""
        self._ready().run.drain(reason)

    def cancel_in_flight(self) -> None:
        """Also cancel the calls in flight (they are reported ``aborted``)."""
        self._ready().run.cancel_in_flight()

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self.phase != "new":
            raise RuntimeError(f"a job is entered once; this one is {self.phase}")
        stack = contextlib.AsyncExitStack()
        try:
            self._prepared = await self._prepare(stack)
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        self.phase = "prepared"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._stack is not None:
            await self._stack.aclose()
            self.phase = "closed"

    async def run(
        self, *, beside: Callable[[Job], Coroutine[Any, Any, None]] | None = None
    ) -> JobOutcome:
        """Run the job to its end and finalize its report; return how it ended.

        ``beside(job)``, if given, runs in a task of its own from the run's start until its
        last result is written (a signal watcher that calls :meth:`drain`, say), and is
        cancelled then, before the report is finalized. An error while writing the report (a
        full disk) propagates, and the report stays a journal that a resume continues.
        """
        prepared = self._ready()
        if self.phase != "prepared":
            raise RuntimeError(f"a job runs once; this one is {self.phase}")
        self.phase = "running"
        run, writer, source = prepared.run, prepared.writer, prepared.source
        settings = self.settings
        log.info(
            "run.start",
            input=source.name,
            report=str(writer.path),
            endpoint=prepared.endpoint,
            api=settings.api,
            rate=settings.rate,
            concurrency=settings.concurrency,
            run=prepared.number,
            carried=0 if prepared.carried is None else len(prepared.carried),
        )
        aborted: RunAborted | None = None
        events = self._events
        run_number = prepared.number
        sent: list[Result] | None = None
        if settings.verify and not settings.dry_run:  # a dry run sent nothing to verify
            from bulkstop.report.verdicts import was_sent  # only a verifying run reads back

            sent = []
        # Read once, not for every result: the member (on Python 3.11 a read through the enum
        # class takes EnumType's __getattr__ hook) and the listener, left out when it does
        # not override JobEvents.result, which does nothing.
        invalid = Outcome.INVALID
        told = events.result if type(events).result is not JobEvents.result else None
        async with anyio.create_task_group() as tg:
            if beside is not None:
                tg.start_soon(beside, self)
            events.started()
            try:
                async with run as results:
                    # A batch at a time: a step of ``async for`` per result cost more than
                    # writing its record.
                    while batch := await results.batch():
                        for result in batch:
                            if result.outcome is invalid:
                                log.warning(
                                    "input.invalid_row",
                                    where=f"{source.name}:{result.line}",
                                    problem=result.detail,
                                )
                            writer.write(result)  # a carried record is in the report already
                            if told is not None:
                                told(result)
                            # Only what this run sent: a carried record is handed out as a
                            # stub (``bulkstop verify REPORT`` checks earlier runs' targets).
                            if (
                                sent is not None
                                and result.run == run_number
                                and was_sent(result)
                            ):
                                sent.append(result)
            except RunAborted as exc:
                aborted = exc
            finally:
                events.ended()
            interrupted = run.stopping and aborted is None
            tg.cancel_scope.cancel()
        # Only a run that reached its end is finalized. If anything escapes (a full disk, an
        # error), the report is just closed when the job is left: it stays a journal, with
        # its in-flight sidecar, that a resume continues.
        report = writer.finalize()
        self.phase = "finished"
        stats = run.stats
        if aborted is not None:
            code = aborted.exit_code
        elif interrupted:
            code = ExitCode.INTERRUPTED
        else:
            bad = stats.done - sum(stats.count(outcome) for outcome in _FINE)
            code = ExitCode.ROWS if bad else ExitCode.OK
        verification = None
        if sent is not None and aborted is None and not interrupted:
            verification = await self._verify(prepared, report, sent)
            if verification.aborted_by is not None:
                code = verification.aborted_by.exit_code
            elif not verification.all_ended and code is ExitCode.OK:
                code = ExitCode.ROWS
        return JobOutcome(
            exit_code=code,
            stats=stats,
            report=report,
            rate=prepared.pacer.rate,
            interrupted=interrupted,
            verification=verification,
        )

    async def _verify(self, prepared: _Prepared, report: Path, sent: list[Result]) -> VerifyOutcome:
        """Check that every target the run sent has ended; write the verdicts to the report."""
        from bulkstop.report.verdicts import VerdictJournal
        from bulkstop.verifying import verify_records

        log.info("verify.start", targets=len(sent), timeout=self.settings.verify_timeout)
        client = prepared.client
        if not isinstance(client, CodeArtsClient):  # pragma: no cover - a dry run verifies nothing
            raise RuntimeError("a dry run has nothing to verify")
        journal = VerdictJournal(report, lock=prepared.lock, run=prepared.number)
        try:
            outcome = await verify_records(client, sent, journal, self.settings.verify_settings())
        except BaseException:
            journal.close()  # the verdicts written so far stay in the report's journal
            raise
        journal.finish()
        return outcome

    def _ready(self) -> _Prepared:
        if self._prepared is None:
            raise RuntimeError("enter the job first: async with Job(settings) as job")
        return self._prepared

    # -- preparing ------------------------------------------------------------------------

    async def _prepare(self, stack: contextlib.AsyncExitStack) -> _Prepared:
        settings = self.settings
        report_path = settings.report or default_report_path(utcnow())
        report_format(report_path)  # checks the extension before anything happens
        self.report = report_path
        stdin = None
        if settings.input == "-":
            stdin = self._stdin if self._stdin is not None else sys.stdin.buffer
        carried: CarriedRecords | None = None
        if settings.resume:
            from bulkstop.report import open_resume  # what reads a report back: a resume's

            resume = stack.enter_context(
                open_resume(
                    report_path,
                    settings.input,
                    input_format=settings.input_format,
                    stdin=stdin,
                    retry_failed=settings.retry_failed,
                )
            )
            source, lock, run_number = resume.source, resume.lock, resume.plan.run
            carried = resume.plan.carried
            if len(carried):  # with nothing carried over, no earlier record is kept
                _check_remembered(settings, report_path)
        else:
            refuse_report_as_input(settings.input, stdin, report_path)
            # Locked before the report is looked at, so that no other run writes it meanwhile.
            lock = stack.enter_context(ReportLock.acquire(report_path))
            if report_path.exists() and report_path.stat().st_size > 0 and not settings.overwrite:
                raise UsageError(
                    f"report {report_path} already exists: add --resume to continue that run, "
                    "--overwrite to replace it, or choose another --report path"
                )
            source = stack.enter_context(
                open_source(settings.input, settings.input_format, stdin=stdin)
            )
            run_number = 1
        chosen: Carried | None = carried
        if settings.only_outcome is not None:
            from bulkstop.subset import Subset

            chosen = Subset.of_report(
                Path(settings.input), settings.only_outcome, run=run_number, inner=carried
            )
        client: CodeArtsClient | NoCalls
        if settings.dry_run:
            from bulkstop.dryrun import NoCalls  # a dry run's code for a dry run only

            # Where a run would go, checked as a run checks it, and never contacted.
            where = "the built-in simulator" if settings.simulate else None
            client = NoCalls(where or resolve_endpoint(settings.endpoint, settings.region))
        elif settings.simulate:
            client = await self._simulated(stack)
        else:
            client = await self._connected(stack)
        if not (settings.dry_run and settings.resume):
            # Before the first stop: a crashed run remembers its settings too.
            write_settings(
                report_path,
                run=run_number,
                credential=None if settings.simulate or self._auth is None else self._auth.mode,
                values=remembered_values(settings),
                input=settings.input,
            )
        run_settings = settings.run_settings(run_number)
        pacer = settings.pacer()
        writer: ReportWriter | PlanOnly
        if settings.dry_run and settings.resume:
            from bulkstop.dryrun import PlanOnly

            writer = PlanOnly(report_path)  # the record of real calls stays as it is
        else:
            writer = ReportWriter(
                report_path,
                run=run_number,
                append=settings.resume,
                overwrite=settings.overwrite,
                lock=lock,
                carried=carried,
            )
        # Closed, not finalized, when the job is left: only a run that reached its end is.
        stack.callback(writer.close)
        stopper = Stopper(client, pacer=pacer, settings=run_settings, observer=writer)
        # The source itself, not iter(source): its async reading lets a drain stop reading a
        # pipe at once.
        run = stopper.run(source, carried=chosen)
        return _Prepared(
            source=source,
            writer=writer,
            pacer=pacer,
            run=run,
            number=run_number,
            carried=carried,
            endpoint=str(client.endpoint),
            client=client,
            lock=lock,
        )

    async def _simulated(self, stack: contextlib.AsyncExitStack) -> CodeArtsClient:
        """A client of the built-in simulator, started here with a throwaway token."""
        client, self._auth, simulator = await connect_simulated(stack, self.settings.connection())
        self._events.simulating(simulator.url)
        return client

    async def _connected(self, stack: contextlib.AsyncExitStack) -> CodeArtsClient:
        """A client of the configured endpoint, with its credential resolved and ready."""
        client, self._auth = await connect(stack, self.settings.connection(), self._environ)
        return client


def _check_remembered(settings: JobSettings, report: Path) -> None:
    """Refuse a resume that would make the records it carries over mean something else."""
    from bulkstop.remember import refuse_meaning_changes
    from bulkstop.report import read_settings

    remembered = read_settings(report)
    if remembered is not None:
        refuse_meaning_changes(remembered.values, settings, remembered.path)
