"""End to end: what ``discover``, ``verify``, ``status`` and ``simulate`` write on stderr, for a
machine (``--log-format json``) and for a person, and what ``--quiet`` leaves of it.

The commands run in-process (``CliRunner``) against simulators served on a background loop
(:mod:`simhost`); ``simulate`` itself runs as a process, for its signal and real stderr.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import structlog
from click.testing import CliRunner, Result
from consolelines import json_lines, named
from simhost import HostedSimulator, SimulatorHost

from bulkstop.cli import main, output
from bulkstop.cli.verdicts import print_verify_summary, verify_summary_lines
from bulkstop.errors import CredentialsRejected
from bulkstop.models import Outcome
from bulkstop.models import Result as Record
from bulkstop.report import ReportWriter, load_report
from bulkstop.simulator import SimulatorConfig, WorldConfig
from bulkstop.simulator.world import derive_project_id
from bulkstop.verify import VerifyResult, VerifyStats, VerifyVerdict
from bulkstop.verifying import VerifyOutcome

pytestmark = pytest.mark.e2e

TOKEN = "e2e-console-commands-token-5d2e"
PROJECT = "abcdefabcdefabcdefabcdefabcdef12"
OUTSIDE = (
    "CODEARTS_TOKEN", "CODEARTS_ENDPOINT", "HUAWEICLOUD_SDK_AK", "HUAWEICLOUD_SDK_SK",
    "HUAWEICLOUD_SDK_PROJECT_ID", "HUAWEICLOUD_USERNAME", "HUAWEICLOUD_PASSWORD",
    "HUAWEICLOUD_DOMAIN",
)  # fmt: skip
FAST_READS = ("--read-rate", "200")
SIMULATED = ("discover", "--simulate", "--sim-jobs", "10", "--sim-running-ratio", "0.5",
             "--sim-seed", "3", "--format", "jsonl", *FAST_READS)  # fmt: skip
JOB = "f9d6c8466d614a9788e9a0acf6c15f46"
PROCESS_TIMEOUT = 30.0


@pytest.fixture(autouse=True)
def reset_console() -> Iterator[None]:
    """Undo the CLI's logging and console setup after each test."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    yield
    structlog.reset_defaults()
    output.configure_console()


@pytest.fixture(scope="module")
def host() -> Iterator[SimulatorHost]:
    simulators = SimulatorHost()
    yield simulators
    simulators.close()


def invoke(args: Sequence[str], *, token: str | None = TOKEN) -> Result:
    env: dict[str, str | None] = dict.fromkeys(OUTSIDE)
    env["CODEARTS_TOKEN"] = token
    result = CliRunner().invoke(main, list(args), env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"bulkstop raised instead of exiting: {result.exception!r}")
    return result


# --------------------------------------------------------------------------------------------
# discover


def test_a_simulated_discovery_writes_only_json_on_stderr_with_the_counts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")  # as if on a terminal: still no progress line
    result = invoke([*SIMULATED, "--log-format", "json", "--log-level", "info"])
    builds = [json.loads(line) for line in result.stdout.splitlines()]

    assert result.exit_code == 0, result.stderr
    assert "\r" not in result.stderr
    events = json_lines(result.stderr)
    [project] = named(events, "discover.simulated_project")
    assert project["project"] == derive_project_id(3)
    [banner] = named(events, "discover.simulating")
    assert banner["level"] == "warning"
    assert banner["url"].startswith("http://127.0.0.1:")
    [summary] = named(events, "discover.summary")
    assert summary["level"] == "info"
    assert (summary["jobs"], summary["jobs_scanned"], summary["not_listed"]) == (10, 10, 0)
    assert summary["running"] == len(builds) == 5
    assert summary["exit_code"] == 0
    for count in ("builds_seen", "filtered_out", "calls", "throttled"):
        assert type(summary[count]) is int, count
    assert summary["calls"] >= 10
    assert summary["message"].startswith("discover: 10 of 10 jobs scanned, ")
    # stdout is the list alone, as without JSON logs
    assert {build["status"] for build in builds} == {"RUNNING"}


