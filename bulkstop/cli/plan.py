"""The plan of a run in words: how many targets, where, by which API, at what rate, how long.

Shown after a dry run and in the question asked before a large run on a terminal
(:func:`confirmed`), whose count is that of a dry run of the same settings: exactly the stops
the run would send, after validation, dedupe and a resume's plan.
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from bulkstop.job import JobOutcome, JobSettings

__all__ = ["asks", "confirmed", "count_targets", "describe", "dry_run_lines", "duration", "where"]


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


def asks(settings: JobSettings) -> bool:
    """Whether a run may ask before it starts: on a terminal (stdin and stderr).

    Never for input from stdin: a pipe leaves no terminal to answer on, and a terminal that
    is stdin is the input being typed, which would answer the question itself. Never for a
    dry run, which sends nothing.
    """
    if settings.dry_run or settings.input == "-":
        return False
    try:
        return sys.stdin.isatty() and sys.stderr.isatty()
    except (AttributeError, ValueError):  # no stream, or a closed one
        return False


async def count_targets(settings: JobSettings) -> int:
    """How many stops the run ``settings`` describe would send: a dry run of it, writing its
    report (a new run's) to a temporary directory, or none at all (a resume's)."""
    import dataclasses
    import tempfile
    from pathlib import Path

    from bulkstop.job import Job
    from bulkstop.models import Outcome

    with tempfile.TemporaryDirectory() as scratch:
        planned = dataclasses.replace(settings, dry_run=True)
        if not settings.resume:
            suffix = settings.report.suffix if settings.report is not None else ".csv"
            report = Path(scratch, "plan" + suffix)
            planned = dataclasses.replace(planned, report=report, overwrite=False)
        async with Job(planned) as job:
            outcome = await job.run()
    return outcome.stats.count(Outcome.DRY_RUN)


def confirmed(settings: JobSettings, *, above: int) -> bool:
    """Whether to go on: yes at once for ``above`` stops or fewer; else the plan is shown and
    the question asked (no, unless answered yes)."""
    import anyio

    with _quieted():  # the plan's own dry run is not news
        count = anyio.run(count_targets, settings)
    if count <= above:
        return True
    from bulkstop.logconfig import redactor

    # Through the redactor like every other line of the console (an endpoint may carry one).
    click.echo(redactor.scrub(f"bulkstop: about to stop {describe(settings, count)}."), err=True)
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


@contextlib.contextmanager
def _quieted() -> Iterator[None]:
    """Only errors are logged meanwhile (the real run warns again); logging is restored after."""
    import logging

    import structlog

    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    try:
        yield
    finally:
        structlog.configure(**saved)
