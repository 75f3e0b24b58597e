"""End to end: the ``bulkstop`` command against the built-in simulator on 127.0.0.1.

Most runs call the click command in-process (``CliRunner``): a run then takes a tenth of a
second instead of the second and a half a fresh interpreter needs to import bulkstop. The few
tests where the real process matters — the exit status the shell sees, what reaches stderr, no
traceback, the installed script — run ``python -m bulkstop`` (or the ``bulkstop`` script) as a
subprocess with a timeout.

An external simulator runs on a background event loop (``tests/simhost.py``), so that a test
can choose its build model and read its statistics (what was really sent) after the run.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import structlog
from click.testing import CliRunner, Result
from netfaults import (
    UNRESOLVABLE_HOST,
    SelfSignedTLSServer,
    closed_port,
    resolver_is_quick,
    self_signed_certificate,
)
from simhost import HostedSimulator, SimulatorHost

from bulkstop.cli import main
from bulkstop.models import Outcome
from bulkstop.report import LoadedReport, load_report
from bulkstop.simulator import FaultConfig, SimulatorConfig

pytestmark = pytest.mark.e2e

TOKEN = "e2e-cli-token-3b71c0de"  # the simulator's throwaway token
SAMPLES = Path(__file__).resolve().parent.parent / "samples"
#: No subprocess of these tests may live longer than this.
PROCESS_TIMEOUT = 30.0
#: Quick runs: the simulator answers in a millisecond, so only the pace limits a run.
FAST = ("--rate", "500", "--progress", "never")
#: Every variable that could hand the command a credential or an endpoint from outside.
OUTSIDE_VARIABLES = (
    "CODEARTS_TOKEN",
    "CODEARTS_ENDPOINT",
    "CODEARTS_REGION",
    "CODEARTS_API",
    "HUAWEICLOUD_USERNAME",
    "HUAWEICLOUD_PASSWORD",
    "HUAWEICLOUD_DOMAIN",
    "HUAWEICLOUD_SDK_AK",
    "HUAWEICLOUD_SDK_SK",
    "HUAWEICLOUD_SDK_PROJECT_ID",
    "HUAWEICLOUD_SDK_SECURITY_TOKEN",
)


def job_id(name: str) -> str:
    """A valid, stable 32-character job id for a readable name."""
    return hashlib.blake2b(name.encode(), digest_size=16).hexdigest()


RUNNING_JOB = job_id("running")
OTHER_RUNNING_JOB = job_id("running-too")
UNKNOWN_JOB = job_id("unknown")
FORBIDDEN_JOB = job_id("forbidden")


@pytest.fixture(autouse=True)
def quiet_logs() -> Iterator[None]:
    """Keep the simulator thread quiet, and undo the CLI's logging setup after each test.

    The CLI points structlog at the stderr it saw, which for an in-process run is the
    runner's capture buffer; later tests must not log into it.
    """
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    yield
    structlog.reset_defaults()


# --------------------------------------------------------------------------------------------
# An external simulator


@pytest.fixture
def start_simulator(simulator_host: SimulatorHost) -> Iterator[Any]:
    """``start_simulator(**config)`` → a running :class:`HostedSimulator` (closed at teardown)."""
    running: list[HostedSimulator] = []

    def start(**config: Any) -> HostedSimulator:
        config.setdefault("token", TOKEN)
        simulator = simulator_host.start(SimulatorConfig(**config))
        running.append(simulator)
        return simulator

    yield start
    for simulator in running:
        simulator.close()


@pytest.fixture
def simulator(start_simulator: Any) -> HostedSimulator:
    """A simulator whose builds are all running."""
    sim: HostedSimulator = start_simulator(finished_ratio=0.0)
    return sim


# --------------------------------------------------------------------------------------------
# Running the command


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """An environment for CliRunner: no outside credential or endpoint, plus ``extra``."""
    env: dict[str, str | None] = dict.fromkeys(OUTSIDE_VARIABLES)
    env.update(extra or {})
    return env


def invoke(
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    input: str | bytes | None = None,
) -> Result:
    """``bulkstop run ARGS`` in-process; fails the test on any exception but ``SystemExit``."""
    result = CliRunner().invoke(main, ["run", *args], env=clean_env(env), input=input)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"bulkstop raised instead of exiting: {result.exception!r}")
    return result


def run_process(
    args: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m bulkstop ARGS`` as a real process, under a timeout."""
    environment = {k: v for k, v in os.environ.items() if k not in OUTSIDE_VARIABLES}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "bulkstop", *args],
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
        env=environment,
        cwd=cwd,
        check=False,
    )


def against(simulator: HostedSimulator, report: Path) -> list[str]:
    return ["--endpoint", simulator.url, "--report", str(report), *FAST]


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("bulkstop: error:")]


def by_line(report: LoadedReport) -> dict[int, Any]:
    """The report's records keyed by input line, failing on a line reported twice."""
    lines = Counter(record.line for record in report.records)
    assert not [line for line, n in lines.items() if n > 1], f"lines reported twice: {lines}"
    return {record.line: record for record in report.records}


# --------------------------------------------------------------------------------------------
# The inputs


@dataclass(frozen=True, slots=True)
class Row:
    """One data row of an input file: where it is and the outcome it must end with."""

    line: int
    job_id: str
    build_no: str
    expected: frozenset[Outcome]


ACCEPTED = frozenset({Outcome.STOPPED, Outcome.NOT_STOPPED})


