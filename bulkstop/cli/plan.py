"""The plan of a run in words: how many targets, where, by which API, at what rate, how long.

Shown after a dry run and in the question asked before a large run on a terminal
(:func:`confirm_run`).
"""

from __future__ import annotations

import math
import os
import sys
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from bulkstop.job import JobOutcome, JobSettings

__all__ = ["asks", "confirm_run", "describe", "dry_run_lines", "duration", "where"]


def where(settings: JobSettings) -> str:
    """Where a run's stops go, as a person reads it."""
    if settings.simulate:
        return "the built-in simulator (nothing real)"
    if settings.endpoint:
        return settings.endpoint
    if settings.region:
        return f"region {settings.region}"
    return "no endpoint"


def duration(seconds: float) -> str:
    """``95.2`` → ``1 min 36 s``; under a minute in whole seconds, at least ``1 s``."""
    whole = max(1, math.ceil(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes, rest = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def describe(settings: JobSettings, count: int | None) -> str:
    """``N targets to WHERE with the API API at up to R/s: about T at that rate``."""
    targets = (
        "an unknown number of targets"
        if count is None
        else ("1 target" if count == 1 else f"{count} targets")
    )
    text = (
        f"{targets} to {where(settings)} with the {settings.api} API at up to {settings.rate:g}/s"
    )
    if count:
        text += f": about {duration(count / settings.rate)} at that rate"
    return text


def asks(settings: JobSettings, *, yes: bool, above: int) -> bool:
    """Whether to ask before the run: on a terminal (stdin and stderr), unless ``--yes``.

    Never for input from stdin: a pipe leaves no terminal to answer on, and a terminal that
    is stdin is the input being typed, which would answer the question itself.
    """
    if yes or settings.dry_run or settings.input == "-" or above < 0:
        return False
    try:
        return sys.stdin.isatty() and sys.stderr.isatty() and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):
        return False


def confirm_run(settings: JobSettings, count: int) -> bool:
    """Show the plan of a run of ``count`` targets and ask whether to send them."""
    click.echo(f"bulkstop: about to stop {describe(settings, count)}.", err=True)
    return click.confirm("Send these stops?", default=False, err=True)


def dry_run_lines(settings: JobSettings, outcome: JobOutcome) -> list[str]:
    """What a dry run says after its summary: nothing was sent, the plan, how to carry it out."""
    import shlex

    from bulkstop.models import Outcome

    count = outcome.stats.count(Outcome.DRY_RUN)
    lines = [f"bulkstop: dry run, nothing was sent: a run would stop {describe(settings, count)}"]
    report = shlex.quote(str(outcome.report))
    given = shlex.quote(settings.input)
    if settings.resume:
        lines.append(f"  the report is left as it is; to run: bulkstop run {given} --report"
                     f" {report} --resume")  # fmt: skip
    elif count:
        lines.append(f"  to send them: bulkstop run {given} --report {report} --resume")
    return lines
