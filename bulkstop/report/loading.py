"""Reading a whole report back, with what each target's latest record says.

:func:`load_report` keeps every record: it is for reading a report (tests, a status view).
A resume does not need them all and does not build them (see :mod:`bulkstop.report.resume`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bulkstop.errors import InputError
from bulkstop.models import Result, TargetKey
from bulkstop.report.keys import record_key
from bulkstop.report.markers import MarkerReader
from bulkstop.report.paths import ReportFormat, inflight_path, report_format
from bulkstop.report.reading import ReportReader

__all__ = ["LoadedReport", "load_report"]


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadedReport:
    """A report as read back: every record, and what each target's latest one says.

    Attributes:
        path, format: the report read.
        records: every record, in file order.
        latest: per target, its latest record (the one a finalized report keeps).
        in_flight: targets with an in-flight marker and no record from that run or a later
            one: their stop was sent, or about to be, when the process died.
        last_run: the highest run number in the report or its sidecar (0 when both are empty).
        torn_line: the number of the torn last line that was dropped, if any.
    """

    path: Path
    format: ReportFormat
    records: list[Result]
    latest: dict[TargetKey, Result]
    in_flight: frozenset[TargetKey]
    last_run: int
    torn_line: int | None = None


def load_report(path: Path, *, missing_ok: bool = False) -> LoadedReport:
    """Read a report in any format, and its ``.inflight`` sidecar when present.

    A torn last line (no ``\\n``, or not parsable) is dropped; a bad line anywhere else raises
    :class:`InputError` naming ``file:line``. A file that is not a bulkstop report (a CSV
    without the ``line``, ``job_id``, ``build_no`` and ``outcome`` columns, a JSON file not in
    the one-element-per-line layout, a JSONL file whose first line is not a record) raises
    :class:`ReportMismatchError`. Unknown columns and keys are ignored; missing optional ones
    take the model's defaults. A missing file raises :class:`InputError` unless
    ``missing_ok``, which gives a report without records.

    Memory: every record is kept (``records``).
    """
    fmt = report_format(path)
    if path.is_dir():
        raise InputError(f"the report {path} is a directory")
    records: list[Result] = []
    torn: int | None = None
    if path.exists():
        reader = ReportReader(path, fmt)
        records = list(reader)
        torn = reader.torn_line
    elif not missing_ok:
        raise InputError(f"the report {path} does not exist")
    markers = list(MarkerReader(inflight_path(path)))

    latest: dict[TargetKey, Result] = {}
    last_run = 0
    for record in records:
        last_run = max(last_run, record.run)
        key = record_key(record)
        if key is not None:
            latest[key] = record
    in_flight: set[TargetKey] = set()
    for marker in markers:
        last_run = max(last_run, marker.run)
        answered = latest.get(marker.key)
        if answered is None or answered.run < marker.run:
            in_flight.add(marker.key)
    return LoadedReport(
        path=path,
        format=fmt,
        records=records,
        latest=latest,
        in_flight=frozenset(in_flight),
        last_run=last_run,
        torn_line=torn,
    )