def sample_rows(name: str) -> list[Row]:
    """The data rows of a sample file, read here independently of bulkstop's readers."""
    text = (SAMPLES / name).read_text(encoding="utf-8")
    lines: list[int]
    objects: list[Any]
    if name.endswith(".csv"):
        records = list(csv.reader(text.splitlines()))[1:]
        lines = list(range(2, len(records) + 2))
        objects = [{"job_id": job, "build_no": build} for job, build in records]
    elif name.endswith(".jsonl"):
        numbered = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
        lines = [n for n, _ in numbered]
        objects = [json.loads(line) for _, line in numbered]
    else:
        # Elements of the "targets" array start on lines holding a lone "{" (pretty-printed).
        objects = json.loads(text)["targets"]
        lines = [n for n, line in enumerate(text.splitlines(), 1) if line.strip() == "{" and n > 1]
    pairs = [(obj["job_id"], str(obj["build_no"])) for obj in objects]
    assert len(lines) == len(pairs)
    rows = []
    seen: set[tuple[str, str]] = set()
    for line, (job, build) in zip(lines, pairs, strict=True):
        if not build.isdigit():
            expected = frozenset({Outcome.INVALID})
        elif (job, build) in seen:
            expected = frozenset({Outcome.DUPLICATE})
        else:
            expected = ACCEPTED
        seen.add((job, build))
        rows.append(Row(line, job, build, expected))
    return rows