def test_discover_under_json_logs_shows_no_progress_line_even_when_asked() -> None:
    result = invoke([*SIMULATED, "--log-format", "json", "--progress", "always"])

    assert result.exit_code == 0, result.stderr
    assert "\r" not in result.stderr
    json_lines(result.stderr)


def test_discover_without_a_terminal_shows_no_progress_line() -> None:
    result = invoke(SIMULATED)

    assert result.exit_code == 0, result.stderr
    assert "\r" not in result.stderr
    # the text under console format stays as it was
    assert f"discover: the simulated project is {derive_project_id(3)}" in result.stderr
    assert "discover: SIMULATION on http://127.0.0.1:" in result.stderr


@pytest.mark.parametrize("log_format", ["console", "json"])
def test_quiet_discover_shows_the_one_line_summary_only(log_format: str) -> None:
    result = invoke([*SIMULATED, "--quiet", "--log-format", log_format, "--log-level", "debug"])

    assert result.exit_code == 0, result.stderr
    [line] = result.stderr.splitlines()
    if log_format == "json":
        [summary] = json_lines(line)
        assert summary["event"] == "discover.summary"
        assert summary["running"] == 5
    else:
        assert line.startswith("discover: 10 of 10 jobs scanned, ")
        assert ", 5 running listed " in line
    assert len(result.stdout.splitlines()) == 5


def test_jobs_not_listed_are_json_events_naming_the_job(
    host: SimulatorHost, tmp_path: Path
) -> None:
    world = WorldConfig(project_id=PROJECT, jobs=3, builds_per_job=5, running_ratio=0.5)
    sim = host.start(SimulatorConfig(token=TOKEN, world=world, unknown_jobs=frozenset({"ee" * 16})))
    jobs = tmp_path / "jobs.txt"
    jobs.write_text(f"{'ee' * 16}\nnot-a-job\n")
    result = invoke(["discover", "--jobs-file", str(jobs), "--endpoint", sim.url,
                     "--log-format", "json", *FAST_READS])  # fmt: skip

    assert result.exit_code == 1, result.stderr
    events = json_lines(result.stderr)
    problems = named(events, "discover.not_listed")
    assert {(p["job_id"], p["reason"]) for p in problems} == {("ee" * 16, "not_found"),
                                                              ("", "invalid")}  # fmt: skip
    [unknown] = [p for p in problems if p["job_id"]]
    assert unknown["http_status"] == 404
    assert all(p["level"] == "warning" for p in problems)
    [summary] = named(events, "discover.summary")
    assert (summary["not_listed"], summary["exit_code"], summary["level"]) == (2, 1, "warning")


def test_quiet_discover_keeps_an_abort_and_the_summary(host: SimulatorHost) -> None:
    sim = host.start(SimulatorConfig(token=TOKEN))
    jobs = [arg for n in range(1, 5) for arg in ("--job", f"{n:032x}")]
    result = invoke(["discover", *jobs, "--endpoint", sim.url, "--auth-breaker", "2", "-q",
                     "--log-format", "json", *FAST_READS], token="a-wrong-token-0000")  # fmt: skip

    assert result.exit_code == 3, result.stderr
    events = json_lines(result.stderr)
    *errors, summary = events
    assert {event["level"] for event in errors} == {"error"}  # the log's own among them
    [aborted] = named(errors, "discover.aborted")
    assert aborted["exit_code"] == 3
    assert (summary["event"], summary["exit_code"]) == ("discover.summary", 3)
    assert "a-wrong-token-0000" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [["--format", "xml"],  # refused by click while it parses
     []],  # no selection: refused by the command itself
)  # fmt: skip
def test_a_discover_usage_error_is_one_json_line(args: list[str]) -> None:
    result = invoke(["discover", *args, "--log-format", "json"])

    assert result.exit_code == 2
    [event] = json_lines(result.stderr)
    assert (event["event"], event["level"], event["exit_code"]) == ("cli.usage_error", "error", 2)
    assert "discover [OPTIONS]" in event["usage"]
    assert result.stdout == ""


