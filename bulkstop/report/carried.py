"""What a resume carries over from earlier runs, and what it sends again.

Judged on each target's *latest* record (the one a finalized report keeps):

========================================  ==================  ====================
latest record                             ``--resume``        ``--retry-failed``
========================================  ==================  ====================
stopped, not_stopped, not_found,          carried             carried
rejected, forbidden
failed, uncertain                         carried             sent again
aborted, unauthorized                     sent again          sent again
none, or in flight at a crash             sent again          sent again
========================================  ==================  ====================

``aborted`` never got an answer (the run ended first) and ``unauthorized`` is about the
credential, so both are sent again by a plain resume: that is what continuing an interrupted
run means. ``failed`` and ``uncertain`` did get their answer from this tool, and re-sending them
is the explicit ``--retry-failed`` choice. A target sent again whose earlier stop may have taken
effect (:func:`may_have_applied`) is *maybe applied*: the engine reports a "not stopped" answer
for it as ``uncertain``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from bulkstop import codes
from bulkstop.log import get_logger
from bulkstop.models import FINAL_FOR_RESUME, Outcome, Result, TargetKey
from bulkstop.report.index import (
    IN_FLIGHT,
    MAY_APPLY,
    NO_RECORD,
    OWN_FLAG,
    SUPERSEDED,
    ReportIndex,
)

__all__ = ["CarriedRecords", "carries", "may_have_applied"]

log = get_logger(__name__)

#: A plain resume carries these; ``--retry-failed`` carries only FINAL_FOR_RESUME.
_CARRIED_PLAIN: Final = FINAL_FOR_RESUME | {Outcome.FAILED, Outcome.UNCERTAIN}


def carries(outcome: Outcome, *, retry_failed: bool) -> bool:
    """Whether a target whose latest record has ``outcome`` is carried over (not sent)."""
    return outcome in (FINAL_FOR_RESUME if retry_failed else _CARRIED_PLAIN)


def may_have_applied(record: Result) -> bool:
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


class CarriedRecords:
    """What a resume carries over from earlier runs, asked once per target of the input.

    The engine's ``Carried`` seam over a :class:`~bulkstop.report.index.ReportIndex` of the
    report, applying the table above: :meth:`get` hands out a carried target's record in the
    place of sending it, and for a target to send, :meth:`maybe_applied` says whether an
    earlier run may have stopped it. Memory is the index's: 29 bytes or so per record of the
    report, however many there are.

    A record handed out is a summary: the target, its outcome, its run, its own
    ``maybe_applied`` flag and the line the input holds it at now; the report keeps the full
    record, and :class:`~bulkstop.report.ReportWriter` (given these carried records) leaves it
    there and writes it with that line when it finalizes.

    Attributes:
        index: the report's records.
        retry_failed: as asked (see the table).
    """

    __slots__ = ("_count", "index", "retry_failed")

    index: ReportIndex
    retry_failed: bool

    def __init__(self, index: ReportIndex, *, retry_failed: bool) -> None:
        self.index = index
        self.retry_failed = retry_failed
        self._count: int | None = None

    @classmethod
    def load(cls, path: Path, *, retry_failed: bool) -> CarriedRecords:
        """Read the report at ``path`` and its sidecar (raises like ``load_report``)."""
        index = ReportIndex.build(path, markers=True, may_apply=may_have_applied)
        return cls(index, retry_failed=retry_failed)

    def _carried_slot(self, key: TargetKey) -> int:
        """The slot of ``key`` if its record is carried over, else -1."""
        index = self.index
        slot = index.find(key)
        if slot < 0 or index.flags(slot) & (IN_FLIGHT | NO_RECORD):
            return -1
        outcome = index.outcome(slot)
        if outcome is None or not carries(outcome, retry_failed=self.retry_failed):
            return -1
        return slot

    def get(self, key: TargetKey, line: int) -> Result | None:
        """The record of a carried target, as found at input ``line``; ``None``: send it."""
        index = self.index
        slot = self._carried_slot(key)
        if slot < 0:
            return None
        if index.line(slot) != line and index.key_at(slot) != key:
            # Read back anyway to be rewritten with its new line, the record is another
            # target's: the two keys share a digest. Sending this one is the safe side.
            log.warning("report.digest_collision", job_id=key.job_id, build_no=key.build_no)
            return None
        index.hand_out(slot, line)
        outcome = index.outcome(slot)
        assert outcome is not None  # a carried slot has a record
        return Result(
            line=line,
            job_id=key.job_id,
            build_no=str(key.build_no),
            outcome=outcome,
            maybe_applied=bool(index.flags(slot) & OWN_FLAG),
            run=index.run(slot),
        )

    def maybe_applied(self, key: TargetKey) -> bool:
        """Whether an earlier run's stop of a target to send may have taken effect."""
        index = self.index
        slot = index.find(key)
        if slot < 0:
            return False
        flags = index.flags(slot)
        if flags & IN_FLIGHT:
            return True
        return bool(flags & MAY_APPLY) and self._carried_slot(key) < 0

    def sighted(self, key: TargetKey) -> bool | None:
        """Whether this is the first row of the run to name ``key`` (``None``: not a target
        of the report; the engine's own dedupe decides)."""
        return self.index.sight(key)

    def __len__(self) -> int:
        """How many targets are carried over."""
        if self._count is None:
            index, count = self.index, 0
            for slot in range(len(index)):
                if index.flags(slot) & (IN_FLIGHT | NO_RECORD | SUPERSEDED):
                    continue
                outcome = index.outcome(slot)
                if outcome is not None and carries(outcome, retry_failed=self.retry_failed):
                    count += 1
            self._count = count
        return self._count

    def __repr__(self) -> str:
        mode = "retry failed" if self.retry_failed else "plain"
        return f"<CarriedRecords {mode} over {self.index!r}>"
