"""Verdicts in a report: what a verification found, written with the journal's crash-safety.

A verification's verdict on a target is a record of its own: the target's latest record with
``verified`` (``ended``, ``running``, ``unknown``) and ``build_status`` (the service's word)
filled in, appended to the report as it comes (:meth:`ReportWriter.amend`). Every reader of a
report takes a target's latest record, so from the moment that line reaches the OS the report
says what the verification learnt: a crash loses nothing, and a ``--resume`` carries the
record over with its verdict like any other.

When the verification ends, :meth:`VerdictJournal.finish` folds the verdicts into their
targets' rows in one atomic rewrite (temp file, fsync, rename), so a finalized report keeps one
record per input row, in its order. A report that is still a journal (its run crashed or was
killed: its sidecar names targets in flight) stays one: the verdicts are appended, and the
resume that finalizes the report folds them.

Which targets a verification checks (:func:`was_sent`): every record except ``invalid``,
``duplicate``, ``dry_run``, ``skipped`` (``--only-outcome`` left it alone) and an ``aborted``
row that was never sent (no attempt, nothing that may have applied).
"""

from __future__ import annotations

from pathlib import Path

from bulkstop.log import get_logger
from bulkstop.models import Outcome, Result, TargetKey
from bulkstop.report.compaction import rewrite
from bulkstop.report.encoding import LineEncoder
from bulkstop.report.keys import record_key
from bulkstop.report.lock import ReportLock
from bulkstop.report.markers import MarkerReader
from bulkstop.report.paths import inflight_path
from bulkstop.report.reading import ReportReader
from bulkstop.report.writer import ReportWriter

__all__ = ["VerdictJournal", "was_sent", "with_verdict"]

log = get_logger(__name__)


def was_sent(record: Result) -> bool:
    """Whether the record's stop was sent (or may have been): a target to verify."""
    if record.outcome in (Outcome.INVALID, Outcome.DUPLICATE, Outcome.DRY_RUN, Outcome.SKIPPED):
        return False  # (dry_run: only planned; skipped: left to the report it came from)
    if record.outcome is Outcome.ABORTED:
        return record.attempts > 0 or record.maybe_applied
    return record_key(record) is not None


def with_verdict(record: Result, verdict: str, build_status: str) -> Result:
    """``record`` with a verification's verdict and the service's word for the build."""
    return record._replace(verified=verdict, build_status=build_status)


class VerdictJournal:
    """Writes a verification's verdicts into a report, crash-safe; see the module.

    Args:
        path: the report (it exists; a finalized report or a journal).
        lock: the report's lock, held by the caller from before the report was read.
        run: the report's last run (the records written keep their own run).

    Attributes:
        path: the report.
        journal: the report is a journal (its sidecar names targets in flight): it stays one.
        written: verdicts written so far.
    """

    __slots__ = ("_writer", "journal", "path", "written")

    def __init__(self, path: Path, *, lock: ReportLock, run: int) -> None:
        self.path = path
        self.journal = any(True for _ in MarkerReader(inflight_path(path)))
        self.written = 0
        self._writer = ReportWriter(path, run=max(run, 1), append=True, lock=lock)

    def write(self, record: Result) -> None:
        """Append ``record`` (a target's record with its verdict) to the report."""
        self._writer.amend(record)
        self.written += 1

    def finish(self) -> Path:
        """Close the journal and fold the verdicts into their rows (unless it is a journal)."""
        self._writer.close()
        if self.journal:
            log.info("report.verdicts_appended", path=str(self.path), verdicts=self.written)
            return self.path
        if self.written:
            records = _folded(self.path)
            log.info("report.verdicts_folded", path=str(self.path), records=records)
        inflight_path(self.path).unlink(missing_ok=True)  # the empty one the writer opened
        return self.path

    def close(self) -> None:
        """Close without folding: the report stays a journal of records and verdicts."""
        self._writer.close()

    def __repr__(self) -> str:
        kind = "journal" if self.journal else "report"
        return f"<VerdictJournal {str(self.path)!r} {kind} written={self.written}>"


def _folded(path: Path) -> int:
    """Rewrite ``path`` with each target's latest record in the place of its first one.

    Rows without a target (``invalid``, ``duplicate``) stay where they are. Memory: every
    record of the report (a verified report is the size of a discovery, not of a bulk input).
    """
    from bulkstop.report.paths import report_format

    fmt = report_format(path)
    records = list(ReportReader(path, fmt))
    latest: dict[TargetKey, Result] = {}
    for record in records:
        key = record_key(record)
        if key is not None:
            latest[key] = record
    encoder = LineEncoder(fmt)

    def lines() -> list[bytes]:
        out: list[bytes] = []
        done: set[TargetKey] = set()
        for record in records:
            key = record_key(record)
            if key is None:
                out.append(encoder.bare(record))
            elif key not in done:
                done.add(key)
                out.append(encoder.bare(latest[key]))
        return out

    return rewrite(path, fmt, lines())
