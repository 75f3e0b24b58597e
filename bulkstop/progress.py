"""The live progress display of the command line (rich), drawn on stderr.

Shown only when stderr is a terminal and logs are not JSON (or when forced); cron and pipes
get the plain summary at the end instead.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from bulkstop.engine import RunStats
from bulkstop.models import Outcome

__all__ = ["ProgressDisplay"]


class ProgressDisplay:
    """A bar of rows done, with live stopped/failed/throttled counts and the current rate."""

    def __init__(self, console: Console, total: int | None) -> None:
        self._progress = Progress(
            TextColumn("[bold]bulkstop[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
            refresh_per_second=4,
        )
        self._task = self._progress.add_task("stopping", total=total, counts="")

    def __enter__(self) -> Self:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def update(self, stats: RunStats, rate: float) -> None:
        counts = (
            f"stopped {stats.count(Outcome.STOPPED)} · not stopped "
            f"{stats.count(Outcome.NOT_STOPPED)} · other "
            f"{stats.done - stats.count(Outcome.STOPPED) - stats.count(Outcome.NOT_STOPPED)}"
            f" · throttled {stats.throttled} · rate {rate:.1f}/s"
        )
        self._progress.update(self._task, completed=stats.done, counts=counts)
