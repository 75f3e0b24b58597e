"""End to end: what ``bulkstop run`` writes on stderr for a machine (JSON) and for a person.

Runs in-process (``CliRunner``) where that shows the behaviour, as a process where a signal or
the real stderr matters.
"""

from __future__ import annotations

import json
import logging
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import structlog
from click.testing import CliRunner, Result
from consolelines import json_lines, named
from simhost import HostedSimulator, SimulatorHost

from bulkstop.cli import main
from bulkstop.report import load_report
from bulkstop.simulator import FaultConfig, SimulatorConfig

pytestmark = pytest.mark.e2e

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
FAST = ("--rate", "500", "--progress", "never")
PROCESS_TIMEOUT = 30.0
OUTSIDE_VARIABLES = (
    "CODEARTS_TOKEN",
    "CODEARTS_ENDPOINT",
    "HUAWEICLOUD_USERNAME",
    "HUAWEICLOUD_PASSWORD",
    "HUAWEICLOUD_DOMAIN",
    "HUAWEICLOUD_SDK_AK",
    "HUAWEICLOUD_SDK_SK",
    "HUAWEICLOUD_SDK_PROJECT_ID",
    "HUAWEICLOUD_SDK_SECURITY_TOKEN",
)


@pytest.fixture(autouse=True)
def reset_logging() -> Iterator[None]:
    """Undo the CLI's logging setup after each test (it points at the runner's stderr)."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    yield
    structlog.reset_defaults()


def invoke(args: Sequence[str]) -> Result:
    result = CliRunner().invoke(main, ["run", *args], env=dict.fromkeys(OUTSIDE_VARIABLES))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"bulkstop raised instead of exiting: {result.exception!r}")
    return result


def simulated(report: Path, *more: str) -> list[str]:
    return [str(SAMPLES / "mixed.csv"), "--simulate", "--report", str(report), *FAST, *more]


# --------------------------------------------------------------------------------------------
# --log-format json: every line


def test_a_simulated_run_writes_only_json_banner_and_summary_included(tmp_path: Path) -> None:
    report = tmp_path / "report.csv"
    result = invoke(simulated(report, "--log-format", "json"))

    assert result.exit_code == 1, result.stderr
    events = json_lines(result.stderr)
    [banner] = named(events, "run.simulating")
    assert banner["level"] == "warning"
    assert banner["url"].startswith("http://127.0.0.1:")
    assert "nothing real is stopped" in banner["message"]
    [summary] = named(events, "run.summary")
    # the summary's counts are the report's
    counts = Counter(record.outcome.value for record in load_report(report).latest.values())
    counts.update(["invalid", "duplicate"])  # rows that name no new target are counted too
    assert {k: v for k, v in summary["outcomes"].items() if v} == dict(counts)
    assert summary["rows"] == 25
    assert summary["report"] == str(report)
    assert summary["exit_code"] == 1
    assert summary["ended_early"] is None
    assert {"run.start", "input.invalid_row"} <= {event["event"] for event in events}


def test_an_error_is_one_json_line(tmp_path: Path) -> None:
    # no endpoint and no --simulate: refused before anything is sent
    result = invoke([str(SAMPLES / "mixed.csv"), "--report", str(tmp_path / "r.csv"),
                     "--log-format", "json"])  # fmt: skip

    assert result.exit_code == 2
    [event] = json_lines(result.stderr)
    assert event["event"] == "cli.error"
    assert event["level"] == "error"
    assert event["exit_code"] == 2
    assert "endpoint" in event["message"]
    assert not event["message"].startswith("bulkstop")  # the message alone, for a machine


@pytest.mark.parametrize(
    "args",
    [
        ["--rate", "fast", "--log-format", "json"],
        ["--log-format", "json", "--no-such-option"],
        ["--log-format=json", "--concurrency", "0"],
    ],
    ids=["bad value", "unknown option", "out of range"],
)
def test_a_usage_error_is_one_json_line_when_json_was_asked_for(args: list[str]) -> None:
    result = invoke([str(SAMPLES / "mixed.csv"), *args])

    assert result.exit_code == 2
    [event] = json_lines(result.stderr)
    assert event["event"] == "cli.usage_error"
    assert event["exit_code"] == 2
    assert event["usage"].startswith("Usage: ")
    option = next(arg for arg in args if arg.startswith("--") and "log-format" not in arg)
    assert option in event["message"]


def test_a_usage_error_without_json_is_clicks_own_text() -> None:
    result = invoke([str(SAMPLES / "mixed.csv"), "--rate", "fast"])

    assert result.exit_code == 2
    assert result.stderr.startswith("Usage: ")
    assert "Invalid value for '--rate'" in result.stderr


def test_a_missing_input_under_json_is_json() -> None:
    result = invoke(["--log-format", "json"])

    assert result.exit_code == 2
    [event] = json_lines(result.stderr)
    assert "INPUT" in event["message"]


def test_a_summary_json_file_is_the_summary_event(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    result = invoke(simulated(tmp_path / "r.csv", "--log-format", "json", "--summary-json",
                              str(path)))  # fmt: skip

    assert result.exit_code == 1, result.stderr
    [event] = named(json_lines(result.stderr), "run.summary")
    written = json.loads(path.read_text(encoding="utf-8"))
    for key in ("event", "level", "timestamp"):
        del event[key]
    assert written == event
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_a_summary_json_path_that_cannot_be_written_is_refused_before_the_run(
    tmp_path: Path,
) -> None:
    report = tmp_path / "r.csv"
    result = invoke(simulated(report, "--summary-json", str(tmp_path / "no" / "s.json")))

    assert result.exit_code == 2
    assert "directory" in result.stderr
    assert not report.exists()  # nothing ran


@pytest.mark.parametrize("clash", ["report", "input"])
def test_a_summary_json_path_that_is_the_report_or_the_input_is_refused(
    tmp_path: Path, clash: str
) -> None:
    report = tmp_path / "r.csv"
    source = tmp_path / "t.csv"
    source.write_bytes((SAMPLES / "targets.csv").read_bytes())
    path = report if clash == "report" else source
    args = [str(source), "--simulate", "--report", str(report), *FAST, "--summary-json",
            str(path)]  # fmt: skip
    result = invoke(args)

    assert result.exit_code == 2
    assert f"is the {clash}" in result.stderr
    assert not report.exists()
    assert source.read_bytes() == (SAMPLES / "targets.csv").read_bytes()


@pytest.mark.parametrize("companion", ["settings", "inflight", "lock"])
def test_a_summary_json_path_that_is_a_file_of_the_report_is_refused(
    tmp_path: Path, companion: str
) -> None:
    # Written over <report>.settings, the summary would leave a report no --resume can read.
    report = tmp_path / "r.csv"
    path = tmp_path / f"r.csv.{companion}"
    result = invoke(simulated(report, "--summary-json", str(path)))

    assert result.exit_code == 2
    assert f"is the report's {companion} file" in result.stderr
    assert not report.exists()
    assert not path.exists()


# --------------------------------------------------------------------------------------------
# --quiet


def test_quiet_shows_the_one_line_summary_only(tmp_path: Path) -> None:
    result = invoke(simulated(tmp_path / "r.csv", "--quiet"))

    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert re.fullmatch(
        r"bulkstop: 25 rows: stopped \d+, not_stopped \d+, invalid 1, duplicate 1", line
    )


def test_quiet_still_shows_an_error(tmp_path: Path) -> None:
    result = invoke([str(SAMPLES / "mixed.csv"), "--report", str(tmp_path / "r.csv"), "-q"])

    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("bulkstop: error: ")


# --------------------------------------------------------------------------------------------
# An interrupted run, as a process


def targets_csv(path: Path, rows: int) -> Path:
    lines = ["job_id,build_no"]
    lines += [f"{index:032x},{index + 1}" for index in range(1, rows + 1)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def read_until(stream: Any, wanted: bytes, deadline: float) -> bytes:
    """What ``stream`` gave up to and including ``wanted``, within ``deadline``."""
    data = b""
    fd = stream.fileno()
    while wanted not in data and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0))
        if not ready:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    if wanted not in data:
        pytest.fail(f"{wanted!r} not seen; got {data!r}")
    return data


def wait_for_records(report: Path, deadline: float) -> None:
    """Until the report holds a record (its header and a line): the run is sending."""
    while time.monotonic() < deadline:
        if report.exists() and report.read_bytes().count(b"\n") >= 2:
            return
        time.sleep(0.02)  # polling a file, not measuring time
    pytest.fail(f"{report} got no record")


def test_an_interrupted_run_writes_only_json_and_says_how_to_continue(tmp_path: Path) -> None:
    source = targets_csv(tmp_path / "many.csv", 400)
    report = tmp_path / "r.csv"
    environment = {k: v for k, v in os.environ.items() if k not in OUTSIDE_VARIABLES}
    process = subprocess.Popen(
        [sys.executable, "-m", "bulkstop", "run", str(source), "--simulate", "--report",
         str(report), "--rate", "20", "--log-format", "json"],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=environment,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + PROCESS_TIMEOUT
        seen = read_until(process.stderr, b'"run.start"', deadline)
        wait_for_records(report, deadline)
        process.send_signal(signal.SIGINT)
        _, rest = process.communicate(timeout=PROCESS_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert process.returncode == 130
    events = json_lines((seen + rest).decode())
    [interrupt] = named(events, "run.interrupt")
    assert (interrupt["signal"], interrupt["level"]) == ("SIGINT", "warning")
    [summary] = named(events, "run.summary")
    assert summary["exit_code"] == 130
    assert summary["ended_early"]["by"] == "interrupt"
    assert "SIGINT" in summary["ended_early"]["message"]
    assert summary["outcomes"]["aborted"] > 0
    assert summary["resume_hint"].endswith("--resume")
    assert str(report) in summary["resume_hint"]


# --------------------------------------------------------------------------------------------
# The digest at the default level


TOKEN = "e2e-console-token-5f0c2a9e"


@pytest.fixture
def failing_simulator(simulator_host: SimulatorHost) -> Iterator[HostedSimulator]:
    """A simulator that answers a third of the stop calls 500 (a transient failure)."""
    config = SimulatorConfig(token=TOKEN, finished_ratio=0.0, faults=FaultConfig(error_500=0.3))
    simulator = simulator_host.start(config)
    yield simulator
    simulator.close()


def test_retries_and_failures_are_a_digest_at_the_default_level(
    tmp_path: Path, failing_simulator: HostedSimulator
) -> None:
    source = targets_csv(tmp_path / "t.csv", 60)
    args = [str(source), "--endpoint", failing_simulator.url, "--report", str(tmp_path / "r.csv"),
            *FAST, "--max-attempts", "2"]  # fmt: skip
    result = CliRunner().invoke(
        main, ["run", *args], env={**dict.fromkeys(OUTSIDE_VARIABLES), "CODEARTS_TOKEN": TOKEN}
    )

    assert result.exit_code == 1, result.stderr
    summary = result.stderr[result.stderr.index("bulkstop: 60 rows") :]
    assert re.search(r" [1-9]\d* retries", summary)
    assert "stop.retry_scheduled" not in result.stderr
    assert "stop.failed" not in result.stderr
    digests = [line for line in result.stderr.splitlines() if "retries " in line]
    assert digests
    assert all(re.search(r"retries \d+ \(HTTP 500[^)]*\)", line) for line in digests)
    assert any(re.search(r"failed \d+ \(failed \d+\)", line) for line in digests)


@pytest.fixture
def simulator(simulator_host: SimulatorHost) -> Iterator[HostedSimulator]:
    """A simulator that stops every build at once (no call fails, no retry waits)."""
    hosted = simulator_host.start(SimulatorConfig(token=TOKEN, finished_ratio=0.0))
    yield hosted
    hosted.close()


def test_the_token_file_warning_is_json_too(tmp_path: Path, simulator: HostedSimulator) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o644)
    args = [str(targets_csv(tmp_path / "t.csv", 3)), "--endpoint", simulator.url,
            "--token-file", str(token_file), "--report", str(tmp_path / "r.csv"), *FAST,
            "--log-format", "json"]  # fmt: skip
    result = invoke(args)

    events = json_lines(result.stderr)
    [warning] = named(events, "credentials.token_file_readable")
    assert warning["level"] == "warning"
    assert warning["mode"] == "0644"
    assert TOKEN not in result.stderr
    assert named(events, "run.summary")