def write_csv(path: Path, pairs: Sequence[tuple[str, Any]]) -> Path:
    lines = ["job_id,build_no", *(f"{job},{build}" for job, build in pairs)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def check_report(report: LoadedReport, rows: Sequence[Row]) -> None:
    """Exactly one record per input row, naming that row's target, with an expected outcome."""
    records = by_line(report)
    assert sorted(records) == [row.line for row in rows]
    for row in rows:
        record = records[row.line]
        assert (record.job_id, record.build_no) == (row.job_id, row.build_no), row
        assert record.outcome in row.expected, (row, record.outcome, record.detail)


# --------------------------------------------------------------------------------------------
# The samples with --simulate


@pytest.mark.parametrize(
    ("sample", "report_name", "exit_code"),
    [
        ("targets.csv", "report.csv", 0),
        ("mixed.csv", "report.csv", 1),
        ("targets.json", "report.jsonl", 0),
        ("targets.jsonl", "report.json", 0),
    ],
)
def test_simulate_reports_every_sample_row_once(
    tmp_path: Path, sample: str, report_name: str, exit_code: int
) -> None:
    report = tmp_path / report_name
    result = invoke([str(SAMPLES / sample), "--simulate", "--report", str(report), *FAST])

    assert result.exit_code == exit_code, result.stderr
    rows = sample_rows(sample)
    check_report(load_report(report), rows)
    assert "SIMULATION" in result.stderr
    assert f"bulkstop: {len(rows)} rows:" in result.stderr
    assert f"report: {report}" in result.stderr


def test_simulate_mixed_sample_names_its_invalid_and_duplicate_rows(tmp_path: Path) -> None:
    report = tmp_path / "report.csv"
    invoke([str(SAMPLES / "mixed.csv"), "--simulate", "--report", str(report), *FAST])

    records = by_line(load_report(report))
    assert records[11].outcome is Outcome.DUPLICATE
    assert records[19].outcome is Outcome.INVALID
    assert "build_no" in records[19].detail
    assert {r.outcome for line, r in records.items() if line not in (11, 19)} <= ACCEPTED


def test_the_quickstart_run_succeeds_as_a_process(tmp_path: Path) -> None:
    # The README's first command as a newcomer types it, in a copy of a clone's top directory
    # (the report goes to the current directory).
    shutil.copytree(SAMPLES, tmp_path / "samples")
    done = run_process(["run", "samples/targets.csv", "--simulate", *FAST], cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert "bulkstop: 25 rows: " in done.stderr
    assert "invalid" not in done.stderr
    assert "duplicate" not in done.stderr
    assert "Traceback" not in done.stderr
    [report] = tmp_path.glob("bulkstop-report-*.csv")
    assert len(load_report(report).records) == 25


def test_simulate_as_a_process_exits_1_with_summary_and_no_traceback(tmp_path: Path) -> None:
    report = tmp_path / "report.csv"
    done = run_process(
        ["run", str(SAMPLES / "mixed.csv"), "--simulate", "--report", str(report), *FAST]
    )

    assert done.returncode == 1, done.stderr
    assert "SIMULATION" in done.stderr
    assert "bulkstop: 25 rows: " in done.stderr
    assert "invalid 1, duplicate 1" in done.stderr
    assert f"report: {report}" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""  # stdout stays free for machine-readable output


# --------------------------------------------------------------------------------------------
# Against an external simulator with a known build model


def mixed_input() -> tuple[list[tuple[str, Any]], list[Outcome], dict[str, Any]]:
    """Rows of every outcome a run can produce without faults, and the simulator that fits.

    Three forbidden rows only: 403 answers count towards the auth breaker (default 5 in a row).
    """
    finished = [
        (RUNNING_JOB, 50),
        (RUNNING_JOB, 51),
        (OTHER_RUNNING_JOB, 7),
        (OTHER_RUNNING_JOB, 8),
    ]
    plan: list[tuple[tuple[str, Any], Outcome]] = []
    plan += [((RUNNING_JOB, n), Outcome.STOPPED) for n in range(1, 9)]
    plan += [((OTHER_RUNNING_JOB, n), Outcome.STOPPED) for n in range(1, 5)]
    plan += [(pair, Outcome.NOT_STOPPED) for pair in finished]
    plan += [((UNKNOWN_JOB, n), Outcome.NOT_FOUND) for n in range(1, 4)]
    plan += [((FORBIDDEN_JOB, n), Outcome.FORBIDDEN) for n in range(1, 4)]
    plan += [(("NOT-A-JOB-ID", 1), Outcome.INVALID), ((RUNNING_JOB, 0), Outcome.INVALID)]
    plan += [((RUNNING_JOB, 3), Outcome.DUPLICATE), ((UNKNOWN_JOB, 2), Outcome.DUPLICATE)]
    # Interleave so that equal outcomes are not neighbours (the duplicates stay after their
    # originals: they come last).
    head, tail = plan[:-2], plan[-2:]
    ordered = head[::2] + head[1::2] + tail
    config = {
        "finished_ratio": 0.0,
        "unknown_jobs": frozenset({UNKNOWN_JOB}),
        "forbidden_jobs": frozenset({FORBIDDEN_JOB}),
        "finished_builds": frozenset(finished),
    }
    return [pair for pair, _ in ordered], [outcome for _, outcome in ordered], config


def test_every_row_ends_with_its_outcome_exactly_once(tmp_path: Path, start_simulator: Any) -> None:
    pairs, outcomes, config = mixed_input()
    simulator = start_simulator(**config)
    source = write_csv(tmp_path / "targets.csv", pairs)
    report = tmp_path / "report.csv"

    result = invoke([str(source), *against(simulator, report)], env={"CODEARTS_TOKEN": TOKEN})

    assert result.exit_code == 1, result.stderr
    records = by_line(load_report(report))
    assert {line: r.outcome for line, r in records.items()} == {
        line: outcome for line, outcome in enumerate(outcomes, start=2)
    }
    sent = sum(1 for o in outcomes if o not in (Outcome.INVALID, Outcome.DUPLICATE))
    stats = simulator.stats()
    assert stats["stop_requests"] == sent  # invalid and duplicate rows are never sent
    assert stats["effective_stops"] == outcomes.count(Outcome.STOPPED)


@pytest.mark.parametrize("via", ["file", "stdin"])
def test_only_running_builds_exit_0(tmp_path: Path, simulator: HostedSimulator, via: str) -> None:
    pairs = [(RUNNING_JOB if n % 2 else OTHER_RUNNING_JOB, n) for n in range(1, 41)]
    report = tmp_path / "report.csv"
    text = "".join(json.dumps({"job_id": job, "build_no": n}) + "\n" for job, n in pairs)
    if via == "file":
        source = tmp_path / "targets.jsonl"
        source.write_text(text, encoding="utf-8")
        args, stdin = [str(source)], None
    else:
        args, stdin = ["-", "--input-format", "jsonl"], text

    result = invoke(
        [*args, *against(simulator, report)], env={"CODEARTS_TOKEN": TOKEN}, input=stdin
    )

    assert result.exit_code == 0, result.stderr
    stopped = frozenset({Outcome.STOPPED})
    rows = [Row(n, job, str(build), stopped) for n, (job, build) in enumerate(pairs, start=1)]
    check_report(load_report(report), rows)
    assert simulator.stats()["effective_stops"] == len(pairs)


def csv_input(tmp_path: Path, pairs: Sequence[tuple[str, Any]], via: str) -> tuple[list[str], str]:
    """The arguments and the stdin text that give ``pairs`` as a CSV input ``via`` a file or
    stdin; a file is named for its content, so that different inputs are different files."""
    text = "job_id,build_no\n" + "".join(f"{job},{build}\n" for job, build in pairs)
    if via == "stdin":
        return ["-", "--input-format", "csv"], text
    path = tmp_path / f"targets-{hashlib.blake2b(text.encode(), digest_size=4).hexdigest()}.csv"
    path.write_text(text, encoding="utf-8")
    return [str(path)], ""


@pytest.mark.parametrize("via", ["file", "stdin"])
def test_resume_of_a_reordered_input_reports_every_row_at_its_own_line(
    tmp_path: Path, simulator: HostedSimulator, via: str
) -> None:
    first = [(RUNNING_JOB, n) for n in range(1, 7)]
    again = [*reversed(first), (RUNNING_JOB, 7), (RUNNING_JOB, 3)]
    report = tmp_path / "reports" / "report.csv"
    report.parent.mkdir()
    args, text = csv_input(tmp_path, first, via)
    done = invoke([*args, *against(simulator, report)], env={"CODEARTS_TOKEN": TOKEN}, input=text)
    assert done.exit_code == 0, done.stderr
    args, text = csv_input(tmp_path, again, via)

    resumed = invoke(
        [*args, *against(simulator, report), "--resume"], env={"CODEARTS_TOKEN": TOKEN}, input=text
    )

    assert resumed.exit_code == 1, resumed.stderr  # the duplicate row
    rows = [
        Row(line, job, str(build), frozenset({Outcome.STOPPED}))
        for line, (job, build) in enumerate(again[:-1], start=2)
    ]
    rows.append(Row(9, RUNNING_JOB, "3", frozenset({Outcome.DUPLICATE})))
    loaded = load_report(report)
    check_report(loaded, rows)
    # The six carried over keep the run that stopped them; only build 7 was sent again.
    assert {r.line: r.run for r in loaded.records} == {**dict.fromkeys(range(2, 8), 1), 8: 2, 9: 2}
    assert simulator.stats()["stop_requests"] == 7
    # No lock file, in-flight sidecar or spooled copy of stdin is left beside the report; only
    # the settings the next resume continues with.
    assert sorted(path.name for path in report.parent.iterdir()) == [
        "report.csv",
        "report.csv.settings",
    ]


def test_resume_from_stdin_refuses_the_report_of_another_input(
    tmp_path: Path, simulator: HostedSimulator
) -> None:
    report = tmp_path / "report.csv"
    args, text = csv_input(tmp_path, [(RUNNING_JOB, 1), (RUNNING_JOB, 2)], "stdin")
    done = invoke([*args, *against(simulator, report)], env={"CODEARTS_TOKEN": TOKEN}, input=text)
    assert done.exit_code == 0, done.stderr
    content = report.read_bytes()
    _, other = csv_input(tmp_path, [(OTHER_RUNNING_JOB, 1), (OTHER_RUNNING_JOB, 2)], "stdin")

    again = invoke(
        [*args, *against(simulator, report), "--resume"], env={"CODEARTS_TOKEN": TOKEN}, input=other
    )

    assert again.exit_code == 2, again.stderr
    [message] = error_lines(again.stderr)
    assert f"{report} is not a report of <stdin>" in message
    assert simulator.stats()["stop_requests"] == 2  # the first run's
    assert report.read_bytes() == content


# --------------------------------------------------------------------------------------------
# A wrong token


WRONG_TOKEN = "wrong-token-9d2e51aa"  # deliberately not the simulator's


@pytest.mark.parametrize(
    ("breaker", "exit_code"), [(None, 3), ("0", 1)], ids=["breaker-default", "breaker-off"]
)
def test_wrong_token_reports_every_row_unauthorized_or_aborted(
    tmp_path: Path, simulator: HostedSimulator, breaker: str | None, exit_code: int
) -> None:
    pairs = [(RUNNING_JOB, n) for n in range(1, 31)]
    source = write_csv(tmp_path / "targets.csv", pairs)
    report = tmp_path / "report.csv"
    extra = ["--auth-breaker", breaker] if breaker is not None else []

    result = invoke(
        [str(source), *against(simulator, report), *extra], env={"CODEARTS_TOKEN": WRONG_TOKEN}
    )

    assert result.exit_code == exit_code, result.stderr
    records = by_line(load_report(report))
    assert sorted(records) == list(range(2, 32))
    outcomes = Counter(r.outcome for r in records.values())
    stats = simulator.stats()
    assert stats["effective_stops"] == 0
    assert stats["auth_failures"] == stats["stop_requests"] == outcomes[Outcome.UNAUTHORIZED]
    if breaker is None:
        assert set(outcomes) == {Outcome.UNAUTHORIZED, Outcome.ABORTED}
        # The breaker trips at the 5th failure in a row; the (at most 7) other calls in flight
        # still answer, and everything not yet sent ends aborted.
        assert 5 <= outcomes[Outcome.UNAUTHORIZED] <= 5 + 7
        assert "ABORTED (credentials)" in result.stderr
        assert "--resume" in result.stderr
    else:
        assert outcomes == {Outcome.UNAUTHORIZED: 30}
    assert WRONG_TOKEN not in result.stderr
    assert WRONG_TOKEN not in report.read_text(encoding="utf-8")


# --------------------------------------------------------------------------------------------
# A call that is wrong: the run ends after a handful of targets and says what to change


@dataclass(frozen=True, slots=True)
class WrongCall:
    """An endpoint that cannot work, and the words the summary must use for it."""

    name: str
    says: tuple[str, ...]


WRONG_CALLS = [
    WrongCall(
        "api-not-served",
        (
            "ABORTED (the call is wrong): this endpoint does not serve the legacy stop API "
            "(404 CB.00060214 for 5 of 5 first calls); try --api v3 or --api v1",
        ),
    ),
    WrongCall(
        "refused", ("connection refused by 127.0.0.1:", "(5 of 5 first calls)", "--endpoint")
    ),
    WrongCall(
        "certificate",
        ("certificate of 127.0.0.1:", "not trusted", "(5 of 5 first calls)", "--ca-bundle"),
    ),
    WrongCall(
        "dns",
        (f"cannot resolve host {UNRESOLVABLE_HOST} (5 of 5 first calls)", "--endpoint/--region"),
    ),
]


@pytest.fixture
def wrong_endpoint(
    request: pytest.FixtureRequest, tmp_path: Path, start_simulator: Any
) -> Iterator[tuple[str, Callable[[], int]]]:
    """``(endpoint, sent)`` for the wrong call named by the test's parameter; ``sent()`` says
    how many calls reached it (TCP connections or TLS handshakes where nothing answers)."""
    case: WrongCall = request.param
    if case.name == "api-not-served":
        simulator = start_simulator(finished_ratio=0.0, stop_apis=frozenset({"v1"}))
        yield simulator.url, lambda: int(simulator.stats()["requests_total"])
    elif case.name == "refused":
        yield f"http://127.0.0.1:{closed_port()}", lambda: 0
    elif case.name == "certificate":
        cert, key = self_signed_certificate(tmp_path)
        with SelfSignedTLSServer(cert, key) as server:
            yield server.url, lambda: server.handshakes
    else:
        if not resolver_is_quick():
            pytest.skip(f"this machine's resolver does not answer for {UNRESOLVABLE_HOST} at once")
        yield f"https://{UNRESOLVABLE_HOST}", lambda: 0


@pytest.mark.parametrize(
    ("wrong_endpoint", "says"),
    [(case, case.says) for case in WRONG_CALLS],
    ids=[case.name for case in WRONG_CALLS],
    indirect=["wrong_endpoint"],
)
def test_a_wrong_call_ends_the_run_early_with_exit_2_and_says_what_to_change(
    tmp_path: Path, wrong_endpoint: tuple[str, Callable[[], int]], says: tuple[str, ...]
) -> None:
    endpoint, sent = wrong_endpoint
    pairs = [(RUNNING_JOB, n) for n in range(1, 301)]
    source = write_csv(tmp_path / "targets.csv", pairs)
    report = tmp_path / "report.csv"

    result = invoke(
        [str(source), "--endpoint", endpoint, "--report", str(report), *FAST],
        env={"CODEARTS_TOKEN": TOKEN},
    )

    assert result.exit_code == 2, result.stderr
    assert "Traceback" not in result.stderr
    for part in says:
        assert part in result.stderr, result.stderr
    assert f"--report {report} --resume" in result.stderr
    records = by_line(load_report(report))
    assert sorted(records) == list(range(2, 302))
    # a handful were sent, once each (nothing retried); nothing is settled: all resumable
    assert {r.outcome for r in records.values()} == {Outcome.ABORTED}
    tried = [r for r in records.values() if r.attempts]
    assert 5 <= len(tried) <= 5 + 8
    assert {r.attempts for r in tried} == {1}
    assert sent() <= len(tried)


def test_a_run_ended_by_a_wrong_api_is_finished_by_a_resume_with_the_right_one(
    tmp_path: Path, start_simulator: Any
) -> None:
    simulator = start_simulator(finished_ratio=0.0, stop_apis=frozenset({"v3"}))
    pairs = [(RUNNING_JOB, n) for n in range(1, 61)]
    source = write_csv(tmp_path / "targets.csv", pairs)
    report = tmp_path / "report.csv"
    args = [str(source), *against(simulator, report)]

    first = invoke(args, env={"CODEARTS_TOKEN": TOKEN})
    assert first.exit_code == 2, first.stderr
    again = invoke([*args, "--resume", "--api", "v3"], env={"CODEARTS_TOKEN": TOKEN})

    assert again.exit_code == 0, again.stderr
    stopped = frozenset({Outcome.STOPPED})
    check_report(
        load_report(report), [Row(n, j, str(b), stopped) for n, (j, b) in enumerate(pairs, 2)]
    )
    assert simulator.stats()["effective_stops"] == 60


# --------------------------------------------------------------------------------------------
# A failing server: the run ends as a whole, resumable


@pytest.mark.parametrize(("window", "exit_code"), [("0.3", 3), ("0", 1)], ids=["0.3s", "off"])
def test_a_server_failing_every_call_aborts_the_run_after_the_window(
    tmp_path: Path, start_simulator: Any, window: str, exit_code: int
) -> None:
    count = 60
    simulator = start_simulator(finished_ratio=0.0, faults=FaultConfig(error_500=1.0))
    pairs = [(RUNNING_JOB, n) for n in range(1, count + 1)]
    source = write_csv(tmp_path / "targets.csv", pairs)
    report = tmp_path / "report.csv"
    # one attempt each at 100/s: the run lasts 0.6 s, a window of 0.3 s is over first
    pace = ["--rate", "100", "--max-attempts", "1", "--progress", "never"]

    result = invoke(
        [
            str(source),
            "--endpoint",
            simulator.url,
            "--report",
            str(report),
            *pace,
            "--failing-server-window",
            window,
        ],
        env={"CODEARTS_TOKEN": TOKEN},
    )

    assert result.exit_code == exit_code, result.stderr
    records = by_line(load_report(report))
    assert sorted(records) == list(range(2, count + 2))
    outcomes = Counter(r.outcome for r in records.values())
    if exit_code == 3:
        assert "ABORTED (server failing): the server failed 100 % of calls for the last 0.3 s" in (
            result.stderr
        )
        assert f"--report {report} --resume" in result.stderr
        assert set(outcomes) == {Outcome.FAILED, Outcome.ABORTED}
        assert simulator.stats()["stop_requests"] == outcomes[Outcome.FAILED] < count
    else:
        assert outcomes == {Outcome.FAILED: count}
        assert "ABORTED" not in result.stderr


# --------------------------------------------------------------------------------------------
# Malformed inputs


J = job_id("malformed")


@dataclass(frozen=True, slots=True)
class Bad:
    """A malformed input: the file (``None``: not created), how to name it, what must happen."""

    name: str
    content: bytes | None
    exit_code: int
    says: tuple[str, ...]
    args: tuple[str, ...] = ()
    #: lines reported invalid (exit 1 cases); every other row must be stopped
    invalid_lines: tuple[int, ...] = ()


MALFORMED = {
    "empty-file": Bad("empty.csv", b"", 2, ("empty.csv", "empty file")),
    "wrong-columns": Bad("wrong.csv", f"job,bn\n{J},1\n".encode(), 2, ("wrong.csv:1:", "build_no")),
    "bad-ids-and-builds": Bad(
        "bad.csv",
        (
            f"job_id,build_no\n{J},0\n{J.upper()},2\nshort,3\n{J},-1\n{J},1.5\n{J},\n"
            f"{J},4\n{J}x,5\n,6\n"
        ).encode(),
        1,
        ("bad.csv:2", "bad.csv:3", "bad.csv:9", "bad.csv:10"),
        # 7 and 10 leave a cell empty: their records must still read back from the report
        invalid_lines=(2, 3, 4, 5, 6, 7, 9, 10),
    ),
    "broken-jsonl-line": Bad(
        "broken.jsonl",
        (
            f'{{"job_id": "{J}", "build_no": 1}}\n{{"job_id": broken\n'
            f'{{"job_id": "{J}", "build_no": 2}}\n'
        ).encode(),
        1,
        ("broken.jsonl:2",),
        invalid_lines=(2,),
    ),
    "broken-json-file": Bad(
        "broken.json", f'[{{"job_id": "{J}", "build_no": 1}},'.encode(), 2, ("broken.json:1:",)
    ),
    "binary-garbage": Bad("garbage.csv", bytes(range(256)) * 4, 2, ("garbage.csv:1:", "NUL")),
    "not-utf8": Bad(
        "latin1.csv",
        b"job_id,build_no\n" + "café,1\n".encode("latin-1"),
        2,
        ("latin1.csv:2:", "UTF-8"),
    ),
    "directory": Bad("folder.csv", None, 2, ("folder.csv", "directory")),
    "missing": Bad("missing.csv", None, 2, ("missing.csv", "no such file")),
    "unknown-extension": Bad(
        "targets.txt", f"job_id,build_no\n{J},1\n".encode(), 2, ("targets.txt", "--input-format")
    ),
}


def _materialise(tmp_path: Path, bad: Bad) -> Path:
    path = tmp_path / bad.name
    if bad.content is not None:
        path.write_bytes(bad.content)
    elif bad.name.startswith("folder"):
        path.mkdir()
    return path


@pytest.mark.parametrize("case", list(MALFORMED), ids=list(MALFORMED))
def test_malformed_input_gives_one_line_and_the_right_exit(
    tmp_path: Path, simulator: HostedSimulator, case: str
) -> None:
    bad = MALFORMED[case]
    path = _materialise(tmp_path, bad)
    report = tmp_path / "report.csv"

    result = invoke(
        [str(path), *bad.args, *against(simulator, report)], env={"CODEARTS_TOKEN": TOKEN}
    )

    assert result.exit_code == bad.exit_code, result.stderr
    assert "Traceback" not in result.stderr
    if bad.exit_code == 2:
        [message] = error_lines(result.stderr)
        assert all(part in message for part in bad.says), message
        assert simulator.stats()["stop_requests"] == 0
        return
    assert not error_lines(result.stderr)
    assert all(part in result.stderr for part in bad.says), result.stderr
    records = by_line(load_report(report))
    invalid = sorted(line for line, r in records.items() if r.outcome is Outcome.INVALID)
    assert invalid == list(bad.invalid_lines)
    sent = [r for r in records.values() if r.outcome is not Outcome.INVALID]
    assert all(r.outcome is Outcome.STOPPED for r in sent)
    assert simulator.stats()["stop_requests"] == len(sent)


def test_header_only_is_zero_rows_and_exit_0(tmp_path: Path, simulator: HostedSimulator) -> None:
    source = tmp_path / "header.csv"
    source.write_text("job_id,build_no\n", encoding="utf-8")
    report = tmp_path / "report.csv"

    result = invoke([str(source), *against(simulator, report)], env={"CODEARTS_TOKEN": TOKEN})

    assert result.exit_code == 0, result.stderr
    assert "bulkstop: 0 rows" in result.stderr
    assert load_report(report, missing_ok=True).records == []
    assert simulator.stats()["stop_requests"] == 0


def test_stdin_without_input_format_is_a_usage_error(
    tmp_path: Path, simulator: HostedSimulator
) -> None:
    report = tmp_path / "report.csv"
    result = invoke(
        ["-", *against(simulator, report)],
        env={"CODEARTS_TOKEN": TOKEN},
        input=f"job_id,build_no\n{J},1\n",
    )

    assert result.exit_code == 2
    [message] = error_lines(result.stderr)
    assert "stdin" in message
    assert "--input-format" in message
    assert simulator.stats()["stop_requests"] == 0


def test_malformed_input_as_a_process_exits_2_without_traceback(tmp_path: Path) -> None:
    # One input stands for all: the in-process test above gives each its message and exit.
    bad = MALFORMED["binary-garbage"]
    path = _materialise(tmp_path, bad)
    done = run_process(
        ["run", str(path), "--endpoint", "http://127.0.0.1:9", *FAST],
        env={"CODEARTS_TOKEN": TOKEN},
        cwd=tmp_path,
    )

    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    [message] = error_lines(done.stderr)
    assert all(part in message for part in bad.says), message


# --------------------------------------------------------------------------------------------
# Usage errors


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("no-endpoint", ("--endpoint", "--region")),
        ("retry-failed-without-resume", ("--retry-failed", "--resume")),
        ("report-exists", ("already exists", "--resume", "--overwrite")),
        (
            "no-credentials",
            ("CODEARTS_TOKEN", "--token-file", "HUAWEICLOUD_USERNAME", "HUAWEICLOUD_SDK_AK"),
        ),
    ],
)
def test_usage_error_exits_2_and_sends_nothing(
    tmp_path: Path, simulator: HostedSimulator, case: str, says: tuple[str, ...]
) -> None:
    source = write_csv(tmp_path / "targets.csv", [(RUNNING_JOB, 1), (RUNNING_JOB, 2)])
    report = tmp_path / "report.csv"
    args = [str(source), "--report", str(report), *FAST]
    env = {"CODEARTS_TOKEN": TOKEN}
    if case != "no-endpoint":
        args += ["--endpoint", simulator.url]
    if case == "retry-failed-without-resume":
        args.append("--retry-failed")
    if case == "report-exists":
        report.write_text("an earlier report\n", encoding="utf-8")
    if case == "no-credentials":
        env = {}

    result = invoke(args, env=env)

    assert result.exit_code == 2, result.stderr
    [message] = error_lines(result.stderr)
    assert all(part in message for part in says), message
    assert simulator.stats()["requests_total"] == 0
    if case == "report-exists":
        assert report.read_text(encoding="utf-8") == "an earlier report\n"


