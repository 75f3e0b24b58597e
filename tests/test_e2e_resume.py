"""End to end: whatever ends a run, every input row ends with exactly one report record.

Each test gets a simulator of its own on 127.0.0.1 (served by a background event loop of the
test process, ``tests/simhost.py``) and drives ``bulkstop run`` against it: killed with SIGKILL
at random moments and resumed, given a torn report, given the report of another input,
interrupted once or twice, stopped by the failure threshold or the auth circuit breaker,
contended by a second run on the same report. The simulator's per-target counters say what was
really sent, so the tests can check that a target the report calls ``stopped`` is never sent
again.

A run is a real ``bulkstop run`` process where the process matters — it is killed, it gets a
signal, it holds the report's lock against another — and otherwise a click ``CliRunner`` run
in this process, which costs a tenth of a second instead of the second a fresh interpreter
needs to import bulkstop. Every subprocess runs under a timeout and the fixtures kill whatever
is left over.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import structlog
from click.testing import CliRunner
from simhost import HostedSimulator, SimulatorHost

from bulkstop.cli import main
from bulkstop.models import Outcome, Result, TargetKey
from bulkstop.report import LoadedReport, ReportWriter, inflight_path, load_report, lock_path
from bulkstop.simulator import SimulatorConfig

pytestmark = pytest.mark.e2e

TOKEN = "e2e-token-5f0c2a9d"  # the simulators accept this one only
#: No single bulkstop process of these tests may live longer than this.
PROCESS_TIMEOUT = 20.0
#: With PACE on the fast simulator a run of this many targets lasts about a second: long enough
#: to be killed mid-way.
TARGETS = 180
PACE = ("--rate", "200", "--concurrency", "8")
#: A run that only has to finish quickly.
QUICK_PACE = ("--rate", "400", "--concurrency", "32")
#: QUICK_PACE on the slow simulator: the rest of a 60-target run in flight at once, so that its
#: 0.3 s answers are waited for once, not twice.
QUICK_SLOW_PACE = ("--rate", "400", "--concurrency", "64")

#: The simulators of these tests, by the name of the fixture that gives one. Every build runs
#: until it is stopped (``finished_ratio=0``), so "not stopped" means "stopped before".
_FAST: Mapping[str, Any] = {"finished_ratio": 0.0, "latency": 0.02}
SIMULATORS: dict[str, Mapping[str, Any]] = {
    "fast_simulator": _FAST,
    "slow_simulator": {**_FAST, "latency": 0.3},
    "stuck_simulator": {**_FAST, "latency": 5.0},
    "half_unknown_simulator": {**_FAST, "unknown_job_ratio": 0.5},
    "expiring_token_simulator": {**_FAST, "token_ttl_requests": 30},
}

Key = TargetKey


# --------------------------------------------------------------------------------------------
# The input


@dataclass(frozen=True, slots=True)
class Row:
    """One row of a test input, as the report must account for it."""

    line: int
    job_id: str
    build_no: str
    kind: Outcome | None  #: INVALID, DUPLICATE, or None for a target to send

    @property
    def key(self) -> Key:
        return TargetKey(self.job_id, int(self.build_no))


def _job_id(salt: str, index: int) -> str:
    return hashlib.blake2b(f"{salt}:{index}".encode(), digest_size=16).hexdigest()


def write_input(path: Path, count: int, *, salt: str = "e2e") -> list[Row]:
    """A CSV of ``count`` distinct targets with two invalid and two duplicate rows among them.

    The bad rows come early, so they are never the last record of a report.
    """
    targets = [(_job_id(salt, i), str(i % 5 + 1)) for i in range(count)]
    values = [
        *targets[:3],
        ("NOT-A-JOB-ID", "1"),
        targets[0],
        *targets[3:6],
        (_job_id(salt, count), "0"),
        targets[4],
        *targets[6:],
    ]
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["job_id", "build_no"])
        writer.writerows(values)
    rows: list[Row] = []
    seen: set[tuple[str, str]] = set()
    for line, (job_id, build_no) in enumerate(values, start=2):  # line 1 is the header
        kind: Outcome | None = None
        if job_id == "NOT-A-JOB-ID" or build_no == "0":
            kind = Outcome.INVALID
        elif (job_id, build_no) in seen:
            kind = Outcome.DUPLICATE
        seen.add((job_id, build_no))
        rows.append(Row(line, job_id, build_no, kind))
    return rows


def valid_keys(rows: list[Row]) -> set[Key]:
    return {row.key for row in rows if row.kind is None}


# --------------------------------------------------------------------------------------------
# Simulators and runs


def _outside_variables() -> list[str]:
    """Every variable of this environment that could hand a run a credential or an endpoint."""
    return [name for name in os.environ if name.startswith(("CODEARTS_", "HUAWEICLOUD_"))]


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)
    if process.stdout is not None:
        process.stdout.close()


@dataclass(frozen=True, slots=True)
class SimulatorView:
    """A test's simulator: its URL and what it saw."""

    hosted: HostedSimulator

    @property
    def url(self) -> str:
        return self.hosted.url

    def stats(self) -> dict[str, Any]:
        return self.hosted.stats(targets=True)

    def stop_counts(self) -> dict[Key, int]:
        """Stop requests per target that got past authentication."""
        return _by_key(self.stats()["stop_requests_per_target"])

    def effective_stops(self) -> dict[Key, int]:
        """Stops that turned a running build into a stopped one, per target."""
        return _by_key(self.stats()["effective_stops_per_target"])


