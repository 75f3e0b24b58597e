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
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from json.encoder import encode_basestring
from typing import Any, Final, get_type_hints

from bulkstop.models import REPORT_FIELDS, Outcome, Result

__all__ = [
    "NEWLINES",
    "TEXT_COLUMNS",
    "LineEncoder",
    "as_utc",
    "csv_cell",
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
#: How JSON writes a value the fast way does not know (the generic way, as json.dumps does).
_JSON: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
#: The columns, in the order _csv_cells and _json_line unpack a Result.
_COLUMNS: Final = (
    "line",
    "job_id",
    "build_no",
    "outcome",
    "http_status",
    "error_code",
    "error_msg",
    "request_id",
    "attempts",
    "started_at",
    "finished_at",
    "elapsed_ms",
    "detail",
    "maybe_applied",
    "run",
    "verified",
    "build_status",
)
if _COLUMNS != REPORT_FIELDS:  # pragma: no cover - a column was added or moved: follow it
    raise ImportError(f"bulkstop.report.encoding writes {_COLUMNS}, not {REPORT_FIELDS}")


def as_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive one is taken as UTC already."""
    offset = moment.utcoffset()
    if offset is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC) if offset else moment


_ONE_SECOND: Final = timedelta(seconds=1)
_NEVER: Final = datetime(1970, 1, 1, tzinfo=UTC)
#: The last second :func:`format_time` wrote: its start, the start of the next, and its text
#: ``YYYY-MM-DDTHH:MM:SS`` (an empty range at first).
_last_second: tuple[datetime, datetime, str] = (_NEVER, _NEVER, "")
#: ``.000Z`` to ``.999Z``: the tail of a time, by its millisecond (a format spec per time
#: cost half of what format_time costs).
_MILLIS: Final = tuple(f".{ms:03}Z" for ms in range(1000))


def format_time(moment: datetime) -> str:
    """``2026-11-28T12:00:00.123Z``: UTC to the millisecond."""
    zone = moment.tzinfo
    if zone is UTC:  # what the engine stamps
        # A record has two times and a run writes thousands of records a second, most of them
        # within the second before: the date and time of day are made once per second, only
        # the milliseconds for each time (a third of what isoformat() costs). Whether a time
        # is in that second is two comparisons of datetimes (C, same zone: their fields), half
        # the cost of reading its six fields into a tuple.
        global _last_second
        start, end, text = _last_second
        if not start <= moment < end:
            start = moment.replace(microsecond=0)
            text = start.isoformat()[:19]  # before "+00:00"
            try:
                end = start + _ONE_SECOND
            except OverflowError:  # the last second of year 9999: never cached
                end = start
            _last_second = (start, end, text)
        return text + _MILLIS[moment.microsecond // 1000]
    if zone is None:
        return moment.isoformat(timespec="milliseconds") + "Z"
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


def csv_cell(value: Any) -> str:
    """A value as a report writes it into a CSV cell: one line, a formula lead neutralised."""
    return _csv_text(value)


# The two functions below write one record a line, in CSV and JSON, as _csv_text and _plain
# do, and take the common case, a value of the column's own type, straight: a run writes a
# record for every input row, and going through the generic functions for each of the 17
# fields was most of the journal's cost. A value of any other type takes the generic way.
# They unpack a Result by position: the names say which column is which (REPORT_FIELDS).


def _csv_str(value: Any) -> Any:
    if type(value) is not str:
        return _csv_text(value)
    if not value:
        return value
    if not value.isascii():
        value = _encodable(value)
    if "\n" in value or "\r" in value:
        value = NEWLINES.sub(" ", value)
    return "'" + value if value[0] in _FORMULA_LEADS else value


def _csv_time(value: Any) -> Any:
    if value is None:
        return value
    return format_time(value) if type(value) is datetime else _csv_text(value)


def _csv_cells(result: Result, run: Any) -> tuple[Any, ...]:
    """The cells of ``result`` for ``csv.writer`` (which writes None as an empty field)."""
    (
        line,
        job_id,
        build_no,
        outcome,
        http_status,
        error_code,
        error_msg,
        request_id,
        attempts,
        started_at,
        finished_at,
        elapsed_ms,
        detail,
        maybe_applied,
        own_run,
        verified,
        build_status,
    ) = result
    if run is None:
        run = own_run
    return (
        line if type(line) is int else _csv_text(line),
        _csv_str(job_id),
        _csv_str(build_no),
        outcome.value if type(outcome) is Outcome else _csv_text(outcome),
        http_status if http_status is None or type(http_status) is int else _csv_text(http_status),
        _csv_str(error_code),
        _csv_str(error_msg),
        _csv_str(request_id),
        attempts if type(attempts) is int else _csv_text(attempts),
        format_time(started_at) if type(started_at) is datetime else _csv_time(started_at),
        format_time(finished_at) if type(finished_at) is datetime else _csv_time(finished_at),
        elapsed_ms if elapsed_ms is None or type(elapsed_ms) is int else _csv_text(elapsed_ms),
        _csv_str(detail),
        ("true" if maybe_applied else "false")
        if type(maybe_applied) is bool
        else _csv_text(maybe_applied),
        run if type(run) is int else _csv_text(run),
        _csv_str(verified),
        _csv_str(build_status),
    )


#: The characters that make csv.writer quote a field are the delimiter ``,`` and the quote
#: character ``"``: a text cell holding one takes csv.writer's way (two ``in`` scans of the
#: joined text, a quarter of what a set's ``isdisjoint`` costs, which walks it character by
#: character). Line breaks and other controls are caught by ``isprintable`` in
#: :func:`_plain_csv_line`.


def _plain_csv_line(result: Result, run: Any) -> str | None:
    """``result``'s CSV line as :func:`_csv_cells` + ``csv.writer`` write it, when every value
    is of its column's own type and no text needs anything done to it (printable ASCII, no
    formula lead, nothing csv.writer would quote); ``None`` otherwise.

    Hand-written because a record of a run is almost always such a one, and ``csv.writer``
    examining its 17 cells was half of what writing a record cost; a test holds the two to the
    same bytes.
    """
    (
        line,
        job_id,
        build_no,
        outcome,
        http_status,
        error_code,
        error_msg,
        request_id,
        attempts,
        started_at,
        finished_at,
        elapsed_ms,
        detail,
        maybe_applied,
        own_run,
        verified,
        build_status,
    ) = result
    if run is None:
        run = own_run
    texts = (job_id, build_no, error_code, error_msg, request_id, detail, verified, build_status)
    for text in texts:
        if type(text) is not str or (text and text[0] in _FORMULA_LEADS):
            return None
    joined = "".join(texts)
    if not (joined.isascii() and joined.isprintable()) or "," in joined or '"' in joined:
        return None
    if not (
        type(line) is int
        and type(outcome) is Outcome
        and (http_status is None or type(http_status) is int)
        and type(attempts) is int
        and (started_at is None or type(started_at) is datetime)
        and (finished_at is None or type(finished_at) is datetime)
        and (elapsed_ms is None or type(elapsed_ms) is int)
        and type(maybe_applied) is bool
        and type(run) is int
    ):
        return None
    return (
        f"{line},{job_id},{build_no},{outcome._value_},"  # .value: a property, 3x as slow
        f"{'' if http_status is None else http_status},{error_code},{error_msg},{request_id},"
        f"{attempts},{'' if started_at is None else format_time(started_at)},"
        f"{'' if finished_at is None else format_time(finished_at)},"
        f"{'' if elapsed_ms is None else elapsed_ms},{detail},"
        f"{'true' if maybe_applied else 'false'},{run},{verified},{build_status}\n"
    )


def _json_str(value: Any) -> str:
    if type(value) is str:
        return encode_basestring(value if value.isascii() else _encodable(value))
    return _JSON.encode(_plain(value))


def _json_time(value: Any) -> str:
    if value is None:
        return "null"
    if type(value) is datetime:
        return '"' + format_time(value) + '"'  # digits, "-", ":", "T", "." and "Z" only
    return _JSON.encode(_plain(value))


def _json_int(value: Any) -> str:
    if value is None:
        return "null"
    return str(value) if type(value) is int else _JSON.encode(_plain(value))


def _json_line(result: Result, run: Any) -> str:
    """``result`` as one JSON object, as ``json.dumps`` writes it without spaces."""
    (
        line,
        job_id,
        build_no,
        outcome,
        http_status,
        error_code,
        error_msg,
        request_id,
        attempts,
        started_at,
        finished_at,
        elapsed_ms,
        detail,
        maybe_applied,
        own_run,
        verified,
        build_status,
    ) = result
    if run is None:
        run = own_run
    # _value_ is what the .value property returns, at a third of its cost
    outcome_text = '"' + outcome._value_ + '"' if type(outcome) is Outcome else _json_str(outcome)
    if type(maybe_applied) is bool:
        flag = "true" if maybe_applied else "false"
    else:
        flag = _JSON.encode(_plain(maybe_applied))
    return (
        f'{{"line":{_json_int(line)},"job_id":{_json_str(job_id)},'
        f'"build_no":{_json_str(build_no)},"outcome":{outcome_text},'
        f'"http_status":{_json_int(http_status)},"error_code":{_json_str(error_code)},'
        f'"error_msg":{_json_str(error_msg)},"request_id":{_json_str(request_id)},'
        f'"attempts":{_json_int(attempts)},"started_at":{_json_time(started_at)},'
        f'"finished_at":{_json_time(finished_at)},"elapsed_ms":{_json_int(elapsed_ms)},'
        f'"detail":{_json_str(detail)},"maybe_applied":{flag},"run":{_json_int(run)},'
        f'"verified":{_json_str(verified)},"build_status":{_json_str(build_status)}}}\n'
    )


class LineEncoder:
    """Turns records into report lines, in one format.

    :meth:`record` and :meth:`bare` give one line's bytes. A journal adds records to the
    encoder's own text instead (:meth:`add`) and takes them, all at once, as bytes
    (:meth:`take`): the CSV and JSON lines go into one buffer, encoded once per
    batch rather than once per record.
    """

    __slots__ = ("_csv", "_scratch", "_waiting", "failure", "fmt", "has_records", "pending")

    def __init__(self, fmt: str, *, has_records: bool = False) -> None:
        self.fmt = fmt
        #: whether a record precedes the next one (JSON: the next one needs its comma)
        self.has_records = has_records
        #: records added and not taken yet
        self.pending = 0
        self._scratch = io.StringIO()
        self._csv = csv.writer(self._scratch, lineterminator="\n")
        self._waiting: list[tuple[Result, int | None]] = []
        #: the error of a record :meth:`take` left out, for the caller to raise
        self.failure: Exception | None = None

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
        if self.fmt == "csv":
            return self._csv_record(result, run).encode()
        return _json_line(result, run).encode()

    def join(self, bare: bytes) -> bytes:
        """``bare`` as the next line of the file: in JSON, every element after the first
        leads with its comma."""
        lead = self.fmt == "json" and self.has_records
        self.has_records = True
        return b"," + bare if lead else bare

    def add(self, result: Result, *, run: int | None = None) -> None:
        """Add ``result`` to the records to take; its line is made when they are taken.

        A journal's records are encoded a batch at a time, in :meth:`take`: encoding each one
        as it came, between a run's network calls, cost twice as long as encoding the batch
        in one go.
        """
        self._waiting.append((result, run))
        self.pending += 1

    def take(self) -> bytes:
        """The lines of the records added since the last take (as :meth:`record` makes
        them), as one run of bytes.

        A record that cannot be encoded (a value of a foreign type whose ``str()`` raises) is
        left out; the others are taken, and its error is kept in :attr:`failure` for the caller
        to raise.
        """
        waiting, self._waiting = self._waiting, []
        self.pending = 0
        if not waiting:
            return b""
        try:
            text = self._lines(waiting)
        except Exception:  # noqa: BLE001 - a foreign str() raises anything; kept, not lost
            # one bad record: take the others one by one, keep its error
            texts = []
            for one in waiting:
                try:
                    texts.append(self._lines([one]))
                except Exception as exc:  # noqa: BLE001 - raised by the caller, see above
                    if self.failure is None:
                        self.failure = exc
            return "".join(texts).encode()
        return text.encode()

    def _lines(self, waiting: Sequence[tuple[Result, int | None]]) -> str:
        if self.fmt == "csv":
            csv_record = self._csv_record
            text = "".join([csv_record(result, run) for result, run in waiting])
        else:
            lines = [_json_line(result, run) for result, run in waiting]
            if self.fmt == "json":  # every element after the first leads with its comma
                text = ("," if self.has_records else "") + ",".join(lines)
            else:
                text = "".join(lines)
        self.has_records = True
        return text

    def _csv_record(self, result: Result, run: int | None) -> str:
        """``result``'s CSV line: the plain way when it can (:func:`_plain_csv_line`), else
        csv.writer's."""
        plain = _plain_csv_line(result, run)
        return self._csv_text(_csv_cells(result, run)) if plain is None else plain

    def _csv_text(self, fields: Sequence[Any]) -> str:
        self._scratch.seek(0)
        self._scratch.truncate()
        self._csv.writerow(fields)
        return self._scratch.getvalue()

    def _csv_line(self, fields: Sequence[Any]) -> bytes:
        return self._csv_text(fields).encode()
