"""Opening a report for a resume of an input: :func:`open_resume`, one call.

::

    with open_resume(report, "targets.csv", retry_failed=False) as resume:
        with ReportWriter(report, run=resume.plan.run, append=True, lock=resume.lock,
                          carried=resume.plan.carried) as writer:
            async with stopper.run(resume.source, carried=resume.plan.carried) as results:
                async for result in results:
                    writer.write(result)

It takes the report's lock (and keeps it until the :class:`Resume` is closed), refuses a
report that is the input itself or that does not exist, copies stdin to a private temporary
file so that it can be read twice, reads the report, checks that every target the report knows
is in the input, and plans what the resumed run carries over. The :class:`Resume` it returns
holds the lock, the input opened again from its first row, and the :class:`ResumePlan`.

The report is read once, into a compact index rather than into records, and the input once
for the check: memory does not grow by more than about 29 bytes per record of the report.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

from bulkstop.errors import ReportMismatchError, UsageError
from bulkstop.report.carried import CarriedRecords
from bulkstop.report.files import refuse_report_as_input
from bulkstop.report.index import ReportIndex
from bulkstop.report.lock import ReportLock
from bulkstop.report.paths import report_format
from bulkstop.sources import TargetSource, open_source

__all__ = ["Resume", "ResumePlan", "open_resume"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ResumePlan:
    """What a resumed run does with the targets the report already knows.

    Attributes:
        run: the run number for this run's records (the report's last run + 1).
        retry_failed: as asked.
        carried: the records carried over (not sent; the report keeps them, with their
            original run), and the targets sent again maybe applied, in about 29 bytes per
            record of the report (:mod:`~bulkstop.report.index`). Every target not carried
            is sent, including those the report has never seen.
    """

    run: int
    retry_failed: bool
    carried: CarriedRecords


class Resume:
    """A report opened for a resume of one input (from :func:`open_resume`).

    Close it (or leave its ``with`` block) when the run is done: that closes the input and
    the spooled copy of stdin and releases the lock.

    Attributes:
        path: the report.
        lock: the report's lock, held until :meth:`close`; give it to the run's writer.
        source: the input, at its first row, for the run to read.
        plan: the run number and what the run carries over.
    """

    __slots__ = ("_stack", "lock", "path", "plan", "source")

    path: Path
    lock: ReportLock
    source: TargetSource
    plan: ResumePlan

    def __init__(
        self,
        path: Path,
        lock: ReportLock,
        source: TargetSource,
        plan: ResumePlan,
        stack: contextlib.ExitStack,
    ) -> None:
        """Hold what :func:`open_resume` opened; ``stack`` closes it all."""
        self.path = path
        self.lock = lock
        self.source = source
        self.plan = plan
        self._stack = stack

    def close(self) -> None:
        """Close the input (and stdin's spooled copy) and release the lock. Idempotent."""
        self._stack.close()

    def __enter__(self) -> Resume:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<Resume {str(self.path)!r} run={self.plan.run} of {self.source.name!r} "
            f"{self.plan.carried!r} lock {'held' if self.lock.held else 'released'}>"
        )


def open_resume(
    report: Path,
    input_name: str,
    *,
    input_format: str | None = None,
    stdin: IO[bytes] | None = None,
    retry_failed: bool = False,
) -> Resume:
    """Open ``report`` for a resume of the input ``input_name`` (a path, or ``"-"``).

    ``input_format`` overrides the input's extension (required for stdin); ``stdin`` is the
    stream ``"-"`` reads (default ``sys.stdin.buffer``). In this order, before anything is
    sent, it raises :class:`UsageError` for a report path without a report extension, a
    report that is the input itself, a report bulkstop cannot safely write or that another
    process has locked (see :class:`ReportLock`), and a report that does not exist;
    :class:`~bulkstop.errors.InputError` for an input or a report that cannot be read; and
    :class:`~bulkstop.errors.ReportMismatchError` for a report that knows a target the input
    does not hold. Nothing is left locked or open when it raises.

    stdin is copied to its end first, to a temporary file in the report's directory: a resume
    reads its input twice, once to check it against the report and once to run it.
    """
    report_format(report)  # the report path's extension, before anything happens
    if input_name == "-" and stdin is None:
        stdin = sys.stdin.buffer
    elif input_name != "-":
        stdin = None
    refuse_report_as_input(input_name, stdin, report)
    stack = contextlib.ExitStack()
    try:
        # Locked before the report is read, so that no other run writes it meanwhile.
        lock = stack.enter_context(ReportLock.acquire(report))
        if not report.exists():
            # Refused rather than started afresh: at 3 a.m. a missing report is a mistyped
            # path far more often than a wish for a new run, and a new report would send
            # every stop again and leave the real one's record incomplete.
            raise UsageError(
                f"--resume: the report {report} does not exist, so there is no run "
                "to continue; check the path, or leave out --resume to start a new report"
            )
        if stdin is not None:
            stdin = stack.enter_context(_spooled(stdin, report))
        carried = CarriedRecords.load(report, retry_failed=retry_failed)
        with open_source(input_name, input_format, stdin=stdin) as again:
            _check_input(carried.index, again, report)
        if stdin is not None:
            stdin.seek(0)
        plan = ResumePlan(
            run=carried.index.last_run + 1, retry_failed=retry_failed, carried=carried
        )
        source = stack.enter_context(open_source(input_name, input_format, stdin=stdin))
    except BaseException:
        stack.close()
        raise
    return Resume(report, lock, source, plan, stack)


def _check_input(index: ReportIndex, source: TargetSource, report: Path) -> None:
    """Raise :class:`ReportMismatchError` unless every target the report knows is in the input.

    The report's records of targets and its in-flight markers count; an empty report matches
    any input, and the input may hold more targets than the report (a run that ended early).
    """
    for row in source:
        if row.target is not None:
            index.mark_seen(row.target.key)
    strangers, first = index.strangers()
    index.clear_seen()  # the run's own rows are sighted afresh (the engine's dedupe)
    if strangers:
        job_id, build_no = index.key_at(first)
        raise ReportMismatchError(
            f"{report} is not a report of {source.name}: {strangers} of its "
            f"{index.targets} targets are not in the input (e.g. {job_id}:{build_no}); "
            "use a new --report path for this input"
        )


@contextlib.contextmanager
def _spooled(stream: IO[bytes], report: Path) -> Iterator[IO[bytes]]:
    """``stream`` (stdin) copied to a private temporary file, for a resume to read twice.

    The file is created 0600 (an incident's input is as private as its report) in the
    report's directory, which has room for it as it has for the report. It has no name where
    the OS allows (``O_TMPFILE``) and is unlinked at once elsewhere, so nothing is left
    behind, not even by a SIGKILL.
    """
    with tempfile.TemporaryFile(dir=report.parent) as spool:
        shutil.copyfileobj(stream, spool)
        spool.seek(0)
        yield spool