def test_a_discover_usage_error_stays_text_under_console_format() -> None:
    result = invoke(["discover"])

    assert result.exit_code == 2
    assert "Error: select the jobs to look at" in result.stderr


# --------------------------------------------------------------------------------------------
# verify


def stopped_report(sim: HostedSimulator, tmp_path: Path, count: int) -> Path:
    source = tmp_path / "in.csv"
    rows = "".join(f"{'cd' * 16},{n}\n" for n in range(1, count + 1))
    source.write_text("job_id,build_no\n" + rows)
    report = tmp_path / "r.csv"
    ran = invoke(["run", str(source), "--report", str(report), "--endpoint", sim.url,
                  "--rate", "500", "--progress", "never", "--log-level", "warning"])  # fmt: skip
    assert ran.exit_code == 0, ran.stderr
    return report


def test_verify_writes_only_json_on_stderr_with_the_counts(
    host: SimulatorHost, tmp_path: Path
) -> None:
    sim = host.start(SimulatorConfig(token=TOKEN, finished_ratio=0.0))
    report = stopped_report(sim, tmp_path, 6)

    checked = invoke(["verify", str(report), "--endpoint", sim.url, "--log-format", "json",
                      "--log-level", "info", *FAST_READS])  # fmt: skip

    assert checked.exit_code == 0, checked.stderr
    events = json_lines(checked.stderr)
    [summary] = named(events, "verify.summary")
    assert summary["level"] == "info"
    counts = {k: summary[k] for k in ("targets", "ended", "running", "unknown")}
    assert counts == {"targets": 6, "ended": 6, "running": 0, "unknown": 0}
    assert summary["all_ended"] is True
    assert type(summary["calls"]) is int
    assert summary["calls"] >= 6
    assert type(summary["throttled"]) is int
    assert summary["message"].startswith("verify: 6 targets checked: 6 ended")
    assert {record.verified for record in load_report(report).records} == {"ended"}


def test_verify_of_a_crashed_run_names_the_targets_in_flight_as_json_events(
    host: SimulatorHost, tmp_path: Path
) -> None:
    done, in_flight = ("7c" * 16, 1), ("7c" * 16, 2)
    sim = host.start(SimulatorConfig(token=TOKEN, finished_builds=frozenset({done})))
    report = tmp_path / "r.csv"
    writer = ReportWriter(report, run=1)  # the run a crash ended: its report stays a journal
    writer.write(
        Record(line=2, job_id=done[0], build_no="1", outcome=Outcome.UNCERTAIN, attempts=2)
    )
    writer.attempting(3, *in_flight)
    writer.close()

    checked = invoke(["verify", str(report), "--endpoint", sim.url, "--verify-timeout", "0.3",
                      "--log-format", "json", *FAST_READS])  # fmt: skip

    assert checked.exit_code == 1, checked.stderr
    events = json_lines(checked.stderr)
    [summary] = named(events, "verify.summary")
    assert (summary["targets"], summary["ended"], summary["running"]) == (2, 1, 1)
    [running] = named(events, "verify.summary_not_ended")
    assert (running["job_id"], running["build_no"], running["verdict"]) == (*in_flight, "running")
    [unrecorded] = named(events, "verify.unrecorded")
    assert (unrecorded["level"], unrecorded["targets"]) == ("warning", 1)


