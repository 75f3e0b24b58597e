"""The console side of the command line: the one-line error, the simulation banner, the live
progress display, the summary and the resume hint.

Everything goes to stderr — stdout stays free for machine-readable output — and every line
passes the log redactor (:data:`bulkstop.logconfig.redactor`) on its way, as a last line of
defence behind :class:`bulkstop.auth.Secret`.

The progress display (rich) is shown only when stderr is a terminal and logs are not JSON, or
when forced; cron and pipes get the plain summary at the end instead. rich is imported only
when the display is shown, or to tell whether stderr is a terminal where it may be one.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, NoReturn

import click

from bulkstop import logconfig
from bulkstop.errors import CredentialsRejected, ExitCode, ServerFailing, SystematicFailure
from bulkstop.models import Outcome

if TYPE_CHECKING:
    from pathlib import Path

    from rich.console import Console

    from bulkstop.engine import RunStats
    from bulkstop.job import Job, JobOutcome, JobSettings
    from bulkstop.models import Result

__all__ = [
    "ConsoleEvents",
    "ProgressDisplay",
    "fail",
    "print_summary",
    "show_progress",
    "summary_lines",
]


def _echo(line: str) -> None:
    click.echo(logconfig.redactor.scrub(line), err=True)


def fail(message: str, code: ExitCode = ExitCode.USAGE) -> NoReturn:
    """Say what went wrong in one line on stderr and exit with ``code``."""
    _echo(f"bulkstop: error: {message}")
    sys.exit(code)


def _simulation_banner(url: str) -> None:
    """Say loudly that this run stops nothing real."""
    _echo(
        f"{click.style('SIMULATION', fg='yellow', bold=True)}: stopping builds on the built-in"
        f" CodeArts simulator at {url} — no cloud service is contacted, nothing real is"
        " stopped."
    )


def _console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def show_progress(progress: str, log_format: str) -> bool:
    """Whether ``--progress`` (``auto``, ``always``, ``never``) shows the live display."""
    if progress != "auto":
        return progress == "always"
    if log_format == "json":
        return False
    # rich decides what a terminal is; it says no when stderr is not a tty and neither of its
    # variables forcing one is set, and then it is not even imported.
    environ = os.environ
    if not (environ.get("TTY_COMPATIBLE") == "1" or environ.get("FORCE_COLOR")):
        isatty = getattr(sys.stderr, "isatty", None)
        try:
            if isatty is None or not isatty():
                return False
        except ValueError:  # a closed stream
            return False
    return bool(_console().is_terminal)


class ProgressDisplay:
    """A bar of rows done, with live stopped/failed/throttled counts and the current rate."""

    __slots__ = ("_progress", "_task")

    def __init__(self, total: int | None = None) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]bulkstop[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            TimeElapsedColumn(),
            console=_console(),
            transient=False,
            refresh_per_second=4,
        )
        self._task = self._progress.add_task("stopping", total=total, counts="")

    def start(self) -> None:
        self._progress.start()

    def stop(self) -> None:
        self._progress.stop()

    def update(self, stats: RunStats, rate: float) -> None:
        stopped = stats.count(Outcome.STOPPED)
        not_stopped = stats.count(Outcome.NOT_STOPPED)
        counts = (
            f"stopped {stopped} · not stopped {not_stopped} · other"
            f" {stats.done - stopped - not_stopped} · throttled {stats.throttled}"
            f" · rate {rate:.1f}/s"
        )
        self._progress.update(self._task, completed=stats.done, counts=counts)


class ConsoleEvents:
    """A job's events on the console: the simulation banner, and the progress display while
    the run goes when ``progress`` is set (see :class:`bulkstop.job.JobEvents`)."""

    __slots__ = ("_display", "job", "progress")

    def __init__(self, *, progress: bool) -> None:
        self.progress = progress
        #: the job whose counters the display shows; set before it runs
        self.job: Job | None = None
        self._display: ProgressDisplay | None = None

    def simulating(self, url: str) -> None:
        _simulation_banner(url)

    def started(self) -> None:
        if self.progress and self.job is not None:
            self._display = ProgressDisplay()
            self._display.start()

    def result(self, result: Result) -> None:
        if self._display is not None and self.job is not None:
            self._display.update(self.job.stats, self.job.rate)

    def ended(self) -> None:
        display, self._display = self._display, None
        if display is not None:
            display.stop()


def summary_lines(outcome: JobOutcome, settings: JobSettings) -> list[str]:
    """The summary of a run: counts, pace, report, why it ended early, how to continue."""
    stats, report = outcome.stats, outcome.report
    elapsed = (stats.finished or 0.0) - stats.started
    rps = stats.requests / elapsed if elapsed > 0 else 0.0
    counts = ", ".join(f"{kind.value} {stats.count(kind)}" for kind in Outcome if stats.count(kind))
    lines = [
        f"bulkstop: {stats.rows} rows: {counts or 'nothing to do'}",
        f"  {stats.requests} requests in {elapsed:.1f} s ({rps:.1f}/s), {stats.retries} retries,"
        f" {stats.throttled} throttled, final rate {outcome.rate:.1f}/s",
    ]
    if stats.carried_over:
        lines.append(f"  {stats.carried_over} targets carried over from earlier runs")
    lines.append(f"  report: {report}")
    aborted = outcome.aborted_by
    if isinstance(aborted, SystematicFailure):
        lines.append(f"  ABORTED (the call is wrong): {_diagnosis(aborted, settings.api)}")
    elif aborted is not None:
        kind = "threshold"
        if isinstance(aborted, CredentialsRejected):
            kind = "credentials"
        elif isinstance(aborted, ServerFailing):
            kind = "server failing"
        lines.append(f"  ABORTED ({kind}): {aborted}")
    if outcome.interrupted or aborted is not None:
        when = ", once the call is fixed" if isinstance(aborted, SystematicFailure) else ""
        lines.append(f"  to continue{when}: {_resume_hint(settings, report)}")
    return lines


def print_summary(outcome: JobOutcome, settings: JobSettings) -> None:
    for line in summary_lines(outcome, settings):
        _echo(line)


def _resume_hint(settings: JobSettings, report: Path) -> str:
    """The command that continues a run that ended early: the report remembers the rest."""
    import shlex

    if settings.input == "-":
        return (
            f"bulkstop run - --input-format {settings.input_format} --report"
            f" {shlex.quote(str(report))} --resume, with the same input on stdin"
        )
    return (
        f"bulkstop run {shlex.quote(settings.input)} --report {shlex.quote(str(report))} --resume"
    )


def _diagnosis(error: SystematicFailure, api: str) -> str:
    """What the first answers showed, and which option to change."""
    from bulkstop.apis import STOP_APIS
    from bulkstop.retry import SystematicFault

    if error.fault is SystematicFault.API_NOT_SERVED:
        others = " or ".join(f"--api {name}" for name in STOP_APIS if name != api)
        return (
            f"this endpoint does not serve the {api} stop API ({error.evidence});"
            f" try {others}, or check --endpoint"
        )
    change = {
        SystematicFault.DNS: "check --endpoint/--region",
        SystematicFault.REFUSED: "check --endpoint (host and port) and that the service is up",
        SystematicFault.CERTIFICATE: "add the CA that signed it with --ca-bundle PATH",
    }[error.fault]
    return f"{error}: {change}"
