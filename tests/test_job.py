"""A whole run as a library call (:mod:`bulkstop.job`): an input in, a finalized report and an
outcome out, against simulators on 127.0.0.1 in this process."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from simhost import HostedSimulator, SimulatorHost

from bulkstop import ExitCode, Job, JobEvents, JobOutcome, JobSettings, Outcome, UsageError
from bulkstop.errors import CredentialsRejected
from bulkstop.models import Result
from bulkstop.report import load_report
from bulkstop.simulator import SimulatorConfig

pytestmark = pytest.mark.e2e  # jobs against simulators on loopback

TOKEN = "job-test-token-5e1d07c2"
RUNNING = hashlib.blake2b(b"running", digest_size=16).hexdigest()
ENV = {"CODEARTS_TOKEN": TOKEN}
#: Quick runs: the simulator answers in a millisecond, so only the pace limits a run.
FAST: dict[str, Any] = {"rate": 1000.0}


@pytest.fixture
def simulator(simulator_host: SimulatorHost) -> Iterator[HostedSimulator]:
    """A simulator whose builds are all running."""
    hosted = simulator_host.start(SimulatorConfig(token=TOKEN, finished_ratio=0.0))
    yield hosted
    hosted.close()


def write_csv(path: Path, rows: list[str]) -> str:
    path.write_text("job_id,build_no\n" + "".join(f"{row}\n" for row in rows), encoding="utf-8")
    return str(path)


def run_job(
    settings: JobSettings, *, environ: dict[str, str] | None = None, **kwargs: Any
) -> JobOutcome:
    async def main() -> JobOutcome:
        async with Job(settings, environ=ENV if environ is None else environ, **kwargs) as job:
            return await job.run()

    return anyio.run(main)


@pytest.mark.parametrize(
    ("rows", "code", "outcomes"),
    [
        ([f"{RUNNING},1", f"{RUNNING},2"], ExitCode.OK, [Outcome.STOPPED] * 2),
        ([f"{RUNNING},1", "not-a-job,2"], ExitCode.ROWS, [Outcome.STOPPED, Outcome.INVALID]),
    ],
    ids=["all-stopped", "an-invalid-row"],
)
def test_a_job_reports_every_row_and_says_how_it_ended(
    tmp_path: Path,
    simulator: HostedSimulator,
    rows: list[str],
    code: ExitCode,
    outcomes: list[Outcome],
) -> None:
    report = tmp_path / "report.csv"
    settings = JobSettings(
        input=write_csv(tmp_path / "in.csv", rows), report=report, endpoint=simulator.url, **FAST
    )

    outcome = run_job(settings)

    assert outcome.exit_code is code
    assert outcome.report == report
    assert not outcome.interrupted
    assert outcome.aborted_by is None
    assert [r.outcome for r in sorted(load_report(report).records)] == outcomes
    assert outcome.stats.done == len(rows)
    assert simulator.stats()["stop_requests"] == outcomes.count(Outcome.STOPPED)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("report")) == [
        "report.csv",
        "report.csv.settings",  # what a resume continues with
    ]


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"retry_failed": True}, "--retry-failed needs --resume"),
        ({"resume": True}, "--resume needs --report PATH"),
    ],
)
def test_contradictory_settings_are_refused_when_made(settings: dict[str, Any], says: str) -> None:
    with pytest.raises(UsageError, match=says):
        JobSettings(input="in.csv", **settings)


def test_a_job_that_cannot_start_raises_and_leaves_nothing_behind(
    tmp_path: Path, simulator: HostedSimulator
) -> None:
    source = write_csv(tmp_path / "in.csv", [f"{RUNNING},1"])
    settings = JobSettings(input=source, report=tmp_path / "r.csv", endpoint=simulator.url)

    with pytest.raises(UsageError, match="no credentials") as raised:
        run_job(settings, environ={})

    assert raised.value.exit_code is ExitCode.USAGE
    assert [p.name for p in tmp_path.iterdir()] == ["in.csv"]  # no report, lock or sidecar
    assert simulator.stats()["requests_total"] == 0


def test_a_refused_login_is_a_usage_error(tmp_path: Path, simulator_host: SimulatorHost) -> None:
    iam = simulator_host.start(
        SimulatorConfig(token=TOKEN, iam_user="ops", iam_password="right-pw", iam_domain="acme")
    )
    settings = JobSettings(
        input=write_csv(tmp_path / "in.csv", [f"{RUNNING},1"]),
        report=tmp_path / "r.csv",
        endpoint=iam.url,
        iam_endpoint=iam.url,
        project_name="cn-north-4",
    )
    environ = {
        "HUAWEICLOUD_USERNAME": "ops",
        "HUAWEICLOUD_PASSWORD": "wrong-pw",
        "HUAWEICLOUD_DOMAIN": "acme",
    }

    with pytest.raises(UsageError, match="refused the login") as raised:
        run_job(settings, environ=environ)

    # nothing was sent: the run could not start, whatever the login's own error was
    assert isinstance(raised.value.__cause__, CredentialsRejected)
    assert raised.value.exit_code is ExitCode.USAGE
    assert iam.stats()["stop_requests"] == 0
    iam.close()


def test_an_abort_by_a_guard_is_an_outcome_with_its_exit_code(
    tmp_path: Path, simulator: HostedSimulator
) -> None:
    rows = [f"{RUNNING},{n}" for n in range(1, 31)]
    settings = JobSettings(
        input=write_csv(tmp_path / "in.csv", rows), report=tmp_path / "r.csv",
        endpoint=simulator.url, **FAST,
    )  # fmt: skip

    outcome = run_job(settings, environ={"CODEARTS_TOKEN": "a-wrong-token"})

    assert isinstance(outcome.aborted_by, CredentialsRejected)
    assert outcome.exit_code is ExitCode.ABORTED
    assert len(load_report(outcome.report).records) == len(rows)


def test_a_drain_before_the_run_ends_every_row_aborted_and_interrupted(
    tmp_path: Path, simulator: HostedSimulator
) -> None:
    rows = [f"{RUNNING},{n}" for n in range(1, 4)]
    settings = JobSettings(
        input=write_csv(tmp_path / "in.csv", rows), report=tmp_path / "r.csv",
        endpoint=simulator.url,
    )  # fmt: skip

    async def main() -> JobOutcome:
        async with Job(settings, environ=ENV) as job:
            job.drain("stopped by the test")
            return await job.run()

    outcome = anyio.run(main)

    assert outcome.exit_code is ExitCode.INTERRUPTED
    assert outcome.interrupted
    assert outcome.stats.ended_early == "stopped by the test"
    assert {r.outcome for r in load_report(outcome.report).records} == {Outcome.ABORTED}
    assert simulator.stats()["stop_requests"] == 0


@dataclass
class Recorder(JobEvents):
    """Every event, in order; overrides all but ``simulating``, which stays a no-op."""

    seen: list[str] = field(default_factory=list)

    def started(self) -> None:
        self.seen.append("started")

    def result(self, result: Result) -> None:
        self.seen.append(f"result {result.line}")

    def ended(self) -> None:
        self.seen.append("ended")


def test_events_tell_the_run_as_it_goes(tmp_path: Path, simulator: HostedSimulator) -> None:
    events = Recorder()
    settings = JobSettings(
        input=write_csv(tmp_path / "in.csv", [f"{RUNNING},1", f"{RUNNING},2"]),
        report=tmp_path / "r.csv",
        endpoint=simulator.url,
        concurrency=1,
        **FAST,
    )

    run_job(settings, events=events)

    assert events.seen == ["started", "result 2", "result 3", "ended"]


def test_a_simulated_job_says_where_its_simulator_serves(tmp_path: Path) -> None:
    urls: list[str] = []

    class Simulating(JobEvents):
        def simulating(self, url: str) -> None:
            urls.append(url)

    settings = JobSettings(
        input=write_csv(tmp_path / "in.csv", [f"{RUNNING},1"]),
        report=tmp_path / "r.csv",
        simulate=True,
        **FAST,
    )

    outcome = run_job(settings, environ={}, events=Simulating())

    assert [url.startswith("http://127.0.0.1:") for url in urls] == [True]
    assert outcome.stats.requests == 1


def test_beside_runs_with_the_run_and_is_cancelled_before_the_report_is_finalized(
    tmp_path: Path, simulator: HostedSimulator
) -> None:
    settings = JobSettings(
        input=write_csv(tmp_path / "in.csv", [f"{RUNNING},1"]),
        report=tmp_path / "r.csv",
        endpoint=simulator.url,
        **FAST,
    )
    sidecars: list[bool] = []

    async def beside(job: Job) -> None:
        try:
            await anyio.sleep_forever()
        finally:  # cancelled: the report is still a journal with its in-flight sidecar
            sidecars.append((tmp_path / "r.csv.inflight").exists())

    async def main() -> JobOutcome:
        async with Job(settings, environ=ENV) as job:
            return await job.run(beside=beside)

    outcome = anyio.run(main)

    assert sidecars == [True]
    assert not (tmp_path / "r.csv.inflight").exists()  # finalized after
    assert outcome.exit_code is ExitCode.OK


def test_the_jobs_secrets_are_its_credentials(tmp_path: Path, simulator: HostedSimulator) -> None:
    settings = JobSettings(
        input=write_csv(tmp_path / "in.csv", [f"{RUNNING},1"]),
        report=tmp_path / "r.csv",
        endpoint=simulator.url,
    )

    async def main() -> tuple[list[str], list[str]]:
        job = Job(settings, environ=ENV)
        before = job.secret_values()
        async with job:
            return before, job.secret_values()

    assert anyio.run(main) == ([], [TOKEN])


def test_a_resume_of_a_finished_report_sends_nothing_again(
    tmp_path: Path, simulator: HostedSimulator
) -> None:
    source = write_csv(tmp_path / "in.csv", [f"{RUNNING},1", f"{RUNNING},2"])
    first = JobSettings(input=source, report=tmp_path / "r.csv", endpoint=simulator.url, **FAST)
    run_job(first)

    again = run_job(
        JobSettings(
            input=source, report=tmp_path / "r.csv", resume=True, endpoint=simulator.url, **FAST
        )
    )

    assert again.exit_code is ExitCode.OK
    assert again.stats.carried_over == 2
    assert simulator.stats()["stop_requests"] == 2  # the first job's


def test_a_job_shows_its_phase_and_runs_once(tmp_path: Path, simulator: HostedSimulator) -> None:
    source = write_csv(tmp_path / "in.csv", [f"{RUNNING},1"])
    settings = JobSettings(input=source, report=tmp_path / "r.csv", endpoint=simulator.url)
    seen: list[str] = []

    async def main() -> None:
        job = Job(settings, environ=ENV)
        seen.append(repr(job))
        async with job:
            seen.append(repr(job))
            await job.run()
            seen.append(repr(job))
            with pytest.raises(RuntimeError, match="runs once"):
                await job.run()
        seen.append(job.phase)

    anyio.run(main)

    report = repr(str(tmp_path / "r.csv"))
    assert seen == [
        f"<Job {source!r} → {report} new>",
        f"<Job {source!r} → {report} prepared done=0>",
        f"<Job {source!r} → {report} finished done=1>",
        "closed",
    ]
    assert TOKEN not in "".join(seen)