def test_plain_http_to_another_host_needs_insecure_http(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "targets.csv", [(RUNNING_JOB, 1)])
    result = invoke(
        [str(source), "--endpoint", "http://192.0.2.1:8080", "--report", str(tmp_path / "r.csv")],
        env={"CODEARTS_TOKEN": TOKEN},
    )

    assert result.exit_code == 2
    [message] = error_lines(result.stderr)
    assert "--insecure-http" in message


def test_plain_http_to_a_remote_iam_endpoint_needs_insecure_http(
    tmp_path: Path, simulator: HostedSimulator
) -> None:
    source = write_csv(tmp_path / "targets.csv", [(RUNNING_JOB, 1)])
    iam = {
        "HUAWEICLOUD_USERNAME": "alice",
        "HUAWEICLOUD_PASSWORD": "pa55-w0rd-cli",
        "HUAWEICLOUD_DOMAIN": "acme",
    }
    result = invoke(
        [
            str(source),
            *("--endpoint", simulator.url, "--iam-endpoint", "http://192.0.2.1:8080"),
            *("--project-id", "0123456789abcdef0123456789abcdef"),
            *("--report", str(tmp_path / "r.csv"), *FAST),
        ],
        env=iam,
    )

    assert result.exit_code == 2
    [message] = error_lines(result.stderr)
    assert "IAM endpoint: refusing plain http to 192.0.2.1" in message
    assert "--insecure-http" in message
    assert "pa55-w0rd-cli" not in result.stderr
    assert simulator.stats()["requests_total"] == 0


