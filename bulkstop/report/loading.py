"""Reading a whole report back, with what each target's latest record says.

:func:`load_report` keeps every record: it is for reading a report (tests, a status view).
A resume does not need them all and does not build them (see :mod:`bulkstop.report.resume`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bulkstop.errors import InputError
from bulkstop.models import FINAL_FOR_RESUME, Outcome, Result
from bulkstop.report.keys import ReportKey, record_key
from bulkstop.report.markers import read_markers
from bulkstop.report.paths import ReportFormat, inflight_path, report_format
from bulkstop.report.reading import ReportReader

__all__ = ["FAILED_LIKE", "LoadedReport", "load_report"]

#: Latest outcomes that mean "no final answer yet": what ``--retry-failed`` is about.
FAILED_LIKE: Final[frozenset[Outcome]] = frozenset(
    {Outcome.FAILED, Outcome.UNCERTAIN, Outcome.ABORTED, Outcome.UNAUTHORIZED}
)


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadedReport:
    """A report as read back, with the state a resume needs.

    Attributes:
        path, format: the report read.
        records: every record, in file order.
        latest: per key, the latest record of any outcome.
        latest_final: per key, the latest record whose outcome is in ``FINAL_FOR_RESUME``.
        failed_like: the ``latest`` records whose outcome is in :data:`FAILED_LIKE`.
        in_flight: keys with an in-flight marker and no record from that run or a later one:
            their stop was sent, or about to be, when the process died.
        last_run: the highest run number in the report or its sidecar (0 when both are empty).
        torn_line: the number of the torn last line that was dropped, if any.
    """

    path: Path
    format: ReportFormat
    records: list[Result]
    latest: dict[ReportKey, Result]
    latest_final: dict[ReportKey, Result]
    failed_like: dict[ReportKey, Result]
    in_flight: frozenset[ReportKey]
    last_run: int
    torn_line: int | None = None

    @property
    def is_empty(self) -> bool:
        """Nothing to resume from: no record and no in-flight marker."""
        return not self.records and not self.in_flight


def load_report(path: Path, *, missing_ok: bool = False) -> LoadedReport:
    """Read a report in any format, and its ``.inflight`` sidecar when present.

    A torn last line (no ``\\n``, or not parsable) is dropped; a bad line anywhere else raises
    :class:`InputError` naming ``file:line``. A file that is not a bulkstop report (a CSV
    without the ``line``, ``job_id``, ``build_no`` and ``outcome`` columns, a JSON file not in
    the one-element-per-line layout, a JSONL file whose first line is not a record) raises
    :class:`ReportMismatchError`. Unknown columns and keys are ignored; missing optional ones
    take the model's defaults. A missing file raises :class:`InputError` unless ``missing_ok``,
    which gives an empty report.

    Memory: all records are kept (``records``).
    """
    fmt = report_format(path)
    if path.is_dir():
        raise InputError(f"the report {path} is a directory")
    if not path.exists():
        if not missing_ok:
            raise InputError(f"the report {path} does not exist")
        records: list[Result] = []
        torn: int | None = None
    else:
        reader = ReportReader(path, fmt)
        records = list(reader)
        torn = reader.torn_line
    markers, _ = read_markers(inflight_path(path))

    latest: dict[ReportKey, Result] = {}
    latest_final: dict[ReportKey, Result] = {}
    last_run = 0
    for record in records:
        last_run = max(last_run, record.run)
        key = record_key(record)
        if key is None:
            continue
        latest[key] = record
        if record.outcome in FINAL_FOR_RESUME:
            latest_final[key] = record
    in_flight: set[ReportKey] = set()
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
        latest_final=latest_final,
        failed_like={k: r for k, r in latest.items() if r.outcome in FAILED_LIKE},
        in_flight=frozenset(in_flight),
        last_run=last_run,
        torn_line=torn,
    )