def _by_key(counts: dict[str, int]) -> dict[Key, int]:
    keyed: dict[Key, int] = {}
    for name, count in counts.items():
        job_id, _, build_no = name.partition(":")
        keyed[TargetKey(job_id, int(build_no))] = count
    return keyed


@dataclass(slots=True)
class RunProcess:
    """A ``bulkstop run`` process; its stderr goes to a file that can be read while it runs."""

    process: subprocess.Popen[bytes]
    stderr_path: Path

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait(self, timeout: float = PROCESS_TIMEOUT) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill(self.process)
            pytest.fail(f"bulkstop run still running after {timeout:g} s:\n{self.stderr}")

    def wait_until(self, condition: Callable[[], bool], what: str) -> None:
        """Poll ``condition`` until it holds; fail if the process exits first or it takes long."""
        deadline = time.monotonic() + PROCESS_TIMEOUT
        while not condition():
            code = self.process.poll()
            if code is not None:
                pytest.fail(f"bulkstop run exited ({code}) before {what}:\n{self.stderr}")
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting until {what}:\n{self.stderr}")
            time.sleep(0.005)

    def send(self, signum: int) -> None:
        os.kill(self.process.pid, signum)


@dataclass(frozen=True, slots=True)
class Finished:
    returncode: int
    stderr: str


class Harness:
    """Starts one test's simulator and bulkstop runs, and ends what is left at the end."""

    def __init__(self, directory: Path, host: SimulatorHost) -> None:
        self.directory = directory
        self._host = host
        self._env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("CODEARTS_", "HUAWEICLOUD_"))
        }
        self._processes: list[subprocess.Popen[bytes]] = []
        self._simulators: list[HostedSimulator] = []
        self._runs = 0

    def simulator(self, name: str) -> SimulatorView:
        """A simulator of this test's own, of the kind ``SIMULATORS[name]``."""
        hosted = self._host.start(SimulatorConfig(token=TOKEN, **SIMULATORS[name]))
        self._simulators.append(hosted)
        return SimulatorView(hosted)

    def start_run(
        self,
        input_path: Path,
        report: Path,
        url: str,
        *options: str,
        token: str = TOKEN,
        stdin: int = subprocess.DEVNULL,
    ) -> RunProcess:
        """Start ``bulkstop run INPUT --endpoint URL --report REPORT OPTIONS...`` as a process."""
        self._runs += 1
        stderr_path = self.directory / f"run{self._runs}.err"
        command = [
            sys.executable, "-m", "bulkstop", "run", str(input_path),
            "--endpoint", url, "--report", str(report), "--progress", "never", *options,
        ]  # fmt: skip
        with stderr_path.open("wb") as err:
            process = subprocess.Popen(
                command,
                stdin=stdin,
                stdout=subprocess.DEVNULL,
                stderr=err,
                env={**self._env, "CODEARTS_TOKEN": token},
                cwd=self.directory,
            )
        self._processes.append(process)
        return RunProcess(process, stderr_path)

    def run(
        self, input_path: Path, report: Path, url: str, *options: str, token: str = TOKEN
    ) -> Finished:
        """Run ``bulkstop run`` to its end, in this process."""
        env: dict[str, str | None] = dict.fromkeys(_outside_variables())
        env["CODEARTS_TOKEN"] = token
        args = [str(input_path), "--endpoint", url, "--report", str(report), *options]
        try:
            result = CliRunner().invoke(main, ["run", "--progress", "never", *args], env=env)
        finally:
            structlog.reset_defaults()  # the run pointed its logs at the runner's stderr
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"bulkstop raised instead of exiting: {result.exception!r}")
        return Finished(result.exit_code, result.stderr)

    def close(self) -> None:
        for process in self._processes:
            _kill(process)
        for simulator in self._simulators:
            simulator.close()


