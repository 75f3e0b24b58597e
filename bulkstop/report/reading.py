"""Reading a report back, line by line, as a crash left it.

Every format is line-oriented (see :mod:`bulkstop.report`), so a report is read one line at a
time: a line that does not parse is fatal in the middle of a file and dropped at its end (a
torn last line, or one without ``\\n``, is what a killed process leaves). A file that is plainly
not a bulkstop report is refused as such, so that a resume never appends to someone else's file.
"""

from __future__ import annotations

import csv
import functools
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Final, TypeVar

from bulkstop import models
from bulkstop.errors import InputError, ReportMismatchError
from bulkstop.log import get_logger
from bulkstop.models import REPORT_FIELDS, Result
from bulkstop.report.encoding import TEXT_COLUMNS
from bulkstop.report.files import open_own
from bulkstop.report.keys import UNKEYED, build_number
from bulkstop.report.paths import ReportFormat

if TYPE_CHECKING:
    from pydantic import TypeAdapter, ValidationError

__all__ = [
    "BOM",
    "BadLine",
    "Line",
    "ReportReader",
    "decode",
    "json_object",
    "lines",
    "with_last",
]

log = get_logger(__name__)

_T = TypeVar("_T")

#: Columns a report cannot do without; every other column has a default.
_REQUIRED: Final[tuple[str, ...]] = tuple(
    name for name in REPORT_FIELDS if name not in Result._field_defaults
)
_KNOWN: Final = frozenset(REPORT_FIELDS)
#: Required text columns: there an empty CSV field is the empty string (an invalid row whose
#: job_id or build_no cell was empty), not "none".
_EMPTY_IS_TEXT: Final = frozenset({"job_id", "build_no"})
_CSV_HEADER: Final = ",".join(REPORT_FIELDS)
#: How a record line of ours begins (first field first), to tell a torn line of ours from a file
#: that is not a report at all.
_RECORD_START: Final = f'{{"{REPORT_FIELDS[0]}":'
BOM: Final = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class Line:
    number: int  #: 1-based physical line
    start: int  #: byte offset of the line
    end: int  #: byte offset just after its ``\n``
    raw: bytes  #: without the line ending
    complete: bool  #: ended in ``\n``


class BadLine(Exception):
    """A line that does not parse; fatal in the middle of a file, dropped at its end."""


def lines(stream: BinaryIO) -> Iterator[Line]:
    """The non-blank lines of ``stream``; only the last one can be incomplete."""
    offset = 0
    for number, raw in enumerate(stream, start=1):
        start, offset = offset, offset + len(raw)
        complete = raw.endswith(b"\n")
        body = raw[:-1] if complete else raw
        if body.endswith(b"\r"):  # a report saved again with CRLF line endings
            body = body[:-1]
        if number == 1 and body.startswith(BOM):
            body = body[len(BOM) :]
        if body.strip():
            yield Line(number, start, offset, body, complete)


def with_last(items: Iterable[_T]) -> Iterator[tuple[_T, bool]]:
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


def decode(line: Line) -> str:
    try:
        return line.raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadLine(f"not UTF-8 (byte {line.start + exc.start})") from exc


@functools.cache
def _pydantic() -> tuple[TypeAdapter[Result], type[ValidationError]]:
    """The validator of records read back, imported at the first one: a run that reads no
    report back never pays pydantic's import."""
    from pydantic import ValidationError

    return models.RESULT_ADAPTER, ValidationError


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
        raise BadLine("; ".join(f"{name}: missing" for name in missing))
    adapter, invalid = _pydantic()
    try:
        record = adapter.validate_python(data)
    except invalid as exc:
        raise BadLine(_condensed(exc)) from exc
    if record.outcome not in UNKEYED:  # a record of a target: its key must be one
        try:
            build_number(record.build_no)
        except ValueError:
            raise BadLine(
                f"build_no: must be the digits of a build number for a {record.outcome.value}"
                f" record, got {record.build_no[:40]!r}"
            ) from None
    return record


