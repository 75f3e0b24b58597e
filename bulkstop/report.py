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
        with ReportWriter(path, run=plan.run, append=True, lock=lock) as writer:
            ...   # send what plan.skip lacks; write() this run's records, and
            ...   # write_carried() a carried-over record that now stands at another line
            writer.finalize()

Records are keyed by ``(job_id, build_no)`` as text (:data:`ReportKey`), ``build_no`` in
canonical digits (``"007"`` keys as ``"7"``). ``invalid`` and ``duplicate`` records carry the
raw text of their row and are never keyed: each run reports them afresh.
"""

from __future__ import annotations

import contextlib
import csv
import enum
import errno
import hashlib
import heapq
import io
import json
import os
import re
import socket
import stat
import sys
import tempfile
import time
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Final, Literal, Protocol, TypeVar, get_type_hints

from pydantic import ValidationError

from bulkstop import codes
from bulkstop.errors import InputError, ReportMismatchError, UsageError
from bulkstop.log import get_logger
from bulkstop.models import (
    FINAL_FOR_RESUME,
    REPORT_FIELDS,
    RESULT_ADAPTER,
    Outcome,
    Result,
    Target,
)

if sys.platform != "win32":
    import fcntl

__all__ = [
    "FAILED_LIKE",
    "KeyFingerprint",
    "LoadedReport",
    "ReportFormat",
    "ReportKey",
    "ReportLock",
    "ReportWriter",
    "ResultSink",
    "ResumePlan",
    "check_report_matches",
    "default_report_path",
    "inflight_path",
    "load_report",
    "lock_path",
    "plan_resume",
    "record_key",
    "report_format",
    "target_key",
]

log = get_logger(__name__)

ReportFormat = Literal["csv", "jsonl", "json"]

#: ``(job_id, build_no)`` as text, ``build_no`` in canonical digits.
ReportKey = tuple[str, str]

#: Latest outcomes that mean "no final answer yet": what ``--retry-failed`` is about.
FAILED_LIKE: Final[frozenset[Outcome]] = frozenset(
    {Outcome.FAILED, Outcome.UNCERTAIN, Outcome.ABORTED, Outcome.UNAUTHORIZED}
)

_EXTENSIONS: Final[dict[str, ReportFormat]] = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
}
_UNKEYED: Final = frozenset({Outcome.INVALID, Outcome.DUPLICATE})
#: A plain resume keeps these as they are; ``--retry-failed`` keeps only FINAL_FOR_RESUME.
_CARRIED_PLAIN: Final = FINAL_FOR_RESUME | {Outcome.FAILED, Outcome.UNCERTAIN}
#: Columns a report cannot do without; every other column has a default.
_REQUIRED: Final[tuple[str, ...]] = tuple(
    name for name in REPORT_FIELDS if name not in Result._field_defaults
)
_KNOWN: Final = frozenset(REPORT_FIELDS)
#: Required text columns: there an empty CSV field is the empty string (an invalid row whose
#: job_id or build_no cell was empty), not "none".
_EMPTY_IS_TEXT: Final = frozenset({"job_id", "build_no"})
#: Columns that hold text (as opposed to numbers, flags, times, outcomes): the CSV cells whose
#: leading ``'`` reading strips (see :data:`_FORMULA_LEADS`).
_TEXT_COLUMNS: Final = frozenset(
    name for name, hint in get_type_hints(Result).items() if hint is str
)
#: First characters that make a spreadsheet run a cell as a formula (OWASP's list: = + - @,
#: tab, carriage return), and the apostrophe that escapes them: a text cell starting with any
#: of these is written behind one more ``'``, so that every written ``'`` lead is ours.
_FORMULA_LEADS: Final = frozenset("=+-@\t\r'")
_CSV_HEADER: Final = ",".join(REPORT_FIELDS)
#: How a record line of ours begins (first field first), to tell a torn line of ours from a file
#: that is not a report at all.
_RECORD_START: Final = f'{{"{REPORT_FIELDS[0]}":'
_NEWLINES: Final = re.compile(r"\r\n|[\r\n]")
_BOM: Final = b"\xef\xbb\xbf"
_INFLIGHT_SUFFIX: Final = ".inflight"
_LOCK_SUFFIX: Final = ".lock"
#: Temporary files beside the report are ``.<name>.<random>.tmp`` (see :func:`_temp_pattern`).
_TEMP_SUFFIX: Final = ".tmp"
#: Keys sorted per chunk while fingerprinting, to bound the temporary list of Python ints.
_FINGERPRINT_CHUNK = 1 << 20
_REWRITE_BUFFER: Final = 1 << 20

_T = TypeVar("_T")


# --------------------------------------------------------------------------------------------
# Paths and keys


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
    stamp = _as_utc(now).strftime("%Y%m%dT%H%M%SZ")
    return (Path.cwd() if directory is None else directory) / f"bulkstop-report-{stamp}.{fmt}"


def inflight_path(report: Path) -> Path:
    """The in-flight sidecar of ``report``: ``<report>.inflight``."""
    return report.with_name(report.name + _INFLIGHT_SUFFIX)


def lock_path(report: Path) -> Path:
    """The lock file of ``report``: ``<report>.lock`` (see :class:`ReportLock`)."""
    return report.with_name(report.name + _LOCK_SUFFIX)


def _temp_prefix(report: Path) -> str:
    return f".{report.name}."


def _temp_pattern(report: Path) -> re.Pattern[str]:
    """Names of the temporary files a compaction of ``report`` creates (``tempfile.mkstemp``
    with :func:`_temp_prefix` and :data:`_TEMP_SUFFIX`): letters, digits and ``_`` between."""
    return re.compile(re.escape(_temp_prefix(report)) + r"[A-Za-z0-9_]+" + re.escape(_TEMP_SUFFIX))


def target_key(target: Target) -> ReportKey:
    """The report key of a validated target."""
    return (target.job_id, str(target.build_no))


def record_key(result: Result) -> ReportKey | None:
    """The key of a report record, or None for ``invalid``/``duplicate`` records.

    Surrounding whitespace is stripped and ``build_no`` digits are made canonical, so a record
    keys the same however the engine spelled the number.
    """
    if result.outcome in _UNKEYED:
        return None
    return (result.job_id.strip(), _canonical_build(result.build_no))


def _canonical_build(text: str) -> str:
    digits = text.strip()
    if digits.isascii() and digits.isdigit():
        try:
            return str(int(digits))
        except ValueError:  # beyond int()'s digit limit: keep as written
            pass
    return digits


# --------------------------------------------------------------------------------------------
# Encoding records


def _as_utc(moment: datetime) -> datetime:
    offset = moment.utcoffset()
    if offset is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC) if offset else moment


def _format_time(moment: datetime) -> str:
    return _as_utc(moment).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def _encodable(text: str) -> str:
    """``text`` with lone surrogates (from a badly encoded reply) replaced, so UTF-8 can hold it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def _plain(value: Any) -> Any:
    """A field value as JSON holds it."""
    kind = type(value)  # exact types first: this runs for every field of every record
    if kind is str:
        return value if value.isascii() else _encodable(value)
    if value is None or kind is int or kind is bool or kind is float:
        return value
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return _format_time(value)
    if isinstance(value, int | float):
        return value
    return _encodable(str(value))


