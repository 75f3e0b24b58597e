from __future__ import annotations

import csv
import errno
import json
import operator
import os
import re
import socket
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from fakeclock import FakeClock
from hypothesis import given, settings
from hypothesis import strategies as st
from reportkit import FORMATS, job, key, result, write_run

import bulkstop.report as report
from bulkstop.errors import InputError, ReportMismatchError, UsageError
from bulkstop.models import REPORT_FIELDS, Outcome, Result, TargetKey
from bulkstop.report import (
    CarriedRecords,
    ReportFormat,
    ReportLock,
    ReportWriter,
    compaction,
    default_report_path,
    encoding,
    inflight_path,
    load_report,
    lock_path,
    record_key,
    report_format,
)
from bulkstop.report import writer as writing
from bulkstop.report.markers import MarkerReader


@pytest.fixture(params=FORMATS)
def fmt(request: pytest.FixtureRequest) -> ReportFormat:
    value: ReportFormat = request.param
    return value


@pytest.fixture
def path(tmp_path: Path, fmt: ReportFormat) -> Path:
    return tmp_path / f"report.{fmt}"


def last_line_start(data: bytes) -> int:
    return data.rstrip(b"\n").rfind(b"\n") + 1


# -- formats and paths ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("r.csv", "csv"),
        ("R.CSV", "csv"),
        ("r.jsonl", "jsonl"),
        ("r.NDJSON", "jsonl"),
        ("r.json", "json"),
        ("dir.d/r.Json", "json"),
    ],
)
def test_report_format_comes_from_the_extension(name: str, expected: str) -> None:
    assert report_format(Path(name)) == expected


@pytest.mark.parametrize("name", ["report.txt", "report", "report.csv.gz"])
def test_report_format_rejects_other_extensions(name: str) -> None:
    with pytest.raises(UsageError, match=rf"{name}.*\.csv, \.jsonl, \.ndjson or \.json"):
        report_format(Path(name))


def test_default_report_path_is_stamped_in_utc(tmp_path: Path) -> None:
    local = datetime(2026, 11, 28, 20, 5, 9, tzinfo=timezone(timedelta(hours=8)))
    assert default_report_path(local, tmp_path, "json") == (
        tmp_path / "bulkstop-report-20261128T120509Z.json"
    )


def test_record_key_is_the_target_key_and_absent_for_unkeyed_records() -> None:
    assert record_key(result(0, job_id=f" {job(0)} ", build_no=" 007 ")) == TargetKey(job(0), 7)
    assert record_key(result(0, Outcome.INVALID, build_no="x")) is None
    assert record_key(result(0, Outcome.DUPLICATE)) is None


@pytest.mark.parametrize("build_no", ["x", "+7", "7_0", "", "٧", "9" * 19])
def test_a_record_of_a_target_without_a_build_number_is_a_bad_line(
    path: Path, build_no: str
) -> None:
    write_run(path, [result(1), result(0, build_no=build_no), result(2)])
    line = 2 if path.suffix == ".jsonl" else 3  # after a header or "[" and one record
    with pytest.raises(InputError, match=rf"^{re.escape(str(path))}:{line}: build_no: "):
        load_report(path)


# -- round trip ----------------------------------------------------------------------------------


def varied_records() -> list[Result]:
    return [
        result(0),
        result(1, Outcome.NOT_STOPPED, detail="build had already ended"),
        result(
            2,
            Outcome.FAILED,
            http_status=None,
            attempts=5,
            elapsed_ms=None,
            detail='timeout, then "reset", then 停止失败',
        ),
        result(3, Outcome.REJECTED, http_status=400, error_code="CB.00060201", error_msg="a,b"),
        result(
            4,
            Outcome.INVALID,
            job_id=" ABC ",
            build_no="+3",
            http_status=None,
            attempts=0,
            started_at=None,
            finished_at=None,
            elapsed_ms=None,
            detail="job_id: must be 32 characters",
        ),
    ]


def test_every_format_round_trips_every_field(path: Path) -> None:
    records = varied_records()
    write_run(path, records, finalize=True)
    assert load_report(path).records == records


