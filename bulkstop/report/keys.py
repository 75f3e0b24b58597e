"""Which target a report record is about: its :class:`~bulkstop.models.TargetKey`.

A record of a target (every outcome but ``invalid`` and ``duplicate``) is keyed by its
``job_id`` and the number its ``build_no`` text spells (``"007"`` keys as 7), so that a record
keys the same however the number was written. ``invalid`` and ``duplicate`` records carry the
raw text of their row and are never keyed: each run reports them afresh.
"""

from __future__ import annotations

from typing import Final

from bulkstop import models
from bulkstop.models import Outcome, Result, TargetKey

__all__ = ["DIGEST_BITS", "UNKEYED", "build_number", "key_digest", "record_key"]

#: The width of :func:`key_digest`.
DIGEST_BITS: Final = 96

#: Outcomes of rows that were never a target: their records have no key.
UNKEYED: Final = frozenset({Outcome.INVALID, Outcome.DUPLICATE})


def record_key(result: Result) -> TargetKey | None:
    """The key of a report record, or None for ``invalid``/``duplicate`` records.

    Surrounding whitespace is stripped from both fields. A record of a target whose
    ``build_no`` is not digits raises ``ValueError`` (reading a report refuses such a line).
    """
    if result.outcome in UNKEYED:
        return None
    return TargetKey(result.job_id.strip(), build_number(result.build_no))


def build_number(text: str) -> int:
    """The number ``text`` spells in ASCII digits, surrounding whitespace aside.

    Stricter than ``int()``, which also takes a sign, ``_`` and other scripts' digits: a
    build number in a report is written the way the engine writes it, or it is not one.
    """
    digits = text.strip()
    if not (digits.isascii() and digits.isdigit()) or len(digits.lstrip("0")) > 18:
        # 18 digits: beyond any build number, and within what a key's digest takes
        raise ValueError(f"not a build number: {text[:40]!r}")
    return int(digits)


def key_digest(key: TargetKey) -> int:
    """The one digest of a target key (:func:`bulkstop.models.key_digest`), cut to 96 bits.

    Compact structures (the report index of a resume) keep this instead of the key. Two keys
    share it with a chance of 2**-96 (see :mod:`bulkstop.report.index` for what that means).
    """
    return models.key_digest(key) & _DIGEST_MASK


_DIGEST_MASK: Final = (1 << DIGEST_BITS) - 1
