"""`bulkstop simulate` options → the simulator's configuration (parsing only; nothing served)."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from bulkstop.cli import main, simulate_command, simulator_config
from bulkstop.simulator import SimulatorConfig

JOB = "f9d6c8466d614a9788e9a0acf6c15f46"
OTHER = "0123456789abcdef0123456789abcdef"


def config(*args: str) -> SimulatorConfig:
    with simulate_command.make_context("simulate", list(args)) as context:
        params = dict(context.params)
    params.pop("log_level")
    built: SimulatorConfig = simulator_config(**params)
    return built


def test_explicit_job_and_build_sets() -> None:
    built = config(
        "--unknown-job", JOB,
        "--forbidden-job", OTHER,
        "--forbidden-job", f" {JOB[::-1]} ",
        "--finished-build", f"{JOB}:7",
        "--finished-build", f"{OTHER}:12",
    )  # fmt: skip
    assert built.unknown_jobs == {JOB}
    assert built.forbidden_jobs == {OTHER, JOB[::-1]}
    assert built.finished_builds == {(JOB, 7), (OTHER, 12)}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--unknown-job", "ABC"), "--unknown-job: job_id: must be 32 characters"),
        (("--finished-build", JOB), f"--finished-build '{JOB}': expected JOB_ID:BUILD_NO"),
        (("--finished-build", f"{JOB}:0"), "build_no: must be an integer ≥ 1, got 0"),
        (("--iam-user", "ops"), "--iam-user and --iam-domain go together"),
        (("--iam-user", "ops", "--iam-domain", "acme"), "needs the password in"),
        (("--ak", "AKEXAMPLE1234567"), "the secret key in $BULKSTOP_SIM_SK"),
    ],
)
def test_bad_options_are_refused_with_the_option_named(
    args: tuple[str, ...], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BULKSTOP_SIM_IAM_PASSWORD", raising=False)
    monkeypatch.delenv("BULKSTOP_SIM_SK", raising=False)
    with pytest.raises(ValueError, match=re.escape(message)):
        config(*args)


def test_iam_and_aksk_secrets_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BULKSTOP_SIM_IAM_PASSWORD", "pw-from-env")
    monkeypatch.setenv("BULKSTOP_SIM_SK", "sk-from-env")
    built = config("--iam-user", "ops", "--iam-domain", "acme", "--ak", "AKEXAMPLE1234567")
    assert (built.iam_user, built.iam_domain, built.iam_password) == ("ops", "acme", "pw-from-env")
    assert built.aksk == ("AKEXAMPLE1234567", "sk-from-env")
    assert built.iam_enabled
    assert "pw-from-env" not in repr(built)
    assert "sk-from-env" not in repr(built)


def test_the_command_reports_a_bad_option_as_a_usage_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("BULKSTOP_SIM_SK", raising=False)
    result = CliRunner().invoke(main, ["simulate", "--port", "0", "--ak", "AKEXAMPLE1234567"])
    assert result.exit_code == 2
    assert result.output.strip() == (
        "bulkstop: error: simulate: --ak needs a non-empty access key and the secret key in"
        " $BULKSTOP_SIM_SK"
    )