def _csv_text(value: Any) -> str:
    plain = _plain(value)
    if plain is None:
        return ""
    if type(plain) is bool:
        return "true" if plain else "false"  # as JSON spells it
    if type(plain) is not str:
        return str(plain)  # a number stays a number, even a negative one
    text: str = plain
    if "\n" in text or "\r" in text:
        text = _NEWLINES.sub(" ", text)
    if text and text[0] in _FORMULA_LEADS:
        text = "'" + text
    return text


class _Encoder:
    """Turns records into the bytes of one report line each, in one format."""

    __slots__ = ("_buffer", "_csv", "fmt", "has_records")

    def __init__(self, fmt: ReportFormat, *, has_records: bool = False) -> None:
        self.fmt = fmt
        #: whether a record precedes the next one (JSON: the next one needs its comma)
        self.has_records = has_records
        self._buffer = io.StringIO()
        self._csv = csv.writer(self._buffer, lineterminator="\n")

    def header(self) -> bytes:
        if self.fmt == "csv":
            return self._csv_line(list(REPORT_FIELDS))
        return b"[\n" if self.fmt == "json" else b""

    def footer(self) -> bytes:
        return b"]\n" if self.fmt == "json" else b""

    def record(self, result: Result, *, run: int | None = None) -> bytes:
        """The line for ``result``, ready to append; ``run`` overrides the record's own."""
        return self.join(self.bare(result, run=run))

    def bare(self, result: Result, *, run: int | None = None) -> bytes:
        """The line for ``result`` without the comma a JSON element may need."""
        values = list(result)  # a Result's fields are the report's columns, in order
        if run is not None:
            values[_RUN_INDEX] = run
        if self.fmt == "csv":
            return self._csv_line([_csv_text(value) for value in values])
        obj = dict(zip(REPORT_FIELDS, map(_plain, values), strict=True))
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"

    def join(self, bare: bytes) -> bytes:
        """``bare`` as the next line of the file: in JSON, every element after the first
        leads with its comma."""
        lead = self.fmt == "json" and self.has_records
        self.has_records = True
        return b"," + bare if lead else bare

    def _csv_line(self, fields: list[str]) -> bytes:
        self._buffer.seek(0)
        self._buffer.truncate()
        self._csv.writerow(fields)
        return self._buffer.getvalue().encode()


_RUN_INDEX: Final = REPORT_FIELDS.index("run")


# --------------------------------------------------------------------------------------------
# Reading, line by line


@dataclass(frozen=True, slots=True)
class _Line:
    number: int  #: 1-based physical line
    start: int  #: byte offset of the line
    end: int  #: byte offset just after its ``\n``
    raw: bytes  #: without the line ending
    complete: bool  #: ended in ``\n``


class _BadLine(Exception):
    """A line that does not parse; fatal in the middle of a file, dropped at its end."""


def _lines(stream: BinaryIO) -> Iterator[_Line]:
    """The non-blank lines of ``stream``; only the last one can be incomplete."""
    offset = 0
    for number, raw in enumerate(stream, start=1):
        start, offset = offset, offset + len(raw)
        complete = raw.endswith(b"\n")
        body = raw[:-1] if complete else raw
        if body.endswith(b"\r"):  # a report saved again with CRLF line endings
            body = body[:-1]
        if number == 1 and body.startswith(_BOM):
            body = body[len(_BOM) :]
        if body.strip():
            yield _Line(number, start, offset, body, complete)


def _with_last(items: Iterable[_T]) -> Iterator[tuple[_T, bool]]:
    """Each item with whether it is the last one."""
    iterator = iter(items)
    try:
        previous = next(iterator)
    except StopIteration:
        return
    for item in iterator:
        yield previous, False
        previous = item
    yield previous, True


def _decode(line: _Line) -> str:
    try:
        return line.raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _BadLine(f"not UTF-8 (byte {line.start + exc.start})") from exc


def _condensed(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
        for error in exc.errors(include_url=False)
    )


