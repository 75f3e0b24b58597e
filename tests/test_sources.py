"""The input readers: formats, aliases, validation, line numbers, streaming, whole-file errors."""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import itertools
import json
import os
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bulkstop import sources
from bulkstop.errors import InputError
from bulkstop.models import InputRow
from bulkstop.sources import MAX_LINE_BYTES, InlineRows, ReadAhead, detect_format, open_source

JOB = "0123456789abcdef0123456789abcdef"
JOB2 = "fedcba9876543210fedcba9876543210"
SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def write(tmp_path: Path, name: str, content: str | bytes) -> str:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_bytes(content.encode("utf-8"))
    else:
        path.write_bytes(content)
    return str(path)


def read(path: str, fmt: str | None = None) -> list[InputRow]:
    with open_source(path, fmt) as source:
        return list(source)


def read_stdin(data: bytes, fmt: str) -> list[InputRow]:
    with open_source("-", fmt, stdin=io.BytesIO(data)) as source:
        return list(source)


def read_pipe(data: bytes, fmt: str) -> list[InputRow]:
    """Rows of ``data`` written into a real pipe by another thread, read as stdin."""
    read_fd, write_fd = os.pipe()

    def feed() -> None:
        with contextlib.suppress(BrokenPipeError), open(write_fd, "wb") as out:
            out.write(data)

    writer = threading.Thread(target=feed)
    writer.start()
    try:
        with open(read_fd, "rb") as stream, open_source("-", fmt, stdin=stream) as source:
            return list(source)
    finally:
        writer.join(timeout=10)


def read_via(via: str, tmp_path: Path, data: bytes) -> list[InputRow]:
    """CSV rows of ``data`` from a regular file or from a pipe, where no pre-pass runs."""
    return read(write(tmp_path, "t.csv", data)) if via == "file" else read_pipe(data, "csv")


def lines_and_keys(rows: list[InputRow]) -> list[tuple[int, tuple[str, int] | str | None]]:
    """Each row's line with its target's key, or with its error."""
    return [(row.line, row.target.key if row.target else row.error) for row in rows]


def keys(rows: list[InputRow]) -> list[tuple[str, int] | None]:
    return [row.target.key if row.target else None for row in rows]


def open_error(path: str, fmt: str | None = None, **kwargs: Any) -> str:
    """The InputError message of opening ``path``, checked to be one clean line."""
    with pytest.raises(InputError) as info:
        open_source(path, fmt, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    assert "Traceback" not in message
    return message


class LazyStream(io.RawIOBase):
    """A pipe-like byte stream that makes its lines on demand and counts how many it handed out.

    After ``fail_after`` lines it raises an I/O error, like a pipe whose writer went away badly.
    """

    def __init__(self, lines: Iterator[bytes], fail_after: int | None = None) -> None:
        self._lines = lines
        self._pending = b""
        self._fail_after = fail_after
        self.served = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self._pending:
            if self._fail_after is not None and self.served >= self._fail_after:
                raise OSError(errno.EIO, "Input/output error")
            self._pending = next(self._lines, b"")
            if self._pending:
                self.served += 1
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


# --- detect_format -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("targets.csv", "csv"),
        ("TARGETS.CSV", "csv"),
        ("dir.v2/targets.json", "json"),
        ("targets.Json", "json"),
        ("targets.jsonl", "jsonl"),
        ("targets.ndjson", "jsonl"),
        ("targets.NDJSON", "jsonl"),
    ],
)
def test_format_comes_from_the_extension(path: str, expected: str) -> None:
    assert detect_format(path, None) == expected


@pytest.mark.parametrize(
    ("path", "override", "expected"),
    [
        ("targets.csv", "json", "json"),
        ("targets.txt", "CSV", "csv"),
        ("-", "jsonl", "jsonl"),
        ("-", " ndjson ", "jsonl"),
    ],
)
def test_format_override_wins_over_the_extension(path: str, override: str, expected: str) -> None:
    assert detect_format(path, override) == expected


def test_unknown_extension_is_a_usage_error() -> None:
    with pytest.raises(InputError, match=r"^targets\.txt: cannot tell the format from the file"):
        detect_format("targets.txt", None)


def test_unknown_override_is_a_usage_error() -> None:
    with pytest.raises(InputError) as info:
        detect_format("targets.csv", "xml")
    assert str(info.value) == "unknown input format 'xml' (expected one of: csv, json, jsonl)"


def test_stdin_needs_an_explicit_format() -> None:
    message = open_error("-", None, stdin=io.BytesIO(b"job_id,build_no\n"))
    assert message == "<stdin>: reading stdin needs --input-format (csv, json or jsonl)"


# --- CSV ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "column", ["job_id", "jobid", "job-id", "job", "task_id", "taskid", "JobId", " JOB ID "]
)
def test_csv_job_id_column_aliases(tmp_path: Path, column: str) -> None:
    path = write(tmp_path, "t.csv", f"{column},build_no\n{JOB},7\n")
    assert keys(read(path)) == [(JOB, 7)]


@pytest.mark.parametrize(
    "column",
    [
        "build_no",
        "buildno",
        "build-no",
        "build_number",
        "buildnumber",
        "build",
        "number",
        "Build Number",
        " BUILD_NO ",
    ],
)
def test_csv_build_no_column_aliases(tmp_path: Path, column: str) -> None:
    path = write(tmp_path, "t.csv", f"job_id,{column}\n{JOB},7\n")
    assert keys(read(path)) == [(JOB, 7)]