@pytest.fixture
def e2e(tmp_path: Path, simulator_host: SimulatorHost) -> Iterator[Harness]:
    harness = Harness(tmp_path, simulator_host)
    try:
        yield harness
    finally:
        harness.close()


@pytest.fixture
def fast_simulator(e2e: Harness) -> SimulatorView:
    return e2e.simulator("fast_simulator")


@pytest.fixture
def slow_simulator(e2e: Harness) -> SimulatorView:
    return e2e.simulator("slow_simulator")


@pytest.fixture
def stuck_simulator(e2e: Harness) -> SimulatorView:
    return e2e.simulator("stuck_simulator")


@pytest.fixture
def half_unknown_simulator(e2e: Harness) -> SimulatorView:
    return e2e.simulator("half_unknown_simulator")


@pytest.fixture
def expiring_token_simulator(e2e: Harness) -> SimulatorView:
    return e2e.simulator("expiring_token_simulator")


# --------------------------------------------------------------------------------------------
# Reading reports


def sent_at_least(simulator: SimulatorView, count: int) -> Callable[[], bool]:
    """A condition: at least ``count`` stop calls have reached the simulator (counted as they
    arrive, before its latency).

    Not the markers: a run notes targets as about to be sent a few at a time, ahead of
    sending them (see bulkstop.engine.RunObserver).
    """
    return lambda: simulator.stats()["requests_total"] >= count


def one_record_per_row(report: Path, rows: list[Row]) -> dict[Key, Result]:
    """Check the report holds exactly one record per input row; return the targets' records."""
    records = load_report(report).records
    lines = sorted(record.line for record in records)
    assert lines == [row.line for row in rows], "not exactly one record per input row"
    by_line = {record.line: record for record in records}
    by_key: dict[Key, Result] = {}
    for row in rows:
        record = by_line[row.line]
        assert (record.job_id, record.build_no) == (row.job_id, row.build_no), f"line {row.line}"
        if row.kind is not None:
            assert record.outcome is row.kind, f"line {row.line}: {record.outcome}"
        else:
            assert record.outcome not in (Outcome.INVALID, Outcome.DUPLICATE), f"line {row.line}"
            by_key[row.key] = record
    return by_key


def outcomes(records: dict[Key, Result]) -> set[Outcome]:
    return {record.outcome for record in records.values()}


def keys_with(records: dict[Key, Result], *wanted: Outcome) -> set[Key]:
    return {key for key, record in records.items() if record.outcome in wanted}


# --------------------------------------------------------------------------------------------
# 1. SIGKILL at random moments, then --resume


@dataclass(frozen=True, slots=True)
class KillPoint:
    """What the report and the simulator said right after one SIGKILL."""

    report: LoadedReport
    stop_counts: dict[Key, int]

    def latest(self, *wanted: Outcome) -> dict[Key, Result]:
        """The targets whose latest record has one of the ``wanted`` outcomes."""
        return {
            key: record for key, record in self.report.latest.items() if record.outcome in wanted
        }


