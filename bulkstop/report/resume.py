"""Resume planning: which targets a resumed run sends again, and which it carries over."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from bulkstop import codes
from bulkstop.models import FINAL_FOR_RESUME, Outcome, Result
from bulkstop.report.keys import ReportKey
from bulkstop.report.loading import LoadedReport

__all__ = ["ResumePlan", "plan_resume"]

#: A plain resume keeps these as they are; ``--retry-failed`` keeps only FINAL_FOR_RESUME.
_CARRIED_PLAIN: Final = FINAL_FOR_RESUME | {Outcome.FAILED, Outcome.UNCERTAIN}


@dataclass(frozen=True, slots=True, kw_only=True)
class ResumePlan:
    """What a resumed run does with the targets the report already knows.

    Attributes:
        run: the run number for this run's records (the report's last run + 1).
        retry_failed: as asked.
        skip: targets not to send; the report keeps their record (with its original run).
        maybe_applied: targets to send again whose earlier stop may have taken effect without
            a record saying so; the engine reports a "not stopped" answer for them as
            ``uncertain``.

    Every target not in ``skip`` is sent, including those the report has never seen.
    """

    run: int
    retry_failed: bool
    skip: dict[ReportKey, Result]
    maybe_applied: frozenset[ReportKey]

    def should_send(self, key: ReportKey) -> bool:
        """Whether the target with ``key`` is to be sent in this run."""
        return key not in self.skip


def _may_have_applied(record: Result) -> bool:
    """Whether a target's latest record leaves open that a stop was carried out.

    ``uncertain`` and the ``maybe_applied`` flag say so outright (the flag carries what earlier
    runs knew: a target in flight at a crash and then aborted before its next attempt).
    Reports written before the flag existed lack it; for them, a ``failed`` or ``aborted``
    record with attempts says so when its last reply was no answer (timeout, cut connection)
    or a server error other than throttling: such a request may have reached the service. A
    definite 4xx did not.
    """
    if record.outcome is Outcome.UNCERTAIN or record.maybe_applied:
        return True
    if record.outcome not in (Outcome.FAILED, Outcome.ABORTED) or record.attempts < 1:
        return False
    return codes.may_have_applied(record.http_status, record.error_code)


def plan_resume(loaded: LoadedReport, *, retry_failed: bool) -> ResumePlan:
    """Decide which targets a resume sends again.

    Judged on each key's *latest* record (the one :meth:`ReportWriter.finalize` keeps):

    ========================================  ==================  ====================
    latest record                             ``--resume``        ``--retry-failed``
    ========================================  ==================  ====================
    stopped, not_stopped, not_found,          kept                kept
    rejected, forbidden
    failed, uncertain                         kept                sent again
    aborted, unauthorized                     sent again          sent again
    none, or in flight at a crash             sent again          sent again
    ========================================  ==================  ====================

    ``aborted`` never got an answer (the run ended first) and ``unauthorized`` is about the
    credential, so both are sent again by a plain resume: that is what continuing an
    interrupted run means. ``failed`` and ``uncertain`` did get their answer from this tool,
    and re-sending them is the explicit ``--retry-failed`` choice.
    """
    carried = FINAL_FOR_RESUME if retry_failed else _CARRIED_PLAIN
    skip = {
        key: record
        for key, record in loaded.latest.items()
        if record.outcome in carried and key not in loaded.in_flight
    }
    maybe = set(loaded.in_flight)
    maybe.update(
        key
        for key, record in loaded.latest.items()
        if key not in skip and _may_have_applied(record)
    )
    return ResumePlan(
        run=loaded.last_run + 1,
        retry_failed=retry_failed,
        skip=skip,
        maybe_applied=frozenset(maybe),
    )
