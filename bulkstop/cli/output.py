"""The console side of the command line: the one-line error, the simulation banner, the live
progress display, the summary and the resume hint — for every command (``run``, ``discover``,
``verify``, ``status``'s error, ``simulate``'s).

Everything goes to stderr — stdout stays free for machine-readable output — and every line
passes the log redactor (:data:`bulkstop.logconfig.redactor`) on its way, as a last line of
defence behind :class:`bulkstop.auth.Secret`. How it is written is set once per command
(:func:`configure_console`):

- ``--log-format json``: every line is one JSON object with the ``event``, ``level`` and
  ``timestamp`` of the structlog events beside it (:func:`bulkstop.cli.jsonlog.json_line`):
  ``cli.error``, ``run.simulating``, ``run.interrupt``, ``run.summary``; ``discover.*`` and
  ``verify.*`` for those commands (``discover.summary``, ``verify.summary``: counts as numbers).
- ``--quiet``: errors and the summary's first line only (:func:`say_summary` for the
  one-line summary of ``discover`` and ``verify``).
- otherwise text lines; while the live display is shown they are printed above it.

The summary is data first (:func:`summarize` → :class:`bulkstop.cli.summary.RunSummary`);
the text lines, the ``run.summary`` event and the ``--summary-json`` file render it.

The progress display (rich) is shown only when stderr is a terminal and logs are not JSON, or
when forced (never under JSON logs or ``--quiet``); cron and pipes get the plain summary at the
end instead. It shows rows done out of the input's rows (counted before the run, for a regular
file), the rows per outcome, the achieved rate beside the pacer's, whether the pacer is
throttled, and an ETA (:class:`ProgressStatus`). rich is imported only when the display is
shown, or to tell whether stderr is a terminal where it may be one.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn

import click

from bulkstop import logconfig
from bulkstop.cli.jsonlog import json_line
from bulkstop.errors import CredentialsRejected, ExitCode, ServerFailing, SystematicFailure
from bulkstop.models import Outcome

if TYPE_CHECKING:
    from pathlib import Path

    from rich.console import Console, RenderableType

    from bulkstop.cli.summary import RunSummary
    from bulkstop.engine import RunStats
    from bulkstop.job import Job, JobOutcome, JobSettings
    from bulkstop.models import Result

__all__ = [
    "ConsoleEvents",
    "ProgressDisplay",
    "ProgressStatus",
    "RateMeter",
    "RowCount",
    "StatusLines",
    "configure_console",
    "count_in_background",
    "count_rows",
    "fail",
    "notice",
    "print_summary",
    "say",
    "say_summary",
    "show_progress",
    "summarize",
    "summary_lines",
]


class _ConsoleState:
    """How the command line writes on stderr, set once by :func:`configure_console`."""

    __slots__ = ("display", "json", "quiet")

    def __init__(self) -> None:
        #: every line is one JSON object (``--log-format json``)
        self.json = False
        #: errors and the one-line summary only (``--quiet``)
        self.quiet = False
        #: the live display while it is shown: lines are printed above it, through it
        self.display: ProgressDisplay | None = None


_state = _ConsoleState()


def configure_console(*, log_format: str = "console", quiet: bool = False) -> None:
    """Say how the command's own lines are written: JSON objects or text, all or few."""
    _state.json = log_format == "json"
    _state.quiet = quiet


def _echo(line: str) -> None:
    line = logconfig.redactor.scrub(line)
    display = _state.display
    if display is not None:
        display.print(line)
    else:
        click.echo(line, err=True)


def _emit_json(event: str, level: str, fields: Mapping[str, Any]) -> None:
    click.echo(json_line(event, level, fields, logconfig.redactor.scrub), err=True)


def _say(
    event: str,
    level: str,
    text: str,
    message: str | None = None,
    *,
    kept: bool = False,
    **fields: Any,
) -> None:
    """A line of the command's own: a JSON object (``message``, by default ``text``
    unstyled, and ``fields``) or ``text``; only errors (and ``kept`` lines) when quiet."""
    if _state.quiet and level != "error" and not kept:
        return
    if _state.json:
        _emit_json(event, level, {"message": message or click.unstyle(text), **fields})
    else:
        _echo(text)