@pytest.mark.parametrize(("seed", "kills", "fmt"), [(1, 2, "csv"), (2, 2, "json"), (3, 1, "jsonl")])
def test_sigkill_then_resume_settles_every_row_and_never_resends_a_stopped_target(
    e2e: Harness,
    fast_simulator: SimulatorView,
    tmp_path: Path,
    seed: int,
    kills: int,
    fmt: str,
) -> None:
    rng = random.Random(seed)
    targets = tmp_path / "targets.csv"
    rows = write_input(targets, TARGETS)
    report = tmp_path / f"report.{fmt}"
    url = fast_simulator.url

    kill_points: list[KillPoint] = []
    for index in range(kills):
        resume = ("--resume",) if index else ()
        sent_before = fast_simulator.stats()["requests_total"]
        running = e2e.start_run(targets, report, url, *PACE, *resume)
        running.wait_until(sent_at_least(fast_simulator, sent_before + 1), "a stop was sent")
        # A random moment of the run, which lasts about a second (a resume less). The wall
        # clock only picks the moment here; nothing is measured with it.
        time.sleep(rng.uniform(0.0, 0.4 if index == 0 else 0.2))
        running.process.kill()
        assert running.wait() == -signal.SIGKILL, "the run ended before it was killed"
        # load_report copes with whatever the kill left, a torn last line included.
        kill_points.append(KillPoint(load_report(report), fast_simulator.stop_counts()))

    final = e2e.run(targets, report, url, *QUICK_PACE, "--resume")

    assert final.returncode == 1, final.stderr  # invalid and duplicate rows are not "ok"
    records = one_record_per_row(report, rows)
    assert not inflight_path(report).exists()
    counts = fast_simulator.stop_counts()
    for point in kill_points:
        for key in point.latest(Outcome.STOPPED):
            assert counts[key] == point.stop_counts[key] == 1, f"{key} was sent again"
    in_flight = set().union(*(point.report.in_flight for point in kill_points))
    for key, record in records.items():
        allowed = {Outcome.STOPPED, Outcome.UNCERTAIN} if key in in_flight else {Outcome.STOPPED}
        assert record.outcome in allowed, f"{key}: {record.outcome} ({record.detail})"
    # Every build was stopped, and exactly once.
    assert fast_simulator.effective_stops() == dict.fromkeys(valid_keys(rows), 1)
    # A record carried over keeps the number of the run that wrote it.
    run_of: dict[Key, int] = {}
    for point in kill_points:
        carried = point.latest(Outcome.STOPPED, Outcome.UNCERTAIN)
        run_of.update((key, record.run) for key, record in carried.items())
    for key, record in records.items():
        assert record.run == run_of.get(key, kills + 1), key


# --------------------------------------------------------------------------------------------
# 2. A torn or unfinished report


