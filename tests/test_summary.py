"""The run's summary as data, and its renderings: text lines, the JSON object, the file."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from bulkstop.cli.output import _resume_hint, summarize
from bulkstop.cli.summary import SUMMARY_VERSION, RunSummary, write_summary
from bulkstop.engine import RunStats
from bulkstop.errors import (
    CredentialsRejected,
    ExitCode,
    RunAborted,
    ServerFailing,
    SystematicFailure,
    UsageError,
)
from bulkstop.job import JobOutcome, JobSettings
from bulkstop.models import Outcome
from bulkstop.retry import SystematicFault

REPORT = Path("out/report.csv")


def stats(**changes: object) -> RunStats:
    values: dict[str, object] = {
        "rows": 10,
        "outcomes": {Outcome.STOPPED: 6, Outcome.NOT_STOPPED: 1, Outcome.FAILED: 2,
                     Outcome.INVALID: 1},
        "requests": 14,
        "retries": 5,
        "throttled": 3,
        "carried_over": 0,
        "started": 100.0,
        "finished": 104.0,
    }  # fmt: skip
    values.update(changes)
    return RunStats(**values)  # type: ignore[arg-type]


def outcome(
    run: RunStats | None = None,
    *,
    code: ExitCode = ExitCode.ROWS,
    interrupted: bool = False,
    rate: float = 7.5,
) -> JobOutcome:
    return JobOutcome(
        exit_code=code,
        stats=run if run is not None else stats(),
        report=REPORT,
        rate=rate,
        interrupted=interrupted,
    )


SETTINGS = JobSettings(input="targets.csv", report=REPORT, rate=20.0)
#: the resume hint is output._resume_hint's to word; the summary carries it as it is
HINT = _resume_hint(SETTINGS, REPORT)


def test_the_counts_pace_and_report_are_the_runs() -> None:
    summary = summarize(outcome(), SETTINGS).as_json()

    assert summary == {
        "summary_version": SUMMARY_VERSION,
        "exit_code": 1,
        "rows": 10,
        "outcomes": {
            "stopped": 6,
            "not_stopped": 1,
            "uncertain": 0,
            "not_found": 0,
            "rejected": 0,
            "unauthorized": 0,
            "forbidden": 0,
            "failed": 2,
            "invalid": 1,
            "duplicate": 0,
            "aborted": 0,
            "dry_run": 0,
            "skipped": 0,
        },
        "requests": 14,
        "retries": 5,
        "throttled": 3,
        "elapsed": 4.0,
        "achieved_rate": 3.5,
        "final_rate": 7.5,
        "ceiling": 20.0,
        "report": str(REPORT),
        "resumed": False,
        "carried_over": 0,
        "ended_early": None,
        "resume_hint": None,
    }


def test_every_outcome_of_the_enum_is_counted_without_naming_it() -> None:
    # an outcome the summary code has never heard of appears as soon as the enum has it
    every = {kind: index + 1 for index, kind in enumerate(Outcome)}
    summary = summarize(outcome(stats(outcomes=every)), SETTINGS)

    assert summary.outcomes == {kind.value: count for kind, count in every.items()}
    assert summary.first_line().count(",") == len(Outcome) - 1


def test_a_resumed_run_says_so_with_what_it_carried_over() -> None:
    settings = JobSettings(input="targets.csv", report=REPORT, resume=True)
    summary = summarize(outcome(stats(carried_over=4)), settings)

    assert (summary.resumed, summary.carried_over) == (True, 4)
    assert "  4 targets carried over from earlier runs" in summary.text_lines()


def test_a_run_of_no_time_has_a_rate_of_zero() -> None:
    summary = summarize(outcome(stats(requests=0, finished=100.0)), SETTINGS)

    assert (summary.elapsed, summary.achieved_rate) == (0.0, 0.0)


SYSTEMATIC = SystematicFailure(
    "the host does not resolve", fault=SystematicFault.DNS, targets=5, evidence="5 of 5"
)


@pytest.mark.parametrize(
    ("error", "by", "text"),
    [
        (RunAborted("failure threshold reached"), "max_failures", "ABORTED (threshold)"),
        (CredentialsRejected("5 authentication failures"), "auth_breaker", "ABORTED (credentials)"),
        (ServerFailing("95% failed"), "server_failing", "ABORTED (server failing)"),
        (SYSTEMATIC, "systematic", "ABORTED (the call is wrong)"),
    ],
)
def test_what_ended_the_run_early_is_named_with_its_message(
    error: RunAborted, by: str, text: str
) -> None:
    summary = summarize(outcome(stats(aborted_by=error), code=error.exit_code), SETTINGS)

    ended = summary.as_json()["ended_early"]
    assert ended["by"] == by
    assert ended["message"] == str(error)
    assert summary.resume_hint == HINT
    assert any(line.startswith(f"  {text}") for line in summary.text_lines())
    assert summary.text_lines()[-1].endswith(summary.resume_hint)


def test_a_systematic_fault_carries_its_diagnosis() -> None:
    summary = summarize(outcome(stats(aborted_by=SYSTEMATIC), code=ExitCode.USAGE), SETTINGS)

    ended = summary.ended_early
    assert ended is not None
    assert ended.diagnosis is not None
    assert ended.diagnosis.endswith("check --endpoint/--region")
    assert f"  ABORTED (the call is wrong): {ended.diagnosis}" in summary.text_lines()
    assert "once the call is fixed" in summary.text_lines()[-1]


def test_an_interrupt_says_why_and_how_to_continue() -> None:
    run = stats(ended_early="interrupted by SIGINT")
    summary = summarize(outcome(run, code=ExitCode.INTERRUPTED, interrupted=True), SETTINGS)

    assert summary.as_json()["ended_early"] == {
        "by": "interrupt",
        "message": "interrupted by SIGINT",
        "diagnosis": None,
    }
    assert summary.exit_code == 130
    assert summary.text_lines()[-1] == f"  to continue: {HINT}"


def test_the_text_lines_render_the_same_counts() -> None:
    lines = summarize(outcome(), SETTINGS).text_lines()

    assert lines == [
        "bulkstop: 10 rows: stopped 6, not_stopped 1, failed 2, invalid 1",
        "  14 requests in 4.0 s (3.5/s), 5 retries, 3 throttled, final rate 7.5/s",
        f"  report: {REPORT}",
    ]


def test_extra_fields_of_other_commands_are_rendered_as_given() -> None:
    base = summarize(outcome(), SETTINGS)
    summary = RunSummary(**{**_fields(base), "extra": {"verification": {"running": 2}}})

    assert summary.as_json()["verification"] == {"running": 2}


def _fields(summary: RunSummary) -> dict[str, object]:
    return {name: getattr(summary, name) for name in RunSummary.__slots__}


# --------------------------------------------------------------------------------------------
# The file


def test_the_file_is_the_json_rendering_and_private(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    summary = summarize(outcome(), SETTINGS)
    write_summary(path, summary)

    assert json.loads(path.read_text(encoding="utf-8")) == summary.as_json()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]  # no temporary left


def test_the_file_replaces_an_old_one_whole(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    path.write_text("x" * 10_000)
    write_summary(path, summarize(outcome(), SETTINGS))

    assert json.loads(path.read_text(encoding="utf-8"))["rows"] == 10


def test_the_file_is_never_written_through_a_link(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.json"
    target.write_text("keep")
    link = tmp_path / "summary.json"
    link.symlink_to(target)

    with pytest.raises(UsageError, match="symbolic link"):
        write_summary(link, summarize(outcome(), SETTINGS))
    assert target.read_text() == "keep"
    assert link.is_symlink()


def test_a_summary_in_a_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        write_summary(tmp_path / "nowhere" / "s.json", summarize(outcome(), SETTINGS))


def test_a_failed_write_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", refuse)
    with pytest.raises(OSError, match="No space"):
        write_summary(tmp_path / "s.json", summarize(outcome(), SETTINGS))
    assert list(tmp_path.iterdir()) == []
