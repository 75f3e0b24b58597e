"""Verifying a report's targets: :class:`~bulkstop.verify.Verification` over the records of a
run, each verdict written back into the report as it comes.

What ``bulkstop run --verify`` does after its stops and ``bulkstop verify REPORT`` does for an
earlier run, as one call::

    outcome = await verify_records(client, records, journal, settings)
    print(outcome.stats.ended, [result.job_id for result in outcome.not_ended])

``records`` are report records (:class:`~bulkstop.models.Result`); those whose stop was sent
(:func:`~bulkstop.report.verdicts.was_sent`) are checked, and each verdict is written to the
``journal`` (:class:`~bulkstop.report.verdicts.VerdictJournal`) the moment it is known. A
streak of 401s ends it with :class:`~bulkstop.errors.CredentialsRejected` after every target
got its verdict (those not settled are ``unknown``) and was written: the outcome's
``aborted_by``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bulkstop.client import ReadClient
from bulkstop.errors import CredentialsRejected
from bulkstop.models import Result, TargetKey
from bulkstop.report.keys import record_key
from bulkstop.report.verdicts import VerdictJournal, was_sent, with_verdict
from bulkstop.verify import (
    Verification,
    VerifyResult,
    VerifySettings,
    VerifyStats,
    VerifyTarget,
    VerifyVerdict,
)

__all__ = ["VerifyOutcome", "targets_to_verify", "verify_records"]


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyOutcome:
    """How a verification of a report's targets ended.

    Attributes:
        stats: the verification's counters (targets, ended, running, unknown, calls, ...).
        not_ended: the verdicts other than ``ended``, in the order they came.
        aborted_by: the auth breaker's error when a streak of 401s ended it early (the
            targets not settled then are ``unknown``).
    """

    stats: VerifyStats
    not_ended: tuple[VerifyResult, ...]
    aborted_by: CredentialsRejected | None = None

    @property
    def all_ended(self) -> bool:
        """Every target checked has ended."""
        return not self.not_ended


def targets_to_verify(records: Iterable[Result]) -> list[Result]:
    """The records whose stop was sent and that no verification found ended yet, one per
    target (the latest given)."""
    chosen: dict[TargetKey, Result] = {}
    for record in records:
        if was_sent(record):
            key = record_key(record)
            assert key is not None  # a sent record has a target
            chosen[key] = record
    return [record for record in chosen.values() if record.verified != VerifyVerdict.ENDED]


async def verify_records(
    client: ReadClient,
    records: Iterable[Result],
    journal: VerdictJournal | None,
    settings: VerifySettings,
    *,
    unrecorded: Iterable[TargetKey] = (),
    on_result: Callable[[VerifyResult], None] | None = None,
) -> VerifyOutcome:
    """Check every sent target of ``records``; write each verdict to ``journal`` as it comes.

    ``unrecorded`` targets (in flight at a crash, with no record to write a verdict into) are
    checked too: their verdicts reach ``on_result`` and the outcome, not the journal.
    """
    by_key: dict[TargetKey, Result] = {}
    for record in targets_to_verify(records):
        key = record_key(record)
        assert key is not None
        by_key[key] = record
    keys = [*by_key, *(key for key in unrecorded if key not in by_key)]
    verification = Verification(
        client, [VerifyTarget(key.job_id, key.build_no) for key in keys], settings=settings
    )
    not_ended: list[VerifyResult] = []
    aborted_by: CredentialsRejected | None = None
    try:
        async with verification as verdicts:
            async for result in verdicts:
                held = by_key.get(TargetKey(result.job_id, result.build_no))
                if journal is not None and held is not None:
                    journal.write(with_verdict(held, result.verdict.value, result.status))
                if result.verdict is not VerifyVerdict.ENDED:
                    not_ended.append(result)
                if on_result is not None:
                    on_result(result)
    except CredentialsRejected as exc:  # raised after every verdict was handed out
        aborted_by = exc
    return VerifyOutcome(
        stats=verification.stats, not_ended=tuple(not_ended), aborted_by=aborted_by
    )