def test_no_endpoint_exits_2_before_a_default_report_is_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_csv(tmp_path / "targets.csv", [(RUNNING_JOB, 1)])
    monkeypatch.chdir(tmp_path)  # where the default report would be written

    result = invoke([str(source), *FAST], env={"CODEARTS_TOKEN": TOKEN})

    assert result.exit_code == 2
    [message] = error_lines(result.stderr)
    assert "--endpoint" in message
    assert "--region" in message
    assert list(tmp_path.iterdir()) == [source]  # no report was started


# --------------------------------------------------------------------------------------------
# The report's files: never the input, never through a link, never a resume of nothing

FLAGS = pytest.mark.parametrize(
    "flags", [[], ["--overwrite"], ["--resume"]], ids=["plain", "overwrite", "resume"]
)


@FLAGS
@pytest.mark.parametrize(
    "way", ["same-path", "report-links-to-input", "input-links-to-report", "hard-link", "stdin"]
)
def test_report_that_is_the_input_is_refused_whatever_the_flags(
    tmp_path: Path, simulator: HostedSimulator, way: str, flags: list[str]
) -> None:
    source = write_csv(tmp_path / "targets.csv", [(RUNNING_JOB, n) for n in range(1, 4)])
    content = source.read_bytes()
    args, report = [str(source)], source
    if way == "report-links-to-input":
        report = tmp_path / "report.csv"
        report.symlink_to(source)
    elif way == "input-links-to-report":
        link = tmp_path / "link.csv"
        link.symlink_to(source)
        args = [str(link)]
    elif way == "hard-link":
        report = tmp_path / "report.csv"
        os.link(source, report)
    elif way == "stdin":
        args = ["-", "--input-format", "csv"]

    with source.open("rb") as stdin:  # what a shell's "< targets.csv" gives
        result = invoke(
            [*args, *against(simulator, report), *flags],
            env={"CODEARTS_TOKEN": TOKEN},
            input=stdin if way == "stdin" else None,
        )

    assert result.exit_code == 2, result.stderr
    [message] = error_lines(result.stderr)
    assert f"the report {report} is " in message
    assert "writing the report would destroy the input" in message
    assert source.read_bytes() == content
    assert simulator.stats()["requests_total"] == 0