def fail(message: str, code: ExitCode = ExitCode.USAGE) -> NoReturn:
    """Say what went wrong in one line on stderr and exit with ``code``."""
    _say("cli.error", "error", f"bulkstop: error: {message}", message, exit_code=int(code))
    sys.exit(code)


def say(event: str, text: str, level: str = "info", **fields: Any) -> None:
    """A line of a command's own on stderr: a JSON object under ``--log-format json``, text
    otherwise; dropped by ``--quiet`` unless ``level`` is ``error``."""
    _say(event, level, text, **fields)


def say_summary(event: str, text: str, level: str = "info", **fields: Any) -> None:
    """A command's one-line summary on stderr (``discover.summary``, ``verify.summary``): as
    :func:`say`, but shown with ``--quiet`` too; its counts go in ``fields``, as numbers."""
    _say(event, level, text, kept=True, **fields)


def notice(event: str, text: str, **fields: Any) -> None:
    """A warning of the command's own (e.g. that a signal drains the run) on stderr."""
    _say(event, "warning", text, **fields)


def _simulation_banner(url: str) -> None:
    """Say loudly that this run stops nothing real."""
    _say(
        "run.simulating",
        "warning",
        f"{click.style('SIMULATION', fg='yellow', bold=True)}: stopping builds on the built-in"
        f" CodeArts simulator at {url} — no cloud service is contacted, nothing real is"
        " stopped.",
        url=url,
    )


def _console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def show_progress(progress: str, log_format: str, *, quiet: bool = False) -> bool:
    """Whether ``--progress`` (``auto``, ``always``, ``never``) shows the live display.

    Never under JSON logs, whose every line must be JSON, nor with ``--quiet``."""
    if log_format == "json" or quiet:
        return False
    if progress != "auto":
        return progress == "always"
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


class RateMeter:
    """How fast a running count grows, over the last ``window`` seconds of its samples.

    Attributes:
        window: seconds of samples kept (the newest sample older than that is kept too, so
            that the window is covered whole once the run is older than it).
    """

    __slots__ = ("_samples", "window")

    def __init__(self, window: float = 5.0) -> None:
        self.window = window
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, now: float, count: int) -> None:
        """Note that the count was ``count`` at ``now``."""
        samples = self._samples
        samples.append((now, count))
        while len(samples) > 2 and samples[1][0] <= now - self.window:
            samples.popleft()

    def rate(self) -> float | None:
        """Counts a second over the window; ``None`` before two samples at distinct times."""
        if len(self._samples) < 2:
            return None
        (first_at, first), (last_at, last) = self._samples[0], self._samples[-1]
        if last_at <= first_at:
            return None
        return (last - first) / (last_at - first_at)

    def __repr__(self) -> str:
        rate = self.rate()
        shown = "?" if rate is None else f"{rate:.2f}/s"
        return f"RateMeter(window={self.window:g}, samples={len(self._samples)}, rate={shown})"


