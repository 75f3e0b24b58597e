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

from collections.abc import Mapping
from typing import Final

from bulkstop import codes
from bulkstop.models import FINAL_FOR_RESUME, Outcome, Result, TargetKey

__all__ = ["CarriedRecords", "carries", "may_have_applied"]

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
    """The records a resume carries over, and the targets it sends again maybe applied.

    The engine asks it once per target of the input (its ``Carried`` seam):
    :meth:`get` for the record to hand out instead of sending the target, and for a target
    to send, :meth:`maybe_applied`.

    Attributes:
        records: per carried target, its record in the report.
        maybe: targets to send whose earlier stop may have taken effect.
    """

    __slots__ = ("maybe", "records")

    def __init__(self, records: Mapping[TargetKey, Result], maybe: frozenset[TargetKey]) -> None:
        self.records = records
        self.maybe = maybe

    def get(self, key: TargetKey, line: int) -> Result | None:
        """The record of a carried target, at ``line`` (where the input holds it now), or
        None for a target to send."""
        record = self.records.get(key)
        if record is None or record.line == line:
            return record
        return record._replace(line=line)

    def maybe_applied(self, key: TargetKey) -> bool:
        """Whether an earlier run's stop of a target to send may have taken effect."""
        return key in self.maybe

    def original(self, key: TargetKey) -> Result | None:
        """The carried record of ``key`` as the report holds it."""
        return self.records.get(key)

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        return f"<CarriedRecords {len(self.records)} carried, {len(self.maybe)} maybe applied>"