@pytest.mark.parametrize("log_format", ["console", "json"])
def test_quiet_verify_shows_the_one_line_summary_only(
    host: SimulatorHost, tmp_path: Path, log_format: str
) -> None:
    sim = host.start(SimulatorConfig(token=TOKEN, finished_ratio=0.0))
    report = stopped_report(sim, tmp_path, 3)

    checked = invoke(["verify", str(report), "--endpoint", sim.url, "--quiet",
                      "--log-format", log_format, "--log-level", "debug", *FAST_READS])  # fmt: skip

    assert checked.exit_code == 0, checked.stderr
    [line] = checked.stderr.splitlines()
    if log_format == "json":
        [summary] = json_lines(line)
        assert (summary["event"], summary["targets"], summary["ended"]) == ("verify.summary", 3, 3)
    else:
        assert line.startswith("verify: 3 targets checked: 3 ended, 0 still running, 0 unknown")


def test_verify_with_nothing_to_check_says_so_as_its_summary(tmp_path: Path) -> None:
    report = tmp_path / "r.csv"
    report.write_text(f"line,job_id,build_no,outcome,attempts\n2,{JOB},1,aborted,0\n")  # never sent

    result = invoke(["verify", str(report), "--endpoint", "http://127.0.0.1:9", "-q",
                     "--log-format", "json"])  # fmt: skip

    assert result.exit_code == 0, result.stderr
    [summary] = json_lines(result.stderr)
    assert (summary["event"], summary["targets"], summary["report"]) == (
        "verify.summary",
        0,
        str(report),
    )