def _validated(data: dict[str, Any]) -> Result:
    """A record from outside, checked field by field; columns of other tools are ignored.

    Missing required columns are named here, in bulkstop's own words, before pydantic sees the
    record: how pydantic words (and types) a missing named-tuple field changes between its
    releases, and a message must not.
    """
    if not _KNOWN.issuperset(data):
        data = {name: value for name, value in data.items() if name in _KNOWN}
    missing = [name for name in _REQUIRED if name not in data]
    if missing:
        raise _BadLine("; ".join(f"{name}: missing" for name in missing))
    try:
        return RESULT_ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise _BadLine(_condensed(exc)) from exc


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise _BadLine(f"not JSON: {getattr(exc, 'msg', exc)}") from exc
    if not isinstance(value, dict):
        raise _BadLine("not a JSON object")
    return value


class _ReportReader:
    """Reads a report's records in file order; after iterating, tells where its content ends.

    A bad line raises :class:`InputError` naming ``file:line``, except at the very end where it
    is taken as torn and dropped (as is a last line without ``\\n``). A file that is plainly not
    a bulkstop report raises :class:`ReportMismatchError`, even when it is a single torn line,
    so that a resume never appends to someone else's file.
    """

    def __init__(self, path: Path, fmt: ReportFormat) -> None:
        self.path = path
        self.fmt = fmt
        #: CSV columns as found, once the header was read
        self.columns: tuple[str, ...] | None = None
        #: JSON: the ``[`` line was read
        self.opened = False
        #: JSON: byte offset of the closing ``]`` line, if there is one
        self.closed_at: int | None = None
        #: byte offset just after the last line kept
        self.end = 0
        self.records = 0
        #: byte range of the record's line last yielded
        self.span = (0, 0)
        self.torn_line: int | None = None

    def __iter__(self) -> Iterator[Result]:
        try:
            stream = self.path.open("rb")
        except OSError as exc:
            raise InputError(f"cannot read the report {self.path}: {exc.strerror or exc}") from exc
        with stream:
            for line, last in _with_last(_lines(stream)):
                if not line.complete:
                    self._drop_torn(line, line.raw.decode("utf-8", "replace").strip())
                    break
                try:
                    record = self._parse(line)
                except _BadLine as exc:
                    if last and self._recognised:
                        self._drop_torn(line, "")
                        break
                    raise InputError(f"{self.path}:{line.number}: {exc}") from None
                self.end = line.end
                if record is not None:
                    self.records += 1
                    self.span = (line.start, line.end)
                    yield record

    @property
    def _recognised(self) -> bool:
        """Whether what was read so far shows the file is a bulkstop report."""
        if self.fmt == "csv":
            return self.columns is not None
        if self.fmt == "json":
            return self.opened
        return self.records > 0

    def _not_a_report(self, why: str) -> ReportMismatchError:
        return ReportMismatchError(f"{self.path} is not a bulkstop report: {why}")

    def _drop_torn(self, line: _Line, text: str) -> None:
        if not self._recognised and not self._starts_like_ours(text):
            raise self._not_a_report(f"line {line.number} is neither a header nor a record")
        self.torn_line = line.number
        log.warning("report.torn_line_dropped", path=str(self.path), line=line.number)

    def _starts_like_ours(self, text: str) -> bool:
        if self.fmt == "csv":
            return _CSV_HEADER.startswith(text)
        if self.fmt == "json":
            return text == "["
        return _RECORD_START.startswith(text) or text.startswith(_RECORD_START)

    def _parse(self, line: _Line) -> Result | None:
        text = _decode(line)
        if self.fmt == "csv":
            return self._parse_csv(text)
        if self.fmt == "json":
            return self._parse_json(line, text.strip())
        try:
            return _validated(_json_object(text))
        except _BadLine as exc:
            if not self._recognised:
                raise self._not_a_report(f"line {line.number}: {exc}") from None
            raise

    def _parse_csv(self, text: str) -> Result | None:
        try:
            fields = next(csv.reader([text], strict=True))
        except csv.Error as exc:
            if self.columns is None:
                raise self._not_a_report(f"line 1: {exc}") from None
            raise _BadLine(f"not CSV: {exc}") from None
        if self.columns is None:
            columns = tuple(name.strip() for name in fields)
            missing = [name for name in _REQUIRED if name not in columns]
            if missing:
                raise self._not_a_report(f"missing columns {', '.join(missing)}")
            self.columns = columns
            return None
        if len(fields) != len(self.columns):
            raise _BadLine(f"{len(fields)} fields where the header has {len(self.columns)}")
        # An empty field is "none": the model's default applies (None, 0, "", run 1). A text
        # cell's leading "'" is the one _csv_text added.
        return _validated(
            {
                name: value[1:] if name in _TEXT_COLUMNS and value.startswith("'") else value
                for name, value in zip(self.columns, fields, strict=True)
                if value or name in _EMPTY_IS_TEXT
            }
        )

    def _parse_json(self, line: _Line, text: str) -> Result | None:
        if not self.opened:
            if text != "[":
                raise self._not_a_report(f"line {line.number} is not '[' alone")
            self.opened = True
            return None
        if self.closed_at is not None:
            raise _BadLine("content after the closing ']'")
        if text == "]":
            self.closed_at = line.start
            return None
        # Accept the element's comma on either side, so a hand-made layout reads too.
        text = text.removeprefix(",").removesuffix(",")
        return _validated({k: v for k, v in _json_object(text).items() if v is not None})


@dataclass(frozen=True, slots=True)
class _Marker:
    run: int
    key: ReportKey


def _read_markers(path: Path) -> tuple[list[_Marker], int]:
    """The in-flight markers of a sidecar and the byte offset where its good content ends."""
    markers: list[_Marker] = []
    end = 0
    try:
        stream = os.fdopen(_open_own(path, os.O_RDONLY, "the in-flight sidecar"), "rb")
    except FileNotFoundError:
        return markers, end
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    with stream:
        for line, last in _with_last(_lines(stream)):
            if not line.complete:
                break
            try:
                obj = _json_object(_decode(line))
                run, job_id, build_no = obj.get("run"), obj.get("job_id"), obj.get("build_no")
                if not (
                    isinstance(run, int)
                    and isinstance(job_id, str)
                    and isinstance(build_no, int | str)
                ):
                    raise _BadLine("expected run, job_id and build_no")
            except _BadLine as exc:
                if last:
                    break
                raise InputError(f"{path}:{line.number}: {exc}") from None
            markers.append(_Marker(run, (job_id.strip(), _canonical_build(str(build_no)))))
            end = line.end
    return markers, end


