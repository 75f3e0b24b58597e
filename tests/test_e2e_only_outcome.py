"""End to end: ``--only-outcome`` sends again only the targets an earlier report left with the
chosen outcomes; every other row is reported ``skipped`` with its earlier outcome."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import structlog
from click.testing import CliRunner, Result
from reportkit import job, result, write_run
from simhost import HostedSimulator, SimulatorHost

from bulkstop.cli import main
from bulkstop.models import Outcome
from bulkstop.models import Result as Record
from bulkstop.report import load_report, settings_path
from bulkstop.simulator import SimulatorConfig

pytestmark = pytest.mark.e2e

TOKEN = "e2e-only-outcome-token-9e2b7c41"
FAST = ("--rate", "500", "--progress", "never")
#: The earlier run: target i ended EARLIER[i].
EARLIER = [
    Outcome.STOPPED,
    Outcome.FAILED,
    Outcome.UNCERTAIN,
    Outcome.NOT_FOUND,
    Outcome.FAILED,
    Outcome.NOT_STOPPED,
    Outcome.ABORTED,
]


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


@pytest.fixture
def earlier(tmp_path: Path) -> Path:
    """An earlier run's finalized report, with an invalid row among its records."""
    report = tmp_path / "earlier.csv"
    records = [result(i, outcome) for i, outcome in enumerate(EARLIER)]
    invalid = result(len(EARLIER), Outcome.INVALID, build_no="abc", detail="build_no: bad")
    write_run(report, [*records, invalid], finalize=True)
    return report


def invoke(args: Sequence[str]) -> Result:
    env: dict[str, str | None] = {
        name: None for name in os.environ if name.startswith(("CODEARTS_", "HUAWEICLOUD_"))
    }
    env["CODEARTS_TOKEN"] = TOKEN
    try:
        done = CliRunner().invoke(main, ["run", *args, *FAST], env=env)
    finally:
        structlog.reset_defaults()
    if done.exception is not None and not isinstance(done.exception, SystemExit):
        raise AssertionError(f"bulkstop raised: {done.exception!r}")
    return done


def sent(simulator: HostedSimulator) -> set[str]:
    return set(simulator.stats(targets=True)["stop_requests_per_target"])


def by_target(report: Path) -> dict[tuple[str, str], Record]:
    return {(r.job_id, r.build_no): r for r in load_report(report).records}


def test_only_the_chosen_outcomes_are_sent_and_every_other_row_is_skipped(
    tmp_path: Path, simulator: HostedSimulator, earlier: Path
) -> None:
    report = tmp_path / "again.csv"

    done = invoke([str(earlier), "--endpoint", simulator.url, "--report", str(report),
                   "--only-outcome", "uncertain,failed"])  # fmt: skip

    assert done.exit_code == 1, done.stderr  # the invalid row, judged afresh
    chosen = [i for i, outcome in enumerate(EARLIER) if outcome in {Outcome.FAILED,
                                                                   Outcome.UNCERTAIN}]  # fmt: skip
    assert sent(simulator) == {f"{job(i)}:{i + 1}" for i in chosen}
    records = by_target(report)
    assert len(load_report(report).records) == len(EARLIER) + 1  # one per input row
    for i, outcome in enumerate(EARLIER):
        record = records[(job(i), str(i + 1))]
        if i in chosen:
            assert record.outcome is Outcome.STOPPED
        else:
            assert record.outcome is Outcome.SKIPPED
            assert record.attempts == 0
            assert record.detail == f"not chosen by --only-outcome: it was {outcome.value}"
    assert records[(job(len(EARLIER)), "abc")].outcome is Outcome.INVALID
    # a resume of this run keeps choosing the same subset
    remembered = json.loads(settings_path(report).read_text())["settings"]
    assert remembered["only_outcome"] == "uncertain,failed"


def test_without_an_invalid_row_a_subset_run_exits_0(
    tmp_path: Path, simulator: HostedSimulator
) -> None:
    earlier = tmp_path / "earlier.jsonl"
    write_run(earlier, [result(i, outcome) for i, outcome in enumerate(EARLIER)], finalize=True)

    done = invoke([str(earlier), "--endpoint", simulator.url, "--report",
                   str(tmp_path / "again.json"), "--only-outcome", "aborted"])  # fmt: skip

    assert done.exit_code == 0, done.stderr
    assert sent(simulator) == {f"{job(6)}:7"}