def json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise BadLine(f"not JSON: {getattr(exc, 'msg', exc)}") from exc
    if not isinstance(value, dict):
        raise BadLine("not a JSON object")
    return value


def _json_element(text: str) -> Result:
    """A record of a JSON report: one array element on its line."""
    # Accept the element's comma on either side, so a hand-made layout reads too.
    text = text.removeprefix(",").removesuffix(",")
    return _validated({k: v for k, v in json_object(text).items() if v is not None})


class ReportReader:
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
        # open_own: only a regular file, never through a link (a FIFO there would block a
        # `status` forever; a link would make it read another file as the report).
        try:
            stream = os.fdopen(open_own(self.path, os.O_RDONLY, "the report"), "rb")
        except OSError as exc:
            raise InputError(f"cannot read the report {self.path}: {exc.strerror or exc}") from exc
        with stream:
            for line, last in with_last(lines(stream)):
                if not line.complete:
                    self._drop_torn(line, line.raw.decode("utf-8", "replace").strip())
                    break
                try:
                    record = self._parse(line)
                except BadLine as exc:
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

    def _drop_torn(self, line: Line, text: str) -> None:
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

    def _parse(self, line: Line) -> Result | None:
        text = decode(line)
        if self.fmt == "csv":
            return self._parse_csv(text)
        if self.fmt == "json":
            return self._parse_json(line, text.strip())
        try:
            return _validated(json_object(text))
        except BadLine as exc:
            if not self._recognised:
                raise self._not_a_report(f"line {line.number}: {exc}") from None
            raise

    def _parse_csv(self, text: str) -> Result | None:
        try:
            fields = next(csv.reader([text], strict=True))
        except csv.Error as exc:
            if self.columns is None:
                raise self._not_a_report(f"line 1: {exc}") from None
            raise BadLine(f"not CSV: {exc}") from None
        if self.columns is None:
            columns = tuple(name.strip() for name in fields)
            missing = [name for name in _REQUIRED if name not in columns]
            if missing:
                raise self._not_a_report(f"missing columns {', '.join(missing)}")
            self.columns = columns
            return None
        if len(fields) != len(self.columns):
            raise BadLine(f"{len(fields)} fields where the header has {len(self.columns)}")
        # An empty field is "none": the model's default applies (None, 0, "", run 1). A text
        # cell's leading "'" is the one _csv_text added.
        return _validated(
            {
                name: value[1:] if name in TEXT_COLUMNS and value.startswith("'") else value
                for name, value in zip(self.columns, fields, strict=True)
                if value or name in _EMPTY_IS_TEXT
            }
        )

    def _parse_json(self, line: Line, text: str) -> Result | None:
        if not self.opened:
            if text != "[":
                raise self._not_a_report(f"line {line.number} is not '[' alone")
            self.opened = True
            return None
        if self.closed_at is not None:
            raise BadLine("content after the closing ']'")
        if text == "]":
            self.closed_at = line.start
            return None
        return _json_element(text)

    def parse_record(self, raw: bytes, start: int) -> Result:
        """The record of a line this reader yielded before, read back from ``start``.

        For a look at one record after the pass (the file is unchanged: its lock is held).
        Raises :class:`InputError` if that line no longer holds a record.
        """
        body = raw.rstrip(b"\r\n")
        if start == 0:
            body = body.removeprefix(BOM)
        try:
            text = body.decode("utf-8")
            if self.fmt == "csv" and self.columns is not None:
                record = self._parse_csv(text)
            elif self.fmt == "json":
                record = _json_element(text.strip())
            else:
                record = _validated(json_object(text))
        except (BadLine, UnicodeDecodeError) as exc:
            raise InputError(f"{self.path}: the record at byte {start} changed: {exc}") from None
        if record is None:
            raise InputError(f"{self.path}: no record at byte {start}")
        return record