def _eta(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


class StatusLines(NamedTuple):
    """The display's words: beside the bar, and the line below it."""

    #: the achieved rate, the pacer's rate (the ceiling), the throttle state, the ETA
    pace: str
    #: rows per outcome
    counts: str


class ProgressStatus:
    """The words of the live display beside its bar: counts, rates, throttling, ETA.

    Kept apart from rich so that what it says is tested on an injected clock, exactly.

    Attributes:
        total: rows the input holds, when known before the run; else ``None``.
        asked: the rate the run was asked for (``--rate``): the pacer below it is throttled.
        clock: seconds on a monotonic scale (default :func:`time.monotonic`).
        requests / rows: meters of the requests sent and the rows done.
    """

    __slots__ = ("asked", "clock", "requests", "rows", "total")

    def __init__(
        self,
        *,
        total: int | None,
        asked: float,
        clock: Callable[[], float] | None = None,
        window: float = 5.0,
    ) -> None:
        self.total = total
        self.asked = asked
        self.clock = clock if clock is not None else time.monotonic
        self.requests = RateMeter(window)
        self.rows = RateMeter(window)

    def describe(self, stats: RunStats, pacer_rate: float) -> StatusLines:
        """What the display says for ``stats`` now, with the pacer at ``pacer_rate``."""
        now = self.clock()
        self.requests.add(now, stats.requests)
        self.rows.add(now, stats.done)
        achieved = self.requests.rate()
        shown = "?" if achieved is None else f"{achieved:.1f}"
        pace = [f"{shown}/s of {pacer_rate:.1f}/s"]
        if pacer_rate < self.asked:
            pace.append("throttled, backing off")
        pace.append(f"ETA {self._eta(stats)}")
        counts = " · ".join(
            f"{kind.value} {stats.count(kind)}" for kind in Outcome if stats.count(kind)
        )
        return StatusLines(" · ".join(pace), counts or "nothing done yet")

    def _eta(self, stats: RunStats) -> str:
        total = self.total
        if total is None:
            return "?"
        left = max(total - stats.done, 0)
        if left == 0:
            return _eta(0)
        pace = self.rows.rate()
        if not pace:
            return "?"
        return _eta(left / pace)

    def __repr__(self) -> str:
        return f"ProgressStatus(total={self.total}, asked={self.asked:g}, rows={self.rows!r})"


class ProgressDisplay:
    """rich's live bar of rows done out of the total, with :class:`ProgressStatus` beside it.

    Lines printed while it is shown go above it (:meth:`print`; structlog's lines reach it
    through rich's redirection of ``sys.stderr``, see :mod:`bulkstop.logconfig`).
    """

    __slots__ = ("_progress", "_task", "status")

    def __init__(self, status: ProgressStatus, console: Console | None = None) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )
        from rich.text import Text

        class TwoLines(Progress):
            """rich's progress bar, with the counts on a line of their own below it."""

            counts = Text("")

            def get_renderables(self) -> Iterable[RenderableType]:
                yield self.make_tasks_table(self.tasks)
                yield self.counts

        self.status = status
        self._progress = TwoLines(
            TextColumn("[bold]bulkstop[/]"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TextColumn("{task.fields[pace]}"),
            TimeElapsedColumn(),
            console=console if console is not None else _console(),
            transient=False,
            refresh_per_second=4,
        )
        self._task = self._progress.add_task("stopping", total=status.total, pace="")

    def start(self) -> None:
        self._progress.start()

    def stop(self) -> None:
        self._progress.stop()

    def print(self, line: str) -> None:
        """Print ``line`` (it may carry ANSI styles) above the live display."""
        from rich.text import Text

        self._progress.console.print(Text.from_ansi(line))

    def update(self, stats: RunStats, pacer_rate: float) -> None:
        total = self.status.total
        if total is not None and stats.rows > total:  # the input grew since it was counted
            self.status.total = total = None
        from rich.text import Text

        lines = self.status.describe(stats, pacer_rate)
        self._progress.counts = Text(lines.counts)
        self._progress.update(self._task, total=total, completed=stats.done, pace=lines.pace)


def count_rows(settings: JobSettings, cancelled: threading.Event | None = None) -> int | None:
    """The rows of a regular input file; ``None`` for a stream, an input that cannot be read
    (the run itself then says why), or when ``cancelled`` is set before the count is done.

    The input is read exactly as the run reads it (:func:`bulkstop.sources.open_source`), so
    the count is the run's own: every row, invalid and duplicate ones included, ends as one
    result. That costs about a second per 100 000 rows: the display counts on a thread of
    its own (:func:`count_in_background`) while the run goes.
    """
    import stat

    from bulkstop.errors import BulkstopError
    from bulkstop.sources import open_source

    if settings.input == "-":
        return None
    try:
        if not stat.S_ISREG(os.stat(settings.input).st_mode):
            return None
        count = 0
        with open_source(settings.input, settings.input_format) as source:
            for _ in source:
                count += 1
                if cancelled is not None and not count % 1024 and cancelled.is_set():
                    return None
        return count
    except (OSError, BulkstopError):
        return None


class RowCount(NamedTuple):
    """A count of the input's rows under way (:func:`count_in_background`)."""

    thread: threading.Thread
    #: set it to give up (the run ended first)
    cancelled: threading.Event


def count_in_background(settings: JobSettings, status: ProgressStatus) -> RowCount:
    """Count the input's rows on a thread and set ``status.total`` when done."""
    cancelled = threading.Event()

    def count() -> None:
        total = count_rows(settings, cancelled)
        if total is not None and not cancelled.is_set():
            status.total = total

    thread = threading.Thread(target=count, name="bulkstop-count-rows", daemon=True)
    thread.start()
    return RowCount(thread, cancelled)


class ConsoleEvents:
    """A job's events on the console: the simulation banner, and the progress display while
    the run goes when ``progress`` is set (see :class:`bulkstop.job.JobEvents`)."""

    __slots__ = ("_counting", "_display", "job", "progress")

    def __init__(self, *, progress: bool) -> None:
        self.progress = progress
        #: the job whose counters the display shows; set before it runs
        self.job: Job | None = None
        self._display: ProgressDisplay | None = None
        self._counting: RowCount | None = None

    def simulating(self, url: str) -> None:
        _simulation_banner(url)

    def started(self) -> None:
        job = self.job
        if self.progress and job is not None:
            status = ProgressStatus(total=None, asked=job.settings.rate)
            self._counting = count_in_background(job.settings, status)
            self._display = _state.display = ProgressDisplay(status)
            self._display.start()

    def result(self, result: Result) -> None:
        logconfig.flush_digest()  # the counted retries and failures, when a digest is due
        if self._display is not None and self.job is not None:
            self._display.update(self.job.stats, self.job.rate)

    def ended(self) -> None:
        logconfig.flush_digest(force=True)
        if self._counting is not None:
            self._counting.cancelled.set()
        display, self._display = self._display, None
        if display is not None:
            _state.display = None
            display.stop()


def summarize(outcome: JobOutcome, settings: JobSettings) -> RunSummary:
    """The summary of a run as data: the one place that reads a job's counters for it."""
    from bulkstop.cli.summary import EndedEarly, RunSummary

    stats, report = outcome.stats, outcome.report
    elapsed = (stats.finished or 0.0) - stats.started
    aborted = outcome.aborted_by
    ended: EndedEarly | None = None
    if isinstance(aborted, SystematicFailure):
        ended = EndedEarly(
            by="systematic", message=str(aborted), diagnosis=_diagnosis(aborted, settings.api)
        )
    elif isinstance(aborted, CredentialsRejected):
        ended = EndedEarly(by="auth_breaker", message=str(aborted))
    elif isinstance(aborted, ServerFailing):
        ended = EndedEarly(by="server_failing", message=str(aborted))
    elif aborted is not None:
        ended = EndedEarly(by="max_failures", message=str(aborted))
    elif outcome.interrupted:
        ended = EndedEarly(by="interrupt", message=stats.ended_early or "interrupted")
    return RunSummary(
        rows=stats.rows,
        outcomes={kind.value: stats.count(kind) for kind in Outcome},
        requests=stats.requests,
        retries=stats.retries,
        throttled=stats.throttled,
        elapsed=elapsed,
        achieved_rate=stats.requests / elapsed if elapsed > 0 else 0.0,
        final_rate=outcome.rate,
        ceiling=settings.rate,
        exit_code=int(outcome.exit_code),
        report=str(report),
        resumed=settings.resume,
        carried_over=stats.carried_over,
        ended_early=ended,
        resume_hint=None if ended is None else _resume_hint(settings, report),
    )


def summary_lines(outcome: JobOutcome, settings: JobSettings) -> list[str]:
    """The summary of a run as text: counts, pace, report, why it ended early, how to continue."""
    return summarize(outcome, settings).text_lines()


def print_summary(summary: RunSummary) -> None:
    """The summary on stderr: a ``run.summary`` event under JSON logs, else text lines (the
    first only, with ``--quiet``)."""
    if _state.json:
        _emit_json("run.summary", "info", summary.as_json())
        return
    lines = summary.text_lines()
    for line in lines[:1] if _state.quiet else lines:
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