def test_csv_extra_columns_are_ignored_and_order_is_free(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", f"note,build_no,owner,job_id\nhi,7,ann,{JOB}\n")
    assert keys(read(path)) == [(JOB, 7)]


def test_csv_reads_bom_and_crlf(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", f"\ufeffjob_id,build_no\r\n{JOB},7\r\n{JOB2},8\r\n")
    rows = read(path)
    assert keys(rows) == [(JOB, 7), (JOB2, 8)]
    assert [row.line for row in rows] == [2, 3]


def test_csv_quoted_fields_follow_rfc_4180(tmp_path: Path) -> None:
    content = (
        'job_id,"build_no","note"\r\n'
        f'"{JOB}","7","a, ""quoted"" note\r\nover two lines"\r\n'
        f'{JOB2},8,""\r\n'
    )
    rows = read(write(tmp_path, "t.csv", content))
    assert keys(rows) == [(JOB, 7), (JOB2, 8)]
    assert [row.line for row in rows] == [2, 4]


def test_csv_blank_lines_are_skipped_but_counted(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", f"\njob_id,build_no\n\n{JOB},7\n\n\n{JOB2},8\n")
    rows = read(path)
    assert [(row.line, row.target.key if row.target else None) for row in rows] == [
        (4, (JOB, 7)),
        (7, (JOB2, 8)),
    ]


def test_csv_row_of_empty_fields_is_invalid_not_skipped(tmp_path: Path) -> None:
    rows = read(write(tmp_path, "t.csv", f"job_id,build_no\n,\n{JOB},7\n"))
    assert [(row.line, row.error) for row in rows] == [
        (2, "job_id: missing; build_no: missing"),
        (3, None),
    ]


def test_csv_short_row_has_a_missing_field(tmp_path: Path) -> None:
    rows = read(write(tmp_path, "t.csv", f"job_id,build_no\n{JOB}\n"))
    assert rows[0].error == "build_no: missing"
    assert rows[0].raw_job_id == JOB


def test_csv_header_only_gives_zero_rows(tmp_path: Path) -> None:
    assert read(write(tmp_path, "t.csv", "job_id,build_no\r\n")) == []


FIELD_LIMIT = csv.field_size_limit()
LONG = "x" * (FIELD_LIMIT + 1)
#: A note longer than the field limit made of short lines, ending in a line break: after csv's
#: error the closing quote stood alone at the start of a line, opened a quoted field, and
#: swallowed the rows after it.
LONG_LINES = ("y" * 70 + "\n") * (FIELD_LIMIT // 71 + 1)
LONG_LINES_SPAN = LONG_LINES.count("\n") + 1  # lines of a record holding it


@pytest.mark.parametrize("via", ["file", "pipe"])
@pytest.mark.parametrize(
    ("record", "spans", "error"),
    [
        (f'{JOB},6,"{LONG}"', 1, f"field 3 ('note') is longer than {FIELD_LIMIT} bytes"),
        (f"{JOB},6,{LONG}", 1, f"field 3 ('note') is longer than {FIELD_LIMIT} bytes"),
        (
            f'{JOB},6,"{LONG_LINES}"',
            LONG_LINES_SPAN,
            f"field 3 ('note') is longer than {FIELD_LIMIT} bytes",
        ),
        (
            f'{JOB},6,"{LONG_LINES}",',
            LONG_LINES_SPAN,
            f"field 3 ('note') is longer than {FIELD_LIMIT} bytes",
        ),
        # an unquoted over-long field, and then the record goes on in a quoted field
        (f'{JOB},6,{LONG},"a\n,b"', 2, f"field 3 ('note') is longer than {FIELD_LIMIT} bytes"),
        # the over-long field starts on the second line of its record
        (f'{JOB},6,"a\nb",{LONG}', 2, f"line 8: field 4 is longer than {FIELD_LIMIT} bytes"),
        (f'{JOB},6,"a\nb""{LONG}"', 2, f"field 3 ('note') is longer than {FIELD_LIMIT} bytes"),
    ],
    ids=[
        "quoted",
        "unquoted",
        "quoted-lines",
        "quoted-lines-then-more",
        "then-quoted-lines",
        "on-a-later-line",
        "after-a-doubled-quote",
    ],
)
def test_csv_field_longer_than_the_limit_is_one_invalid_row_and_the_rows_after_read_true(
    tmp_path: Path, via: str, record: str, spans: int, error: str
) -> None:
    before = "".join(f"{JOB},{n},\n" for n in range(1, 6))
    after = "".join(f"{JOB},{n},\n" for n in range(7, 12))
    data = f"job_id,build_no,note\n{before}{record}\n{after}".encode()
    rows = read_via(via, tmp_path, data)
    if spans > 1:
        error += f" (the record spans lines 7-{6 + spans})"
    assert lines_and_keys(rows) == [
        *((line, (JOB, line - 1)) for line in range(2, 7)),
        (7, error),
        *((6 + spans + n, (JOB, 6 + n)) for n in range(1, 6)),
    ]


SHORT_FIELDS = ("y" * 1000 + ",") * (MAX_LINE_BYTES // 1000)  # a line too long, no field


@pytest.mark.parametrize(
    ("record", "error"),
    [
        (f'{JOB},1,"start\n{LONG * 8}",', f"field 3 ('note') is longer than {FIELD_LIMIT} bytes"),
        (
            f'{JOB},1,"{LONG * 8}\nstill the note",',
            f"field 3 ('note') is longer than {FIELD_LIMIT} bytes",
        ),
        (
            f'{JOB},1,{SHORT_FIELDS}"\nstill a field",',
            f"line is longer than {MAX_LINE_BYTES} bytes",
        ),
    ],
    ids=["closes-a-quote", "opens-a-quote", "many-short-fields-then-a-quote"],
)
def test_pipe_line_longer_than_the_limit_leaves_the_rows_after_it_read_true(
    record: str, error: str
) -> None:
    data = f"job_id,build_no,note\n{record}\n{JOB},2,\n{JOB},3,\n".encode()
    rows = read_pipe(data, "csv")
    assert lines_and_keys(rows) == [
        (2, f"{error} (the record spans lines 2-3)"),
        (4, (JOB, 2)),
        (5, (JOB, 3)),
    ]


def test_csv_record_of_many_short_fields_over_many_lines_is_bounded(tmp_path: Path) -> None:
    # Each line closes a quoted field and opens the next: no field is too long, the record is.
    segment = "z" * 100_000
    lines = 320  # about 32 MB in one record
    body = f'{JOB},1,"{segment}\n' + f'","{segment}\n' * (lines - 1) + '"\n'
    path = write(tmp_path, "t.csv", f"job_id,build_no,note\n{body}{JOB},2,\n")
    tracemalloc.start()
    try:
        rows = read(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert lines_and_keys(rows) == [
        (2, f"record is longer than {MAX_LINE_BYTES} bytes (the record spans lines 2-{lines + 2})"),
        (lines + 3, (JOB, 2)),
    ]
    assert peak < 8_000_000


def test_csv_quote_left_open_reads_to_the_end_in_bounded_memory(tmp_path: Path) -> None:
    filler = ("w" * 99_999 + "\n") * 320  # about 32 MB inside the open quote
    path = write(tmp_path, "t.csv", f'job_id,build_no,note\n{JOB},1,\n{JOB},2,"oops\n{filler}')
    tracemalloc.start()
    try:
        rows = read(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert lines_and_keys(rows) == [
        (2, (JOB, 1)),
        (3, f"field 3 ('note') is longer than {FIELD_LIMIT} bytes (the record spans lines 3-323)"),
    ]
    assert peak < 8_000_000


def test_csv_header_with_a_field_longer_than_the_limit_is_an_input_error(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", f'job_id,build_no,"{LONG}"\n{JOB},1\n')
    assert open_error(path) == f"{path}:1: field 3 is longer than {FIELD_LIMIT} bytes"


TOKENS = st.sampled_from(["a", '"', ",", "\n", "\r\n", " "])


@settings(max_examples=80, deadline=None)
@given(notes=st.lists(st.lists(TOKENS, max_size=12), min_size=1, max_size=8), data=st.data())
def test_csv_rows_after_an_over_long_field_read_as_csv_reads_them(
    notes: list[list[str]], data: st.DataObject
) -> None:
    # Arbitrary quoting, even unbalanced. One "a" is made longer than the field limit: that
    # changes no field or record boundary, so csv's reading of the text with the short "a"
    # says where every record is, and the one holding the long run must be the invalid row.
    body = "".join(f"{JOB},{n},{''.join(note)}\n" for n, note in enumerate(notes, start=1))
    text = "job_id,build_no,note\n" + body
    expected: list[tuple[int, list[str]]] = []
    reader = csv.reader(io.StringIO(text, newline=""))
    while True:
        start = reader.line_num + 1
        record = next(reader, None)
        if record is None:
            break
        expected.append((start, record))
    expected = [(line, record) for line, record in expected[1:] if record]  # no header, no blank
    where = [i for i, char in enumerate(text) if char == "a" and i > len("job_id,build_no,note")]
    long_at = data.draw(st.sampled_from(where)) if where else None
    if long_at is not None:
        text = text[:long_at] + "a" * (FIELD_LIMIT + 1) + text[long_at + 1 :]
        bad_line = text.count("\n", 0, long_at) + 1
    rows = read_stdin(text.encode(), "csv")
    assert len(rows) == len(expected)
    for row, (line, record) in zip(rows, expected, strict=True):
        assert row.line == line
        end = line + sum(field.count("\n") for field in record)
        if long_at is not None and line <= bad_line <= end:
            assert row.target is None
            assert row.error
        else:
            assert (row.raw_job_id, row.raw_build_no) == (
                record[0],
                record[1] if len(record) > 1 else "",
            )


def test_csv_build_no_beyond_the_int_digit_limit_is_an_invalid_row(tmp_path: Path) -> None:
    rows = read(write(tmp_path, "t.csv", f"job_id,build_no\n{JOB},{'9' * 5000}\n"))
    assert rows[0].error == "build_no: must be at most 2147483647, got a number of 5000 digits"


NOTES = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20)


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.tuples(st.integers(1, 10**6), NOTES), max_size=8))
def test_csv_written_by_the_csv_module_reads_back_with_true_lines(
    rows: list[tuple[int, str]],
) -> None:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["note", "build_no", "job_id"])
    expected_lines = []
    for build_no, note in rows:
        expected_lines.append(out.getvalue().count("\n") + 1)
        writer.writerow([note, build_no, JOB])
    read_back = read_stdin(out.getvalue().encode(), "csv")
    assert keys(read_back) == [(JOB, build_no) for build_no, _ in rows]
    assert [row.line for row in read_back] == expected_lines


# --- validation (one rule per case; CSV gives strings, JSONL gives JSON types) -----------------

CSV_CASES: list[tuple[str, str, tuple[str, int] | None, str | None]] = [
    (JOB, "7", (JOB, 7), None),
    (f"  {JOB}\t", " 7 ", (JOB, 7), None),
    ("abc", "7", None, "job_id: must be 32 characters of [0-9a-z], got 'abc' (3 characters)"),
    (
        JOB + "0",
        "7",
        None,
        f"job_id: must be 32 characters of [0-9a-z], got '{JOB}0' (33 characters)",
    ),
    (JOB.upper(), "7", None, f"job_id: must be lowercase [0-9a-z], got '{JOB.upper()}'"),
    (
        JOB[:-1] + "-",
        "7",
        None,
        f"job_id: must be 32 characters of [0-9a-z], got '{JOB[:-1]}-' (32 characters)",
    ),
    ("", "7", None, "job_id: missing"),
    (JOB, "0", None, "build_no: must be an integer ≥ 1, got 0"),
    (JOB, "-1", None, "build_no: must be an integer ≥ 1, got '-1'"),
    (JOB, "abc", None, "build_no: must be an integer ≥ 1, got 'abc'"),
    (JOB, "3.0", None, "build_no: must be an integer ≥ 1, got '3.0'"),
    (JOB, "+3", None, "build_no: must be an integer ≥ 1, got '+3'"),
    (JOB, "", None, "build_no: missing"),
]


@pytest.mark.parametrize(("job_id", "build_no", "key", "error"), CSV_CASES)
def test_csv_values_are_validated(
    tmp_path: Path, job_id: str, build_no: str, key: tuple[str, int] | None, error: str | None
) -> None:
    [row] = read(write(tmp_path, "t.csv", f'job_id,build_no\n"{job_id}","{build_no}"\n'))
    assert (keys([row])[0], row.error) == (key, error)
    assert (row.raw_job_id, row.raw_build_no) == (job_id, build_no)


JSON_CASES: list[tuple[dict[str, Any], tuple[str, int] | None, str | None]] = [
    ({"job_id": JOB, "build_no": 7}, (JOB, 7), None),
    ({"job_id": JOB, "build_no": "7"}, (JOB, 7), None),
    ({"job_id": f" {JOB} ", "build_no": " 7 "}, (JOB, 7), None),
    ({"job_id": JOB, "build_no": 0}, None, "build_no: must be an integer ≥ 1, got 0"),
    ({"job_id": JOB, "build_no": -1}, None, "build_no: must be an integer ≥ 1, got -1"),
    ({"job_id": JOB, "build_no": 1.5}, None, "build_no: must be an integer ≥ 1, got 1.5"),
    ({"job_id": JOB, "build_no": "3.0"}, None, "build_no: must be an integer ≥ 1, got '3.0'"),
    ({"job_id": JOB, "build_no": True}, None, "build_no: must be an integer ≥ 1, got True"),
    ({"job_id": JOB, "build_no": None}, None, "build_no: missing"),
    ({"job_id": JOB}, None, "build_no: missing"),
    ({"build_no": 7}, None, "job_id: missing"),
    ({}, None, "job_id: missing; build_no: missing"),
    ({"job_id": 123, "build_no": 7}, None, "job_id: must be a string, got 123"),
]


@pytest.mark.parametrize(("obj", "key", "error"), JSON_CASES)
def test_jsonl_values_are_validated(
    tmp_path: Path, obj: dict[str, Any], key: tuple[str, int] | None, error: str | None
) -> None:
    [row] = read(write(tmp_path, "t.jsonl", json.dumps(obj) + "\n"))
    assert (keys([row])[0], row.error) == (key, error)


@pytest.mark.parametrize(("obj", "key", "error"), JSON_CASES)
def test_json_values_are_validated(
    tmp_path: Path, obj: dict[str, Any], key: tuple[str, int] | None, error: str | None
) -> None:
    [row] = read(write(tmp_path, "t.json", json.dumps([obj])))
    assert (keys([row])[0], row.error) == (key, error)


# --- JSONL -------------------------------------------------------------------------------------


def test_jsonl_reads_one_object_per_line_with_key_aliases(tmp_path: Path) -> None:
    content = (
        f'{{"job_id": "{JOB}", "build_no": 7}}\n'
        f'{{"JobId": "{JOB2}", "BUILD_NUMBER": "8", "extra": [1, 2]}}\n'
        f'{{"task-id": "{JOB}", "Number": 9}}\n'
    )
    assert keys(read(write(tmp_path, "t.jsonl", content))) == [(JOB, 7), (JOB2, 8), (JOB, 9)]


def test_jsonl_blank_lines_are_skipped_but_counted(tmp_path: Path) -> None:
    content = f'\n{{"job_id": "{JOB}", "build_no": 7}}\r\n  \r\n\r\n{{"job": "{JOB2}", "build": 8}}'
    rows = read(write(tmp_path, "t.jsonl", "\ufeff" + content))
    assert [(row.line, keys([row])[0]) for row in rows] == [(2, (JOB, 7)), (5, (JOB2, 8))]


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("{bad", "not valid JSON: Expecting property name enclosed in double quotes at column 2"),
        (f'{{"job_id": "{JOB}"', "not valid JSON: Expecting ',' delimiter at column 46"),
        ("[1, 2]", "expected an object, got array"),
        ('"text"', "expected an object, got string"),
        ("42", "expected an object, got number"),
        ("null", "expected an object, got null"),
        ("true", "expected an object, got boolean"),
        (
            f'{{"job_id": "{JOB}", "jobId": "{JOB2}", "build_no": 1}}',
            "keys 'job_id' and 'jobId' both name job_id",
        ),
        ("[" * 100_000, "not valid JSON: maximum recursion depth exceeded while decoding a JSON"),
    ],
)
def test_jsonl_unusable_line_is_an_invalid_row_and_reading_goes_on(
    tmp_path: Path, line: str, error: str
) -> None:
    content = (
        f'{{"job_id": "{JOB}", "build_no": 1}}\n{line}\n{{"job_id": "{JOB}", "build_no": 3}}\n'
    )
    rows = read(write(tmp_path, "t.jsonl", content))
    assert [(row.line, row.error) for row in rows] == [(1, None), (2, rows[1].error), (3, None)]
    assert rows[1].error is not None
    assert rows[1].error.startswith(error)


def test_jsonl_line_of_exactly_the_limit_is_read(tmp_path: Path) -> None:
    head = f'{{"job_id": "{JOB}", "build_no": 7, "note": "'
    line = head + "x" * (MAX_LINE_BYTES - len(head) - 2) + '"}'
    assert len(line.encode()) == MAX_LINE_BYTES
    assert keys(read(write(tmp_path, "t.jsonl", line + "\n"))) == [(JOB, 7)]


# --- JSON --------------------------------------------------------------------------------------


def test_json_array_of_objects(tmp_path: Path) -> None:
    content = json.dumps([{"job_id": JOB, "build_no": 7}, {"JOB_ID": JOB2, "Build": "8"}])
    assert keys(read(write(tmp_path, "t.json", content))) == [(JOB, 7), (JOB2, 8)]


def test_json_object_with_targets_array(tmp_path: Path) -> None:
    content = json.dumps({"comment": "x", "targets": [{"job_id": JOB, "build_no": 7}], "n": 1})
    assert keys(read(write(tmp_path, "t.json", content))) == [(JOB, 7)]


def test_json_lines_are_where_each_element_starts(tmp_path: Path) -> None:
    content = (
        "\ufeff{\r\n"
        '  "targets": [\r\n'
        f'    {{"job_id": "{JOB}",\r\n'
        '      "build_no": 7},\r\n'
        "\r\n"
        '    ["not", "an object"],\r\n'
        f'    {{"job_id": "{JOB2}", "build_no": 8}}, {{"job_id": "{JOB}", "build_no": 9}}\r\n'
        "  ]\r\n"
        "}\r\n"
    )
    rows = read(write(tmp_path, "t.json", content))
    assert [(row.line, row.error) for row in rows] == [
        (3, None),
        (6, "expected an object, got array"),
        (7, None),
        (7, None),
    ]


def test_json_last_targets_member_wins_as_in_json_loads(tmp_path: Path) -> None:
    content = (
        f'{{"targets": [{{"job_id": "{JOB}", "build_no": 1}}],\n'
        f'"targets": [\n{{"job_id": "{JOB2}", "build_no": 2}}]}}'
    )
    rows = read(write(tmp_path, "t.json", content))
    assert [(row.line, keys([row])[0]) for row in rows] == [(3, (JOB2, 2))]


@pytest.mark.parametrize(
    ("element", "error"),
    [
        ("3", "expected an object, got number"),
        ('"x"', "expected an object, got string"),
        ("null", "expected an object, got null"),
        ("[]", "expected an object, got array"),
        (
            f'{{"job_id": "{JOB}", "JOB": "{JOB2}", "build_no": 1}}',
            "keys 'job_id' and 'JOB' both name job_id",
        ),
    ],
)
def test_json_unusable_element_is_an_invalid_row(tmp_path: Path, element: str, error: str) -> None:
    content = f'[{element},\n{{"job_id": "{JOB}", "build_no": 2}}]'
    rows = read(write(tmp_path, "t.json", content))
    assert [(row.line, row.error) for row in rows] == [(1, error), (2, None)]


@pytest.mark.parametrize("content", ["[]", '{"targets": []}', " [ ] \n"])
def test_json_empty_array_gives_zero_rows(tmp_path: Path, content: str) -> None:
    assert read(write(tmp_path, "t.json", content)) == []


# --- stdin -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "data"),
    [
        ("csv", f"job_id,build_no\r\n{JOB},7\r\n".encode()),
        ("json", json.dumps({"targets": [{"job_id": JOB, "build_no": 7}]}).encode()),
        ("jsonl", f'\ufeff{{"job_id": "{JOB}", "build_no": 7}}\n'.encode()),
    ],
)
def test_stdin_is_read_in_every_format(fmt: str, data: bytes) -> None:
    with open_source("-", fmt, stdin=io.BytesIO(data)) as source:
        assert (source.name, source.format) == ("<stdin>", fmt)
        assert keys(list(source)) == [(JOB, 7)]


def test_stdin_stream_is_left_open_after_close() -> None:
    stream = io.BytesIO(f"job_id,build_no\n{JOB},7\n".encode())
    with open_source("-", "csv", stdin=stream) as source:
        list(source)
    assert not stream.closed


def test_file_is_closed_with_the_source(tmp_path: Path) -> None:
    source = open_source(write(tmp_path, "t.csv", f"job_id,build_no\n{JOB},7\n{JOB},8\n"))
    with source:
        next(source)
    assert list(source) == []
    assert "closed" in repr(source)


@pytest.mark.parametrize(
    ("fmt", "data", "bad_line"),
    [
        ("csv", f"job_id,build_no\n{JOB},1\n{JOB},\xff2\n{JOB},3\n".encode("latin-1"), 3),
        (
            "jsonl",
            f'{{"job_id":"{JOB}","build_no":1}}\n{{"job_id":"\xe9"}}\n{{"job_id":"{JOB}","build_no":3}}\n'.encode(
                "latin-1"
            ),
            2,
        ),
    ],
)
def test_stdin_undecodable_line_is_an_invalid_row_and_reading_goes_on(
    fmt: str, data: bytes, bad_line: int
) -> None:
    rows = read_stdin(data, fmt)
    assert [(row.line, row.error) for row in rows] == [
        (rows[0].line, None),
        (bad_line, "not valid UTF-8"),
        (rows[2].line, None),
    ]
    assert keys(rows)[2] == (JOB, 3)


def test_stdin_undecodable_line_inside_a_quoted_record_names_that_line() -> None:
    data = f'job_id,build_no,note\n{JOB},1,"first\nsecond \xff"\n{JOB},2,\n'.encode("latin-1")
    rows = read_stdin(data, "csv")
    assert [(row.line, row.error) for row in rows] == [(2, "line 3: not valid UTF-8"), (4, None)]


def test_stdin_nul_byte_line_is_an_invalid_row() -> None:
    data = f"job_id,build_no\n{JOB},1\x00\n{JOB},2\n".encode()
    rows = read_stdin(data, "csv")
    assert [(row.line, row.error) for row in rows] == [
        (2, "contains a NUL byte (not a text file)"),
        (3, None),
    ]


@pytest.mark.parametrize(
    ("fmt", "head", "row", "error"),
    [
        (
            "csv",
            b"job_id,build_no\n",
            f"{JOB},2\n".encode(),
            f"field 1 ('job_id') is longer than {FIELD_LIMIT} bytes",
        ),
        (
            "jsonl",
            b"",
            f'{{"job_id": "{JOB}", "build_no": 2}}\n'.encode(),
            f"line is longer than {MAX_LINE_BYTES} bytes",
        ),
    ],
)
def test_stdin_over_long_line_is_an_invalid_row_and_reading_goes_on(
    fmt: str, head: bytes, row: bytes, error: str
) -> None:
    data = head + b"x" * (MAX_LINE_BYTES + 10) + b"\n" + row
    rows = read_stdin(data, fmt)
    assert [row.error for row in rows] == [error, None]
    assert rows[1].line == rows[0].line + 1


def test_stdin_redirected_from_a_file_is_checked_before_any_row(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", f"job_id,build_no\n{JOB},1\n{JOB},\xff2\n".encode("latin-1"))
    with open(path, "rb") as redirected:
        message = open_error("-", "csv", stdin=redirected)
    assert message == "<stdin>:3: not valid UTF-8 at byte 84"  # 16 + 35 + 33


def test_stdin_bare_carriage_return_in_a_row_is_an_invalid_row() -> None:
    rows = read_stdin(f"job_id,build_no\n{JOB},1\rx\n{JOB},2\n".encode(), "csv")
    assert [(row.line, row.error) for row in rows] == [
        (2, "not valid CSV: a bare carriage return (\\r) ends a line; use LF or CRLF endings"),
        (3, None),
    ]


def test_stdin_json_that_is_not_utf8_is_a_whole_file_error() -> None:
    data = b'[\n{"job_id": "caf\xe9"}]'
    message = open_error("-", "json", stdin=io.BytesIO(data))
    assert message == "<stdin>:2: not valid UTF-8 at byte 17"


def test_stdin_empty_csv_is_a_whole_file_error() -> None:
    message = open_error("-", "csv", stdin=io.BytesIO(b""))
    assert message == "<stdin>: empty file (expected a header row with job_id and build_no columns)"


def test_stdin_read_failure_mid_stream_is_an_input_error() -> None:
    lines = (f"{JOB},{n}\n".encode() for n in itertools.count(1))
    raw = LazyStream(itertools.chain([b"job_id,build_no\n"], lines), fail_after=3)
    source = open_source("-", "csv", stdin=io.BufferedReader(raw, buffer_size=64))
    with source, pytest.raises(InputError, match=r"^<stdin>: read failed: Input/output error$"):
        list(source)


# --- streaming ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "header", "line"),
    [
        ("csv", b"job_id,build_no\r\n", "{job},{n}\r\n"),
        ("jsonl", b"", '{{"job_id": "{job}", "build_no": {n}}}\n'),
    ],
)
def test_stdin_rows_come_out_before_the_stream_is_exhausted(
    fmt: str, header: bytes, line: str
) -> None:
    total = 100_000
    body = (line.format(job=JOB, n=n).encode() for n in range(1, total + 1))
    raw = LazyStream(itertools.chain([header] if header else [], body))
    with open_source("-", fmt, stdin=io.BufferedReader(raw)) as source:
        first = list(itertools.islice(source, 3))
        assert keys(first) == [(JOB, 1), (JOB, 2), (JOB, 3)]
        assert raw.served < 1_000  # a few buffers' worth, not the 100 000 lines behind them


@pytest.mark.anyio
async def test_async_reading_raises_a_read_failure_after_the_rows_before_it() -> None:
    lines = (f"{JOB},{n}\n".encode() for n in itertools.count(1))
    raw = LazyStream(itertools.chain([b"job_id,build_no\n"], lines), fail_after=3)
    rows: list[InputRow] = []
    source = open_source("-", "csv", stdin=io.BufferedReader(raw, buffer_size=64))
    with source, pytest.raises(InputError, match=r"^<stdin>: read failed: Input/output error$"):
        async for row in source:
            rows.append(row)
    assert keys(rows) == [(JOB, 1), (JOB, 2)]


@pytest.mark.anyio
async def test_async_reading_stays_a_bounded_way_ahead_of_its_consumer() -> None:
    lines = (f"{JOB},{n}\n".encode() for n in itertools.count(1))
    raw = LazyStream(itertools.chain([b"job_id,build_no\n"], lines))  # never ends
    with open_source("-", "csv", stdin=io.BufferedReader(raw)) as source:
        ahead = aiter(source)
        first = await anext(ahead)
        with anyio.fail_after(10):
            # Set by the reading thread when it waits for the consumer: nothing to await.
            while not ahead.parked:  # noqa: ASYNC110
                await anyio.sleep(0.001)
        assert first.line == 2
        assert ahead.queued <= 1024
        assert raw.served < 1024 + 300  # and a buffer's worth more at most
    assert ahead.join(timeout=10)  # closing the source stopped the thread


async def count_turns(turns: list[int], rows: list[InputRow]) -> None:
    """Another task of the loop: at each of its turns, notes how many rows were read by then."""
    while True:
        turns.append(len(rows))
        await anyio.lowlevel.checkpoint()


@pytest.mark.anyio
@pytest.mark.parametrize("suffix", ["csv", "jsonl", "json"])
async def test_a_regular_file_is_read_on_the_event_loop_giving_way_to_other_tasks(
    tmp_path: Path, suffix: str
) -> None:
    # A file never waits for input: no thread reads it (see InlineRows), and the other tasks
    # of the loop still run while it is read, after every 256 rows.
    path = tmp_path / f"targets.{suffix}"
    count = 1000
    numbers = range(1, count + 1)
    if suffix == "csv":
        path.write_text("job_id,build_no\n" + "".join(f"{JOB},{n}\n" for n in numbers))
    elif suffix == "jsonl":
        path.write_text("".join(f'{{"job_id":"{JOB}","build_no":{n}}}\n' for n in numbers))
    else:
        path.write_text(json.dumps([{"job_id": JOB, "build_no": n} for n in numbers]))
    turns: list[int] = []
    rows: list[InputRow] = []

    threads_before = threading.active_count()
    with open_source(str(path)) as source:
        assert not source.waits
        rows_of = aiter(source)
        assert isinstance(rows_of, InlineRows)
        async with anyio.create_task_group() as tg:
            tg.start_soon(count_turns, turns, rows)
            await anyio.lowlevel.checkpoint()  # let it start
            async for row in rows_of:
                rows.append(row)
            tg.cancel_scope.cancel()
        assert threading.active_count() == threads_before
    assert [row.target.build_no for row in rows if row.target] == list(range(1, count + 1))
    # the other task ran between the batches of 256 rows, not only before and after
    assert [n for n in turns if 0 < n < count] == [255, 511, 767]


@pytest.mark.anyio
async def test_a_regular_file_in_batches_gives_every_row_in_order_giving_way_between(
    tmp_path: Path,
) -> None:
    path = tmp_path / "targets.csv"
    count = 600
    path.write_text("job_id,build_no\n" + "".join(f"{JOB},{n}\n" for n in range(1, count + 1)))
    turns: list[int] = []
    rows: list[InputRow] = []
    sizes: list[int] = []

    with open_source(str(path)) as source:
        rows_of = aiter(source)
        assert isinstance(rows_of, InlineRows)
        async with anyio.create_task_group() as tg:
            tg.start_soon(count_turns, turns, rows)
            await anyio.lowlevel.checkpoint()  # let it start
            while batch := await rows_of.batch():
                sizes.append(len(batch))
                rows.extend(batch)
            tg.cancel_scope.cancel()
        assert await rows_of.batch() == []  # the end stays the end
    assert sizes == [256, 256, 88]
    assert [row.target.build_no for row in rows if row.target] == list(range(1, count + 1))
    assert [n for n in turns if 0 < n < count] == [256, 512]  # between the batches


@pytest.mark.anyio
async def test_inline_rows_in_batches_raise_an_error_after_the_rows_before_it() -> None:
    def rows() -> Iterator[int]:
        yield from range(1, 6)
        raise InputError("targets.csv:7: read failed")

    inline = InlineRows(rows())
    assert await inline.batch() == [1, 2, 3, 4, 5]  # what was read before the failure
    with pytest.raises(InputError, match=r"^targets\.csv:7: read failed$"):
        await inline.batch()
    assert await inline.batch() == []  # the iterable ended with its error


@pytest.mark.anyio
async def test_a_pipe_in_batches_gives_its_rows_then_its_read_failure() -> None:
    lines = (f"{JOB},{n}\n".encode() for n in itertools.count(1))
    raw = LazyStream(itertools.chain([b"job_id,build_no\n"], lines), fail_after=400)
    rows: list[InputRow] = []
    source = open_source("-", "csv", stdin=io.BufferedReader(raw, buffer_size=64))
    with source, pytest.raises(InputError, match=r"^<stdin>: read failed: Input/output error$"):
        ahead = aiter(source)
        assert isinstance(ahead, ReadAhead)
        with anyio.fail_after(10):
            while batch := await ahead.batch():
                assert len(batch) <= 1024
                rows.extend(batch)
    assert keys(rows) == [(JOB, n) for n in range(1, 400)]


@pytest.mark.anyio
async def test_a_pipe_is_read_on_a_thread_of_its_own() -> None:
    raw = LazyStream(iter([b"job_id,build_no\n", f"{JOB},1\n".encode()]))
    with open_source("-", "csv", stdin=io.BufferedReader(raw)) as source:
        assert source.waits
        ahead = aiter(source)
        assert isinstance(ahead, ReadAhead)
        assert keys([row async for row in ahead]) == [(JOB, 1)]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_named_pipe_rows_come_out_while_the_writer_is_still_writing(tmp_path: Path) -> None:
    fifo = tmp_path / "targets.csv"
    os.mkfifo(fifo)
    first_row_read = threading.Event()
    writer_saw_first_row: list[bool] = []

    def writer() -> None:
        with open(fifo, "wb") as pipe:
            pipe.write(f"job_id,build_no\n{JOB},1\n".encode())
            pipe.flush()
            # Bounded so that a reader that waits for end of file fails instead of hanging.
            writer_saw_first_row.append(first_row_read.wait(timeout=10))
            pipe.write(f"{JOB},2\n".encode())

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        with open_source(str(fifo)) as source:
            first = next(source)
            first_row_read.set()
            rest = list(source)
    finally:
        first_row_read.set()
        thread.join(timeout=10)
    assert writer_saw_first_row == [True]
    assert keys([first, *rest]) == [(JOB, 1), (JOB, 2)]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_file_memory_does_not_grow_with_the_file(tmp_path: Path, fmt: str) -> None:
    # Few, wide rows keep the traced run fast while the file is far larger than the budget.
    note = "n" * 100_000
    rows = 320  # about 32 MB
    path = tmp_path / f"big.{fmt}"
    with path.open("w", encoding="utf-8") as out:
        if fmt == "csv":
            out.write("job_id,build_no,note\n")
            out.writelines(f"{JOB},{n},{note}\n" for n in range(1, rows + 1))
        else:
            out.writelines(
                f'{{"job_id": "{JOB}", "build_no": {n}, "note": "{note}"}}\n'
                for n in range(1, rows + 1)
            )
    assert path.stat().st_size > 30_000_000
    tracemalloc.start()
    try:
        with open_source(str(path)) as source:
            count = sum(1 for row in source if row.target is not None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == rows
    assert peak < 8_000_000


# --- whole-file errors -------------------------------------------------------------------------


def test_missing_path_is_an_input_error(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.csv")
    assert open_error(path) == f"{path}: no such file"


def test_directory_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "dir.csv"
    path.mkdir()
    assert open_error(str(path)) == f"{path}: is a directory, not a file"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file_is_an_input_error(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", "job_id,build_no\n")
    os.chmod(path, 0)
    assert open_error(path) == f"{path}: permission denied"


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (PermissionError(errno.EACCES, "Permission denied"), "permission denied"),
        (OSError(errno.EIO, "Input/output error"), "cannot open: Input/output error"),
    ],
)
def test_open_failures_map_to_one_line_input_errors(
    monkeypatch: pytest.MonkeyPatch, error: OSError, message: str
) -> None:
    def failing_open(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(sources, "open", failing_open, raising=False)
    assert open_error("t.csv") == f"t.csv: {message}"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("t.csv", "", "empty file (expected a header row with job_id and build_no columns)"),
        ("t.csv", "\r\n\n", "empty file (expected a header row with job_id and build_no columns)"),
        ("t.csv", "\ufeff", "empty file (expected a header row with job_id and build_no columns)"),
        ("t.jsonl", "", "empty file (expected one JSON object per line)"),
        ("t.jsonl", "\n \n", "empty file (expected one JSON object per line)"),
        ("t.json", "", "empty file (expected a JSON array of targets)"),
        ("t.json", " \n", "empty file (expected a JSON array of targets)"),
    ],
)
def test_empty_file_is_an_input_error(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    path = write(tmp_path, name, content)
    assert open_error(path) == f"{path}: {message}"


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (
            "id,build",
            "1: the header has no job_id column (found 'id', 'build'); "
            "expected job_id (or jobid, job-id, job, task_id, taskid)",
        ),
        (
            "job_id,no",
            "1: the header has no build_no column (found 'job_id', 'no'); "
            "expected build_no (or buildno, build-no, build_number, buildnumber, build, number)",
        ),
        (
            f"{JOB},7",
            f"1: the header has no job_id or build_no column (found '{JOB}', '7'); "
            "expected job_id (or jobid, job-id, job, task_id, taskid) "
            "and build_no (or buildno, build-no, build_number, buildnumber, build, number)",
        ),
    ],
)
def test_csv_header_without_the_columns_is_an_input_error(
    tmp_path: Path, header: str, message: str
) -> None:
    path = write(tmp_path, "t.csv", f"{header}\n{JOB},7\n")
    assert open_error(path) == f"{path}:{message}"


