"""A subset of an earlier report, sent again: ``--only-outcome uncertain,failed``.

The input is a report of an earlier run. Its rows are read as any input's (validation and
dedupe included), and each target is sent again only when its latest record in that report has
one of the chosen outcomes. Every other row still appears in the new report, as ``skipped``
with its earlier outcome in the detail — the report keeps one record per input row, and the
exit code speaks of this run's calls only.

:class:`Subset` is the engine's :class:`~bulkstop.engine.Carried` seam: it hands out a
``skipped`` record in the place of a target not chosen, and leaves the rest to a resume's
carried records, if any.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from bulkstop.errors import UsageError
from bulkstop.models import Outcome, Result, TargetKey

if TYPE_CHECKING:
    from bulkstop.engine import Carried

__all__ = ["Subset", "parse_outcomes", "refuse_stdin", "spell_outcomes"]


#: Outcomes of rows that name no target of their own to send again: an invalid row names none,
#: and a duplicate's target is its first row's, which has an outcome of its own.
_ROW_ONLY: frozenset[Outcome] = frozenset({Outcome.INVALID, Outcome.DUPLICATE})


def parse_outcomes(text: str) -> frozenset[Outcome]:
    """``"uncertain, failed"`` → those outcomes; :class:`ValueError` naming the valid ones.

    ``invalid`` and ``duplicate`` are refused: no target is left with them, so choosing them
    would send nothing and report every row skipped.
    """
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    valid = [outcome.value for outcome in Outcome if outcome not in _ROW_ONLY]
    row_only = [name for name in names if name in {outcome.value for outcome in _ROW_ONLY}]
    if row_only:
        raise ValueError(
            f"{', '.join(map(repr, row_only))}: an outcome of rows, never of a target to send"
            f" again; choose from {', '.join(valid)}"
        )
    unknown = [name for name in names if name not in valid]
    if unknown or not names:
        what = f"unknown outcome {', '.join(map(repr, unknown))}" if unknown else "no outcome"
        raise ValueError(f"{what}; choose from {', '.join(valid)}")
    return frozenset(Outcome(name) for name in names)


def spell_outcomes(outcomes: Iterable[Outcome]) -> str:
    """Outcomes as ``--only-outcome`` takes them, in the enum's order."""
    chosen = set(outcomes)
    return ",".join(outcome.value for outcome in Outcome if outcome in chosen)


class Subset:
    """The targets of an earlier report to send again: those whose outcome was chosen.

    Attributes:
        wanted: the chosen outcomes.
        run: the number stamped on the ``skipped`` records.
        skipped: how many were handed out as ``skipped`` so far.
    """

    __slots__ = ("_earlier", "_inner", "run", "skipped", "wanted")

    def __init__(
        self,
        earlier: Mapping[TargetKey, Outcome],
        wanted: frozenset[Outcome],
        *,
        run: int,
        inner: Carried | None = None,
    ) -> None:
        self._earlier = earlier
        self.wanted = wanted
        self.run = run
        self._inner = inner
        self.skipped = 0

    @classmethod
    def of_report(
        cls, report: Path, wanted: frozenset[Outcome], *, run: int, inner: Carried | None = None
    ) -> Subset:
        """The subset of the report at ``report`` (the input); :class:`UsageError` when the
        input is not a bulkstop report."""
        from bulkstop.report import load_report

        loaded = load_report(report)  # ReportMismatchError (a UsageError) for another file
        earlier = {key: record.outcome for key, record in loaded.latest.items()}
        return cls(earlier, wanted, run=run, inner=inner)

    def get(self, key: TargetKey, line: int) -> Result | None:
        earlier = self._earlier.get(key)
        if earlier is not None and earlier not in self.wanted:
            self.skipped += 1
            return Result(
                line=line,
                job_id=key.job_id,
                build_no=str(key.build_no),
                outcome=Outcome.SKIPPED,
                detail=f"not chosen by --only-outcome: it was {earlier.value}",
                run=self.run,
            )
        return None if self._inner is None else self._inner.get(key, line)

    def maybe_applied(self, key: TargetKey) -> bool:
        return False if self._inner is None else self._inner.maybe_applied(key)

    def sighted(self, key: TargetKey) -> bool | None:
        return None if self._inner is None else self._inner.sighted(key)

    def __repr__(self) -> str:
        return f"<Subset {spell_outcomes(self.wanted)} skipped={self.skipped}>"


def refuse_stdin(input_name: str) -> None:
    """Refuse stdin as the input of a subset: its outcomes are read from the file first."""
    if input_name == "-":
        raise UsageError("--only-outcome needs an earlier report as the input file, not stdin")