def test_json_report_is_valid_json_after_finalize(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    write_run(path, varied_records(), finalize=True)
    document = json.loads(path.read_text(encoding="utf-8"))
    assert [item["line"] for item in document] == [2, 3, 4, 5, 6]
    assert document[0]["started_at"] == "2026-11-28T12:00:00.123Z"
    assert document[2]["http_status"] is None


def test_the_maybe_applied_flag_survives_every_format(path: Path) -> None:
    records = [result(0, Outcome.ABORTED, attempts=0, maybe_applied=True), result(1)]
    write_run(path, records)
    assert [r.maybe_applied for r in load_report(path).records] == [True, False]
    if path.suffix == ".csv":
        rows = path.read_text(encoding="utf-8").splitlines()[1:]
        column = REPORT_FIELDS.index("maybe_applied")
        assert [row.split(",")[column] for row in rows] == ["true", "false"]


def test_csv_writes_none_as_empty_and_times_in_utc_with_z(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    eastern = timezone(timedelta(hours=-5))
    write_run(
        path,
        [result(0, http_status=None, started_at=datetime(2026, 1, 2, 7, 0, 0, 5000, eastern))],
    )
    header, row = path.read_text(encoding="utf-8").splitlines()
    assert header == ",".join(REPORT_FIELDS)
    values = dict(zip(REPORT_FIELDS, row.split(","), strict=True))
    assert values["http_status"] == ""
    assert values["started_at"] == "2026-01-02T12:00:00.005Z"
    assert values["outcome"] == "stopped"


def test_csv_replaces_line_breaks_in_text_by_spaces(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    write_run(path, [result(0, error_msg="a\r\nb\nc\rd"), result(1)])
    assert len(path.read_bytes().splitlines()) == 3
    assert load_report(path).records[0].error_msg == "a b c d"


@pytest.mark.parametrize("fmt_", FORMATS)
@settings(max_examples=25, deadline=None)
@given(text=st.text())
def test_any_text_survives_a_round_trip(fmt_: ReportFormat, text: str) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / f"r.{fmt_}"
        write_run(path, [result(0, error_msg=text, detail=text)])
        loaded = load_report(path).records[0]
    expected = encoding.NEWLINES.sub(" ", text) if fmt_ == "csv" else text
    assert (loaded.error_msg, loaded.detail) == (expected, expected)


def test_lone_surrogates_are_replaced_not_fatal(path: Path) -> None:
    write_run(path, [result(0, error_msg="bad \udc80 byte")])
    assert load_report(path).records[0].error_msg == "bad ? byte"


# -- spreadsheet formulas in CSV ---------------------------------------------------------------

#: OWASP's formula leads, and the apostrophe that escapes them.
FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")
TEXT_COLUMNS = ("job_id", "build_no", "error_code", "error_msg", "request_id", "detail")


def csv_rows(path: Path) -> list[dict[str, str]]:
    """The report's cells as a spreadsheet sees them (the stdlib reader, nothing of ours)."""
    with path.open(encoding="utf-8", newline="") as stream:
        return list(csv.DictReader(stream))


@pytest.mark.parametrize("column", TEXT_COLUMNS)
@pytest.mark.parametrize(
    "value", ['=HYPERLINK("https://evil.example","x")', "+1", "-2+3", "@SUM(A1)", "\tx", "'x"]
)
def test_a_csv_text_cell_that_would_run_as_a_formula_gets_one_leading_apostrophe(
    tmp_path: Path, column: str, value: str
) -> None:
    path = tmp_path / "r.csv"
    record = result(0, Outcome.INVALID, **{column: value})
    write_run(path, [record])

    [row] = csv_rows(path)
    assert row[column] == "'" + value
    assert load_report(path).records == [record]


def test_numbers_in_csv_stay_numbers_even_when_negative(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    write_run(path, [result(0, elapsed_ms=-5)])

    [row] = csv_rows(path)
    assert (row["elapsed_ms"], row["line"]) == ("-5", "2")
    assert load_report(path).records[0].elapsed_ms == -5


@pytest.mark.parametrize("fmt_", ["jsonl", "json"])
def test_json_reports_hold_formula_like_text_as_it_is(tmp_path: Path, fmt_: ReportFormat) -> None:
    path = tmp_path / f"r.{fmt_}"
    write_run(path, [result(0, error_msg="=1+1")])

    assert '"error_msg":"=1+1"' in path.read_text(encoding="utf-8")


@settings(max_examples=60, deadline=None)
@given(
    text=st.one_of(
        st.text(),
        st.builds(operator.add, st.sampled_from([*FORMULA_LEADS, "'"]), st.text()),
    )
)
def test_csv_text_cells_never_start_a_formula_and_read_back_unchanged(text: str) -> None:
    fields = {name: text for name in ("error_code", "error_msg", "request_id", "detail")}
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "r.csv"
        write_run(path, [result(0, **fields)])
        [row] = csv_rows(path)
        loaded = load_report(path).records[0]

    expected = encoding.NEWLINES.sub(" ", text)  # line breaks become spaces, as before
    escaped = "'" + expected if expected.startswith((*FORMULA_LEADS, "'")) else expected
    for name in fields:
        assert not row[name].startswith(FORMULA_LEADS)
        assert row[name] == escaped
        assert getattr(loaded, name) == expected


_CELL_TEXT = st.text(alphabet=st.sampled_from(list("aZ09 -_.:;/'=+@,\"\t\r\né€")), max_size=6)


@settings(max_examples=300, deadline=None)
@given(
    texts=st.tuples(*[_CELL_TEXT] * 6),
    http_status=st.one_of(st.none(), st.integers(-1, 600)),
    elapsed_ms=st.one_of(st.none(), st.integers(-5, 10**7)),
    flag=st.booleans(),
    run=st.one_of(st.none(), st.integers(1, 99)),
)
def test_the_plain_csv_line_is_the_csv_writers_line_whenever_it_is_taken(
    texts: tuple[str, ...],
    http_status: int | None,
    elapsed_ms: int | None,
    flag: bool,
    run: int | None,
) -> None:
    error_code, error_msg, request_id, detail, verified, build_status = texts
    record = result(
        0,
        http_status=http_status,
        error_code=error_code,
        error_msg=error_msg,
        request_id=request_id,
        detail=detail,
        elapsed_ms=elapsed_ms,
        maybe_applied=flag,
        verified=verified,
        build_status=build_status,
    )
    plain = encoding._plain_csv_line(record, run)
    by_csv_writer = encoding.LineEncoder("csv")._csv_line(encoding._csv_cells(record, run))
    if plain is not None:
        assert plain.encode() == by_csv_writer
    encoder = encoding.LineEncoder("csv")
    encoder.add(record, run=run)
    encoder.add(record, run=run)
    assert encoder.take() == by_csv_writer * 2
    assert encoding.LineEncoder("csv").bare(record, run=run) == by_csv_writer


def test_a_run_s_usual_record_takes_the_plain_csv_line() -> None:
    record = result(0)
    plain = encoding._plain_csv_line(record, None)
    assert plain is not None
    assert plain.encode() == encoding.LineEncoder("csv")._csv_line(
        encoding._csv_cells(record, None)
    )


def test_writer_stamps_its_run_on_every_record(path: Path) -> None:
    write_run(path, [result(0, run=1)], run=3)
    assert [r.run for r in load_report(path).records] == [3]


# -- crashes and torn lines ----------------------------------------------------------------------


def test_json_report_closed_without_finalize_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    write_run(path, [result(0), result(1)])
    with pytest.raises(ValueError, match="Expecting"):
        json.loads(path.read_text(encoding="utf-8"))
    assert load_report(path).records == [result(0), result(1)]


@pytest.mark.parametrize("where", [0.0, 0.5, 1.0], ids=["first-byte", "middle", "no-newline"])
def test_torn_last_line_is_dropped(path: Path, where: float) -> None:
    write_run(path, [result(0), result(1), result(2)])
    data = path.read_bytes()
    start = last_line_start(data)
    cut = start + 1 + int((len(data) - 2 - start) * where)
    path.write_bytes(data[:cut])
    loaded = load_report(path)
    assert loaded.records == [result(0), result(1)]
    assert loaded.torn_line == data[:start].count(b"\n") + 1


def test_unparsable_complete_last_line_is_dropped(path: Path) -> None:
    write_run(path, [result(0), result(1)])
    with path.open("ab") as f:
        f.write(b"\x00\x00garbage\n")
    loaded = load_report(path)
    assert loaded.records == [result(0), result(1)]
    assert loaded.torn_line is not None


def test_bad_line_in_the_middle_is_an_input_error_naming_file_and_line(path: Path) -> None:
    write_run(path, [result(0), result(1)])
    data = path.read_bytes()
    start = last_line_start(data)
    path.write_bytes(data[:start] + b"garbage\n" + data[start:])
    line = data[:start].count(b"\n") + 1
    with pytest.raises(InputError, match=rf"^{re.escape(str(path))}:{line}: "):
        load_report(path)


def test_report_saved_again_with_crlf_and_bom_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    write_run(path, [result(0), result(1)])
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", b"\r\n"))
    assert load_report(path).records == [result(0), result(1)]


# -- what is not a report ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("targets.csv", "job_id,build_no\nabc,1\n", "missing columns line, outcome"),
        ("targets.csv", "job_id,build_no", "line 1 is neither a header nor a record"),
        (
            "targets.jsonl",
            '{"job_id": "abc", "build_no": 1}\n',
            "line 1: line: missing; outcome: missing",
        ),
        (
            "targets.jsonl",
            '{"job_id": "abc", "build_no": 1}',
            "line 1 is neither a header nor a record",
        ),
        ("targets.json", '[{"job_id": "abc", "build_no": 1}]\n', "line 1 is not '\\[' alone"),
    ],
)
def test_a_file_that_is_not_a_report_is_refused(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ReportMismatchError, match=rf"{name} is not a bulkstop report: {message}"):
        load_report(path)


def test_resuming_into_a_file_that_is_not_a_report_leaves_it_untouched(tmp_path: Path) -> None:
    path = tmp_path / "targets.jsonl"
    path.write_text('{"job_id": "abc", "build_no": 1}', encoding="utf-8")
    with pytest.raises(ReportMismatchError):
        ReportWriter(path, run=2, append=True)
    assert path.read_text(encoding="utf-8") == '{"job_id": "abc", "build_no": 1}'


def test_unknown_columns_are_ignored_and_missing_ones_default(tmp_path: Path) -> None:
    csv_path = tmp_path / "old.csv"
    csv_path.write_text(f"line,job_id,build_no,outcome,future\n2,{job(0)},1,stopped,x\n")
    jsonl_path = tmp_path / "old.jsonl"
    jsonl_path.write_text(
        json.dumps({"line": 2, "job_id": job(0), "build_no": "1", "outcome": "stopped", "f": 1})
        + "\n"
    )
    for path in (csv_path, jsonl_path):
        (loaded,) = load_report(path).records
        assert (loaded.line, loaded.job_id, loaded.outcome) == (2, job(0), Outcome.STOPPED)
        assert (loaded.run, loaded.detail, loaded.http_status) == (1, "", None)


def test_missing_report_is_an_input_error_unless_missing_ok(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    with pytest.raises(InputError, match=r"nope\.csv does not exist"):
        load_report(path)
    loaded = load_report(path, missing_ok=True)
    assert (loaded.records, loaded.in_flight, loaded.last_run) == ([], frozenset(), 0)


# -- resume state --------------------------------------------------------------------------------


def test_loaded_report_keeps_every_record_and_each_targets_latest(path: Path) -> None:
    write_run(path, [result(0), result(1, Outcome.FAILED), result(2, Outcome.ABORTED)])
    write_run(path, [result(2, Outcome.UNAUTHORIZED, http_status=401)], run=2, append=True)
    loaded = load_report(path)
    assert len(loaded.records) == 4
    assert {k: r.outcome for k, r in loaded.latest.items()} == {
        key(0): Outcome.STOPPED,
        key(1): Outcome.FAILED,
        key(2): Outcome.UNAUTHORIZED,
    }
    assert loaded.last_run == 2


def test_invalid_and_duplicate_records_are_not_keyed(path: Path) -> None:
    write_run(path, [result(0), result(0, Outcome.DUPLICATE, line=9), result(5, Outcome.INVALID)])
    loaded = load_report(path)
    assert len(loaded.records) == 3
    assert set(loaded.latest) == {key(0)}
    assert loaded.latest[key(0)].line == 2


def test_attempted_targets_without_a_record_are_in_flight(path: Path) -> None:
    write_run(path, [result(0)], attempting=[0, 1, 2])
    loaded = load_report(path)
    assert loaded.in_flight == {key(1), key(2)}


def test_in_flight_marker_is_cleared_by_a_later_run_record(path: Path) -> None:
    write_run(path, [], attempting=[0, 1])
    write_run(path, [result(0)], run=2, append=True)
    loaded = load_report(path)
    assert loaded.in_flight == {key(1)}
    assert loaded.last_run == 2


def test_torn_sidecar_line_is_dropped_and_cut_before_appending(path: Path) -> None:
    write_run(path, [], attempting=[0])
    sidecar = inflight_path(path)
    with sidecar.open("ab") as f:
        f.write(b'{"run":1,"li')
    assert load_report(path).in_flight == {key(0)}
    write_run(path, [], run=2, append=True, attempting=[1])
    assert load_report(path).in_flight == {key(0), key(1)}


def test_finalize_removes_the_sidecar(path: Path) -> None:
    write_run(path, [result(0)], attempting=[0], finalize=True)
    assert not inflight_path(path).exists()


# -- finalize ------------------------------------------------------------------------------------


def test_finalize_after_resume_keeps_one_record_per_row(path: Path) -> None:
    invalid = {"job_id": "bad", "build_no": "x", "http_status": None, "attempts": 0}
    write_run(
        path,
        [
            result(0),
            result(1, Outcome.FAILED, http_status=503),
            result(2, Outcome.ABORTED, attempts=0),
            result(3, Outcome.INVALID, **invalid),
            result(4, Outcome.NOT_STOPPED),
        ],
        finalize=True,
    )
    carried = CarriedRecords.load(path, retry_failed=False)
    assert [i for i in range(5) if carried.get(key(i), i + 2)] == [0, 1, 4]
    rerun = [result(2), result(3, Outcome.INVALID, **invalid)]
    writer = ReportWriter(path, run=2, append=True, carried=carried)
    for record in rerun:
        writer.write(record)
    writer.finalize()
    records = load_report(path).records
    assert records[:3] == [
        result(0),
        result(1, Outcome.FAILED, http_status=503),
        result(4, Outcome.NOT_STOPPED),
    ]
    assert [(r.line, r.outcome, r.run) for r in records] == [
        (2, Outcome.STOPPED, 1),
        (3, Outcome.FAILED, 1),
        (6, Outcome.NOT_STOPPED, 1),
        (4, Outcome.STOPPED, 2),
        (5, Outcome.INVALID, 2),
    ]


def test_finalize_drops_records_superseded_in_crashed_runs(path: Path) -> None:
    write_run(path, [result(0), result(1, Outcome.ABORTED, attempts=0)])
    write_run(path, [result(1, Outcome.FAILED, http_status=503)], run=2, append=True)
    write_run(path, [result(1)], run=3, append=True, finalize=True)
    assert [(r.line, r.run) for r in load_report(path).records] == [(2, 1), (3, 3)]


def test_finalize_of_a_first_run_does_not_rewrite(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_compaction(*args: object) -> None:
        raise AssertionError("a first run needs no compaction")

    monkeypatch.setattr(compaction, "compact", no_compaction)  # where the writer finds it
    write_run(path, [result(0), result(1)], attempting=[0, 1], finalize=True)
    assert len(load_report(path).records) == 2


def test_json_report_reopened_and_finalized_again_is_valid_json(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    write_run(path, [result(0), result(1, Outcome.ABORTED, attempts=0)], finalize=True)
    write_run(path, [result(1), result(2)], run=2, append=True, finalize=True)
    assert [(item["line"], item["run"]) for item in json.loads(path.read_text())] == [
        (2, 1),
        (3, 2),
        (4, 2),
    ]


def test_compaction_keeps_the_report_permissions(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    write_run(path, [result(0)])
    path.chmod(0o640)
    write_run(path, [result(1)], run=2, append=True, finalize=True)
    assert path.stat().st_mode & 0o777 == 0o640


# -- appending -----------------------------------------------------------------------------------


def test_appending_after_a_torn_line_starts_on_a_fresh_line(path: Path) -> None:
    write_run(path, [result(0), result(1)])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 5])
    write_run(path, [result(1)], run=2, append=True)
    loaded = load_report(path)
    assert [(r.line, r.run) for r in loaded.records] == [(2, 1), (3, 2)]
    assert loaded.torn_line is None


def test_appending_after_a_torn_header_writes_the_header_again(path: Path) -> None:
    path.write_bytes({"csv": b"line,job_i", "jsonl": b'{"li', "json": b"["}[path.suffix[1:]])
    write_run(path, [result(0)], run=2, append=True)
    assert [(r.line, r.run) for r in load_report(path).records] == [(2, 2)]


def test_appending_to_a_csv_with_other_columns_rewrites_it_first(tmp_path: Path) -> None:
    path = tmp_path / "old.csv"
    path.write_text(f"line,job_id,build_no,outcome\n2,{job(0)},1,aborted\n3,{job(1)},2,stopped\n")
    write_run(path, [result(0)], run=2, append=True)
    assert path.read_text().splitlines()[0] == ",".join(REPORT_FIELDS)
    assert [(r.line, r.outcome, r.run) for r in load_report(path).records] == [
        (2, Outcome.ABORTED, 1),
        (3, Outcome.STOPPED, 1),
        (2, Outcome.STOPPED, 2),
    ]


def test_appending_to_a_missing_report_starts_it(path: Path) -> None:
    write_run(path, [result(0)], run=1, append=True, finalize=True)
    assert load_report(path).records == [result(0)]


# -- opening -------------------------------------------------------------------------------------


def test_report_in_a_missing_directory_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "r.csv"
    with pytest.raises(UsageError, match=r"cannot write the report .*missing.*does not exist"):
        ReportWriter(path)


def test_existing_report_is_not_overwritten_without_asking(path: Path) -> None:
    write_run(path, [result(0)], attempting=[0])
    with pytest.raises(UsageError, match="already exists; continue it with --resume"):
        ReportWriter(path)
    writer = ReportWriter(path, overwrite=True)
    writer.write(result(1))
    writer.finalize()
    assert load_report(path).records == [result(1)]
    assert not inflight_path(path).exists()


def test_writing_after_close_is_refused(path: Path) -> None:
    writer = ReportWriter(path)
    writer.close()
    with pytest.raises(ValueError, match="closed"):
        writer.write(result(0))


def test_clean_exit_of_the_context_finalizes(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    with ReportWriter(path) as writer:
        writer.attempting(2, job(0), 1)
        writer.write(result(0))
    assert len(json.loads(path.read_text())) == 1
    assert not inflight_path(path).exists()


def test_exception_in_the_context_leaves_a_resumable_journal(tmp_path: Path) -> None:
    path = tmp_path / "r.json"

    def run_that_fails(writer: ReportWriter) -> None:
        with writer:
            writer.attempting(2, job(0), 1)
            raise RuntimeError("engine failed")

    with pytest.raises(RuntimeError, match="engine failed"):
        run_that_fails(ReportWriter(path))
    assert not path.read_text().rstrip().endswith("]")
    assert load_report(path).in_flight == {key(0)}


# -- carried records at another line -------------------------------------------------------------


def test_a_carried_record_at_another_line_is_kept_at_that_line(path: Path) -> None:
    write_run(path, [result(0), result(1)], finalize=True)  # lines 2 and 3
    carried = CarriedRecords.load(path, retry_failed=False)
    writer = ReportWriter(path, run=2, append=True, carried=carried)

    for i, line in ((0, 3), (1, 2)):  # the resumed input holds the two swapped
        handed_out = carried.get(key(i), line)
        assert handed_out is not None
        writer.write(handed_out)
    writer.finalize()

    records = load_report(path).records
    assert sorted((r.line, record_key(r), r.run) for r in records) == [
        (2, key(1), 1),
        (3, key(0), 1),
    ]
    assert [r._replace(line=0) for r in records] == [result(i, line=0) for i in (0, 1)]


def test_a_carried_record_at_its_own_line_is_not_written_again(path: Path) -> None:
    write_run(path, [result(0), result(1)], finalize=True)
    carried = CarriedRecords.load(path, retry_failed=False)
    writer = ReportWriter(path, run=2, append=True, carried=carried)

    handed_out = carried.get(key(0), 2)
    assert handed_out is not None
    writer.write(handed_out)
    writer.close()

    assert load_report(path).records == [result(0), result(1)]  # closed: not compacted


# -- the files of a report: owner only, never through a link, one process at a time ---------------


@pytest.fixture
def no_umask() -> Iterator[None]:
    """A umask of 0, so that a mode seen is the mode bulkstop asked for."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def _new_report(path: Path) -> Path:
    ReportWriter(path).close()
    return path


def _sidecar(path: Path) -> Path:
    writer = ReportWriter(path)
    writer.attempting(2, job(0), 1)
    writer.close()
    return inflight_path(path)


def _overwritten_report(path: Path) -> Path:
    path.write_text("an old report\n")
    path.chmod(0o644)
    ReportWriter(path, overwrite=True).close()
    return path


def _report_a_resume_starts(path: Path) -> Path:
    ReportWriter(path, append=True).close()
    return path


@pytest.mark.usefixtures("no_umask")
@pytest.mark.parametrize(
    "make",
    [_new_report, _sidecar, _overwritten_report, _report_a_resume_starts],
    ids=["report", "sidecar", "overwritten-report", "report-started-by-resume"],
)
def test_report_files_are_created_readable_by_the_owner_only(
    path: Path, make: Callable[[Path], Path]
) -> None:
    assert make(path).stat().st_mode & 0o777 == 0o600


@pytest.mark.usefixtures("no_umask")
def test_lock_file_is_readable_by_the_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    with ReportLock.acquire(path):
        assert lock_path(path).stat().st_mode & 0o777 == 0o600


VICTIM = b"someone else's file, not a report"


def _link_report(path: Path, victim: Path) -> None:
    path.symlink_to(victim)


def _link_sidecar(path: Path, victim: Path) -> None:
    write_run(path, [result(0)])  # a run that died: its sidecar is kept
    inflight_path(path).unlink(missing_ok=True)
    inflight_path(path).symlink_to(victim)


def _link_lock(path: Path, victim: Path) -> None:
    lock_path(path).symlink_to(victim)


@pytest.mark.parametrize(
    ("plant", "options", "named"),
    [
        (_link_report, {"overwrite": True}, "the report"),
        (_link_report, {"append": True}, "the report"),
        (_link_sidecar, {"append": True, "run": 2}, "the in-flight sidecar"),
        (_link_lock, {}, "the lock file"),
    ],
    ids=["report-overwrite", "report-append", "sidecar-append", "lock"],
)
def test_writer_refuses_a_symlink_where_a_report_file_belongs(
    path: Path,
    plant: Callable[[Path, Path], None],
    options: dict[str, Any],
    named: str,
) -> None:
    victim = path.with_name("victim.txt")
    victim.write_bytes(VICTIM)
    plant(path, victim)

    with pytest.raises(UsageError, match=rf"^{named} .* is a symbolic link; bulkstop never"):
        ReportWriter(path, **options)

    assert victim.read_bytes() == VICTIM


def test_opening_a_report_removes_only_the_temp_files_of_its_compactions(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    write_run(path, [result(0)])
    leftover = tmp_path / ".r.csv.k2x_9abc.tmp"  # what a compaction killed mid-way leaves
    leftover.write_text("half a report")
    victim = tmp_path / "victim.txt"
    victim.write_bytes(VICTIM)
    kept = {
        ".r.csv.linked01.tmp": lambda p: p.symlink_to(victim),
        ".r.csv.notes.txt": lambda p: p.write_text("mine"),
        ".other.csv.k2x_9abc.tmp": lambda p: p.write_text("another report's"),
        ".r.csv.dir00000.tmp": lambda p: p.mkdir(),
    }
    for name, make in kept.items():
        make(tmp_path / name)

    ReportWriter(path, run=2, append=True).close()

    assert not os.path.lexists(leftover)
    assert {name for name in kept if os.path.lexists(tmp_path / name)} == set(kept)
    assert victim.read_bytes() == VICTIM


@pytest.mark.parametrize("second", [ReportLock.acquire, ReportWriter], ids=["lock", "writer"])
def test_a_locked_report_refuses_another_holder_naming_the_first(
    path: Path, second: Callable[[Path], object]
) -> None:
    with ReportLock.acquire(path):
        with pytest.raises(UsageError) as caught:
            second(path)

    message = str(caught.value)
    assert f"the report {path} is in use by process {os.getpid()} on {socket.gethostname()}" in (
        message
    )
    assert "\n" not in message


def test_lock_file_left_by_a_dead_process_blocks_nothing(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    stale = json.dumps({"pid": 4_194_303, "host": socket.gethostname(), "since": "then"})
    lock_path(path).write_text(stale)  # its process was killed: the OS dropped its lock

    with ReportLock.acquire(path) as lock:
        assert lock.held
        assert json.loads(lock_path(path).read_text())["pid"] == os.getpid()

    assert not lock_path(path).exists()


def _closed(writer: ReportWriter) -> None:
    writer.close()


def _finalized(writer: ReportWriter) -> None:
    writer.finalize()


@pytest.mark.parametrize("end", [_closed, _finalized], ids=["close", "finalize"])
def test_writer_holds_its_own_lock_until_it_ends(
    path: Path, end: Callable[[ReportWriter], None]
) -> None:
    writer = ReportWriter(path)
    with pytest.raises(UsageError, match="is in use by"):
        ReportLock.acquire(path)

    end(writer)

    ReportLock.acquire(path).release()
    assert not lock_path(path).exists()


def test_writer_that_cannot_open_releases_its_lock(path: Path) -> None:
    write_run(path, [result(0)])
    with pytest.raises(UsageError, match="already exists"):
        ReportWriter(path)
    ReportLock.acquire(path).release()


def test_writer_leaves_a_lock_it_was_given_to_its_holder(path: Path) -> None:
    write_run(path, [result(0)])
    with ReportLock.acquire(path) as lock:
        ReportWriter(path, run=2, append=True, lock=lock).finalize()
        assert lock.held
        with pytest.raises(UsageError, match="is in use by"):
            ReportLock.acquire(path)


# -- fsync cadence -------------------------------------------------------------------------------


@dataclass
class Fsyncs:
    """Every fsync as (inode, time on ``clock``); the writer under test reads ``clock`` too."""

    clock: FakeClock = field(default_factory=FakeClock)
    calls: list[tuple[int, float]] = field(default_factory=list)

    def times(self, path: Path) -> list[float]:
        inode = path.stat().st_ino
        return [at for ino, at in self.calls if ino == inode]

    def writer(self, path: Path, **kwargs: Any) -> ReportWriter:
        return ReportWriter(path, now=self.clock.now, **kwargs)


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> Fsyncs:
    recorded = Fsyncs()

    def fake_fsync(fd: int) -> None:
        recorded.calls.append((os.fstat(fd).st_ino, recorded.clock.now()))

    monkeypatch.setattr(os, "fsync", fake_fsync)
    return recorded


def test_fsync_every_n_lines_and_at_close(tmp_path: Path, fsyncs: Fsyncs) -> None:
    path = tmp_path / "r.csv"
    writer = fsyncs.writer(path, fsync_every=3)
    for i in range(7):
        writer.write(result(i))
    assert len(fsyncs.times(path)) == 2
    writer.close()
    assert len(fsyncs.times(path)) == 3


def test_fsync_when_a_line_comes_an_interval_after_the_last_sync(
    tmp_path: Path, fsyncs: Fsyncs
) -> None:
    path = tmp_path / "r.csv"
    writer = fsyncs.writer(path, fsync_interval=1.0)
    for i, step in enumerate([0.0, 0.5, 0.5, 0.75, 0.25]):
        fsyncs.clock.advance(step)
        writer.write(result(i))
    assert fsyncs.times(path) == [1.0, 2.0]
    fsyncs.clock.advance(0.5)
    writer.write(result(5))
    writer.close()
    assert fsyncs.times(path) == [1.0, 2.0, 2.5]


def test_markers_count_as_lines_and_the_sidecar_is_synced_too(
    tmp_path: Path, fsyncs: Fsyncs
) -> None:
    path = tmp_path / "r.csv"
    writer = fsyncs.writer(path, fsync_every=3)
    writer.attempting(2, job(0), 1)
    writer.attempting(3, job(1), 2)
    writer.write(result(0))
    assert len(fsyncs.times(path)) == 1
    assert len(fsyncs.times(inflight_path(path))) == 1
    writer.close()
    assert len(fsyncs.times(path)) == 1
    assert len(fsyncs.times(inflight_path(path))) == 1


def test_a_batch_of_markers_reaches_the_os_at_once_and_counts_each_line(
    tmp_path: Path, fsyncs: Fsyncs
) -> None:
    path = tmp_path / "r.csv"
    writer = fsyncs.writer(path, fsync_every=4)
    writer.attempting_many([(2, job(0), 1), (3, job(1), 2), (4, job(2), 3)])
    # in the sidecar before the call returns, as attempting's marker is
    assert [m.key for m in MarkerReader(inflight_path(path))] == [key(0), key(1), key(2)]
    assert fsyncs.times(inflight_path(path)) == []  # three lines of four
    writer.attempting(5, job(3), 4)
    assert len(fsyncs.times(inflight_path(path))) == 1
    writer.close()
    assert load_report(path).in_flight == {key(0), key(1), key(2), key(3)}


def test_close_after_flush_has_nothing_to_fsync(tmp_path: Path, fsyncs: Fsyncs) -> None:
    path = tmp_path / "r.csv"
    writer = fsyncs.writer(path)
    writer.write(result(0))
    writer.flush()
    writer.close()
    assert len(fsyncs.times(path)) == 1


def test_records_reach_the_os_before_any_fsync(tmp_path: Path, fsyncs: Fsyncs) -> None:
    path = tmp_path / "r.csv"
    writer = fsyncs.writer(path)
    writer.write(result(0))
    writer.write(result(1))
    assert fsyncs.times(path) == []
    assert load_report(path).records == [result(0), result(1)]
    writer.close()


# -- flush cadence: records wait a few milliseconds, markers none ----------------------------------


@dataclass
class Timers:
    """A ``call_later`` that keeps its callbacks until the test fires them."""

    delays: list[float] = field(default_factory=list)
    callbacks: list[Callable[[], None]] = field(default_factory=list)

    def __call__(self, delay: float, callback: Callable[[], None]) -> None:
        self.delays.append(delay)
        self.callbacks.append(callback)

    def fire(self) -> None:
        callbacks, self.callbacks = self.callbacks, []
        for callback in callbacks:
            callback()


def on_disk(path: Path) -> list[Result]:
    """The records that reached the OS (another reader sees them)."""
    return load_report(path).records


def test_records_wait_in_memory_until_the_flush_timer_fires(path: Path) -> None:
    timers = Timers()
    writer = ReportWriter(path, call_later=timers)
    writer.write(result(0))
    writer.write(result(1))
    assert on_disk(path) == []
    assert timers.delays == [0.005]  # one timer for the batch

    timers.fire()

    assert on_disk(path) == [result(0), result(1)]
    writer.close()


def test_records_reach_the_os_once_flush_every_wait(path: Path) -> None:
    writer = ReportWriter(path, call_later=Timers(), flush_every=3)
    writer.write(result(0))
    writer.write(result(1))
    assert on_disk(path) == []
    writer.write(result(2))
    assert on_disk(path) == [result(0), result(1), result(2)]
    writer.close()


def test_a_record_written_flush_interval_after_the_first_flushes_both(path: Path) -> None:
    clock = FakeClock()
    writer = ReportWriter(path, call_later=Timers(), now=clock.now, flush_interval=0.005)
    writer.write(result(0))
    clock.advance(0.004)
    writer.write(result(1))
    assert on_disk(path) == []
    clock.advance(0.001)
    writer.write(result(2))
    assert on_disk(path) == [result(0), result(1), result(2)]
    writer.close()


def test_a_timer_due_for_an_earlier_batch_flushes_the_next_one(path: Path) -> None:
    timers = Timers()
    writer = ReportWriter(path, call_later=timers, flush_every=2)
    writer.write(result(0))
    writer.write(result(1))  # flushed by count; the timer of this batch is still due
    writer.write(result(2))
    assert (on_disk(path), len(timers.delays)) == ([result(0), result(1)], 1)

    timers.fire()  # within the interval of result(2) too: it was due sooner

    assert on_disk(path) == [result(0), result(1), result(2)]
    writer.close()


def test_without_a_flush_interval_every_record_goes_at_once(path: Path) -> None:
    timers = Timers()
    writer = ReportWriter(path, call_later=timers, flush_interval=0)
    writer.write(result(0))
    assert (on_disk(path), timers.delays) == ([result(0)], [])
    writer.close()


def test_a_marker_reaches_the_os_at_once_while_records_wait(path: Path) -> None:
    writer = ReportWriter(path, call_later=Timers())
    writer.attempting(2, job(0), 1)
    writer.write(result(0))
    writer.attempting(3, job(1), 2)
    loaded = load_report(path)
    assert (loaded.records, loaded.in_flight) == ([], {key(0), key(1)})
    writer.close()


@pytest.mark.parametrize("end", ["flush", "close", "finalize"])
def test_records_waiting_in_memory_reach_the_file_when_the_writer_ends(
    path: Path, end: str
) -> None:
    writer = ReportWriter(path, call_later=Timers())
    writer.write(result(0))
    getattr(writer, end)()
    assert on_disk(path) == [result(0)]
    if end == "flush":
        writer.close()


def test_a_failed_timed_flush_is_raised_by_the_next_call_and_loses_nothing(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    timers = Timers()
    writer = ReportWriter(path, call_later=timers)
    writer.write(result(0))
    real = writing._written

    def disk_full(stream: Any, data: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writing, "_written", disk_full)
    timers.fire()  # the event loop's callback: nothing to raise it to
    with pytest.raises(OSError, match="No space left"):
        writer.write(result(1))

    monkeypatch.setattr(writing, "_written", real)  # room again
    writer.close()
    assert on_disk(path) == [result(0)]


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text for this value")


def test_a_record_that_cannot_be_encoded_is_raised_and_its_batch_is_written(path: Path) -> None:
    timers = Timers()
    writer = ReportWriter(path, call_later=timers)
    writer.write(result(0))
    writer.write(result(1, detail=_Unprintable()))
    writer.write(result(2))
    timers.fire()  # the batch is encoded here: nothing to raise it to
    with pytest.raises(RuntimeError, match="no text for this value"):
        writer.write(result(3))
    writer.write(result(4))  # the writer goes on
    writer.close()
    assert on_disk(path) == [result(0), result(2), result(4)]


def test_a_record_that_cannot_be_encoded_is_raised_by_the_flush_that_met_it(path: Path) -> None:
    writer = ReportWriter(path, call_later=Timers())
    writer.write(result(0, error_msg=_Unprintable()))
    writer.write(result(1))
    with pytest.raises(RuntimeError, match="no text for this value"):
        writer.flush()
    writer.finalize()
    assert on_disk(path) == [result(1)]


@pytest.mark.anyio
async def test_inside_an_event_loop_records_are_batched_by_default(path: Path) -> None:
    writer = ReportWriter(path)
    writer.write(result(0))
    assert on_disk(path) == []
    writer.flush()
    assert on_disk(path) == [result(0)]
    writer.close()


# -- the bytes of a line -------------------------------------------------------------------------

GOLDEN = Result(
    line=7,
    job_id=job(1),
    build_no="2",
    outcome=Outcome.NOT_STOPPED,
    http_status=None,
    error_code="CB.1",
    error_msg='said "no", then -1',
    request_id="r,1",
    attempts=2,
    started_at=datetime(2026, 11, 28, 12, 0, 0, 999999, tzinfo=UTC),
    finished_at=datetime(2026, 11, 28, 7, 0, 1, 5000, tzinfo=timezone(timedelta(hours=-5))),
    elapsed_ms=1006,
    detail="",
    maybe_applied=True,
    run=3,
    verified="ended",
    build_status="=ABORTED",
)


#: Values of other types than their columns': each written as the generic way writes it.
ODD = GOLDEN._replace(
    line=True, build_no=2, outcome="stopped", http_status=200.0, attempts=False, detail=3
)


@pytest.mark.parametrize(
    ("record", "fmt_", "line"),
    [
        (
            GOLDEN,
            "csv",
            f'7,{job(1)},2,not_stopped,,CB.1,"said ""no"", then -1","r,1",2,'
            "2026-11-28T12:00:00.999Z,2026-11-28T12:00:01.005Z,1006,,true,3,ended,'=ABORTED\n",
        ),
        (
            GOLDEN,
            "jsonl",
            f'{{"line":7,"job_id":"{job(1)}","build_no":"2","outcome":"not_stopped",'
            '"http_status":null,"error_code":"CB.1","error_msg":"said \\"no\\", then -1",'
            '"request_id":"r,1","attempts":2,"started_at":"2026-11-28T12:00:00.999Z",'
            '"finished_at":"2026-11-28T12:00:01.005Z","elapsed_ms":1006,"detail":"",'
            '"maybe_applied":true,"run":3,"verified":"ended","build_status":"=ABORTED"}\n',
        ),
        (
            ODD,
            "csv",
            f'true,{job(1)},2,stopped,200.0,CB.1,"said ""no"", then -1","r,1",false,'
            "2026-11-28T12:00:00.999Z,2026-11-28T12:00:01.005Z,1006,3,true,3,ended,'=ABORTED\n",
        ),
        (
            ODD,
            "jsonl",
            f'{{"line":true,"job_id":"{job(1)}","build_no":2,"outcome":"stopped",'
            '"http_status":200.0,"error_code":"CB.1","error_msg":"said \\"no\\", then -1",'
            '"request_id":"r,1","attempts":false,"started_at":"2026-11-28T12:00:00.999Z",'
            '"finished_at":"2026-11-28T12:00:01.005Z","elapsed_ms":1006,"detail":3,'
            '"maybe_applied":true,"run":3,"verified":"ended","build_status":"=ABORTED"}\n',
        ),
    ],
    ids=["csv", "jsonl", "csv-other-types", "jsonl-other-types"],
)
def test_a_record_is_written_as_these_bytes(record: Result, fmt_: ReportFormat, line: str) -> None:
    assert encoding.LineEncoder(fmt_).bare(record) == line.encode()


@pytest.mark.parametrize(
    ("job_id", "line"),
    [
        (job(1), f'{{"run":2,"line":7,"job_id":"{job(1)}","build_no":20}}\n'),
        ('a "quoted" id', '{"run":2,"line":7,"job_id":"a \\"quoted\\" id","build_no":20}\n'),
    ],
    ids=["job-id", "other-text"],
)
def test_a_marker_is_written_as_these_bytes(tmp_path: Path, job_id: str, line: str) -> None:
    path = tmp_path / "r.csv"
    writer = ReportWriter(path, run=2)
    writer.attempting(7, job_id, 20)
    assert inflight_path(path).read_bytes() == line.encode()
    assert load_report(path).in_flight == {TargetKey(job_id, 20)}
    writer.close()


def test_every_exported_name_exists() -> None:
    assert [name for name in report.__all__ if not hasattr(report, name)] == []
