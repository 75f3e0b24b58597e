"""The console side of verification: the summary lines ``run --verify`` and ``verify`` print.

Kept apart from :mod:`bulkstop.cli.output` so that a display of its own (a progress view, a
summary as JSON) can call :func:`verify_summary_lines` and print the lines where it likes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from bulkstop.verifying import VerifyOutcome

__all__ = ["LISTED", "print_verify_summary", "verify_summary_lines"]

#: Targets not ended listed one a line at most (a screenful); the report has them all.
LISTED: Final = 20


def verify_summary_lines(outcome: VerifyOutcome, *, listed: int = LISTED) -> list[str]:
    """One line of counts, then one line per target not ended (up to ``listed``)."""
    stats = outcome.stats
    lines = [
        f"verify: {stats.targets} targets checked: {stats.ended} ended, {stats.running} still"
        f" running, {stats.unknown} unknown ({stats.calls} read calls, {stats.throttled}"
        " throttled)"
    ]
    for result in outcome.not_ended[:listed]:
        word = f" ({result.status})" if result.status else ""
        what = "still running" if result.verdict == "running" else "unknown"
        detail = f": {result.detail}" if result.detail else ""
        lines.append(f"  {what}: {result.job_id} #{result.build_no}{word}{detail}")
    more = len(outcome.not_ended) - listed
    if more > 0:
        lines.append(f"  ... and {more} more (the report's verified column has them all)")
    if outcome.aborted_by is not None:
        lines.append(f"verify: ended early: {outcome.aborted_by}")
    return lines


def print_verify_summary(outcome: VerifyOutcome) -> None:
    """:func:`verify_summary_lines` on stderr, as the console writes every line of its own
    (JSON under ``--log-format json``, through the log redactor); the lines about targets not
    ended are warnings, which ``--quiet`` keeps."""
    from bulkstop.cli import output

    for number, line in enumerate(verify_summary_lines(outcome)):
        output.say(
            "verify.summary", line, "info" if number == 0 and outcome.all_ended else "warning"
        )
