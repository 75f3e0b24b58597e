"""Resume planning: the run number, and which targets a resumed run carries over."""

from __future__ import annotations

from dataclasses import dataclass

from bulkstop.report.carried import CarriedRecords, carries, may_have_applied
from bulkstop.report.loading import LoadedReport

__all__ = ["ResumePlan", "plan_resume"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ResumePlan:
    """What a resumed run does with the targets the report already knows.

    Attributes:
        run: the run number for this run's records (the report's last run + 1).
        retry_failed: as asked.
        carried: the records carried over (not sent; the report keeps them, with their
            original run), and the targets sent again maybe applied. Every target not
            carried is sent, including those the report has never seen.
    """

    run: int
    retry_failed: bool
    carried: CarriedRecords


def plan_resume(loaded: LoadedReport, *, retry_failed: bool) -> ResumePlan:
    """Decide which targets a resume sends again (see :mod:`bulkstop.report.carried`)."""
    records = {
        key: record
        for key, record in loaded.latest.items()
        if carries(record.outcome, retry_failed=retry_failed) and key not in loaded.in_flight
    }
    maybe = set(loaded.in_flight)
    maybe.update(
        key
        for key, record in loaded.latest.items()
        if key not in records and may_have_applied(record)
    )
    return ResumePlan(
        run=loaded.last_run + 1,
        retry_failed=retry_failed,
        carried=CarriedRecords(records, frozenset(maybe)),
    )
