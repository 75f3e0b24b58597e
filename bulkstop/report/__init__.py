"""The report: one record per input row, written as results complete, readable after a crash.

The report is also the run's journal. Every format is line-oriented so that it can be appended
to while the run goes on and read back, line by line, after the process was killed.

Formats (from the report path's extension, any case; values: :mod:`~bulkstop.report.encoding`)
    ``.csv``               a header row (:data:`~bulkstop.models.REPORT_FIELDS`), then one
                           record per line; an empty field means "none".
    ``.jsonl``/``.ndjson`` one JSON object per line, ``null`` for "none".
    ``.json``              a JSON array with one element per line::

                               [
                               {"line":1,...}
                               ,{"line":2,...}
                               ]

                           The comma leads the element so that a record's line is complete (ends
                           in ``\\n``) the moment it is written, and the file is valid JSON once
                           :meth:`ReportWriter.finalize` has appended ``]``.

Crash safety (:mod:`~bulkstop.report.writer`)
    Before a target's first attempt the engine calls :meth:`ReportWriter.attempting_many` for
    it and the targets queued right behind it; those markers reach the sidecar
    ``<report>.inflight`` before the first of their stops can be sent, so after a crash the
    loader knows which targets may have been stopped with no record saying so (a few of them
    perhaps not sent yet: a resume sends them as maybe stopped).
    :class:`ReportWriter` appends one line per result and hands them to the OS within a few
    milliseconds, so a killed process loses at most the records of its last few milliseconds
    (their targets are sent again by a resume, as maybe stopped); it fsyncs on a cadence (time
    and count) so that a power cut loses at most about a second. :func:`load_report` drops a
    torn last line. :meth:`ReportWriter.finalize` rewrites the report to exactly one record
    per input row and removes the sidecar.

The files of a report (:mod:`~bulkstop.report.files`, :mod:`~bulkstop.report.lock`)
    Every file bulkstop creates for a report (the report, ``<report>.inflight``,
    ``<report>.lock``, ``<report>.settings`` and the temporary files of a compaction) is
    created readable by its owner only (0600) and never opened through a symbolic link. One
    process at a time writes a report: :class:`ReportLock` holds ``<report>.lock`` from before
    the report is read until it is finalized or closed, and a second process is refused,
    naming the first.

Resume: one call, :func:`open_resume` (:mod:`~bulkstop.report.resume`)::

    with open_resume(path, "targets.csv", retry_failed=False) as resume:
        plan = resume.plan
        with ReportWriter(path, run=plan.run, append=True, lock=resume.lock,
                          carried=plan.carried) as writer:
            async with stopper.run(resume.source, carried=plan.carried) as results:
                async for result in results:
                    writer.write(result)

It locks the report, refuses a report that is the input or that does not exist, spools stdin,
checks the report against the input and plans the run (what :mod:`~bulkstop.report.carried`
carries over); the :class:`Resume` it returns holds the lock, the input from its first row,
and the plan.

Remembered settings (:mod:`~bulkstop.report.remembered`)
    ``<report>.settings`` holds the settings of the run that last wrote the report (never a
    credential), written before its first stop is sent; :func:`read_settings` reads it back
    for a resume.

Status (:mod:`~bulkstop.report.status`)
    :func:`report_status` says what a report says (counts, finished or a journal, what a
    resume would send) without writing anything or taking the lock.

Verification (:mod:`~bulkstop.report.verdicts`)
    A verification's verdict on a target (columns ``verified`` and ``build_status``) is
    appended as the target's latest record, so it is as crash-safe as any record and a resume
    carries it; when the verification ends, the verdicts are folded into their rows.

Records are keyed by :class:`~bulkstop.models.TargetKey` (:func:`record_key`). ``invalid`` and
``duplicate`` records carry the raw text of their row and are never keyed: each run reports
them afresh.
"""

import importlib as _importlib
import typing as _typing

#: Each public name, and the module it lives in: imported at its first use (PEP 562), so that
#: a run that writes a new report never loads what reads one back or resumes it.
_WHERE: dict[str, str] = {
    "CarriedRecords": "bulkstop.report.carried",
    "LoadedReport": "bulkstop.report.loading",
    "ReportFormat": "bulkstop.report.paths",
    "ReportLock": "bulkstop.report.lock",
    "ReportStatus": "bulkstop.report.status",
    "RememberedSettings": "bulkstop.report.remembered",
    "ReportWriter": "bulkstop.report.writer",
    "Resume": "bulkstop.report.resume",
    "ResumePlan": "bulkstop.report.resume",
    "default_report_path": "bulkstop.report.paths",
    "inflight_path": "bulkstop.report.paths",
    "load_report": "bulkstop.report.loading",
    "lock_path": "bulkstop.report.paths",
    "open_resume": "bulkstop.report.resume",
    "record_key": "bulkstop.report.keys",
    "read_settings": "bulkstop.report.remembered",
    "refuse_report_as_input": "bulkstop.report.files",
    "report_format": "bulkstop.report.paths",
    "report_status": "bulkstop.report.status",
    "settings_path": "bulkstop.report.paths",
    "write_settings": "bulkstop.report.remembered",
}

__all__ = [
    "CarriedRecords",
    "LoadedReport",
    "RememberedSettings",
    "ReportFormat",
    "ReportLock",
    "ReportStatus",
    "ReportWriter",
    "Resume",
    "ResumePlan",
    "default_report_path",
    "inflight_path",
    "load_report",
    "lock_path",
    "open_resume",
    "read_settings",
    "record_key",
    "refuse_report_as_input",
    "report_format",
    "report_status",
    "settings_path",
    "write_settings",
]


def __getattr__(name: str) -> object:
    """A public name, imported from its module at its first use and kept here after."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'bulkstop.report' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})


if _typing.TYPE_CHECKING:
    from bulkstop.report.carried import CarriedRecords
    from bulkstop.report.files import refuse_report_as_input
    from bulkstop.report.keys import record_key
    from bulkstop.report.loading import LoadedReport, load_report
    from bulkstop.report.lock import ReportLock
    from bulkstop.report.paths import (
        ReportFormat,
        default_report_path,
        inflight_path,
        lock_path,
        report_format,
        settings_path,
    )
    from bulkstop.report.remembered import RememberedSettings, read_settings, write_settings
    from bulkstop.report.resume import Resume, ResumePlan, open_resume
    from bulkstop.report.status import ReportStatus, report_status
    from bulkstop.report.writer import ReportWriter