@pytest.mark.parametrize(
    ("args", "event"),
    [(["--verify-timeout", "-1", "r.csv"], "cli.usage_error"),  # refused by click
     (["none.csv", "--endpoint", "http://127.0.0.1:9"], "cli.error")],  # by the command
)  # fmt: skip
def test_a_verify_error_is_one_json_line(
    tmp_path: Path, args: list[str], event: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke(["verify", *args, "--log-format", "json"])

    assert result.exit_code == 2
    [line] = json_lines(result.stderr)
    assert (line["event"], line["level"], line["exit_code"]) == (event, "error", 2)


def outcome(*, listed: int, aborted: bool) -> VerifyOutcome:
    not_ended = (
        VerifyResult(JOB, 1, VerifyVerdict.RUNNING, "RUNNING", 3, "still running after 1 s"),
        VerifyResult(JOB, 2, VerifyVerdict.UNKNOWN, "", 1, "404 CB.00060214"),
        VerifyResult(JOB, 3, VerifyVerdict.RUNNING, "RUNNING", 2, ""),
    )
    stats = VerifyStats(targets=7, ended=4, running=2, unknown=1, calls=11, throttled=2)
    error = CredentialsRejected("3 authentication failures in a row") if aborted else None
    return VerifyOutcome(stats=stats, not_ended=not_ended, aborted_by=error)


def test_the_verify_summary_under_json_is_one_event_a_line_with_its_values(
    capsys: pytest.CaptureFixture[str],
) -> None:
    output.configure_console(log_format="json")
    print_verify_summary(outcome(listed=2, aborted=True), listed=2)

    events = json_lines(capsys.readouterr().err)
    assert [e["event"] for e in events] == ["verify.summary", "verify.summary_not_ended",
        "verify.summary_not_ended", "verify.summary_more", "verify.ended_early"]  # fmt: skip
    summary = events[0]
    assert summary["level"] == "warning"
    assert {k: summary[k] for k in ("targets", "ended", "running", "unknown", "calls",
            "throttled")} == {"targets": 7, "ended": 4, "running": 2, "unknown": 1,
            "calls": 11, "throttled": 2}  # fmt: skip
    assert summary["all_ended"] is False
    first, second = events[1:3]
    assert (first["job_id"], first["build_no"], first["verdict"], first["status"]) == (
        JOB,
        1,
        "running",
        "RUNNING",
    )
    assert (second["build_no"], second["verdict"], second["detail"]) == (
        2,
        "unknown",
        "404 CB.00060214",
    )
    assert events[3]["targets"] == 1
    assert (events[4]["level"], events[4]["exit_code"]) == ("error", 3)


def test_the_verify_summary_text_is_the_summary_lines(capsys: pytest.CaptureFixture[str]) -> None:
    given = outcome(listed=2, aborted=True)
    print_verify_summary(given, listed=2)

    assert capsys.readouterr().err.splitlines() == verify_summary_lines(given, listed=2)


def test_quiet_keeps_the_verify_counts_and_an_early_end(capsys: pytest.CaptureFixture[str]) -> None:
    given = outcome(listed=2, aborted=True)
    output.configure_console(quiet=True)
    print_verify_summary(given, listed=2)

    lines = verify_summary_lines(given, listed=2)
    assert capsys.readouterr().err.splitlines() == [lines[0], lines[-1]]


# --------------------------------------------------------------------------------------------
# status


def test_a_status_error_under_json_is_one_json_line(tmp_path: Path) -> None:
    result = invoke(["status", str(tmp_path / "none.csv"), "--json"])

    assert result.exit_code == 2
    assert result.stdout == ""
    [event] = json_lines(result.stderr)
    assert (event["event"], event["level"], event["exit_code"]) == ("cli.error", "error", 2)
    assert "none.csv" in event["message"]


def test_a_status_error_without_json_is_a_text_line(tmp_path: Path) -> None:
    result = invoke(["status", str(tmp_path / "none.csv")])

    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("bulkstop: error: ")
    assert "none.csv" in line


def test_a_report_status_cannot_read_is_a_one_line_error_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = tmp_path / "r.csv"

    def unreadable(path: Path) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    # as root every file is readable: the refusal an ordinary user meets is made here
    monkeypatch.setattr("bulkstop.report.report_status", unreadable)
    result = invoke(["status", str(report), "--json"])

    assert result.exit_code == 1
    [event] = json_lines(result.stderr)
    assert event["message"] == f"{report}: Permission denied"


# --------------------------------------------------------------------------------------------
# the confirmation of a large run


def test_a_large_run_under_json_without_a_terminal_asks_nothing_and_writes_only_json(
    tmp_path: Path,
) -> None:
    source = tmp_path / "in.csv"
    source.write_text("job_id,build_no\n" + "".join(f"{n:032x},1\n" for n in range(1, 13)))
    result = invoke(["run", str(source), "--simulate", "--report", str(tmp_path / "r.csv"),
                     "--confirm-above", "1", "--rate", "500", "--log-format", "json"])  # fmt: skip

    assert result.exit_code in (0, 1), result.stderr
    assert "about to stop" not in result.stderr
    assert "Send these stops?" not in result.stderr
    events = json_lines(result.stderr)
    [summary] = named(events, "run.summary")
    assert summary["rows"] == 12


# --------------------------------------------------------------------------------------------
# simulate


def test_a_simulate_usage_error_under_json_is_one_json_line() -> None:
    result = invoke(["simulate", "--port", "-5", "--log-format", "json"])

    assert result.exit_code == 2
    [event] = json_lines(result.stderr)
    assert event["event"] == "cli.usage_error"


def test_a_bad_simulate_setting_under_json_is_one_json_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("BULKSTOP_SIM_SK", raising=False)
    result = invoke(["simulate", "--port", "0", "--ak", "AKEXAMPLE1234567", "--log-format", "json"])

    assert result.exit_code == 2
    [event] = json_lines(result.stderr)
    assert (event["event"], event["exit_code"]) == ("cli.error", 2)
    assert event["message"].startswith("simulate: --ak needs")


def test_simulate_under_json_logs_json_and_prints_its_url_as_before() -> None:
    environment = {k: v for k, v in os.environ.items() if k not in OUTSIDE}
    process = subprocess.Popen(
        [sys.executable, "-m", "bulkstop", "simulate", "--port", "0", "--jobs", "0",
         "--log-format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], PROCESS_TIMEOUT)
        first = process.stdout.readline().decode() if ready else ""
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=PROCESS_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert first.startswith("bulkstop simulator listening on http://127.0.0.1:"), first
    url = first.split()[4]
    events = json_lines(stderr.decode())
    [listening] = named(events, "sim.listening")
    assert listening["url"] == url
    assert named(events, "sim.closed")