def test_the_skipped_rows_of_a_subset_run_are_not_said_to_be_carried_over(
    tmp_path: Path, simulator: HostedSimulator, earlier: Path
) -> None:
    # A fresh report has no earlier run whose records it could carry over.
    summary = tmp_path / "summary.json"
    done = invoke([str(earlier), "--endpoint", simulator.url, "--report",
                   str(tmp_path / "again.csv"), "--only-outcome", "uncertain",
                   "--summary-json", str(summary)])  # fmt: skip

    assert done.exit_code == 1, done.stderr
    assert "carried over" not in done.stderr
    document = json.loads(summary.read_text(encoding="utf-8"))
    assert document["carried_over"] == 0
    assert document["outcomes"]["skipped"] == len(EARLIER) - 1


def test_verify_of_a_subset_run_checks_only_what_it_sent(
    tmp_path: Path, simulator: HostedSimulator, earlier: Path
) -> None:
    # The skipped targets were not sent by this run: checking them (still running in this
    # world) would make the run exit 1 for builds it was told to leave alone.
    report = tmp_path / "again.csv"
    done = invoke([str(earlier), "--endpoint", simulator.url, "--report", str(report),
                   "--only-outcome", "aborted", "--verify", "--verify-timeout", "0"])  # fmt: skip

    records = by_target(report)
    assert records[(job(6), "7")].outcome is Outcome.STOPPED
    assert records[(job(6), "7")].verified != ""
    skipped = [r for r in records.values() if r.outcome is Outcome.SKIPPED]
    assert len(skipped) == len(EARLIER) - 1
    assert all(r.verified == "" for r in skipped)
    assert "1 targets checked" in done.stderr or "1 target checked" in done.stderr


def test_an_unknown_outcome_is_a_usage_error_listing_the_valid_ones(
    tmp_path: Path, earlier: Path
) -> None:
    done = invoke([str(earlier), "--simulate", "--report", str(tmp_path / "r.csv"),
                   "--only-outcome", "failed,stoped"])  # fmt: skip

    assert done.exit_code == 2
    assert "unknown outcome 'stoped'" in done.stderr
    assert "choose from stopped, not_stopped, uncertain" in done.stderr
    assert not (tmp_path / "r.csv").exists()


@pytest.mark.parametrize("chosen", ["invalid", "failed,duplicate"])
def test_an_outcome_no_target_has_is_a_usage_error(
    tmp_path: Path, earlier: Path, chosen: str
) -> None:
    done = invoke([str(earlier), "--simulate", "--report", str(tmp_path / "r.csv"),
                   "--only-outcome", chosen])  # fmt: skip

    assert done.exit_code == 2
    assert "an outcome of rows, never of a target to send again" in done.stderr
    assert "choose from stopped, not_stopped, uncertain" in done.stderr
    assert "invalid," not in done.stderr.split("choose from")[-1]
    assert not (tmp_path / "r.csv").exists()


def test_an_input_that_is_no_report_is_refused(tmp_path: Path) -> None:
    plain = tmp_path / "targets.csv"
    plain.write_text(f"job_id,build_no\n{job(1)},2\n")

    done = invoke([str(plain), "--simulate", "--report", str(tmp_path / "r.csv"),
                   "--only-outcome", "failed"])  # fmt: skip

    assert done.exit_code == 2
    [line] = done.stderr.strip().splitlines()[-1:]
    assert line.startswith("bulkstop: error: ")
    assert "targets.csv" in line


def test_stdin_cannot_be_a_subset(tmp_path: Path) -> None:
    done = invoke(["-", "--input-format", "csv", "--simulate", "--report",
                   str(tmp_path / "r.csv"), "--only-outcome", "failed"])  # fmt: skip

    assert done.exit_code == 2
    assert "--only-outcome needs an earlier report as the input file" in done.stderr


def test_a_resume_of_a_subset_run_keeps_the_subset_without_the_flag(
    tmp_path: Path, simulator: HostedSimulator, earlier: Path
) -> None:
    report = tmp_path / "again.csv"
    first = invoke([str(earlier), "--endpoint", simulator.url, "--report", str(report),
                    "--only-outcome", "failed"])  # fmt: skip
    assert first.exit_code == 1, first.stderr
    sent_first = simulator.stats()["stop_requests"]
    assert sent_first == EARLIER.count(Outcome.FAILED)

    # skipped rows are no record of a call: without the remembered subset they would be sent
    resumed = invoke([str(earlier), "--report", str(report), "--resume"])

    assert resumed.exit_code == 1, resumed.stderr
    assert "--only-outcome failed" in resumed.stderr  # taken from the report's settings
    assert simulator.stats()["stop_requests"] == sent_first
    skipped = [r for r in load_report(report).records if r.outcome is Outcome.SKIPPED]
    assert len(skipped) == len(EARLIER) - EARLIER.count(Outcome.FAILED)
