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


def print_verify_summary(outcome: VerifyOutcome, *, listed: int = LISTED) -> None:
    """:func:`verify_summary_lines` on stderr, as the console writes every line of its own
    (through the log redactor): under ``--log-format json`` one event a line, its values as
    data — ``verify.summary`` (the counts, as numbers), ``verify.summary_not_ended`` (a target
    listed, beside the log's own ``verify.not_ended`` of each), ``verify.summary_more`` (how
    many more), ``verify.ended_early``. ``--quiet`` keeps the counts' line and an early end
    (an error); the targets not ended are in the report."""
    from bulkstop.cli import output

    lines = verify_summary_lines(outcome, listed=listed)
    stats = outcome.stats
    output.say_summary(
        "verify.summary",
        lines[0],
        "info" if outcome.all_ended else "warning",
        targets=stats.targets,
        ended=stats.ended,
        running=stats.running,
        unknown=stats.unknown,
        calls=stats.calls,
        throttled=stats.throttled,
        all_ended=outcome.all_ended,
    )
    shown = outcome.not_ended[:listed]
    for line, result in zip(lines[1:], shown, strict=False):
        output.notice(
            "verify.summary_not_ended",
            line,
            job_id=result.job_id,
            build_no=result.build_no,
            verdict=result.verdict,
            status=result.status,
            detail=result.detail,
        )
    rest = lines[1 + len(shown) :]
    more = len(outcome.not_ended) - len(shown)
    if more > 0:
        output.notice("verify.summary_more", rest.pop(0), targets=more)
    if outcome.aborted_by is not None:
        output.say(
            "verify.ended_early",
            rest.pop(0),
            "error",
            exit_code=int(outcome.aborted_by.exit_code),
        )