@pytest.mark.parametrize(
    ("header", "first", "second", "field"),
    [
        ("job_id,JobID,build_no", "job_id", "JobID", "job_id"),
        ("job,build,number", "build", "number", "build_no"),
    ],
)
def test_csv_two_columns_for_one_field_is_an_input_error(
    tmp_path: Path, header: str, first: str, second: str, field: str
) -> None:
    path = write(tmp_path, "t.csv", f"\n{header}\n")
    assert open_error(path) == (
        f"{path}:2: columns {first!r} and {second!r} both name {field}; keep one"
    )


def test_csv_with_old_mac_line_endings_is_an_input_error(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", f"job_id,build_no\r{JOB},1\r{JOB},2\r")
    assert open_error(path) == (
        f"{path}:1: not valid CSV: a bare carriage return (\\r) ends a line; use LF or CRLF endings"
    )


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl"])
def test_binary_garbage_is_an_input_error(tmp_path: Path, fmt: str) -> None:
    path = write(tmp_path, f"t.{fmt}", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    assert open_error(path) == f"{path}:1: not valid UTF-8 at byte 0"


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_nul_byte_is_an_input_error(tmp_path: Path, fmt: str) -> None:
    path = write(tmp_path, f"t.{fmt}", b"job_id,build_no\nab\x00c,1\n")
    assert open_error(path) == f"{path}:2: contains a NUL byte at byte 18 (not a text file)"


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_non_utf8_deep_in_a_file_fails_before_any_row(tmp_path: Path, fmt: str) -> None:
    good = (
        f"{JOB},1\n".encode() if fmt == "csv" else f'{{"job_id":"{JOB}","build_no":1}}\n'.encode()
    )
    head = b"job_id,build_no\n" + good * 60_000  # well past the first pre-pass chunk
    path = write(tmp_path, f"t.{fmt}", head + b"caf\xe9\n" + good)
    line = head.count(b"\n") + 1
    assert open_error(path) == f"{path}:{line}: not valid UTF-8 at byte {len(head) + 3}"


def test_the_pre_pass_holds_a_few_small_chunks_not_megabytes(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", b"job_id,build_no\n" + f"{JOB},1\n".encode() * 100_000)
    assert Path(path).stat().st_size > 3_000_000
    tracemalloc.start()
    try:
        with open_source(path):  # checks the whole file before the first row
            _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * sources._CHECK_BYTES + 100_000


def _with_bytes_at_chunk_boundary(sequence: bytes, split: int) -> bytes:
    """A JSONL line whose ``sequence`` straddles the pre-pass chunk boundary at ``split``."""
    # A short first line keeps the long second line under MAX_LINE_BYTES.
    head = f'{{"job_id": "{JOB}", "build_no": 1}}\n{{"job_id": "{JOB}", "build_no": 2, "note": "'
    head_bytes = head.encode()
    filler = b"x" * (sources._CHECK_BYTES - len(head_bytes) - split)
    return head_bytes + filler + sequence + b'"}\n'


def test_multibyte_character_across_chunks_is_fine(tmp_path: Path) -> None:
    path = write(tmp_path, "t.jsonl", _with_bytes_at_chunk_boundary("é€".encode(), split=3))
    assert keys(read(path)) == [(JOB, 1), (JOB, 2)]


def test_broken_sequence_across_chunks_is_located_exactly(tmp_path: Path) -> None:
    path = write(tmp_path, "t.jsonl", _with_bytes_at_chunk_boundary(b"\xe2\x82A", split=2))
    assert open_error(path) == f"{path}:2: not valid UTF-8 at byte {sources._CHECK_BYTES - 2}"


def test_truncated_character_at_end_of_file_is_an_input_error(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", b"job_id,build_no\n\xe2\x82")
    assert open_error(path) == f"{path}:2: not valid UTF-8 at byte 16"


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_over_long_line_in_a_file_is_an_input_error(tmp_path: Path, fmt: str) -> None:
    path = write(tmp_path, f"t.{fmt}", b"job_id,build_no\n\n" + b"x" * (MAX_LINE_BYTES + 1))
    assert open_error(path) == f"{path}:3: line is longer than {MAX_LINE_BYTES} bytes"


@pytest.mark.parametrize(
    ("content", "position", "reason"),
    [
        ("[\n  {", "2:4", "Expecting property name enclosed in double quotes"),
        (f'[{{"job_id": "{JOB}" "build_no": 1}}]', "1:48", "Expecting ',' delimiter"),
        ("\ufeff[1,]", "1:4", "Expecting value"),
        ("[] []", "1:4", "Extra data"),
    ],
)
def test_json_that_does_not_parse_is_an_input_error(
    tmp_path: Path, content: str, position: str, reason: str
) -> None:
    path = write(tmp_path, "t.json", content)
    assert open_error(path) == f"{path}:{position}: not valid JSON: {reason}"


@pytest.mark.parametrize(
    ("content", "kind"),
    [
        ("42", "number"),
        ('"targets"', "string"),
        ("null", "null"),
        ("true", "boolean"),
        (json.dumps({"job_id": JOB, "build_no": 7}), 'an object without "targets"'),
    ],
)
def test_json_top_level_that_is_not_targets_is_an_input_error(
    tmp_path: Path, content: str, kind: str
) -> None:
    path = write(tmp_path, "t.json", content)
    assert open_error(path) == (
        f'{path}: expected a JSON array of targets or an object with a "targets" array, got {kind}'
    )


def test_json_targets_member_that_is_not_an_array_is_an_input_error(tmp_path: Path) -> None:
    path = write(tmp_path, "t.json", '{"targets": {"job_id": "x"}}')
    assert open_error(path) == f'{path}: "targets" must be an array, got object'


def test_file_name_with_a_newline_keeps_the_message_on_one_line(tmp_path: Path) -> None:
    path = str(tmp_path / "a\nb.csv")
    assert open_error(path).endswith(r"a\nb.csv: no such file")


# --- samples -----------------------------------------------------------------------------------


def test_mixed_csv_sample_shows_one_duplicate_and_one_invalid_row() -> None:
    rows = read(str(SAMPLES / "mixed.csv"))
    valid = [row.target.key for row in rows if row.target is not None]
    assert len(rows) == 25
    assert [row.error for row in rows if row.error] == [
        "build_no: must be an integer ≥ 1, got 'abc'"
    ]
    assert len(valid) - len(set(valid)) == 1


@pytest.mark.parametrize("name", ["targets.csv", "targets.json", "targets.jsonl"])
def test_the_quickstart_samples_are_clean(name: str) -> None:
    rows = read(str(SAMPLES / name))
    assert len(rows) == 25
    assert all(row.target is not None for row in rows)
    assert len({row.target.key for row in rows if row.target}) == 25


@given(
    st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=12),
    st.integers(min_value=1, max_value=17),
    st.integers(min_value=1, max_value=30),
)
def test_the_line_length_check_finds_the_first_long_line_across_chunks(
    lengths: list[int], chunk_size: int, limit: int
) -> None:
    from bulkstop.sources import _TextCheck

    data = b"\n".join(b"x" * n for n in lengths)
    expected = next(
        (
            (number, f"line is longer than {limit} bytes")
            for number, n in enumerate(lengths, start=1)
            if n > limit
        ),
        None,
    )
    check = _TextCheck(limit)
    found = None
    for start in range(0, len(data), chunk_size):
        found = check.feed(data[start : start + chunk_size])
        if found:
            break
    assert found == expected


# --- the plain lane: csv reads a file with no quote, no CR and no line near the field limit ----

PLAIN_CELLS = st.sampled_from([JOB, JOB2, "7", "08", " 9 ", "", "x", "ABC", "0", "1e3", "é", "a b"])


class _NoFollowedLines:
    def __init__(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("a plain file went through the followed lines")


@settings(max_examples=100, deadline=None)
@given(
    lines=st.lists(st.lists(PLAIN_CELLS, max_size=4), max_size=12),
    bom=st.booleans(),
    final_break=st.booleans(),
)
def test_a_plain_file_is_read_by_csv_itself_with_every_row_as_a_stream_gives_it(
    tmp_path_factory: pytest.TempPathFactory, lines: list[list[str]], bom: bool, final_break: bool
) -> None:
    text = "job_id,build_no,note\n" + "\n".join(",".join(cells) for cells in lines)
    data = (b"\xef\xbb\xbf" if bom else b"") + (text + "\n" if final_break else text).encode()
    path = write(tmp_path_factory.mktemp("plain"), "t.csv", data)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sources, "_Lines", _NoFollowedLines)
        plain = read(path)
    streamed = read_stdin(data, "csv")  # no pre-pass: the followed lines

    def seen(rows: list[InputRow]) -> list[tuple[Any, ...]]:
        return [(r.line, r.target, r.error, r.raw_job_id, r.raw_build_no) for r in rows]

    assert seen(plain) == seen(streamed)


@pytest.mark.parametrize(
    ("chunks", "plain"),
    [
        ([b"a,b\n", b"12345678\n"], True),  # the longest line is 9 bytes: under the limit of 10
        ([b"a,b\n123456789\n"], False),  # 10 bytes
        ([b"a,b\n1234", b"5678\n"], True),  # a 9-byte line across two chunks
        ([b"a,b\n1234", b"56789\n"], False),  # a 10-byte one
        ([b"a,b\n123", b"456", b"7890"], False),  # the last line, no break, 10 bytes
        ([b"a,b\n12", b"3456789"], True),  # the last line: 9 bytes, no break
        ([b'a,"b"\n'], False),  # a quote: records may span lines
        ([b"a,b\r\n"], False),  # a CR
        ([b"a,b\n", b"x\ry\n"], False),  # a CR in a later chunk
    ],
)
def test_plain_csv_is_no_quote_no_cr_and_no_line_of_the_limit(
    chunks: list[bytes], plain: bool
) -> None:
    check = sources._PlainCsv(10)
    for chunk in chunks:
        check.feed(chunk)
    assert check.plain is plain


def test_a_plain_file_with_a_line_at_the_field_limit_goes_the_followed_way(
    tmp_path: Path,
) -> None:
    long_note = "n" * FIELD_LIMIT  # this line is longer than the field limit, the note is not
    path = write(tmp_path, "t.csv", f"job_id,build_no,note\n{JOB},7,{long_note}\n{JOB},8,\n")
    followed = []
    real = sources._Lines

    def counting(*args: Any, **kwargs: Any) -> Any:
        followed.append(1)
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sources, "_Lines", counting)
        rows = read(path)
    assert followed == [1]
    assert lines_and_keys(rows) == [(2, (JOB, 7)), (3, (JOB, 8))]


def test_a_field_limit_lowered_after_a_plain_file_opened_makes_one_invalid_row(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path, "t.csv", f"job_id,build_no,note\n{JOB},6,\n\n{JOB},7,{'x' * 50}\n{JOB},8,\n"
    )
    before = csv.field_size_limit()
    with open_source(path) as source:
        try:
            csv.field_size_limit(40)  # the job ids are 32
            rows = list(source)
        finally:
            csv.field_size_limit(before)
    assert lines_and_keys(rows) == [
        (2, (JOB, 6)),
        (4, "not valid CSV: field larger than field limit (40)"),
        (5, (JOB, 8)),
    ]


def test_stdin_from_a_plain_regular_file_is_read_and_left_open(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", f"job_id,build_no\n{JOB},7\n")
    with open(path, "rb") as stdin:
        with open_source("-", "csv", stdin=stdin) as source:
            rows = list(source)
        assert lines_and_keys(rows) == [(2, (JOB, 7))]
        # the source closes what it opened, not the caller's stdin (nor did the plain reader)
        assert not stdin.closed
        stdin.seek(0)
        assert stdin.read().startswith(b"job_id")


@pytest.mark.parametrize(
    "content",
    [
        "",
        "\n\n",
        f"job_id,colour\n{JOB},7\n",
        f"job_id,build_no,job\n{JOB},7,{JOB}\n",
        f"\n\nfoo,bar\n{JOB},7\n",
    ],
    ids=["empty", "blank-lines", "no-build-column", "job-twice", "no-columns-after-blanks"],
)
def test_a_plain_file_s_header_errors_are_the_followed_way_s(tmp_path: Path, content: str) -> None:
    path = write(tmp_path, "t.csv", content)
    with pytest.raises(InputError) as streamed:
        open_source("-", "csv", stdin=io.BytesIO(content.encode()))
    assert open_error(path) == str(streamed.value).replace("<stdin>", path, 1)