@FLAGS
def test_report_path_that_is_a_symlink_is_refused(
    tmp_path: Path, simulator: HostedSimulator, flags: list[str]
) -> None:
    source = write_csv(tmp_path / "targets.csv", [(RUNNING_JOB, 1), (RUNNING_JOB, 2)])
    victim = tmp_path / "victim.csv"
    victim.write_text("someone else's file\n", encoding="utf-8")
    report = tmp_path / "report.csv"
    report.symlink_to(victim)  # planted where the report is to be written

    result = invoke(
        [str(source), *against(simulator, report), *flags], env={"CODEARTS_TOKEN": TOKEN}
    )

    assert result.exit_code == 2, result.stderr
    [message] = error_lines(result.stderr)
    assert f"the report {report} is a symbolic link" in message
    assert victim.read_text(encoding="utf-8") == "someone else's file\n"
    assert report.is_symlink()
    assert simulator.stats()["requests_total"] == 0


def test_resume_of_a_report_that_does_not_exist_is_refused(
    tmp_path: Path, simulator: HostedSimulator
) -> None:
    source = write_csv(tmp_path / "targets.csv", [(RUNNING_JOB, 1), (RUNNING_JOB, 2)])
    report = tmp_path / "reprot.csv"  # a typo of the report to continue

    result = invoke(
        [str(source), *against(simulator, report), "--resume"], env={"CODEARTS_TOKEN": TOKEN}
    )

    assert result.exit_code == 2, result.stderr
    [message] = error_lines(result.stderr)
    assert f"the report {report} does not exist" in message
    assert "leave out --resume to start a new report" in message
    assert list(tmp_path.iterdir()) == [source]  # no report, lock or sidecar was made
    assert simulator.stats()["requests_total"] == 0


