"""The report: one record per input row, written as results complete, readable after a crash.

The report is also the run's journal. Every format is line-oriented so that it can be appended
to while the run goes on and read back, line by line, after the process was killed.

Formats (from the report path's extension, any case)
    ``.csv``               a header row (:data:`~bulkstop.models.REPORT_FIELDS`), then one
                           record per line. ``\\r`` and ``\\n`` inside text become a space, so a
                           record is exactly one line; an empty field means "none". A text
                           cell that a spreadsheet would run as a formula (first character
                           ``=``, ``+``, ``-``, ``@`` or a tab) or that starts with ``'`` is
                           written with one leading ``'``, which reading strips again.
    ``.jsonl``/``.ndjson`` one JSON object per line, ``null`` for "none".
    ``.json``              a JSON array with one element per line::

                               [
                               {"line":1,...}
                               ,{"line":2,...}
                               ]

                           The comma leads the element so that a record's line is complete (ends
                           in ``\\n``) the moment it is written, and the file is valid JSON once
                           :meth:`ReportWriter.finalize` has appended ``]``.

Values: timestamps are UTC ISO-8601 to the millisecond with ``Z`` (``2026-11-28T12:00:00.123Z``;
a naive datetime is taken as UTC), outcomes their lowercase value, numbers as numbers.

Crash safety
    :class:`ReportWriter` appends one line per result and flushes it to the OS at once, so a
    killed process loses nothing; it fsyncs on a cadence (time and count) so that a power cut
    loses at most about a second. Before a target's first attempt the engine calls
    :meth:`ReportWriter.attempting`; that marker goes to the sidecar ``<report>.inflight``, so
    after a crash the loader knows which targets may have been stopped with no record saying
    so. :func:`load_report` drops a torn last line. :meth:`ReportWriter.finalize` rewrites the
    report to exactly one record per input row and removes the sidecar.

The files of a report
    The report is the user's record of an incident, so every file bulkstop creates for it (the
    report, ``<report>.inflight``, ``<report>.lock`` and the temporary files of a compaction,
    ``.<name>.XXXXXXXX.tmp``) is created readable by its owner only (0600), and none of them
    is ever opened through a symbolic link: a link, or anything but a regular file, where one
    of them belongs is refused with a :class:`UsageError`. One process at a time writes a
    report: :class:`ReportLock` holds ``<report>.lock`` from before the report is read until
    it is finalized or closed, and a second process is refused, naming the first.

Resume, as the CLI strings it together::

    with ReportLock.acquire(path) as lock:
        loaded = load_report(path)
        check_report_matches(loaded, KeyFingerprint.from_keys(input_keys), path, input_name)
        plan = plan_resume(loaded, retry_failed=...)
        with ReportWriter(path, run=plan.run, append=True, lock=lock,
                          carried=plan.carried) as writer:
            ...   # stopper.run(rows, carried=plan.carried); write() every result
            writer.finalize()

Records are keyed by :class:`~bulkstop.models.TargetKey` (:func:`record_key`). ``invalid`` and
``duplicate`` records carry the raw text of their row and are never keyed: each run reports
them afresh.
"""

from __future__ import annotations

from bulkstop.report.carried import CarriedRecords
from bulkstop.report.fingerprint import KeyFingerprint, check_report_matches
from bulkstop.report.keys import record_key
from bulkstop.report.loading import LoadedReport, load_report
from bulkstop.report.lock import ReportLock
from bulkstop.report.paths import (
    ReportFormat,
    default_report_path,
    inflight_path,
    lock_path,
    report_format,
)
from bulkstop.report.resume import ResumePlan, plan_resume
from bulkstop.report.writer import ReportWriter

__all__ = [
    "CarriedRecords",
    "KeyFingerprint",
    "LoadedReport",
    "ReportFormat",
    "ReportLock",
    "ReportWriter",
    "ResumePlan",
    "check_report_matches",
    "default_report_path",
    "inflight_path",
    "load_report",
    "lock_path",
    "plan_resume",
    "record_key",
    "report_format",
]
