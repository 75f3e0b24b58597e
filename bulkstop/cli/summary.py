"""The summary of a run as data, and its three renderings: text lines, a JSON object, a file.

:class:`RunSummary` is built once, from a job's outcome, by
:func:`bulkstop.cli.output.summarize`; the plain-text lines on stderr
(:meth:`RunSummary.text_lines`), the ``run.summary`` event of ``--log-format json`` and the
document ``--summary-json PATH`` writes (:meth:`RunSummary.as_json`, :func:`write_summary`)
are renderings of that one value, so they cannot disagree about a count.

The counts per outcome are taken from :class:`bulkstop.models.Outcome` itself: every member
appears in ``outcomes`` (zeros included), so an outcome added to the enum appears here without
a change.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bulkstop.report.files import replace_file

__all__ = ["SUMMARY_VERSION", "EndedEarly", "RunSummary", "check_summary_path", "write_summary"]

#: The version of the JSON document's shape; raised when a field changes meaning or goes.
SUMMARY_VERSION = 1

#: What ended a run before its input did.
EndedBy = Literal["interrupt", "max_failures", "auth_breaker", "server_failing", "systematic"]


@dataclass(frozen=True, slots=True, kw_only=True)
class EndedEarly:
    """Why a run ended before its input did.

    Attributes:
        by: what ended it: ``interrupt`` (SIGINT/SIGTERM), ``max_failures`` (the failure
            threshold), ``auth_breaker``, ``server_failing`` or ``systematic`` (the first
            answers showed the call itself is wrong).
        message: what it said (the guard's message, or the signal).
        diagnosis: for ``systematic``: what the first answers showed and which option to
            change; else ``None``.
    """

    by: EndedBy
    message: str
    diagnosis: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSummary:
    """What a finished run did, as data.

    Attributes:
        rows: input rows read.
        outcomes: rows per outcome, every :class:`~bulkstop.models.Outcome` value present.
        requests / retries / throttled: stop calls sent, calls after a target's first,
            throttling answers.
        elapsed: seconds from the run's start to its end.
        achieved_rate: requests a second over the whole run.
        final_rate: the pacer's rate at the end; ``ceiling``: the rate asked for.
        exit_code: what the command exits with.
        report: the report's path.
        resumed: the run continued an earlier one (``--resume``).
        carried_over: targets whose record an earlier run settled.
        ended_early: why the run ended before its input did, if it did.
        resume_hint: the command that continues it, when it ended early.
    """

    rows: int
    outcomes: Mapping[str, int]
    requests: int
    retries: int
    throttled: int
    elapsed: float
    achieved_rate: float
    final_rate: float
    ceiling: float
    exit_code: int
    report: str
    resumed: bool
    carried_over: int
    ended_early: EndedEarly | None = None
    resume_hint: str | None = None
    #: room for fields a command adds (e.g. a verification's counts): rendered as they are
    extra: Mapping[str, Any] = field(default_factory=dict)

    def first_line(self) -> str:
        """The one-line summary: rows and the outcomes that occurred (``--quiet`` shows it)."""
        counts = ", ".join(f"{name} {count}" for name, count in self.outcomes.items() if count)
        return f"bulkstop: {self.rows} rows: {counts or 'nothing to do'}"

    def text_lines(self) -> list[str]:
        """The summary for a person: the first line, then pace, report, why it ended early."""
        lines = [
            self.first_line(),
            f"  {self.requests} requests in {self.elapsed:.1f} s ({self.achieved_rate:.1f}/s),"
            f" {self.retries} retries, {self.throttled} throttled, final rate"
            f" {self.final_rate:.1f}/s",
        ]
        if self.carried_over:
            lines.append(f"  {self.carried_over} targets carried over from earlier runs")
        lines.append(f"  report: {self.report}")
        ended = self.ended_early
        if ended is not None and ended.by == "systematic":
            lines.append(f"  ABORTED (the call is wrong): {ended.diagnosis}")
        elif ended is not None and ended.by != "interrupt":
            kind = {
                "auth_breaker": "credentials",
                "server_failing": "server failing",
                "max_failures": "threshold",
            }[ended.by]
            lines.append(f"  ABORTED ({kind}): {ended.message}")
        if self.resume_hint is not None:
            when = ", once the call is fixed" if ended and ended.by == "systematic" else ""
            lines.append(f"  to continue{when}: {self.resume_hint}")
        return lines

    def as_json(self) -> dict[str, Any]:
        """The summary for a machine: plain JSON types, fields by name (see the module)."""
        ended = self.ended_early
        return {
            "summary_version": SUMMARY_VERSION,
            "exit_code": self.exit_code,
            "rows": self.rows,
            "outcomes": dict(self.outcomes),
            "requests": self.requests,
            "retries": self.retries,
            "throttled": self.throttled,
            "elapsed": round(self.elapsed, 3),
            "achieved_rate": round(self.achieved_rate, 3),
            "final_rate": round(self.final_rate, 3),
            "ceiling": self.ceiling,
            "report": self.report,
            "resumed": self.resumed,
            "carried_over": self.carried_over,
            "ended_early": None
            if ended is None
            else {"by": ended.by, "message": ended.message, "diagnosis": ended.diagnosis},
            "resume_hint": self.resume_hint,
            **self.extra,
        }


def check_summary_path(path: Path, others: Mapping[str, str | Path | None] | None = None) -> None:
    """Refuse, before a run starts, a ``--summary-json`` path that cannot be written safely,
    or that names one of ``others`` (``{"the report": path, ...}``: it would be replaced).

    Raises :class:`~bulkstop.errors.UsageError` naming the path.
    """
    from bulkstop.errors import UsageError
    from bulkstop.report.files import refuse_unsafe

    for what, other in (others or {}).items():
        if other is not None and str(other) != "-" and _same(path, Path(other)):
            raise UsageError(f"the summary {path} is {what}: choose another --summary-json path")
    if not path.parent.is_dir():
        raise UsageError(f"cannot write the summary {path}: directory {path.parent} does not exist")
    refuse_unsafe(path, "the summary")


def _same(one: Path, other: Path) -> bool:
    try:
        return one.samefile(other)
    except OSError:  # one of them does not exist (yet): compare what they name
        return one.resolve() == other.resolve()


def write_summary(path: Path, summary: RunSummary) -> None:
    """Write ``summary`` to ``path`` as one JSON document, atomically and privately.

    Through :func:`bulkstop.report.files.replace_file` (a private temporary file beside it,
    synced and renamed over ``path``); a link or other non-file at ``path`` is refused
    (:func:`check_summary_path`). If anything fails, ``path`` is left as it was.
    """
    check_summary_path(path)
    text = json.dumps(summary.as_json(), indent=2, ensure_ascii=False) + "\n"
    replace_file(path, text.encode(), prefix=f".{path.name}.", suffix=".tmp")
