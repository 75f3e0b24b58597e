"""Which target a report record is about: its key.

Records are keyed by ``(job_id, build_no)`` as text (:data:`ReportKey`), ``build_no`` in
canonical digits (``"007"`` keys as ``"7"``). ``invalid`` and ``duplicate`` records carry the
raw text of their row and are never keyed: each run reports them afresh.
"""

from __future__ import annotations

from typing import Final

from bulkstop.models import Outcome, Result, Target

__all__ = ["UNKEYED", "ReportKey", "canonical_build", "record_key", "target_key"]

#: ``(job_id, build_no)`` as text, ``build_no`` in canonical digits.
ReportKey = tuple[str, str]

#: Outcomes of rows that were never a target: their records have no key.
UNKEYED: Final = frozenset({Outcome.INVALID, Outcome.DUPLICATE})


def target_key(target: Target) -> ReportKey:
    """The report key of a validated target."""
    return (target.job_id, str(target.build_no))


def record_key(result: Result) -> ReportKey | None:
    """The key of a report record, or None for ``invalid``/``duplicate`` records.

    Surrounding whitespace is stripped and ``build_no`` digits are made canonical, so a record
    keys the same however the engine spelled the number.
    """
    if result.outcome in UNKEYED:
        return None
    return (result.job_id.strip(), canonical_build(result.build_no))


def canonical_build(text: str) -> str:
    """``build_no`` text in canonical digits (``" 007 "`` → ``"7"``); other text as written."""
    digits = text.strip()
    if digits.isascii() and digits.isdigit():
        try:
            return str(int(digits))
        except ValueError:  # beyond int()'s digit limit: keep as written
            pass
    return digits