# --------------------------------------------------------------------------------------------
# Loading and resume state


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
        reader = _ReportReader(path, fmt)
        records = list(reader)
        torn = reader.torn_line
    markers, _ = _read_markers(inflight_path(path))

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


@dataclass(frozen=True, slots=True, kw_only=True)
class ResumePlan:
    """What a resumed run does with the targets the report already knows.

    Attributes:
        run: the run number for this run's records (the report's last run + 1).
        retry_failed: as asked.
        skip: targets not to send; the report keeps their record (with its original run).
        maybe_applied: targets to send again whose earlier stop may have taken effect without
            a record saying so; the engine reports a "not stopped" answer for them as
            ``uncertain``.

    Every target not in ``skip`` is sent, including those the report has never seen.
    """

    run: int
    retry_failed: bool
    skip: dict[ReportKey, Result]
    maybe_applied: frozenset[ReportKey]

    def should_send(self, key: ReportKey) -> bool:
        """Whether the target with ``key`` is to be sent in this run."""
        return key not in self.skip


def _may_have_applied(record: Result) -> bool:
    """Whether a target's latest record leaves open that a stop was carried out.

    ``uncertain`` and the ``maybe_applied`` flag say so outright (the flag carries what earlier
    runs knew: a target in flight at a crash and then aborted before its next attempt).
    Reports written before the flag existed lack it; for them, a ``failed`` or ``aborted``
    record with attempts says so when its last reply was no answer (timeout, cut connection)
    or a server error other than throttling: such a request may have reached the service. A
    definite 4xx did not.
    """
    if record.outcome is Outcome.UNCERTAIN or record.maybe_applied:
        return True
    if record.outcome not in (Outcome.FAILED, Outcome.ABORTED) or record.attempts < 1:
        return False
    return codes.may_have_applied(record.http_status, record.error_code)


def plan_resume(loaded: LoadedReport, *, retry_failed: bool) -> ResumePlan:
    """Decide which targets a resume sends again.

    Judged on each key's *latest* record (the one :meth:`ReportWriter.finalize` keeps):

    ========================================  ==================  ====================
    latest record                             ``--resume``        ``--retry-failed``
    ========================================  ==================  ====================
    stopped, not_stopped, not_found,          kept                kept
    rejected, forbidden
    failed, uncertain                         kept                sent again
    aborted, unauthorized                     sent again          sent again
    none, or in flight at a crash             sent again          sent again
    ========================================  ==================  ====================

    ``aborted`` never got an answer (the run ended first) and ``unauthorized`` is about the
    credential, so both are sent again by a plain resume: that is what continuing an
    interrupted run means. ``failed`` and ``uncertain`` did get their answer from this tool,
    and re-sending them is the explicit ``--retry-failed`` choice.
    """
    carried = FINAL_FOR_RESUME if retry_failed else _CARRIED_PLAIN
    skip = {
        key: record
        for key, record in loaded.latest.items()
        if record.outcome in carried and key not in loaded.in_flight
    }
    maybe = set(loaded.in_flight)
    maybe.update(
        key
        for key, record in loaded.latest.items()
        if key not in skip and _may_have_applied(record)
    )
    return ResumePlan(
        run=loaded.last_run + 1,
        retry_failed=retry_failed,
        skip=skip,
        maybe_applied=frozenset(maybe),
    )


# --------------------------------------------------------------------------------------------
# Fingerprint of the input


def _digest(job_id: str, build_no: str) -> int:
    text = f"{job_id}:{build_no}".encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


class KeyFingerprint:
    """The set of an input's target keys in about 8 bytes per key.

    Holds a sorted array of 64-bit blake2b digests of ``"job_id:build_no"``; membership is a
    binary search. A false "yes" needs a 64-bit collision, so it is ignored. Build it with
    :meth:`from_keys` from a streaming pass over the input.
    """

    __slots__ = ("_digests",)

    def __init__(self, digests: array[int]) -> None:
        """Wrap already sorted digests; use :meth:`from_keys`."""
        self._digests = digests

    @classmethod
    def from_keys(cls, keys: Iterable[tuple[str, int | str]]) -> KeyFingerprint:
        """Fingerprint ``(job_id, build_no)`` pairs, e.g. ``Target.key`` of each valid row."""
        # Sorted in chunks, then merged: the list that sorted() builds stays small.
        runs: list[array[int]] = []
        chunk: array[int] = array("Q")
        for job_id, build_no in keys:
            chunk.append(_digest(job_id, _canonical_build(str(build_no))))
            if len(chunk) >= _FINGERPRINT_CHUNK:
                runs.append(array("Q", sorted(chunk)))
                chunk = array("Q")
        runs.append(array("Q", sorted(chunk)))
        if len(runs) == 1:
            return cls(runs[0])
        merged = array("Q", heapq.merge(*runs))
        return cls(merged)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, tuple) or len(key) != 2:
            return False
        job_id, build_no = key
        if not isinstance(job_id, str) or not isinstance(build_no, int | str):
            return False
        digest = _digest(job_id.strip(), _canonical_build(str(build_no)))
        index = bisect_left(self._digests, digest)
        return index < len(self._digests) and self._digests[index] == digest

    def __len__(self) -> int:
        return len(self._digests)

    def __repr__(self) -> str:
        return f"KeyFingerprint({len(self._digests)} keys)"


