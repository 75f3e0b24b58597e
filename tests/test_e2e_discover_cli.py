"""End to end: ``bulkstop discover`` and ``bulkstop run --verify`` against a simulator's world.

The simulator is served on a background loop (:mod:`simhost`); the commands run in-process
through click's ``CliRunner``. The truth to compare with is the simulator's own state. Stop
delays are short and verify timeouts small, so each test ends in a few seconds.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from simhost import HostedSimulator, SimulatorHost

from bulkstop.cli import main
from bulkstop.models import Outcome, TargetKey
from bulkstop.models import Result as Record
from bulkstop.report import ReportLock, ReportWriter, load_report
from bulkstop.simulator import FaultConfig, ReadConfig, SimulatorConfig, ThrottleConfig, WorldConfig
from bulkstop.simulator.world import derive_project_id

pytestmark = pytest.mark.e2e

TOKEN = "e2e-discover-cli-token-91c3"
PROJECT = "fedcba9876543210fedcba9876543210"
WORLD = WorldConfig(
    project_id=PROJECT, jobs=50, builds_per_job=30, running_ratio=0.3, stop_delay=0.3,
    ignore_stop_ratio=0.0,
)  # fmt: skip
OUTSIDE = (
    "CODEARTS_TOKEN", "CODEARTS_ENDPOINT", "HUAWEICLOUD_SDK_AK", "HUAWEICLOUD_SDK_SK",
    "HUAWEICLOUD_SDK_PROJECT_ID", "HUAWEICLOUD_USERNAME", "HUAWEICLOUD_PASSWORD",
    "HUAWEICLOUD_DOMAIN",
)  # fmt: skip
FAST_READS = ("--read-rate", "200", "--log-level", "warning")
#: Stops paced fast: where the stop rate is not what a test is about, it need not wait for it.
FAST_STOPS = ("--rate", "100")


@pytest.fixture(scope="module")
def host() -> Iterator[SimulatorHost]:
    simulators = SimulatorHost()
    yield simulators
    simulators.close()


def start(host: SimulatorHost, **config: Any) -> HostedSimulator:
    config.setdefault("world", WORLD)
    return host.start(SimulatorConfig(token=TOKEN, **config))


def invoke(args: list[str], *, input: str | None = None) -> Result:
    env: dict[str, str | None] = dict.fromkeys(OUTSIDE)
    env["CODEARTS_TOKEN"] = TOKEN
    result = CliRunner().invoke(main, args, env=env, input=input)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def running_now(sim: HostedSimulator) -> set[tuple[str, int]]:
    async def running() -> list[tuple[str, int]]:
        return sim.simulator.running_builds()

    return set(sim.host.call(running()))


def listed(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_discover_lists_exactly_the_running_builds_of_a_project_of_50_jobs(
    host: SimulatorHost,
) -> None:
    sim = start(host)
    result = invoke(["discover", "--project", PROJECT, "--endpoint", sim.url, *FAST_READS])
    expected = running_now(sim)

    rows = listed(result.stdout)
    assert result.exit_code == 0, result.stderr
    assert {(row["job_id"], int(row["build_no"])) for row in rows} == expected
    assert len(rows) == len(expected) == 15
    assert list(rows[0]) == [
        "job_id", "build_no", "job_name", "status", "start_time", "branch", "commit_id",
        "trigger_type", "executor",
    ]  # fmt: skip
    assert "50 of 50 jobs scanned" in result.stderr
    assert "15 running listed" in result.stderr


def test_discover_piped_into_run_verify_stops_and_verifies_every_build(
    host: SimulatorHost, tmp_path: Path
) -> None:
    # Stops take effect at once: the pipe is the point here, not the polling of builds still
    # aborting (test_run_simulate_verify_works_out_of_the_box needs that second round).
    sim = start(host, world=dataclasses.replace(WORLD, stop_delay=0.0))
    found = invoke(["discover", "--project", PROJECT, "--endpoint", sim.url, *FAST_READS])
    report = tmp_path / "stopped.csv"
    done = invoke(
        [
            "run", "-", "--input-format", "csv", "--verify", "--verify-timeout", "10",
            "--report", str(report), "--endpoint", sim.url, *FAST_STOPS, *FAST_READS,
        ],
        input=found.stdout,
    )  # fmt: skip
    loaded = load_report(report)

    assert found.exit_code == 0
    assert done.exit_code == 0, done.stderr
    assert len(loaded.records) == 15
    assert {record.outcome.value for record in loaded.records} == {"stopped"}
    assert {record.verified for record in loaded.records} == {"ended"}
    assert {record.build_status for record in loaded.records} == {"ABORTED"}
    assert running_now(sim) == set()
    assert "15 ended, 0 still running" in done.stderr


def test_stops_acknowledged_but_ignored_come_out_running_and_exit_1(
    host: SimulatorHost, tmp_path: Path
) -> None:
    world = WorldConfig(
        project_id=PROJECT, jobs=50, builds_per_job=30, running_ratio=0.3, stop_delay=0.2,
        ignore_stop_ratio=0.3,
    )  # fmt: skip
    sim = start(host, world=world)
    found = invoke(["discover", "--project", PROJECT, "--endpoint", sim.url, *FAST_READS])
    report = tmp_path / "stopped.jsonl"
    done = invoke(
        [
            # the stops take effect 0.2 s after they are sent: well before the timeout
            "run", "-", "--input-format", "csv", "--verify", "--verify-timeout", "0.5",
            "--report", str(report), "--endpoint", sim.url, *FAST_STOPS, *FAST_READS,
        ],
        input=found.stdout,
    )  # fmt: skip
    ignored = running_now(sim)
    loaded = load_report(report)
    running = {
        (record.job_id, int(record.build_no))
        for record in loaded.records
        if record.verified == "running"
    }

    assert ignored  # the seed makes some stops be ignored
    assert done.exit_code == 1, done.stderr
    assert running == ignored
    assert {record.verified for record in loaded.records} == {"ended", "running"}
    assert f"{len(ignored)} still running" in done.stderr
    for job_id, build_no in ignored:
        assert f"still running: {job_id} #{build_no}" in done.stderr


def test_under_a_per_minute_read_limit_the_listing_misses_nothing(host: SimulatorHost) -> None:
    # A per-minute policy scaled down: 30 reads per 1-second window, and a read rate just
    # under it (the listing takes about 50 reads: two windows and more).
    reads = ReadConfig(throttle=ThrottleConfig(limit=30, window=1.0))
    sim = start(host, reads=reads)
    began = time.monotonic()
    result = invoke(
        ["discover", "--project", PROJECT, "--endpoint", sim.url, "--read-rate", "28",
         "--log-level", "warning"]
    )  # fmt: skip
    expected = running_now(sim)
    rows = listed(result.stdout)
    throttled = int(result.stderr.rsplit(" read calls, ", 1)[1].split(" ")[0])

    assert result.exit_code == 0, result.stderr
    assert {(row["job_id"], int(row["build_no"])) for row in rows} == expected
    assert throttled <= 5
    assert time.monotonic() - began < 60


def test_run_simulate_verify_works_out_of_the_box(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("job_id,build_no\n" + "".join(f"{'ab' * 16},{n}\n" for n in range(1, 6)))
    report = tmp_path / "r.json"
    done = invoke(
        ["run", str(source), "--simulate", "--verify", "--verify-timeout", "5", "--report",
         str(report), *FAST_READS]
    )  # fmt: skip
    loaded = load_report(report)

    assert done.exit_code == 0, done.stderr
    assert [record.verified for record in loaded.records] == ["ended"] * 5
    stopped = [r for r in loaded.records if r.outcome is Outcome.STOPPED]
    assert stopped
    assert {record.build_status for record in stopped} == {"ABORTED"}
    # the first check saw them still aborting: a second round of checks was needed
    calls = int(done.stderr.split("unknown (", 1)[1].split(" read calls")[0])
    assert calls >= 5 + len(stopped)


#: 20 builds of job cdcd… whose first stop calls, under seed 0 and 40 % of 500s, fail at most
#: twice in a row: some end uncertain, some stopped, and no retry waits out a long backoff.
SHORT_FAULTS = (1, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 18, 20, 22, 23, 25, 26, 27, 28)


def test_verify_settles_the_uncertain_rows_of_a_fault_after_effect_run(
    host: SimulatorHost, tmp_path: Path
) -> None:
    faults = FaultConfig(error_500=0.4, after_stop=1.0)
    sim = host.start(SimulatorConfig(token=TOKEN, finished_ratio=0.0, faults=faults))
    source = tmp_path / "in.csv"
    source.write_text("job_id,build_no\n" + "".join(f"{'cd' * 16},{n}\n" for n in SHORT_FAULTS))
    report = tmp_path / "r.csv"
    ran = invoke(
        ["run", str(source), "--report", str(report), "--endpoint", sim.url, *FAST_STOPS,
         "--log-level", "warning"]
    )  # fmt: skip
    before = load_report(report)
    uncertain = [r for r in before.records if r.outcome is Outcome.UNCERTAIN]

    checked = invoke(["verify", str(report), "--endpoint", sim.url, *FAST_READS])
    after = load_report(report)

    assert ran.exit_code == 1  # the uncertain rows
    assert uncertain
    assert checked.exit_code == 0, checked.stderr
    assert [r.line for r in after.records] == [r.line for r in before.records]
    assert [r.outcome for r in after.records] == [r.outcome for r in before.records]
    assert {r.verified for r in after.records} == {"ended"}
    assert {r.build_status for r in after.records} == {"ABORTED"}
    assert "verify: 20 targets checked: 20 ended" in checked.stderr
    assert not report.with_name("r.csv.inflight").exists()


def test_verify_checks_where_the_reports_run_stopped_with_no_option_given(
    host: SimulatorHost, tmp_path: Path
) -> None:
    sim = host.start(SimulatorConfig(token=TOKEN, finished_ratio=0.0))
    source = tmp_path / "in.csv"
    source.write_text("job_id,build_no\n" + "".join(f"{'ab' * 16},{n}\n" for n in range(1, 6)))
    report = tmp_path / "r.csv"
    ran = invoke(["run", str(source), "--report", str(report), "--endpoint", sim.url,
                  "--read-rate", "200", "--log-level", "warning"])  # fmt: skip

    checked = invoke(["verify", str(report)])

    assert ran.exit_code == 0, ran.stderr
    assert checked.exit_code == 0, checked.stderr
    assert f"verifying with the settings run 1 recorded: --endpoint {sim.url}" in checked.stderr
    assert "--read-rate 200" in checked.stderr
    assert {r.verified for r in load_report(report).records} == {"ended"}


def test_verify_refuses_the_report_of_a_simulated_run(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("job_id,build_no\n" + f"{'ab' * 16},1\n")
    report = tmp_path / "r.csv"
    invoke(["run", str(source), "--report", str(report), "--simulate", "--log-level", "warning"])

    checked = invoke(["verify", str(report)])

    assert checked.exit_code == 2
    assert "report of a --simulate run" in checked.stderr


def test_discover_simulate_says_nothing_of_its_project_before_a_usage_error() -> None:
    result = invoke(
        ["discover", "--simulate", "--sim-jobs", "10", "--sim-seed", "3",
         "--since", "2999-01-01T00:00:00Z", *FAST_READS]
    )  # fmt: skip

    assert result.exit_code == 2
    assert "is in the future" in result.stderr
    assert "simulated project" not in result.stderr
    assert result.stdout == ""


def test_verify_names_a_missing_report_and_exits_2(tmp_path: Path) -> None:
    result = invoke(["verify", str(tmp_path / "none.csv"), "--endpoint", "http://127.0.0.1:9"])
    assert result.exit_code == 2
    assert "none.csv does not exist" in result.stderr


def test_discover_simulate_selects_the_simulated_project_and_says_which() -> None:
    result = invoke(
        ["discover", "--simulate", "--sim-jobs", "10", "--sim-running-ratio", "0.5",
         "--sim-seed", "3", "--format", "jsonl", *FAST_READS]
    )  # fmt: skip
    builds = [json.loads(line) for line in result.stdout.splitlines()]

    assert result.exit_code == 0, result.stderr
    assert f"the simulated project is {derive_project_id(3)}" in result.stderr
    assert "10 of 10 jobs scanned" in result.stderr
    assert len(builds) == 5
    assert {build["status"] for build in builds} == {"RUNNING"}


def test_a_job_that_cannot_be_listed_is_named_and_the_others_still_listed(
    host: SimulatorHost, tmp_path: Path
) -> None:
    sim = start(host, unknown_jobs=frozenset({"ee" * 16}), forbidden_jobs=frozenset({"ff" * 16}))
    running = sorted(running_now(sim))
    jobs = tmp_path / "jobs.txt"
    jobs.write_text(f"{running[0][0]}\n{'ee' * 16}\n{'ff' * 16}\nnot-a-job\n")
    out = tmp_path / "found.json"
    result = invoke(
        ["discover", "--jobs-file", str(jobs), "--output", str(out), "--endpoint", sim.url,
         *FAST_READS]
    )  # fmt: skip
    problems = [line for line in result.stderr.splitlines() if "not listed" in line]

    assert result.exit_code == 1, result.stderr
    assert result.stdout == ""
    assert [(b["job_id"], b["build_no"]) for b in json.loads(out.read_text())] == [
        key for key in running if key[0] == running[0][0]
    ]
    assert len(problems) == 3
    assert any("ee" * 16 in line for line in problems)
    assert any("ff" * 16 in line for line in problems)
    assert any(f"{jobs}:4" in line for line in problems)


@pytest.mark.parametrize("command", ["discover", "verify"])
def test_a_rejected_token_trips_the_auth_breaker_exit_3(
    host: SimulatorHost, tmp_path: Path, command: str
) -> None:
    sim = start(host)
    report = tmp_path / "r.csv"
    jobs = [f"{n:032x}" for n in range(1, 5)]
    report.write_text(
        "line,job_id,build_no,outcome,attempts\n"
        + "".join(f"{n + 2},{job},1,uncertain,2\n" for n, job in enumerate(jobs))
    )
    by_id = [arg for job in jobs for arg in ("--job", job)]
    args = by_id if command == "discover" else [str(report)]
    env: dict[str, str | None] = dict.fromkeys(OUTSIDE)
    env["CODEARTS_TOKEN"] = "a-wrong-token-0000"
    result = CliRunner().invoke(
        main, [command, *args, "--endpoint", sim.url, "--auth-breaker", "2", *FAST_READS], env=env
    )

    assert result.exit_code == 3, result.stderr
    assert "a-wrong-token-0000" not in result.stderr + result.stdout


def test_discover_shows_a_progress_line_when_asked(host: SimulatorHost) -> None:
    sim = start(host)
    result = invoke(
        ["discover", "--project", PROJECT, "--endpoint", sim.url, "--progress", "always",
         *FAST_READS]
    )  # fmt: skip
    assert result.exit_code == 0
    assert "\rdiscover: " in result.stderr
    assert " jobs, " in result.stderr  # the live line, before the summary


def test_a_resume_with_verify_checks_only_what_it_sent_and_keeps_the_earlier_rows(
    host: SimulatorHost, tmp_path: Path
) -> None:
    sim = start(host, finished_ratio=0.0)
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    rows = [f"{'9a' * 16},{n}\n" for n in range(1, 4)]
    first.write_text("job_id,build_no\n" + "".join(rows[:2]))
    second.write_text("job_id,build_no\n" + "".join(rows))
    report = tmp_path / "r.csv"
    common = ["--report", str(report), "--endpoint", sim.url, "--verify", *FAST_READS]
    one = invoke(["run", str(first), *common])
    before = load_report(report).records
    two = invoke(["run", str(second), *common, "--resume"])
    after = {record.build_no: record for record in load_report(report).records}

    assert one.exit_code == 0, one.stderr
    assert two.exit_code == 0, two.stderr
    assert "verify: 1 targets checked: 1 ended" in two.stderr
    assert sorted(after) == ["1", "2", "3"]
    for record in before:  # carried whole: request id, verdict and all
        assert after[record.build_no] == record
    assert after["3"].verified == "ended"
    assert after["3"].run == 2


def test_verify_of_a_crashed_run_keeps_it_a_journal_that_a_resume_continues(
    host: SimulatorHost, tmp_path: Path
) -> None:
    done, in_flight = ("7b" * 16, 1), ("7b" * 16, 2)
    sim = host.start(SimulatorConfig(token=TOKEN, finished_builds=frozenset({done})))
    source = tmp_path / "in.csv"
    source.write_text(f"job_id,build_no\n{done[0]},1\n{in_flight[0]},2\n")
    report = tmp_path / "r.csv"
    writer = ReportWriter(report, run=1)  # the run a crash ended: its report stays a journal
    writer.write(
        Record(line=2, job_id=done[0], build_no="1", outcome=Outcome.UNCERTAIN, attempts=2)
    )
    writer.attempting(3, *in_flight)
    writer.close()

    checked = invoke(
        ["verify", str(report), "--endpoint", sim.url, "--verify-timeout", "0.3", *FAST_READS]
    )
    loaded = load_report(report)
    resumed = invoke(
        ["run", str(source), "--report", str(report), "--resume", "--endpoint", sim.url,
         *FAST_READS]
    )  # fmt: skip
    final = load_report(report)

    assert checked.exit_code == 1  # the build in flight never got its stop: still running
    assert loaded.latest[TargetKey(*done)].verified == "ended"
    assert loaded.in_flight == {TargetKey(*in_flight)}  # still known as in flight
    assert "1 targets were in flight" in checked.stderr
    assert f"still running: {in_flight[0]} #2" in checked.stderr
    assert resumed.exit_code == 1, resumed.stderr  # the uncertain row stays uncertain
    assert final.latest[TargetKey(*done)].verified == "ended"
    assert final.latest[TargetKey(*in_flight)].outcome is Outcome.STOPPED


def test_verify_refuses_a_report_another_process_holds(tmp_path: Path) -> None:
    report = tmp_path / "r.csv"
    report.write_text("line,job_id,build_no,outcome,attempts\n" + f"2,{'ab' * 16},1,stopped,1\n")
    with ReportLock.acquire(report):
        result = invoke(["verify", str(report), "--endpoint", "http://127.0.0.1:9"])
    assert result.exit_code == 2
    assert "is in use by process" in result.stderr
