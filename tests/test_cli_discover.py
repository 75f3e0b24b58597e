"""``bulkstop discover``'s parsing and output, and the report's verification columns."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from bulkstop.buildlist import BUILD_COLUMNS, BuildListWriter, build_list_format
from bulkstop.cli import main
from bulkstop.cli.discover import selection_query
from bulkstop.cli.options import DEFAULT_READ_RATE
from bulkstop.discover import DiscoveredBuild
from bulkstop.errors import UsageError
from bulkstop.models import Outcome, Result, TargetKey
from bulkstop.reader import DEFAULT_READ_RATE as READER_RATE
from bulkstop.report import ReportLock, ReportWriter, load_report, open_resume
from bulkstop.report.verdicts import VerdictJournal, was_sent, with_verdict
from bulkstop.sources import open_source

JOB = "f9d6c8466d614a9788e9a0acf6c15f46"
OTHER = "0123456789abcdef0123456789abcdef"


def query(**given: object) -> object:
    defaults: dict[str, object] = dict(
        project=None, jobs=(), jobs_file=None, all_jobs=False, since="24h",
        running_longer_than=None, branch=None, commit=None, trigger=None, executor=None,
    )  # fmt: skip
    defaults.update(given)
    return selection_query(**defaults)  # type: ignore[arg-type]


def test_no_selection_is_a_usage_error_naming_the_options() -> None:
    with pytest.raises(click.UsageError, match="--project, --job, --jobs-file or --all"):
        query()


def test_two_selections_are_a_usage_error_naming_both() -> None:
    with pytest.raises(click.UsageError, match=r"got --job, --all"):
        query(jobs=(JOB,), all_jobs=True)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("90s", timedelta(seconds=90)), ("45m", timedelta(minutes=45)), ("6h", timedelta(hours=6)),
     ("2d", timedelta(days=2))],
)  # fmt: skip
def test_since_takes_a_duration(text: str, expected: timedelta) -> None:
    assert query(all_jobs=True, since=text).since == expected  # type: ignore[attr-defined]


def test_since_takes_a_time_with_a_zone() -> None:
    found = query(all_jobs=True, since="2026-11-28T08:00:00+08:00")
    assert found.since == datetime(2026, 11, 28, 0, 0, tzinfo=UTC)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("given", "option"),
    [({"since": "yesterday"}, "--since"), ({"running_longer_than": "2x"}, "--running-longer-than"),
     ({"since": "2026-11-28T08:00:00"}, "--since")],
)  # fmt: skip
def test_a_bad_duration_names_its_option(given: dict[str, str], option: str) -> None:
    with pytest.raises(click.BadParameter) as caught:
        query(all_jobs=True, **given)
    assert caught.value.param_hint == option


def test_a_since_time_in_the_future_is_refused_instead_of_listing_nothing() -> None:
    future = "2126-01-01T00:00:00Z"
    with pytest.raises(click.BadParameter, match=rf"'{future}' is in the future") as caught:
        query(all_jobs=True, since=future)
    assert caught.value.param_hint == "--since"


def test_a_bad_project_id_names_the_option() -> None:
    with pytest.raises(click.UsageError, match=r"^--project: must be 32"):
        query(project="nope")


def test_the_cli_read_rate_default_is_the_readers() -> None:
    assert DEFAULT_READ_RATE == READER_RATE


def test_discover_without_selection_exits_2_naming_the_options() -> None:
    result = CliRunner().invoke(main, ["discover"])
    assert result.exit_code == 2
    assert "--project, --job, --jobs-file or --all" in result.output


@pytest.mark.parametrize(
    ("path", "given", "expected"),
    [(None, None, "csv"), (Path("x.jsonl"), None, "jsonl"), (Path("x.JSON"), None, "json"),
     (Path("x.txt"), "csv", "csv"), (Path("x.csv"), "json", "json")],
)  # fmt: skip
def test_the_output_format_comes_from_format_then_extension(
    path: Path | None, given: str | None, expected: str
) -> None:
    assert build_list_format(path, given) == expected


def test_an_output_extension_that_says_nothing_is_refused() -> None:
    with pytest.raises(UsageError, match=r"--output x\.txt: cannot tell the format"):
        build_list_format(Path("x.txt"), None)


BUILD = DiscoveredBuild(
    job_id=JOB, build_no=7, job_name="=HYPERLINK(1)", status="RUNNING",
    start_time=datetime(2026, 11, 28, 12, 0, tzinfo=UTC), branch="release/2.3",
    commit_id="abc", trigger_type="Manual", executor="@admin",
)  # fmt: skip


def written(tmp_path: Path, fmt: str) -> str:
    path = tmp_path / f"out.{fmt}"
    with BuildListWriter(fmt, path=path) as writer:  # type: ignore[arg-type]
        writer.write(BUILD)
        writer.write(BUILD._replace(build_no=8, start_time=None))
    return path.read_text()


def test_csv_output_has_the_columns_and_neutralises_formulas(tmp_path: Path) -> None:
    rows = list(csv.DictReader(io.StringIO(written(tmp_path, "csv"))))
    assert tuple(rows[0]) == BUILD_COLUMNS
    assert rows[0]["job_name"] == "'=HYPERLINK(1)"
    assert rows[0]["executor"] == "'@admin"
    assert rows[0]["start_time"] == "2026-11-28T12:00:00.000Z"
    assert rows[1]["start_time"] == ""


def test_jsonl_and_json_output_hold_the_same_builds(tmp_path: Path) -> None:
    lines = [json.loads(line) for line in written(tmp_path, "jsonl").splitlines()]
    array = json.loads(written(tmp_path, "json"))
    assert lines == array
    assert [item["build_no"] for item in array] == [7, 8]
    assert array[0]["job_name"] == "=HYPERLINK(1)"  # JSON is not run by spreadsheets
    assert array[1]["start_time"] is None


def test_an_output_file_is_private_and_replaced_whole(tmp_path: Path) -> None:
    written(tmp_path, "csv")
    path = tmp_path / "out.csv"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]  # no temp left


def test_an_output_through_a_link_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.csv"
    target.write_text("keep")
    (tmp_path / "out.csv").symlink_to(target)
    with pytest.raises(UsageError):
        BuildListWriter("csv", path=tmp_path / "out.csv")
    assert target.read_text() == "keep"


def test_a_failed_discovery_leaves_the_output_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    path.write_text("old")
    with pytest.raises(RuntimeError), BuildListWriter("csv", path=path) as writer:
        writer.write(BUILD)
        raise RuntimeError
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_run_reads_the_discover_output_and_ignores_the_extra_columns(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    path.write_text(written(tmp_path, "csv"))
    with open_source(str(path), None) as source:
        rows = [(row.target.job_id, row.target.build_no) for row in source if row.target]
    assert rows == [(JOB, 7), (JOB, 8)]


# --- the report's verification columns ----------------------------------------------------


def record(line: int, job_id: str, build_no: int, outcome: Outcome, **more: object) -> Result:
    return Result(line=line, job_id=job_id, build_no=str(build_no), outcome=outcome, **more)  # type: ignore[arg-type]


ROWS = [
    record(1, JOB, 1, Outcome.STOPPED, attempts=1),
    record(2, "bad", 0, Outcome.INVALID, detail="job_id: bad"),
    record(3, OTHER, 2, Outcome.UNCERTAIN, attempts=2, maybe_applied=True),
    record(4, OTHER, 3, Outcome.ABORTED),
]


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json"])
def test_verification_columns_round_trip_in_every_format(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"r.{fmt}"
    with ReportWriter(path, run=1) as writer:
        writer.write(with_verdict(ROWS[0], "running", "-RUNNING"))
        writer.write(ROWS[1])
    loaded = load_report(path)
    assert loaded.records[0].verified == "running"
    assert loaded.records[0].build_status == "-RUNNING"
    assert loaded.records[1].verified == ""


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json"])
def test_verdicts_are_folded_into_their_rows_keeping_every_row(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"r.{fmt}"
    with ReportWriter(path, run=1) as writer:
        for row in ROWS:
            writer.write(row)
    with ReportLock.acquire(path) as lock:
        journal = VerdictJournal(path, lock=lock, run=1)
        journal.write(with_verdict(ROWS[2], "ended", "ABORTED"))
        journal.finish()
    loaded = load_report(path)
    assert [r.line for r in loaded.records] == [1, 2, 3, 4]  # in place, the invalid row kept
    assert [r.verified for r in loaded.records] == ["", "", "ended", ""]
    assert loaded.records[2].outcome is Outcome.UNCERTAIN
    assert not (tmp_path / f"r.{fmt}.inflight").exists()


def test_a_crash_during_verification_keeps_the_verdicts_written(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    with ReportWriter(path, run=1) as writer:
        for row in ROWS:
            writer.write(row)
    with ReportLock.acquire(path) as lock:
        journal = VerdictJournal(path, lock=lock, run=1)
        journal.write(with_verdict(ROWS[0], "ended", "ABORTED"))
        journal.close()  # the process dies before finish
    loaded = load_report(path)
    assert len(loaded.records) == 5
    assert loaded.latest[TargetKey(JOB, 1)].verified == "ended"


def test_a_resume_keeps_what_verification_learnt(tmp_path: Path) -> None:
    path, source = tmp_path / "r.csv", tmp_path / "in.csv"
    source.write_text(f"job_id,build_no\n{JOB},1\n{OTHER},2\n")
    with ReportWriter(path, run=1) as writer:
        writer.write(ROWS[0])
    with ReportLock.acquire(path) as lock:
        journal = VerdictJournal(path, lock=lock, run=1)
        journal.write(with_verdict(ROWS[0], "ended", "ABORTED"))
        journal.close()
    with open_resume(path, str(source)) as resume:
        plan = resume.plan
        with ReportWriter(
            path, run=plan.run, append=True, lock=resume.lock, carried=plan.carried
        ) as writer:
            assert plan.carried is not None
            carried = plan.carried.get(TargetKey(JOB, 1), 2)
            assert carried is not None  # settled: not sent again
            writer.write(carried)
            writer.write(record(3, OTHER, 2, Outcome.STOPPED, attempts=1, run=2))
    kept = load_report(path).latest[TargetKey(JOB, 1)]
    assert kept.verified == "ended"
    assert kept.build_status == "ABORTED"


def test_an_old_report_without_the_columns_loads_and_resumes(tmp_path: Path) -> None:
    path, source = tmp_path / "old.csv", tmp_path / "in.csv"
    path.write_text(
        "line,job_id,build_no,outcome,http_status,error_code,error_msg,request_id,attempts,"
        "started_at,finished_at,elapsed_ms,detail,maybe_applied,run\n"
        f"2,{JOB},1,stopped,200,,,r1,1,,,,,false,1\n"
    )
    source.write_text(f"job_id,build_no\n{JOB},1\n{OTHER},2\n")
    loaded = load_report(path)
    assert loaded.records[0].verified == ""
    assert loaded.records[0].build_status == ""
    with open_resume(path, str(source)) as resume:
        with ReportWriter(
            path, run=resume.plan.run, append=True, lock=resume.lock, carried=resume.plan.carried
        ) as writer:
            writer.write(record(3, OTHER, 2, Outcome.STOPPED, attempts=1, run=2))
    assert path.read_text().splitlines()[0].endswith(",run,verified,build_status")
    assert {(r.job_id, r.outcome) for r in load_report(path).records} == {
        (JOB, Outcome.STOPPED), (OTHER, Outcome.STOPPED),
    }  # fmt: skip


@pytest.mark.parametrize(
    ("row", "sent"),
    [(ROWS[0], True), (ROWS[1], False), (ROWS[2], True), (ROWS[3], False),
     (record(5, OTHER, 4, Outcome.ABORTED, attempts=1), True),
     (record(6, OTHER, 5, Outcome.DUPLICATE), False)],
)  # fmt: skip
def test_the_targets_a_run_sent(row: Result, sent: bool) -> None:
    assert was_sent(row) is sent


# --- the verification summary ---------------------------------------------------------------


def summary(count: int, *, listed: int = 20) -> list[str]:
    from bulkstop.cli.verdicts import verify_summary_lines
    from bulkstop.verify import VerifyResult, VerifyStats, VerifyVerdict
    from bulkstop.verifying import VerifyOutcome

    results = tuple(
        VerifyResult(JOB, n, VerifyVerdict.RUNNING, "RUNNING", 3, "still running after 1 s")
        for n in range(1, count + 1)
    )
    stats = VerifyStats(targets=count + 5, ended=5, running=count, calls=9, throttled=1)
    return verify_summary_lines(VerifyOutcome(stats=stats, not_ended=results), listed=listed)


def test_the_summary_counts_and_names_the_builds_still_running() -> None:
    lines = summary(2)
    assert lines == [
        "verify: 7 targets checked: 5 ended, 2 still running, 0 unknown (9 read calls,"
        " 1 throttled)",
        f"  still running: {JOB} #1 (RUNNING): still running after 1 s",
        f"  still running: {JOB} #2 (RUNNING): still running after 1 s",
    ]


def test_the_summary_lists_a_screenful_and_counts_the_rest() -> None:
    lines = summary(25)
    assert len(lines) == 1 + 20 + 1
    assert lines[-1] == "  ... and 5 more (the report's verified column has them all)"


def test_an_empty_list_still_has_its_header_or_brackets(tmp_path: Path) -> None:
    for fmt, text in (("csv", ",".join(BUILD_COLUMNS) + "\n"), ("json", "[\n]\n"), ("jsonl", "")):
        stream = io.StringIO()
        BuildListWriter(fmt, stream=stream).close()  # type: ignore[arg-type]
        assert stream.getvalue() == text


def test_a_discovery_that_fails_before_its_first_build_writes_nothing_to_stdout() -> None:
    stream = io.StringIO()
    with pytest.raises(RuntimeError), BuildListWriter("csv", stream=stream):
        raise RuntimeError
    assert stream.getvalue() == ""


@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_an_old_json_report_without_the_columns_loads(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"old.{fmt}"
    line = f'{{"line":2,"job_id":"{JOB}","build_no":"1","outcome":"stopped","run":1}}\n'
    path.write_text(line if fmt == "jsonl" else f"[\n{line}]\n")
    (loaded,) = load_report(path).records
    assert (loaded.outcome, loaded.verified, loaded.build_status) == (Outcome.STOPPED, "", "")


def test_discover_takes_every_world_option_of_simulate_behind_sim() -> None:
    from bulkstop.cli.discover import discover_command
    from bulkstop.simulator.cli import simulate_command
    from bulkstop.simulator.options import world_config

    world = {o.opts[0] for o in simulate_command.params if o.name in _world_params()}
    mine = {opt for o in discover_command.params for opt in o.opts}
    assert world
    assert {"--sim-" + flag[2:] for flag in world} <= mine
    values = {f"sim_{name}": None for name in _world_params()}
    parsed = discover_command.make_context(
        "discover", ["--all", "--sim-jobs", "7", "--sim-stop-delay", "0.5"]
    ).params
    values.update({k: v for k, v in parsed.items() if k.startswith("sim_")})
    config = world_config(values, "sim-")
    assert config is not None
    assert (config.jobs, config.stop_delay) == (7, 0.5)


def _world_params() -> set[str]:
    from bulkstop.simulator import options

    return {param for _, param, _ in options.WORLD_OPTIONS}


@pytest.mark.parametrize(
    ("at", "state", "running"),
    [(100.0, "ABORTING", True), (100.999, "ABORTING", True), (101.0, "ABORTED", False)],
)
def test_a_derived_build_takes_the_stop_delay_to_end(at: float, state: str, running: bool) -> None:
    from bulkstop.simulator import SimulatorConfig
    from bulkstop.simulator.model import BuildModel

    model = BuildModel(SimulatorConfig(finished_ratio=0.0, derived_stop_delay=1.0), wall_start=50.0)
    model.stop(JOB, 3, wall_now=100.0)
    view = model.view(JOB, 3, now=at)
    assert view is not None
    assert (view.state, view.running) == (state, running)
    assert view.end == (None if running else 101.0)
