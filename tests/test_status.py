"""``bulkstop status REPORT``: what a finished, an ended-early and a crashed report say, read
without writing anything or taking the lock."""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from click.testing import CliRunner, Result
from reportkit import FORMATS, result, write_run

from bulkstop.cli import main
from bulkstop.models import Outcome
from bulkstop.report import ReportLock, inflight_path, lock_path, report_status, write_settings

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


@pytest.fixture(autouse=True)
def quiet_logs() -> Iterator[None]:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    yield
    structlog.reset_defaults()


def status(*args: str) -> Result:
    return CliRunner().invoke(main, ["status", *args])


def status_json(report: Path) -> dict[str, Any]:
    done = status(str(report), "--json")
    assert done.exit_code == 0, done.stderr
    parsed: dict[str, Any] = json.loads(done.stdout)
    return parsed


def files(directory: Path) -> dict[str, tuple[bytes, int]]:
    """Every file's content and modification time: what a read-only command must not change."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(directory.iterdir())}


def test_a_finished_run_is_finished_with_its_counts_and_nothing_to_resume(tmp_path: Path) -> None:
    report = tmp_path / "report.csv"
    run = CliRunner().invoke(
        main,
        ["run", str(SAMPLES / "mixed.csv"), "--simulate", "--report", str(report),
         "--rate", "500", "--progress", "never"],
    )  # fmt: skip
    assert run.exit_code == 1, run.stderr
    before = files(tmp_path)

    said = status_json(report)

    assert said["state"] == "finished"
    assert said["finished"] is True
    assert said["rows"] == 25
    assert said["counts"]["invalid"] == 1
    assert said["counts"]["duplicate"] == 1
    assert said["counts"].get("stopped", 0) + said["counts"].get("not_stopped", 0) == 23
    assert (said["unsettled"], said["uncertain"], said["resume_sends"]) == (0, 0, 0)
    assert said["settings"]["simulate"] is True
    assert said["input"] == str(SAMPLES / "mixed.csv")
    assert (
        said["resume_command"] == f"bulkstop run {SAMPLES / 'mixed.csv'} --report {report} --resume"
    )
    assert files(tmp_path) == before


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_run_ended_early_is_whole_and_resume_sends_the_aborted(tmp_path: Path, fmt: str) -> None:
    report = tmp_path / f"report.{fmt}"
    records = [result(0), result(1, Outcome.FAILED, attempts=5), result(2, Outcome.UNCERTAIN)]
    records += [result(i, Outcome.ABORTED, attempts=0) for i in range(3, 7)]
    write_run(report, records, attempting=range(3), finalize=True)
    write_settings(report, run=1, credential="token", values={"api": "v1"}, input="t.csv")
    before = files(tmp_path)

    said = status_json(report)

    assert said["state"] == "ended early"
    assert said["counts"] == {"stopped": 1, "uncertain": 1, "failed": 1, "aborted": 4}
    assert said["uncertain"] == 1
    assert said["resume_sends"] == 4
    assert said["retry_failed_sends"] == 6  # and the failed and uncertain ones
    assert said["resume_command"] == f"bulkstop run t.csv --report {report} --resume"
    assert files(tmp_path) == before


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_crashed_run_is_a_journal_with_its_unsettled_targets(tmp_path: Path, fmt: str) -> None:
    report = tmp_path / f"report.{fmt}"
    # Five stops were started; two answers were recorded before the process died.
    write_run(report, [result(0), result(1, Outcome.NOT_STOPPED)], attempting=range(5))
    assert inflight_path(report).exists()
    before = files(tmp_path)

    said = status_json(report)

    assert said["state"] == "journal"
    assert said["finished"] is False
    assert said["counts"] == {"stopped": 1, "not_stopped": 1}
    assert said["unsettled"] == 3
    assert said["resume_sends"] == 3
    assert said["locked_by"] is None
    assert said["settings"] is None  # written before settings were kept
    assert files(tmp_path) == before
    assert not lock_path(report).exists()


def test_a_report_a_live_run_holds_is_running_and_status_does_not_take_the_lock(
    tmp_path: Path,
) -> None:
    report = tmp_path / "report.csv"
    write_run(report, [result(0)], attempting=range(2))
    with ReportLock.acquire(report) as lock:
        said = status_json(report)
        assert lock.held  # still ours: status never locked it

    assert said["state"] == "running"
    assert f"process {os.getpid()} on {socket.gethostname()}" in said["locked_by"]


def test_the_text_status_names_the_state_and_the_command_that_continues(tmp_path: Path) -> None:
    report = tmp_path / "report.csv"
    write_run(report, [result(0)], attempting=range(3))
    write_settings(report, run=1, credential="token", values={"api": "v1", "rate": 4.0,
                   "endpoint": "https://e.example"}, input="t.csv")  # fmt: skip

    done = status(str(report))

    assert done.exit_code == 0, done.stderr
    text = done.stdout
    assert "not finalized: the run crashed" in text
    assert "unsettled (sent or about to be, no answer recorded): 2" in text
    assert "recorded: https://e.example, API v1, rate 4.0/s, credential token" in text
    assert "--resume would send 2 of its targets" in text
    assert f"    bulkstop run t.csv --report {report} --resume" in text


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.write_text("job_id,build_no\nabc,1\n"), "report"),
    ],
    ids=["missing", "not-a-report"],
)
def test_status_of_no_report_is_a_one_line_error(tmp_path: Path, make: Any, says: str) -> None:
    report = tmp_path / "report.csv"
    make(report)

    done = status(str(report))

    assert done.exit_code == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("bulkstop: error: ")
    assert says in line


def test_report_status_is_a_library_call(tmp_path: Path) -> None:
    report = tmp_path / "report.jsonl"
    write_run(report, [result(0)], finalize=True)

    found = report_status(report)

    assert found.finished
    assert found.counts == {Outcome.STOPPED: 1}


def test_a_dry_run_report_says_a_resume_sends_what_it_planned(tmp_path: Path) -> None:
    report = tmp_path / "plan.csv"
    planned = CliRunner().invoke(
        main,
        ["run", str(SAMPLES / "mixed.csv"), "--simulate", "--report", str(report), "--dry-run",
         "--progress", "never"],
    )  # fmt: skip
    assert planned.exit_code == 1, planned.stderr  # the invalid and duplicate rows

    said = status_json(report)

    assert said["state"] == "finished"
    assert said["counts"] == {"dry_run": 23, "invalid": 1, "duplicate": 1}
    assert said["resume_sends"] == 23  # dry_run rows are unsent


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_report_that_is_a_named_pipe_is_refused_not_waited_on(tmp_path: Path) -> None:
    report = tmp_path / "r.csv"
    os.mkfifo(report)

    result = CliRunner().invoke(main, ["status", str(report)])

    assert result.exit_code == 2
    assert f"the report {report} is not a regular file" in result.stderr


def test_a_report_given_through_a_link_is_refused(tmp_path: Path) -> None:
    report = tmp_path / "r.csv"
    write_run(report, [result(1)])
    link = tmp_path / "link.csv"
    link.symlink_to(report)

    result_ = CliRunner().invoke(main, ["status", str(link)])

    assert result_.exit_code == 2
    assert "link" in result_.stderr
