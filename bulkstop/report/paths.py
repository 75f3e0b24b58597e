"""Where a report's files live, and which format a report path names.

A report ``R`` has up to four companions beside it: ``R.inflight`` (the in-flight markers),
``R.lock`` (the lock of the run writing it), ``R.settings`` (the settings of the run that wrote
it) and, while a compaction or the settings are written, a temporary file
``.<name>.XXXXXXXX.tmp`` that replaces ``R`` (or ``R.settings``) by a rename.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Final, Literal

from bulkstop.errors import UsageError
from bulkstop.report.encoding import as_utc

__all__ = [
    "TEMP_SUFFIX",
    "ReportFormat",
    "default_report_path",
    "inflight_path",
    "lock_path",
    "report_format",
    "settings_path",
    "temp_pattern",
    "temp_prefix",
]

ReportFormat = Literal["csv", "jsonl", "json"]

_EXTENSIONS: Final[dict[str, ReportFormat]] = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
}
_INFLIGHT_SUFFIX: Final = ".inflight"
_LOCK_SUFFIX: Final = ".lock"
_SETTINGS_SUFFIX: Final = ".settings"
#: Temporary files beside the report are ``.<name>.<random>.tmp`` (see :func:`temp_pattern`).
TEMP_SUFFIX: Final = ".tmp"


def report_format(path: Path) -> ReportFormat:
    """The report format for ``path`` from its extension (``.csv``, ``.jsonl``/``.ndjson``,
    ``.json``, any case). Raises :class:`UsageError` for anything else."""
    fmt = _EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        raise UsageError(
            f"cannot tell the report format of {path}: "
            "its name must end in .csv, .jsonl, .ndjson or .json"
        )
    return fmt


def default_report_path(
    now: datetime, directory: Path | None = None, fmt: ReportFormat = "csv"
) -> Path:
    """``<directory>/bulkstop-report-YYYYMMDDTHHMMSSZ.<fmt>`` for ``now`` in UTC.

    ``directory`` defaults to the current directory at call time; a naive ``now`` is UTC.
    """
    stamp = as_utc(now).strftime("%Y%m%dT%H%M%SZ")
    return (Path.cwd() if directory is None else directory) / f"bulkstop-report-{stamp}.{fmt}"


def inflight_path(report: Path) -> Path:
    """The in-flight sidecar of ``report``: ``<report>.inflight``."""
    return report.with_name(report.name + _INFLIGHT_SUFFIX)


def lock_path(report: Path) -> Path:
    """The lock file of ``report``: ``<report>.lock`` (see :class:`ReportLock`)."""
    return report.with_name(report.name + _LOCK_SUFFIX)


def settings_path(report: Path) -> Path:
    """The settings of the run that wrote ``report``: ``<report>.settings``."""
    return report.with_name(report.name + _SETTINGS_SUFFIX)


def temp_prefix(report: Path) -> str:
    """How the name of a temporary file beside ``report`` begins."""
    return f".{report.name}."


def temp_pattern(report: Path) -> re.Pattern[str]:
    """Names of the temporary files a compaction of ``report`` creates (``tempfile.mkstemp``
    with :func:`temp_prefix` and :data:`TEMP_SUFFIX`): letters, digits and ``_`` between."""
    return re.compile(re.escape(temp_prefix(report)) + r"[A-Za-z0-9_]+" + re.escape(TEMP_SUFFIX))