def _last_record(data: bytes, fmt: str) -> tuple[int, dict[str, Any]]:
    """Where the last line of a report starts, and its fields."""
    start = data.rstrip(b"\n").rfind(b"\n") + 1
    last = data[start:].decode()
    if fmt == "json":
        return start, json.loads(last.removeprefix(","))
    header = data[: data.index(b"\n")].decode()
    return start, next(csv.DictReader([header, last]))


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_resume_continues_a_report_torn_in_its_last_line(
    e2e: Harness, fast_simulator: SimulatorView, tmp_path: Path, fmt: str
) -> None:
    targets = tmp_path / "targets.csv"
    rows = write_input(targets, 60)
    report = tmp_path / f"report.{fmt}"
    first = e2e.run(targets, report, fast_simulator.url, *QUICK_PACE)
    assert first.returncode == 1, first.stderr
    data = report.read_bytes()
    if fmt == "json":
        assert data.endswith(b"\n]\n")
        data = data[: -len(b"]\n")]  # the closing bracket never made it to disk
    start, fields = _last_record(data, fmt)
    assert fields["outcome"] == "stopped"
    torn_key = TargetKey(fields["job_id"], int(fields["build_no"]))
    report.write_bytes(data[: start + (len(data) - start) // 2])
    assert load_report(report).torn_line is not None
    before = fast_simulator.stop_counts()

    resumed = e2e.run(targets, report, fast_simulator.url, *QUICK_PACE, "--resume")

    assert resumed.returncode == 1, resumed.stderr
    records = one_record_per_row(report, rows)
    if fmt == "json":
        assert len(json.loads(report.read_text())) == len(rows)
    after = fast_simulator.stop_counts()
    resent = {key: n - before.get(key, 0) for key, n in after.items() if n != before.get(key)}
    assert resent == {torn_key: 1}, "only the target whose record was torn is sent again"
    # Its record was lost, so the service's answer is all there is: the build is not running.
    assert records.pop(torn_key).outcome is Outcome.NOT_STOPPED
    assert outcomes(records) == {Outcome.STOPPED}


# --------------------------------------------------------------------------------------------
# 3. A report of another input


def test_resume_refuses_a_report_of_another_input_and_sends_nothing(
    e2e: Harness, fast_simulator: SimulatorView, tmp_path: Path
) -> None:
    first = write_input(tmp_path / "first.csv", 20, salt="first")
    write_input(tmp_path / "other.csv", 20, salt="other")
    report = tmp_path / "report.csv"
    with ReportWriter(report) as writer:  # a finished report of first.csv
        for row in first:
            outcome = row.kind or Outcome.STOPPED
            writer.write(
                Result(line=row.line, job_id=row.job_id, build_no=row.build_no, outcome=outcome)
            )
    content = report.read_bytes()

    result = e2e.run(tmp_path / "other.csv", report, fast_simulator.url, "--resume")

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("bulkstop: error: ")
    assert "is not a report of" in lines[0]
    assert fast_simulator.stats()["requests_total"] == 0
    assert report.read_bytes() == content


# --------------------------------------------------------------------------------------------
# 4. Interrupts


@pytest.mark.parametrize(
    ("signum", "fmt"), [(signal.SIGINT, "csv"), (signal.SIGTERM, "json")], ids=["SIGINT", "SIGTERM"]
)
def test_one_interrupt_drains_in_flight_calls_and_resume_finishes_the_rest(
    e2e: Harness,
    slow_simulator: SimulatorView,
    tmp_path: Path,
    signum: signal.Signals,
    fmt: str,
) -> None:
    targets = tmp_path / "targets.csv"
    rows = write_input(targets, 60)
    report = tmp_path / f"report.{fmt}"  # a finished JSON report ends in "]": resume reopens it
    running = e2e.start_run(targets, report, slow_simulator.url, *PACE, "--grace", "5")
    # More calls than can be in flight: some have finished, eight are in flight.
    running.wait_until(sent_at_least(slow_simulator, 12), "a dozen stop calls were sent")

    running.send(signum)

    # The calls in flight need at most 0.3 s more.
    assert running.wait(timeout=4) == 130, running.stderr
    assert "--resume" in running.stderr
    records = one_record_per_row(report, rows)
    assert outcomes(records) == {Outcome.STOPPED, Outcome.ABORTED}
    sent = slow_simulator.stop_counts()
    # Every call that was sent finished and was recorded; nothing aborted was ever sent.
    assert set(sent) == keys_with(records, Outcome.STOPPED)
    for record in records.values():
        if record.outcome is Outcome.ABORTED:
            assert record.attempts == 0
            assert f"interrupted by {signum.name}" in record.detail

    resumed = e2e.run(targets, report, slow_simulator.url, *QUICK_SLOW_PACE, "--resume")

    assert resumed.returncode == 1, resumed.stderr  # the invalid and duplicate rows
    records = one_record_per_row(report, rows)
    assert outcomes(records) == {Outcome.STOPPED}
    assert slow_simulator.stop_counts() == dict.fromkeys(valid_keys(rows), 1)
    for key, record in records.items():
        assert record.run == (1 if key in sent else 2), key


def test_an_interrupt_ends_a_run_whose_stdin_pipe_is_never_closed(
    e2e: Harness, fast_simulator: SimulatorView, tmp_path: Path
) -> None:
    targets = tmp_path / "targets.csv"
    rows = write_input(targets, 5)  # nine rows, a few of them invalid or duplicates
    report = tmp_path / "report.csv"
    read_fd, write_fd = os.pipe()
    try:
        running = e2e.start_run(
            Path("-"), report, fast_simulator.url, "--input-format", "csv", *PACE, stdin=read_fd
        )
        os.close(read_fd)
        os.write(write_fd, targets.read_bytes())
        # Each row is sent as it arrives, though the writer neither writes more nor closes.
        running.wait_until(sent_at_least(fast_simulator, len(valid_keys(rows))), "all were sent")

        running.send(signal.SIGINT)

        assert running.wait(timeout=5) == 130, running.stderr
    finally:
        os.close(write_fd)
    assert "Fatal Python error" not in running.stderr  # no thread was left blocked in stdin
    assert "Traceback" not in running.stderr
    assert outcomes(one_record_per_row(report, rows)) == {Outcome.STOPPED}


def test_second_interrupt_cancels_in_flight_calls_at_once(
    e2e: Harness, stuck_simulator: SimulatorView, tmp_path: Path
) -> None:
    targets = tmp_path / "targets.csv"
    rows = write_input(targets, 40)
    report = tmp_path / "report.csv"
    running = e2e.start_run(
        targets, report, stuck_simulator.url, "--concurrency", "4", "--rate", "400", "--grace", "60"
    )
    running.wait_until(sent_at_least(stuck_simulator, 4), "four stop calls were in flight")
    running.send(signal.SIGINT)
    running.wait_until(lambda: "starting no new stop calls" in running.stderr, "it drained")

    running.send(signal.SIGINT)

    # Each call in flight needs 5 s at the simulator, and the grace is 60 s.
    assert running.wait(timeout=3) == 130, running.stderr
    assert stuck_simulator.stats()["effective_stops"] == 0
    records = one_record_per_row(report, rows)
    assert outcomes(records) == {Outcome.ABORTED}
    cut = {key for key, record in records.items() if record.attempts}
    assert len(cut) == 4
    for key in cut:
        assert "may have taken effect" in records[key].detail


def test_interrupts_after_the_second_leave_the_report_whole(
    e2e: Harness, stuck_simulator: SimulatorView, tmp_path: Path
) -> None:
    targets = tmp_path / "targets.csv"
    rows = write_input(targets, 8_000)  # enough rows that reporting them aborted takes a while
    report = tmp_path / "report.csv"
    running = e2e.start_run(
        targets, report, stuck_simulator.url, "--concurrency", "4", "--rate", "400", "--grace", "60"
    )
    running.wait_until(sent_at_least(stuck_simulator, 4), "four stop calls were in flight")
    running.send(signal.SIGINT)
    running.wait_until(lambda: "starting no new stop calls" in running.stderr, "it drained")
    size = report.stat().st_size
    running.send(signal.SIGINT)
    running.wait_until(lambda: report.stat().st_size > size + 10_000, "it wrote aborted rows")

    running.send(signal.SIGINT)  # impatient: once more while every row is being reported

    assert running.wait() == 130, running.stderr
    assert "Traceback" not in running.stderr
    records = one_record_per_row(report, rows)
    assert outcomes(records) == {Outcome.ABORTED}
    cut = {key for key, record in records.items() if record.attempts}
    assert len(cut) == 4


# --------------------------------------------------------------------------------------------
# 5. The failure threshold


@pytest.mark.parametrize(
    ("limit", "described"),
    [("10", "more than 10 failures"), ("5%", "more than 5% failures")],
)
def test_failure_threshold_aborts_and_reports_the_rest_aborted(
    e2e: Harness,
    half_unknown_simulator: SimulatorView,
    tmp_path: Path,
    limit: str,
    described: str,
) -> None:
    targets = tmp_path / "targets.csv"
    rows = write_input(targets, TARGETS)
    report = tmp_path / "report.csv"

    result = e2e.run(targets, report, half_unknown_simulator.url, *PACE, "--max-failures", limit)

    assert result.returncode == 3, result.stderr
    assert "failure threshold reached" in result.stderr
    assert described in result.stderr
    records = one_record_per_row(report, rows)
    assert outcomes(records) == {Outcome.STOPPED, Outcome.NOT_FOUND, Outcome.ABORTED}
    sent = keys_with(records, Outcome.STOPPED, Outcome.NOT_FOUND)
    assert set(half_unknown_simulator.stop_counts()) == sent, "an aborted target was sent"
    assert not inflight_path(report).exists()


# --------------------------------------------------------------------------------------------
# 6. The auth circuit breaker

BREAKER = ("--concurrency", "4", "--rate", "400", "--auth-breaker", "3")


def test_auth_breaker_stops_a_run_with_a_wrong_token(
    e2e: Harness, fast_simulator: SimulatorView, tmp_path: Path
) -> None:
    targets = tmp_path / "targets.csv"
    rows = write_input(targets, 200)
    report = tmp_path / "report.csv"

    result = e2e.run(targets, report, fast_simulator.url, *BREAKER, token="not-the-token")

    assert result.returncode == 3, result.stderr
    assert "the credentials are the problem" in result.stderr
    # Three failures trip the breaker; at most the four calls in flight were sent besides.
    assert fast_simulator.stats()["stop_requests"] <= 3 + 4
    records = one_record_per_row(report, rows)
    assert outcomes(records) == {Outcome.UNAUTHORIZED, Outcome.ABORTED}


def test_auth_breaker_stops_a_run_whose_token_expires(
    e2e: Harness, expiring_token_simulator: SimulatorView, tmp_path: Path
) -> None:
    targets = tmp_path / "targets.csv"
    rows = write_input(targets, 200)
    report = tmp_path / "report.csv"

    result = e2e.run(targets, report, expiring_token_simulator.url, *BREAKER)

    assert result.returncode == 3, result.stderr
    assert "the credentials are the problem" in result.stderr
    stats = expiring_token_simulator.stats()
    assert stats["effective_stops"] == 30  # the token's 30 requests
    assert stats["auth_failures"] <= 3 + 4  # the requests sent after it expired
    records = one_record_per_row(report, rows)
    assert outcomes(records) == {Outcome.STOPPED, Outcome.UNAUTHORIZED, Outcome.ABORTED}
    assert len(keys_with(records, Outcome.STOPPED)) == 30


# --------------------------------------------------------------------------------------------
# 7. A report in use


def test_a_second_run_on_a_report_in_use_is_refused_at_once_naming_the_first(
    e2e: Harness, slow_simulator: SimulatorView, tmp_path: Path
) -> None:
    targets = tmp_path / "targets.csv"
    rows = write_input(targets, TARGETS)
    report = tmp_path / "report.csv"
    # About 27 s of work at 0.3 s a call, 2 at once: it is still running, however slowly the
    # second runs go, and it is interrupted once they have ended.
    first = e2e.start_run(
        targets, report, slow_simulator.url, "--rate", "200", "--concurrency", "2", "--grace", "5"
    )
    first.wait_until(sent_at_least(slow_simulator, 1), "the first run sent a stop")

    # A resume and a fresh start on the same report, from this process, while the first goes on.
    contenders = [
        e2e.run(targets, report, slow_simulator.url, *QUICK_PACE, *options)
        for options in (("--resume",), ("--overwrite",))
    ]

    for contender in contenders:
        assert contender.returncode == 2, contender.stderr
        assert "Traceback" not in contender.stderr
        [line] = contender.stderr.strip().splitlines()
        assert line.startswith(f"bulkstop: error: the report {report} is in use by ")
        assert f"process {first.process.pid} on {socket.gethostname()}" in line
    assert first.process.poll() is None, "the second runs waited for the first to end"
    first.send(signal.SIGINT)  # enough: the rest need not run to show nothing was sent twice
    assert first.wait() == 130, first.stderr
    records = one_record_per_row(report, rows)
    sent = slow_simulator.stop_counts()
    assert set(sent) == keys_with(records, Outcome.STOPPED)
    assert set(sent.values()) == {1}
    assert not lock_path(report).exists()
