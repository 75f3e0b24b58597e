"""Records as report lines: how each value is written, in CSV and in JSON.

Timestamps are UTC ISO-8601 to the millisecond with ``Z`` (``2026-11-28T12:00:00.123Z``; a
naive datetime is taken as UTC), outcomes their lowercase value, numbers as numbers, ``None`` as
an empty CSV field or JSON ``null``, flags as ``true``/``false``. In CSV, ``\\r`` and ``\\n``
inside text become a space, so a record is exactly one line, and a text cell that a spreadsheet
would run as a formula (first character ``=``, ``+``, ``-``, ``@``, a tab or a carriage return)
or that starts with ``'`` is written behind one more ``'``, which reading strips again.
"""

from __future__ import annotations

import csv
import enum
import io
import json
import re
from datetime import UTC, datetime
from typing import Any, Final, get_type_hints

from bulkstop.models import REPORT_FIELDS, Result

__all__ = [
    "NEWLINES",
    "TEXT_COLUMNS",
    "LineEncoder",
    "as_utc",
    "format_time",
]

#: Columns that hold text (as opposed to numbers, flags, times, outcomes): the CSV cells whose
#: leading ``'`` reading strips (see :data:`_FORMULA_LEADS`).
TEXT_COLUMNS: Final = frozenset(
    name for name, hint in get_type_hints(Result).items() if hint is str
)
#: First characters that make a spreadsheet run a cell as a formula (OWASP's list: = + - @,
#: tab, carriage return), and the apostrophe that escapes them: a text cell starting with any
#: of these is written behind one more ``'``, so that every written ``'`` lead is ours.
_FORMULA_LEADS: Final = frozenset("=+-@\t\r'")
NEWLINES: Final = re.compile(r"\r\n|[\r\n]")
_RUN_INDEX: Final = REPORT_FIELDS.index("run")


def as_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive one is taken as UTC already."""
    offset = moment.utcoffset()
    if offset is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC) if offset else moment


def format_time(moment: datetime) -> str:
    """``2026-11-28T12:00:00.123Z``: UTC to the millisecond."""
    return as_utc(moment).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


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
        return format_time(value)
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
        text = NEWLINES.sub(" ", text)
    if text and text[0] in _FORMULA_LEADS:
        text = "'" + text
    return text


class LineEncoder:
    """Turns records into the bytes of one report line each, in one format."""

    __slots__ = ("_buffer", "_csv", "fmt", "has_records")

    def __init__(self, fmt: str, *, has_records: bool = False) -> None:
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
