"""What a report says, read without touching it: :func:`report_status`.

For ``bulkstop status``: counts per outcome, whether the run that wrote it reached its end
(a finalized report) or left a journal (a crash, or a run still going), the targets it left
unsettled, what a resume would send, and the command that continues.

Read-only: the report and its in-flight sidecar are read, never written, and the lock is
never taken — a run that starts meanwhile is not refused because of a status. Whether a live
run holds the report is told from what the holder wrote into ``<report>.lock`` (its pid and
host) and whether that process still exists.
"""

from __future__ import annotations

import collections
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bulkstop.errors import UsageError
from bulkstop.models import Outcome
from bulkstop.report.carried import carries
from bulkstop.report.files import open_own
from bulkstop.report.keys import record_key
from bulkstop.report.loading import load_report
from bulkstop.report.paths import inflight_path, lock_path
from bulkstop.report.remembered import RememberedSettings, read_settings

__all__ = ["ReportStatus", "report_status"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportStatus:
    """What a report says.

    Attributes:
        path: the report.
        state: ``finished`` (finalized, nothing aborted), ``ended early`` (finalized, some
            targets aborted: an interrupt or a guard), ``journal`` (not finalized: the run
            crashed) or ``running`` (not finalized, and its run is alive).
        runs: the runs that wrote it (the last run's number).
        counts: per outcome, each row's latest record.
        unsettled: targets whose stop was sent, or about to be, with no record of the answer
            (in flight at a crash).
        uncertain: targets whose latest record is ``uncertain``.
        resume_sends: targets of the report a ``--resume`` would send again (and any input
            rows the report has not seen); ``retry_failed_sends`` the same with
            ``--retry-failed``.
        holder: who holds the report's lock, when a live run does.
        settings: what the last run remembered of its settings, if the report keeps them.
    """

    path: Path
    state: str
    runs: int
    counts: dict[Outcome, int]
    unsettled: int
    uncertain: int
    resume_sends: int
    retry_failed_sends: int
    holder: str | None
    settings: RememberedSettings | None

    @property
    def finished(self) -> bool:
        """Whether the report is finalized (the run reached its end, early or not)."""
        return self.state in ("finished", "ended early")

    def resume_command(self) -> str:
        """The command that continues the run (the settings are remembered)."""
        import shlex

        recorded = None if self.settings is None else self.settings.input
        report = shlex.quote(str(self.path))
        if recorded == "-":
            return f"bulkstop run - --input-format FORMAT --report {report} --resume < INPUT"
        given = "INPUT" if recorded is None else shlex.quote(recorded)
        return f"bulkstop run {given} --report {report} --resume"

    def as_json(self) -> dict[str, Any]:
        """The status as one JSON-able object (``bulkstop status --json``)."""
        settings = self.settings
        return {
            "report": str(self.path),
            "state": self.state,
            "finished": self.finished,
            "runs": self.runs,
            "counts": {outcome.value: count for outcome, count in self.counts.items()},
            "rows": sum(self.counts.values()),
            "unsettled": self.unsettled,
            "uncertain": self.uncertain,
            "resume_sends": self.resume_sends,
            "retry_failed_sends": self.retry_failed_sends,
            "locked_by": self.holder,
            "input": None if settings is None else settings.input,
            "credential": None if settings is None else settings.credential,
            "settings": None if settings is None else dict(settings.values),
            "resume_command": self.resume_command(),
        }


def report_status(path: Path) -> ReportStatus:
    """What the report at ``path`` says; raises :class:`~bulkstop.errors.InputError` (a
    :class:`~bulkstop.errors.UsageError`) for one that cannot be read."""
    loaded = load_report(path)
    counts: collections.Counter[Outcome] = collections.Counter(
        record.outcome for record in loaded.latest.values()
    )
    # Rows never sent (invalid, duplicate) have no key; each run reports them afresh, so the
    # last run that has any holds them all.
    unkeyed = [record for record in loaded.records if record_key(record) is None]
    if unkeyed:
        last = max(record.run for record in unkeyed)
        counts.update(record.outcome for record in unkeyed if record.run == last)
    in_flight = loaded.in_flight
    unsettled = len(in_flight)
    counts_unsettled = sum(1 for key in in_flight if key not in loaded.latest)

    def sends(retry_failed: bool) -> int:
        return (
            sum(
                1
                for key, record in loaded.latest.items()
                if key in in_flight or not carries(record.outcome, retry_failed=retry_failed)
            )
            + counts_unsettled
        )

    finalized = not inflight_path(path).exists()
    holder = None if finalized else _live_holder(path)
    if finalized:
        state = "ended early" if counts.get(Outcome.ABORTED) else "finished"
    else:
        state = "journal" if holder is None else "running"
    ordered = {outcome: counts[outcome] for outcome in Outcome if counts[outcome]}
    return ReportStatus(
        path=path,
        state=state,
        runs=loaded.last_run,
        counts=ordered,
        unsettled=unsettled,
        uncertain=counts.get(Outcome.UNCERTAIN, 0),
        resume_sends=sends(False),
        retry_failed_sends=sends(True),
        holder=holder,
        settings=read_settings(path),
    )


def _live_holder(report: Path) -> str | None:
    """Who holds the report's lock, if a live process on this host does; read, never locked."""
    try:
        fd = open_own(lock_path(report), os.O_RDONLY, "the lock file")
        with os.fdopen(fd, "rb") as stream:
            info = json.loads(stream.read(4096))
        pid, host, since = int(info["pid"]), str(info["host"]), str(info["since"])
    except (OSError, UsageError, ValueError, TypeError, KeyError):
        return None
    if host != socket.gethostname():
        return f"process {pid} on {host} (since {since}), maybe"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None  # a killed run's lock file: it blocks nobody
    except PermissionError:
        pass  # it exists, as another user
    return f"process {pid} on {host} (since {since})"