def check_report_matches(
    loaded: LoadedReport, fingerprint: KeyFingerprint, report_path: Path, input_name: str
) -> None:
    """Raise :class:`ReportMismatchError` unless every target the report knows is in the input.

    The report's keyed records and in-flight markers count; an empty report matches any input.
    The input may hold more targets than the report (a run that ended early). ``report_path``
    and ``input_name`` are the names the one-line message shows.
    """
    known = loaded.latest.keys() | loaded.in_flight
    strangers = [key for key in known if key not in fingerprint]
    if strangers:
        job_id, build_no = min(strangers)
        raise ReportMismatchError(
            f"{report_path} is not a report of {input_name}: {len(strangers)} of its "
            f"{len(known)} targets are not in the input (e.g. {job_id}:{build_no}); "
            "use a new --report path for this input"
        )


# --------------------------------------------------------------------------------------------
# The files of a report: opened safely, and locked

#: Never open the last component of a path through a symbolic link.
_NOFOLLOW: Final[int] = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC: Final[int] = getattr(os, "O_CLOEXEC", 0)
#: A FIFO planted where a report file belongs would make open() wait for a reader; with this
#: flag it opens at once and is then refused as no regular file. Regular files ignore it.
_NONBLOCK: Final[int] = getattr(os, "O_NONBLOCK", 0)
#: The mode of every file bulkstop creates for a report: it describes an incident.
_PRIVATE: Final = 0o600
#: How often acquiring a lock starts over when the lock file was replaced meanwhile.
_LOCK_TRIES: Final = 10


def _refuse_unsafe(path: Path, what: str) -> None:
    """Raise :class:`UsageError` when ``path`` is a symbolic link or exists as something other
    than a regular file. ``what`` names the file in the message (``"the report"``)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISLNK(mode):
        raise UsageError(
            f"{what} {path} is a symbolic link; bulkstop never writes through one: "
            "remove the link, or give the real path"
        )
    if not stat.S_ISREG(mode):
        raise UsageError(f"{what} {path} is not a regular file")


def _open_own(path: Path, flags: int, what: str) -> int:
    """Open a file bulkstop writes for a report (report, sidecar, lock) and return its fd.

    Never through a symbolic link (``O_NOFOLLOW``), only a regular file, and one that
    ``flags`` creates (``O_CREAT``) is created 0600. A link or other file found there is a
    :class:`UsageError` (see :func:`_refuse_unsafe`); other failures raise ``OSError``.
    """
    try:
        fd = os.open(path, flags | _NOFOLLOW | _CLOEXEC | _NONBLOCK, _PRIVATE)
    except OSError:
        _refuse_unsafe(path, what)  # a link or a directory there: say so plainly
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UsageError(f"{what} {path} is not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _check_report_path(path: Path) -> None:
    """Refuse a report path that bulkstop cannot safely write: see the module docstring."""
    directory = path.parent
    if not directory.is_dir():
        raise UsageError(f"cannot write the report {path}: directory {directory} does not exist")
    if not path.is_symlink() and path.is_dir():
        raise UsageError(f"cannot write the report {path}: it is a directory")
    _refuse_unsafe(path, "the report")


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` (not followed) still names the file open at ``fd``."""
    try:
        named = os.lstat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


def _holder(fd: int) -> str:
    """Who holds a lock, from what the holder wrote into the lock file."""
    try:
        info = json.loads(os.pread(fd, 4096, 0))
        pid, host, since = info["pid"], info["host"], info["since"]
    except (OSError, ValueError, TypeError, KeyError):  # being written, or not ours
        return "another process"
    return f"process {pid} on {host} (since {since})"


class ReportLock:
    """An exclusive lock on a report: one bulkstop process writes a report at a time.

    An advisory ``flock`` on the sidecar ``<report>.lock`` (:func:`lock_path`), not on the
    report, because compaction replaces the report by a rename and a lock on the old file
    would not hold for the new one. The OS drops the lock when its process ends, however it
    ends, so the lock file a killed run leaves behind blocks nobody: the next run locks it
    again. The holder writes its pid, host and start time into the file, and a process that
    finds the report locked raises :class:`UsageError` naming them. :meth:`release` removes
    the file while it still holds the lock; :meth:`acquire` checks, once it holds the lock,
    that the path still names the file it locked, and starts over if a releasing holder had
    just removed it, so two processes never both believe they hold the lock.

    Hand-written rather than taken from ``filelock``: its flock-based lock records no holder,
    so a refused run could not say which process has the report, and a dependency would
    bring thousands of lines for the few here. POSIX only; elsewhere nothing is locked.

    Attributes:
        report: the report this lock guards.
        path: the lock file, ``<report>.lock``.
    """

    __slots__ = ("_fd", "_held", "path", "report")

    report: Path
    path: Path

    def __init__(self, report: Path, fd: int | None) -> None:
        """Wrap a lock file descriptor already locked (``None`` where nothing can be
        locked); use :meth:`acquire`."""
        self.report = report
        self.path = lock_path(report)
        self._fd = fd
        self._held = True

    @classmethod
    def acquire(cls, report: Path) -> ReportLock:
        """Lock ``report``, or raise :class:`UsageError` at once if another process has it.

        Also a :class:`UsageError`: a report path bulkstop cannot safely write (a symbolic
        link, a directory, a missing directory) and a lock file it cannot create or lock.
        """
        _check_report_path(report)
        path = lock_path(report)
        if sys.platform == "win32":
            return cls(report, None)
        for _ in range(_LOCK_TRIES):
            try:
                fd = _open_own(path, os.O_RDWR | os.O_CREAT, "the lock file")
            except OSError as exc:
                raise UsageError(
                    f"cannot create the lock file {path}: {exc.strerror or exc}"
                ) from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                contended = exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES)
                holder = _holder(fd) if contended else ""
                os.close(fd)
                if holder:
                    raise UsageError(
                        f"the report {report} is in use by {holder}; bulkstop lets one run "
                        "at a time write a report: wait for that run to end, or choose "
                        "another --report path"
                    ) from None
                raise UsageError(
                    f"cannot lock the report {report} ({path}: {exc.strerror or exc}); "
                    "choose a --report path on a local file system"
                ) from exc
            if _same_file(fd, path):
                lock = cls(report, fd)
                lock._describe_holder()
                log.debug("report.locked", path=str(path))
                return lock
            os.close(fd)  # its holder removed it as we locked it: lock the new one
        raise UsageError(f"cannot lock the report {report}: {path} keeps being replaced")

    @property
    def held(self) -> bool:
        """Whether this lock was acquired and not released yet."""
        return self._held

    def _describe_holder(self) -> None:
        assert self._fd is not None
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": _format_time(datetime.now(UTC)),
        }
        data = json.dumps(info, separators=(",", ":")).encode() + b"\n"
        try:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, data, 0)
        except OSError:  # the lock holds without it; a refused run then names no process
            pass

    def release(self) -> None:
        """Remove the lock file and unlock. Idempotent."""
        self._held = False
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if _same_file(fd, self.path):
                self.path.unlink(missing_ok=True)
        except OSError:  # a lock file left behind blocks nobody once unlocked
            pass
        finally:
            os.close(fd)

    def __enter__(self) -> ReportLock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        state = "held" if self.held else "released"
        return f"<ReportLock {str(self.path)!r} {state}>"


