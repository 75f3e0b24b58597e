"""Records and runs for the report's tests: target ``i`` is ``key(i)``, at input line ``i + 2``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bulkstop.models import Outcome, Result, TargetKey
from bulkstop.report import ReportFormat, ReportWriter

FORMATS: list[ReportFormat] = ["csv", "jsonl", "json"]
T0 = datetime(2026, 11, 28, 12, 0, 0, 123000, tzinfo=UTC)


def job(i: int) -> str:
    return f"{i:032x}"


def key(i: int) -> TargetKey:
    return TargetKey(job(i), i + 1)


def result(i: int, outcome: Outcome = Outcome.STOPPED, **fields: Any) -> Result:
    """A record for target ``i`` (input line ``i + 2``), with realistic values."""
    values: dict[str, Any] = {
        "line": i + 2,
        "job_id": job(i),
        "build_no": str(i + 1),
        "outcome": outcome,
        "http_status": 200,
        "request_id": f"req-{i}",
        "attempts": 1,
        "started_at": T0 + timedelta(seconds=i),
        "finished_at": T0 + timedelta(seconds=i, milliseconds=250),
        "elapsed_ms": 250,
    }
    values.update(fields)
    return Result(**values)


def write_run(
    path: Path,
    records: list[Result],
    *,
    run: int = 1,
    append: bool = False,
    attempting: Sequence[int] = (),
    finalize: bool = False,
) -> None:
    """Write one run's records; without ``finalize`` the run ends as if the process died."""
    writer = ReportWriter(path, run=run, append=append)
    for i in attempting:
        writer.attempting(i + 2, job(i), i + 1)
    for record in records:
        writer.write(record)
    if finalize:
        writer.finalize()
    else:
        writer.close()
