"""End to end: ``--dry-run`` plans exactly as a run would, writes ``dry_run`` rows, contacts
nothing and needs no credential; a resume of its report carries the plan out."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import structlog
from click.testing import CliRunner, Result
from simhost import HostedSimulator, SimulatorHost

from bulkstop.cli import main
from bulkstop.models import Outcome
from bulkstop.report import load_report, settings_path
from bulkstop.simulator import SimulatorConfig

pytestmark = pytest.mark.e2e

TOKEN = "e2e-dry-run-token-0c44a1b9"
SAMPLES = Path(__file__).resolve().parent.parent / "samples"
FAST = ("--rate", "500", "--progress", "never")


@pytest.fixture(autouse=True)
def quiet_logs() -> Iterator[None]:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    yield
    structlog.reset_defaults()


@pytest.fixture
def simulator(simulator_host: SimulatorHost) -> Iterator[HostedSimulator]:
    hosted = simulator_host.start(SimulatorConfig(token=TOKEN, finished_ratio=0.0))
    yield hosted
    hosted.close()


def invoke(args: Sequence[str], *, token: bool = False) -> Result:
    env: dict[str, str | None] = {
        name: None for name in os.environ if name.startswith(("CODEARTS_", "HUAWEICLOUD_"))
    }
    if token:
        env["CODEARTS_TOKEN"] = TOKEN
    try:
        result = CliRunner().invoke(main, ["run", *args, *FAST], env=env)
    finally:
        structlog.reset_defaults()
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"bulkstop raised: {result.exception!r}")
    return result


def outcomes(report: Path) -> dict[int, Outcome]:
    return {r.line: r.outcome for r in load_report(report).records}


@pytest.mark.parametrize(("sample", "code"), [("targets.csv", 0), ("mixed.csv", 1)])
def test_a_dry_run_contacts_nothing_needs_no_credential_and_reports_each_row(
    tmp_path: Path, simulator: HostedSimulator, sample: str, code: int
) -> None:
    report = tmp_path / "report.csv"

    done = invoke([str(SAMPLES / sample), "--endpoint", simulator.url, "--report", str(report),
                   "--dry-run"])  # fmt: skip

    assert done.exit_code == code, done.stderr
    assert simulator.stats()["requests_total"] == 0
    seen = outcomes(report)
    assert len(seen) == 25  # every input row
    expected = (
        {Outcome.DRY_RUN} if code == 0 else {Outcome.DRY_RUN, Outcome.INVALID, Outcome.DUPLICATE}
    )
    assert set(seen.values()) == expected
    planned = sum(1 for outcome in seen.values() if outcome is Outcome.DRY_RUN)
    assert f"a run would stop {planned} targets to {simulator.url} with the legacy API" in (
        done.stderr
    )


def test_a_dry_run_is_refused_where_a_run_would_be(tmp_path: Path) -> None:
    done = invoke([str(SAMPLES / "targets.csv"), "--report", str(tmp_path / "r.csv"), "--dry-run"])

    assert done.exit_code == 2
    assert "endpoint" in done.stderr
    assert not (tmp_path / "r.csv").exists()


def test_a_resume_of_a_dry_run_report_sends_what_it_planned(
    tmp_path: Path, simulator: HostedSimulator
) -> None:
    report = tmp_path / "report.csv"
    source = str(SAMPLES / "mixed.csv")
    invoke([source, "--endpoint", simulator.url, "--api", "v3", "--report", str(report),
            "--dry-run"])  # fmt: skip
    assert settings_path(report).exists()

    done = invoke([source, "--report", str(report), "--resume"], token=True)

    assert done.exit_code == 1, done.stderr  # the invalid and duplicate rows
    assert simulator.stats()["by_api"]["v3"] == 23  # the plan's API, remembered
    assert set(outcomes(report).values()) == {Outcome.STOPPED, Outcome.INVALID, Outcome.DUPLICATE}


def test_a_dry_run_of_a_resume_plans_the_resume_and_leaves_the_report_alone(
    tmp_path: Path, simulator: HostedSimulator
) -> None:
    report = tmp_path / "report.csv"
    first = tmp_path / "first.csv"
    lines = (SAMPLES / "targets.csv").read_text().splitlines()
    first.write_text("\n".join(lines[:11]) + "\n")  # the first ten targets
    done = invoke([str(first), "--endpoint", simulator.url, "--report", str(report)], token=True)
    assert done.exit_code == 0, done.stderr
    before = report.read_bytes(), settings_path(report).read_bytes()

    planned = invoke([str(SAMPLES / "targets.csv"), "--report", str(report), "--resume",
                      "--dry-run"])  # fmt: skip

    assert planned.exit_code == 0, planned.stderr
    assert "dry_run 15" in planned.stderr  # the fifteen the report has not seen
    assert "the report is left as it is" in planned.stderr
    assert (report.read_bytes(), settings_path(report).read_bytes()) == before
    assert simulator.stats()["stop_requests"] == 10