def _remove_stale_temps(report: Path) -> None:
    """Remove the temporary files an interrupted compaction of ``report`` left beside it.

    Only regular files named like those (:func:`_temp_pattern`) go, never through a link and
    never anything else. Called under the report's lock, so no other bulkstop process is
    compacting this report meanwhile.
    """
    pattern = _temp_pattern(report)
    try:
        entries = os.scandir(report.parent)
    except OSError:
        return
    with entries:
        for entry in entries:
            try:
                if not (pattern.fullmatch(entry.name) and entry.is_file(follow_symlinks=False)):
                    continue
                os.unlink(entry.path)
            except OSError:
                continue
            log.info("report.stale_temp_removed", path=entry.path)


# --------------------------------------------------------------------------------------------
# Writing


class ResultSink(Protocol):
    """Where the engine puts what it learns: the seam :class:`ReportWriter` fills."""

    def attempting(self, line: int, job_id: str, build_no: int) -> None:
        """A target's first attempt is about to be sent."""
        ...

    def write(self, result: Result) -> None:
        """One input row's final record."""
        ...


def _fsync_dir(directory: Path) -> None:
    """Make a created or replaced directory entry durable (POSIX; a no-op elsewhere)."""
    if os.name != "posix":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse to fsync a directory; the data is synced
        pass
    finally:
        os.close(fd)


def _rewrite(path: Path, fmt: ReportFormat, lines: Iterable[bytes]) -> int:
    """Atomically replace ``path`` by a report of ``lines`` (bare record lines, see
    :meth:`_Encoder.bare`): temp file, fsync, rename, fsync the directory.

    Returns the number of records written. If anything fails, ``path`` is left as it was.
    """
    encoder = _Encoder(fmt)
    # mkstemp creates the file 0600, with O_EXCL and O_NOFOLLOW: never through a planted link.
    fd, temp_name = tempfile.mkstemp(
        dir=path.parent, prefix=_temp_prefix(path), suffix=_TEMP_SUFFIX
    )
    temp = Path(temp_name)
    count = 0
    try:
        with os.fdopen(fd, "wb", buffering=_REWRITE_BUFFER) as out:
            out.write(encoder.header())
            for line in lines:
                out.write(encoder.join(line))
                count += 1
            out.write(encoder.footer())
            out.flush()
            if sys.platform != "win32":  # where a mode is more than a read-only flag
                with contextlib.suppress(OSError):  # keep the report's mode, e.g. 0640
                    os.fchmod(out.fileno(), stat.S_IMODE(os.lstat(path).st_mode))
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return count


def _compact(path: Path, fmt: ReportFormat, run: int) -> tuple[int, int]:
    """Rewrite ``path`` to one record per input row; return (records before, records after).

    Keyed records: the last of each key survives. ``invalid``/``duplicate`` records: only
    those of ``run``, which reported every such row of the input again. Survivors keep their
    file order and their bytes (a carried-over record keeps its ``run``). One parsing pass
    notes where each survivor's line is; a second pass copies those lines. Memory O(keys).
    """
    latest: dict[str, tuple[int, int]] = {}
    current: list[tuple[int, int]] = []
    reader = _ReportReader(path, fmt)
    for record in reader:
        span = reader.span
        key = record_key(record)
        if key is None:
            if record.run == run:
                current.append(span)
        else:
            latest[f"{key[0]}:{key[1]}"] = span
    spans = sorted([*latest.values(), *current])

    def lines() -> Iterator[bytes]:
        with path.open("rb") as source:
            for start, end in spans:
                source.seek(start)
                raw = source.read(end - start).rstrip(b"\r\n")
                if start == 0:
                    raw = raw.removeprefix(_BOM)
                if fmt == "json":
                    raw = raw.strip().removeprefix(b",").removesuffix(b",")
                yield raw + b"\n"

    return reader.records, _rewrite(path, fmt, lines())


