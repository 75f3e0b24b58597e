"""End to end: a report remembers the settings of its run, and ``--resume`` continues with them.

The first run is a real ``bulkstop run`` process interrupted by SIGINT (or killed); the resume
is the click command in-process, given only the input, ``--report`` and ``--resume``. The
simulator serves the v1 stop API only, and its counters say which API was called.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import structlog
from click.testing import CliRunner, Result
from simhost import HostedSimulator, SimulatorHost

from bulkstop.cli import main
from bulkstop.models import Outcome
from bulkstop.report import inflight_path, load_report, settings_path
from bulkstop.simulator import SimulatorConfig

pytestmark = pytest.mark.e2e

TOKEN = "e2e-remembered-token-77c1e0d2"
PROCESS_TIMEOUT = 20.0
TARGETS = 60
#: Targets for a test that does not measure the resume's pace: at 40/s the first run is still
#: half a second from its end when a dozen stops have started, and the resume is shorter.
FEWER = 36
#: The first run's pace: slow enough to be interrupted mid-way, and not bulkstop's defaults.
FIRST = ("--api", "v1", "--rate", "40", "--concurrency", "4", "--max-attempts", "3")


@pytest.fixture(autouse=True)
def quiet_logs() -> Iterator[None]:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    yield
    structlog.reset_defaults()


#: Every build running until stopped; only the v1 stop API is served.
V1_ONLY = SimulatorConfig(token=TOKEN, finished_ratio=0.0, latency=0.1, stop_apis=frozenset({"v1"}))


@pytest.fixture
def simulator(simulator_host: SimulatorHost) -> Iterator[HostedSimulator]:
    hosted = simulator_host.start(V1_ONLY)
    yield hosted
    hosted.close()


def write_input(path: Path, count: int = TARGETS) -> Path:
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["job_id", "build_no"])
        for i in range(count):
            writer.writerow([hashlib.blake2b(b"%d" % i, digest_size=16).hexdigest(), i % 7 + 1])
    return path


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CODEARTS_", "HUAWEICLOUD_"))}
    return {**env, "CODEARTS_TOKEN": TOKEN}


@contextlib.contextmanager
def first_run(
    source: Path, report: Path, url: str, *options: str
) -> Iterator[subprocess.Popen[bytes]]:
    """``bulkstop run SOURCE --endpoint URL --report REPORT FIRST OPTIONS`` as a process."""
    command = [
        sys.executable, "-m", "bulkstop", "run", str(source), "--endpoint", url,
        "--report", str(report), "--progress", "never", *FIRST, *options,
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=environment(),
        cwd=report.parent,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)
        if process.stderr is not None:
            process.stderr.close()


def wait_for_markers(process: subprocess.Popen[bytes], report: Path, count: int) -> None:
    deadline = time.monotonic() + PROCESS_TIMEOUT
    sidecar = inflight_path(report)
    while not (sidecar.exists() and sidecar.read_bytes().count(b"\n") >= count):
        assert process.poll() is None, "the run ended before it was interrupted"
        assert time.monotonic() < deadline, "the run sent nothing"
        time.sleep(0.005)


def resume(source: Path, report: Path, *options: str) -> Result:
    """``bulkstop run SOURCE --report REPORT --resume OPTIONS``, in-process, token only."""
    env: dict[str, str | None] = {
        name: None for name in os.environ if name.startswith(("CODEARTS_", "HUAWEICLOUD_"))
    }
    env["CODEARTS_TOKEN"] = TOKEN
    args = ["run", str(source), "--report", str(report), "--resume", "--progress", "never"]
    try:
        result = CliRunner().invoke(main, [*args, *options], env=env)
    finally:
        structlog.reset_defaults()
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), repr(result.exception)
    return result


def interrupted_run(source: Path, report: Path, url: str) -> str:
    """Run FIRST until a dozen stops were started, SIGINT it; return its stderr."""
    with first_run(source, report, url) as process:
        wait_for_markers(process, report, 12)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=PROCESS_TIMEOUT) == 130
        assert process.stderr is not None
        return process.stderr.read().decode()


@pytest.fixture(scope="module")
def one_interrupted_run(
    simulator_host: SimulatorHost, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[HostedSimulator, Path]]:
    """A directory holding the input and the report of one first run interrupted mid-way, and
    its simulator: for the tests that only read it, or try a resume that must be refused (each
    of those works on a copy of the directory)."""
    hosted = simulator_host.start(V1_ONLY)
    directory = tmp_path_factory.mktemp("interrupted")
    interrupted_run(write_input(directory / "targets.csv"), directory / "report.csv", hosted.url)
    yield hosted, directory
    hosted.close()


def outcomes(report: Path) -> dict[int, Outcome]:
    return {record.line: record.outcome for record in load_report(report).records}


def stops(simulator: HostedSimulator) -> dict[str, int]:
    return {api: n for api, n in simulator.stats()["by_api"].items() if n}


# --------------------------------------------------------------------------------------------


def test_a_resume_with_only_the_report_continues_with_v1_at_the_rate_against_the_endpoint(
    tmp_path: Path, simulator: HostedSimulator
) -> None:
    source = write_input(tmp_path / "targets.csv")
    report = tmp_path / "report.csv"
    stderr = interrupted_run(source, report, simulator.url)
    # The printed hint is the short command, and it is all a resume needs.
    assert f"to continue: bulkstop run {source} --report {report} --resume" in stderr
    sent_first = simulator.stats()["stop_requests"]
    assert 0 < sent_first < TARGETS

    resumed = resume(source, report)

    assert resumed.exit_code == 0, resumed.stderr
    assert set(outcomes(report).values()) == {Outcome.STOPPED}
    # every stop of both runs went to this simulator, by v1, each target once
    assert stops(simulator) == {"v1": TARGETS}
    assert simulator.stats()["effective_stops"] == TARGETS
    notice = next(line for line in resumed.stderr.splitlines() if "resuming with" in line)
    for part in (f"--endpoint {simulator.url}", "--api v1", "--rate 40", "--concurrency 4",
                 "--max-attempts 3"):  # fmt: skip
        assert part in notice, notice
    start = next(line for line in resumed.stderr.splitlines() if "run.start" in line)
    assert re.search(r"\brate=40(\.0)?\b", start), start
    assert "api=v1" in start, start
    # the pacer held the remembered ceiling (one call may start at once after idling)
    assert simulator.stats()["max_requests_in_1s"] <= 41


def test_a_flag_given_again_on_resume_overrides_with_a_notice(
    tmp_path: Path, simulator: HostedSimulator
) -> None:
    source = write_input(tmp_path / "targets.csv", FEWER)
    report = tmp_path / "report.csv"
    interrupted_run(source, report, simulator.url)

    resumed = resume(source, report, "--rate", "80")

    assert resumed.exit_code == 0, resumed.stderr
    assert "bulkstop: given again: --rate 80.0 overrides 40.0" in resumed.stderr
    start = next(line for line in resumed.stderr.splitlines() if "run.start" in line)
    assert re.search(r"\brate=80(\.0)?\b", start), start
    assert stops(simulator) == {"v1": FEWER}
    # the settings file now holds what the resumed run did
    assert json.loads(settings_path(report).read_text())["settings"]["rate"] == 80.0


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (("--api", "legacy"), "--api legacy (the run recorded v1)"),
        (("--endpoint", "http://127.0.0.1:9"), "(the run recorded http://127.0.0.1:"),
        (("--simulate",), "--simulate on (the run recorded off)"),
        (("--region", "cn-north-4"), "--region cn-north-4 (the run recorded none)"),
    ],
)
def test_a_resume_that_changes_what_the_records_mean_is_refused_and_sends_nothing(
    tmp_path: Path,
    one_interrupted_run: tuple[HostedSimulator, Path],
    options: Sequence[str],
    says: str,
) -> None:
    simulator, interrupted = one_interrupted_run
    shutil.copytree(interrupted, tmp_path, dirs_exist_ok=True)
    source, report = tmp_path / "targets.csv", tmp_path / "report.csv"
    before = report.read_bytes(), simulator.stats()["requests_total"]

    resumed = resume(source, report, *options)

    assert resumed.exit_code == 2, resumed.stderr
    [line] = resumed.stderr.strip().splitlines()
    assert line.startswith("bulkstop: error: --resume: "), line
    assert says in line, line
    assert "--allow-settings-change" in line
    assert (report.read_bytes(), simulator.stats()["requests_total"]) == before


def test_allow_settings_change_lets_a_resume_change_the_api(
    tmp_path: Path, simulator_host: SimulatorHost
) -> None:
    config = SimulatorConfig(token=TOKEN, finished_ratio=0.0, latency=0.1)
    simulator = simulator_host.start(config)
    try:
        source = write_input(tmp_path / "targets.csv", FEWER)
        report = tmp_path / "report.csv"
        interrupted_run(source, report, simulator.url)
        first = simulator.stats()["by_api"]["v1"]

        resumed = resume(source, report, "--api", "v3", "--allow-settings-change")

        assert resumed.exit_code == 0, resumed.stderr
        assert "given again: --api v3 overrides v1" in resumed.stderr
        assert simulator.stats()["by_api"] == {"legacy": 0, "v3": FEWER - first, "v1": first}
    finally:
        simulator.close()


def test_a_killed_run_remembers_its_settings_and_no_secret(
    tmp_path: Path, simulator: HostedSimulator
) -> None:
    source = write_input(tmp_path / "targets.csv", FEWER)
    report = tmp_path / "report.csv"
    with first_run(source, report, simulator.url) as process:
        wait_for_markers(process, report, 4)
        process.kill()
        process.wait(timeout=PROCESS_TIMEOUT)

    written = settings_path(report)
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert TOKEN not in written.read_text()
    document = json.loads(written.read_text())
    assert document["run"] == 1
    assert document["credential"] == "token"
    assert document["settings"]["api"] == "v1"
    assert document["settings"]["endpoint"] == simulator.url
    assert "input" not in document["settings"]
    assert "report" not in document["settings"]

    resumed = resume(source, report)

    assert resumed.exit_code == 0, resumed.stderr
    assert stops(simulator).keys() == {"v1"}
    assert set(outcomes(report).values()) == {Outcome.STOPPED}


def test_a_resume_of_a_report_without_settings_uses_the_flags_given(
    tmp_path: Path, simulator: HostedSimulator
) -> None:
    # A report written before bulkstop kept settings: the resume takes what it is given.
    source = write_input(tmp_path / "targets.csv", 5)
    report = tmp_path / "report.csv"
    report.write_text("")

    resumed = resume(source, report, "--endpoint", simulator.url, "--api", "v1")

    assert resumed.exit_code == 0, resumed.stderr
    assert "resuming with" not in resumed.stderr
    assert stops(simulator) == {"v1": 5}


def run_in_process(args: Sequence[str], env: dict[str, str | None]) -> Result:
    clean: dict[str, str | None] = {
        name: None for name in os.environ if name.startswith(("CODEARTS_", "HUAWEICLOUD_"))
    }
    try:
        result = CliRunner().invoke(
            main, ["run", *args, "--progress", "never"], env={**clean, **env}
        )
    finally:
        structlog.reset_defaults()
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), repr(result.exception)
    return result


def test_a_remembered_token_file_is_used_unless_a_credential_variable_is_set_now(
    tmp_path: Path, simulator: HostedSimulator
) -> None:
    first_rows, more_rows, all_rows = (write_input(tmp_path / f"{n}.csv", n) for n in (3, 5, 7))
    report = tmp_path / "report.csv"
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o600)
    first = run_in_process(
        [str(first_rows), "--endpoint", simulator.url, "--api", "v1", "--report", str(report),
         "--token-file", str(token_file)], {},
    )  # fmt: skip
    assert first.exit_code == 0, first.stderr
    assert json.loads(settings_path(report).read_text())["settings"]["token_file"] == str(
        token_file
    )
    assert TOKEN not in settings_path(report).read_text()

    # No variable: the remembered file is the credential (two more targets are sent with it).
    again = run_in_process([str(more_rows), "--report", str(report), "--resume"], {})
    assert again.exit_code == 0, again.stderr
    assert f"--token-file {token_file}" in again.stderr
    # The token was rotated: the file is stale, the variable holds the new one, and wins.
    token_file.write_text("stale-token-of-yesterday")
    rotated = run_in_process(
        [str(all_rows), "--report", str(report), "--resume"], {"CODEARTS_TOKEN": TOKEN}
    )
    assert rotated.exit_code == 0, rotated.stderr
    assert stops(simulator) == {"v1": 7}


def test_status_of_an_interrupted_run_says_what_the_resume_sends(
    one_interrupted_run: tuple[HostedSimulator, Path],
) -> None:
    _, interrupted = one_interrupted_run  # status only reads: no copy needed
    source, report = interrupted / "targets.csv", interrupted / "report.csv"
    aborted = sum(1 for outcome in outcomes(report).values() if outcome is Outcome.ABORTED)
    assert aborted > 0

    done = CliRunner().invoke(main, ["status", str(report), "--json"])

    assert done.exit_code == 0, done.stderr
    said = json.loads(done.stdout)
    assert said["state"] == "ended early"
    assert said["counts"]["aborted"] == aborted
    assert said["resume_sends"] == aborted
    assert said["resume_command"] == f"bulkstop run {source} --report {report} --resume"
    assert said["settings"]["api"] == "v1"