# --------------------------------------------------------------------------------------------
# Help and JSON logs


def test_help_lists_the_commands() -> None:
    result = CliRunner().invoke(main, ["--help"])

    assert result.exit_code == 0
    assert "run" in result.stdout
    assert "simulate" in result.stdout


def test_simulate_as_a_process_serves_runs_until_interrupted(tmp_path: Path) -> None:
    """``bulkstop simulate`` for real: its first line names its URL, it serves a run and its
    statistics, and an interrupt ends it cleanly."""
    environment = {k: v for k, v in os.environ.items() if k not in OUTSIDE_VARIABLES}
    command = [sys.executable, "-m", "bulkstop", "simulate", "--port", "0"]
    simulator = subprocess.Popen(
        [*command, "--token", TOKEN, "--finished-ratio", "0", "--jobs", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment,
    )
    try:
        assert simulator.stdout is not None
        ready, _, _ = select.select([simulator.stdout], [], [], PROCESS_TIMEOUT)
        first = simulator.stdout.readline().decode() if ready else ""
        assert first.startswith("bulkstop simulator listening on http://127.0.0.1:"), first
        url = first.split()[4]  # the fifth word, as scripts read it
        pairs = [(RUNNING_JOB, n) for n in range(1, 6)]
        source = write_csv(tmp_path / "targets.csv", pairs)
        report = tmp_path / "report.csv"

        result = invoke(
            [str(source), "--endpoint", url, "--report", str(report), *FAST],
            env={"CODEARTS_TOKEN": TOKEN},
        )

        assert result.exit_code == 0, result.stderr
        no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with no_proxy.open(f"{url}/_sim/stats", timeout=PROCESS_TIMEOUT) as answer:
            stats = json.load(answer)
        assert (stats["stop_requests"], stats["effective_stops"]) == (5, 5)
        simulator.send_signal(signal.SIGINT)
        _, stderr = simulator.communicate(timeout=PROCESS_TIMEOUT)
    finally:
        if simulator.poll() is None:  # a failure above: end it
            simulator.kill()
            simulator.communicate()
    assert simulator.returncode == 0
    assert "Traceback" not in stderr.decode()


def test_run_help_from_the_installed_script() -> None:
    script = shutil.which("bulkstop")
    if script is None:
        pytest.skip("the bulkstop script is not installed")
    done = subprocess.run(
        [script, "run", "--help"],
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
        check=False,
    )

    assert done.returncode == 0
    for flag in ("--endpoint", "--report", "--resume", "--rate", "--simulate", "--log-format"):
        assert flag in done.stdout


def test_json_log_format_makes_every_log_line_json(tmp_path: Path) -> None:
    report = tmp_path / "report.csv"
    result = invoke(
        [
            str(SAMPLES / "mixed.csv"),
            "--simulate",
            "--report",
            str(report),
            *FAST,
            "--log-format",
            "json",
        ]
    )

    assert result.exit_code == 1
    logged: list[str] = []
    plain: list[str] = []
    for line in result.stderr.splitlines():
        (logged if line.startswith("{") else plain).append(line)
    events = [json.loads(line) for line in logged]
    assert all({"event", "level", "timestamp"} <= set(event) for event in events)
    assert {"run.start", "input.invalid_row"} <= {event["event"] for event in events}
    # the banner and the summary are JSON too (tests/test_e2e_console.py has the details)
    assert plain == []
    assert {"run.simulating", "run.summary"} <= {event["event"] for event in events}


def test_progress_always_shows_the_live_counts(tmp_path: Path) -> None:
    report = tmp_path / "report.csv"
    args = [str(SAMPLES / "mixed.csv"), "--simulate", "--report", str(report), "--rate", "500"]
    result = invoke([*args, "--progress", "always"])

    assert result.exit_code == 1, result.stderr
    # the display's last frame: every row done, out of the total counted before the run
    assert "25/25" in result.stderr
    assert re.search(r"stopped \d+ · not_stopped \d+ · invalid 1 · duplicate 1", result.stderr)
    assert "bulkstop: 25 rows:" in result.stderr  # the summary still follows