class ReportWriter:
    """Appends report records and in-flight markers as a run goes, crash-safe; see the module.

    Each :meth:`write` appends one line and flushes it to the OS, so a SIGKILL loses nothing.
    Both files are fsynced when ``fsync_every`` lines (records and markers) have been written
    since the last fsync, or when a line is written ``fsync_interval`` seconds or more after
    the last fsync (on ``now``), and at :meth:`flush`, :meth:`close` and :meth:`finalize`. A
    quiet writer is not fsynced until its next line; the OS writes its data back meanwhile.

    Writing is synchronous, called from the event loop, and that is deliberate: a record is a
    small append that lands in the page cache in microseconds, and the one slow call, fsync,
    runs at most about once a second. A worker thread per record would cost more than the
    write itself and would need a lock to keep lines whole and in order; the run's pace is set
    by the service's rate limit, far below what the loop can write.

    The writer holds the report's :class:`ReportLock` while it is open: ``lock`` is one the
    caller acquired (and releases) itself, to hold it from before the report was read;
    without one the writer acquires its own and releases it when it closes or finalizes.
    Before writing anything it removes the temporary files an interrupted compaction left
    (:func:`_remove_stale_temps`). Every file it creates is 0600, and it opens none through
    a symbolic link: a report path or sidecar that is a link raises :class:`UsageError`.

    ``append=False`` starts a report: a missing or empty file, or any file with
    ``overwrite=True``, which is replaced by a new file; an existing non-empty one raises
    :class:`UsageError`. A stale sidecar is removed. ``append=True`` continues one (a
    resume): a torn last line is cut away first so the next record starts on a line of its
    own, a JSON report's closing ``]`` is reopened, a CSV report with other columns (another
    bulkstop version) is first rewritten with this version's, and :meth:`finalize` compacts.
    The file is read once to find where its good content ends; it raises like
    :func:`load_report` on a bad file.

    :meth:`write` stamps this writer's ``run`` on every record. Targets a resume carries over
    are not written again: :meth:`finalize` keeps their record from the file, unless the
    input moved the target to another line; then :meth:`write_carried` appends the record
    with its new line, and that copy is the one kept.

    An ``OSError`` while writing (a full disk) propagates unchanged; what is on disk remains a
    readable journal. Opening maps ``OSError`` to :class:`UsageError`.

    As a context manager: a clean exit finalizes, an exception only closes (the report stays
    a journal that ``--resume`` can continue, and the sidecar is kept). Calling
    :meth:`finalize` inside the block is fine: the exit then has nothing left to do.
    """

    __slots__ = (
        "_closed",
        "_compact_needed",
        "_encoder",
        "_file",
        "_finalized",
        "_fsync_every",
        "_fsync_interval",
        "_last_sync",
        "_now",
        "_own_lock",
        "_report_dirty",
        "_sidecar",
        "_sidecar_dirty",
        "_unsynced",
        "_written",
        "format",
        "path",
        "run",
    )

    #: the report file
    path: Path
    format: ReportFormat
    #: the run number stamped on this writer's records
    run: int

    def __init__(
        self,
        path: Path,
        *,
        run: int = 1,
        append: bool = False,
        overwrite: bool = False,
        lock: ReportLock | None = None,
        fsync_interval: float = 1.0,
        fsync_every: int = 1000,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        if run < 1:
            raise ValueError(f"run must be ≥ 1, got {run}")
        if fsync_every < 1 or fsync_interval < 0:
            raise ValueError("fsync_every must be ≥ 1 and fsync_interval ≥ 0")
        if lock is not None and (not lock.held or lock.report != path):
            raise ValueError(f"{lock!r} is not a held lock of {path}")
        self.path = path
        self.format = report_format(path)
        self.run = run
        self._fsync_interval = fsync_interval
        self._fsync_every = fsync_every
        self._now = now
        self._sidecar_dirty = False
        self._report_dirty = False
        self._unsynced = 0
        self._written = 0
        self._closed = False
        self._finalized = False
        self._compact_needed = False
        self._own_lock = ReportLock.acquire(path) if lock is None else None
        try:
            _check_report_path(path)
            _remove_stale_temps(path)
            if append:
                self._file, self._encoder = self._open_append()
            else:
                self._file, self._encoder = self._open_new(overwrite=overwrite)
            self._sidecar = self._open_sidecar()
        except OSError as exc:
            self._release_lock()
            raise UsageError(f"cannot write the report {path}: {exc.strerror or exc}") from exc
        except BaseException:
            self._release_lock()
            raise
        self._last_sync = now()
        log.info(
            "report.opened",
            path=str(path),
            format=self.format,
            run=run,
            append=append,
            compact_at_finalize=self._compact_needed,
        )

    def _open_new(self, *, overwrite: bool) -> tuple[BinaryIO, _Encoder]:
        path = self.path
        exists = os.path.lexists(path)
        if not overwrite and exists and os.lstat(path).st_size > 0:
            raise UsageError(
                f"the report {path} already exists; continue it with --resume, "
                "or choose another --report path"
            )
        inflight_path(path).unlink(missing_ok=True)  # a stale one would tell of another run
        if exists:
            # A new file, not the old one truncated: it is created 0600 whatever the old
            # one's mode, and another name (hard link) of the old file keeps its content.
            path.unlink()
        encoder = _Encoder(self.format)
        fd = _open_own(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, "the report")
        stream = os.fdopen(fd, "wb")
        stream.write(encoder.header())
        stream.flush()
        self._report_dirty = True
        _fsync_dir(path.parent)
        return stream, encoder

    def _open_append(self) -> tuple[BinaryIO, _Encoder]:
        path = self.path
        if not path.exists() or path.stat().st_size == 0:
            return self._start_empty()
        reader = _ReportReader(path, self.format)
        for _ in reader:  # find where the good content ends; records are not kept
            pass
        if self.format == "csv" and reader.columns not in (None, REPORT_FIELDS):
            encoder = _Encoder(self.format)
            old = _ReportReader(path, self.format)
            records = _rewrite(path, self.format, (encoder.bare(record) for record in old))
            log.info("report.columns_upgraded", path=str(path), records=records)
            reader = _ReportReader(path, self.format)
            for _ in reader:
                pass
        cut = reader.closed_at if reader.closed_at is not None else reader.end
        self._repair_sidecar()
        stream = os.fdopen(_open_own(path, os.O_WRONLY | os.O_APPEND, "the report"), "ab")
        try:
            size = os.fstat(stream.fileno()).st_size
            if cut < size:
                os.ftruncate(stream.fileno(), cut)
                log.info("report.tail_cut", path=str(path), offset=cut, bytes=size - cut)
            encoder = _Encoder(self.format, has_records=reader.records > 0)
            if self.format == "csv":
                header_missing = reader.columns is None
            else:
                header_missing = self.format == "json" and not reader.opened
            if header_missing:  # nothing but a torn header: start over
                stream.write(encoder.header())
                stream.flush()
                self._report_dirty = True
        except BaseException:
            stream.close()
            raise
        self._compact_needed = reader.records > 0
        return stream, encoder

    def _start_empty(self) -> tuple[BinaryIO, _Encoder]:
        """A missing or empty report being continued: keep its sidecar, write the header."""
        created = not self.path.exists()
        self._repair_sidecar()
        encoder = _Encoder(self.format)
        fd = _open_own(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, "the report")
        stream = os.fdopen(fd, "ab")
        stream.write(encoder.header())
        stream.flush()
        self._report_dirty = True
        if created:
            _fsync_dir(self.path.parent)
        return stream, encoder

    def _repair_sidecar(self) -> None:
        """Cut a torn last marker off the sidecar of a report being continued."""
        sidecar = inflight_path(self.path)
        _refuse_unsafe(sidecar, "the in-flight sidecar")  # markers from a link are not ours
        _, end = _read_markers(sidecar)
        try:
            fd = _open_own(sidecar, os.O_WRONLY, "the in-flight sidecar")
        except FileNotFoundError:
            return
        try:
            if os.fstat(fd).st_size > end:
                os.ftruncate(fd, end)
        finally:
            os.close(fd)

    def _open_sidecar(self) -> BinaryIO:
        """Open the sidecar for markers now, so that no file is opened once stops are sent."""
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
        try:
            return os.fdopen(
                _open_own(inflight_path(self.path), flags, "the in-flight sidecar"), "ab"
            )
        except BaseException:
            self._file.close()
            raise

    # -- the engine's calls -------------------------------------------------------------------

    def attempting(self, line: int, job_id: str, build_no: int) -> None:
        """Note, before its first attempt, that a target's stop is about to be sent."""
        self._check_open()
        marker = {"run": self.run, "line": line, "job_id": job_id, "build_no": build_no}
        self._sidecar.write(json.dumps(marker, separators=(",", ":")).encode() + b"\n")
        self._sidecar.flush()
        self._sidecar_dirty = True
        self._line_written()

    def write(self, result: Result) -> None:
        """Append ``result`` (stamped with this writer's run) and flush it to the OS."""
        self._append(self._encoder.record(result, run=self.run))

    def write_carried(self, result: Result) -> None:
        """Append a record carried over from an earlier run again, keeping its own run.

        For a resume whose input holds the target at another line than the report's record
        says: ``result`` is that record with the current line. Being the key's last record,
        this copy is the one :meth:`finalize` keeps.
        """
        self._append(self._encoder.record(result))

    def _append(self, line: bytes) -> None:
        self._check_open()
        self._file.write(line)
        self._file.flush()
        self._report_dirty = True
        self._written += 1
        self._line_written()

    def flush(self) -> None:
        """Flush and fsync both files now."""
        self._check_open()
        self._sync()

    def close(self) -> None:
        """Fsync and close, leaving the report a journal (no ``]``, no compaction, sidecar
        kept): what a crash leaves, minus the torn line. Releases the writer's own lock.
        Idempotent."""
        try:
            self._close_files()
        finally:
            self._release_lock()

    def finalize(self) -> Path:
        """End the run's report: close it, compact it to one record per row, drop the sidecar.

        Call at the end of every run that reached its end, normal, interrupted or aborted,
        once every input row has a record from this run or a carried-over one. A first run
        only closes (its records are one per row already); a resumed run rewrites the report
        atomically (see :func:`_compact`). The writer's own lock is released after that.
        Returns the report's path. Calling it again does nothing; calling it after
        :meth:`close` raises ``ValueError``.
        """
        if self._finalized:
            return self.path
        self._check_open()
        try:
            if self.format == "json":
                self._file.write(self._encoder.footer())
                self._file.flush()
                self._report_dirty = True
            self._close_files()
            if self._compact_needed:
                before, after = _compact(self.path, self.format, self.run)
                log.info(
                    "report.compacted", path=str(self.path), records_before=before, records=after
                )
            self._finalized = True
            inflight_path(self.path).unlink(missing_ok=True)
        finally:
            self._release_lock()
        log.info("report.finalized", path=str(self.path), run=self.run, written=self._written)
        return self.path

    # -- internals ----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"the report writer for {self.path} is closed")

    def _close_files(self) -> None:
        if self._closed:
            return
        try:
            self._sync()
        finally:
            self._closed = True
            try:
                self._file.close()
            finally:
                self._sidecar.close()

    def _release_lock(self) -> None:
        if self._own_lock is not None:
            self._own_lock.release()

    def _line_written(self) -> None:
        self._unsynced += 1
        if (
            self._unsynced >= self._fsync_every
            or self._now() - self._last_sync >= self._fsync_interval
        ):
            self._sync()

    def _sync(self) -> None:
        if self._report_dirty:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._report_dirty = False
        if self._sidecar_dirty:
            self._sidecar.flush()
            os.fsync(self._sidecar.fileno())
            self._sidecar_dirty = False
        self._unsynced = 0
        self._last_sync = self._now()

    def __enter__(self) -> ReportWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.finalize()
        else:
            self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<ReportWriter {str(self.path)!r} run={self.run} written={self._written} "
            f"unsynced={self._unsynced} {state}>"
        )
