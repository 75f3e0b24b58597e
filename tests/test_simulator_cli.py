"""`bulkstop simulate` options → the simulator's configuration (parsing only; nothing served)."""

from __future__ import annotations

import re
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from bulkstop.cli import main
from bulkstop.simulator import ReadConfig, SimulatorConfig, ThrottleConfig, WorldConfig
from bulkstop.simulator.cli import ready_lines, simulate_command, simulator_config
from bulkstop.simulator.world import derive_project_id

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


# --- the world and the read APIs -----------------------------------------------------------------

PROJECT = "00112233445566778899aabbccddeeff"


def test_by_default_there_is_the_default_world_and_plain_reads() -> None:
    built = config()
    assert built.world == WorldConfig()
    assert built.reads == ReadConfig()


def test_world_options_build_the_world() -> None:
    built = config(
        "--project", PROJECT,
        "--jobs", "7",
        "--builds-per-job", "3",
        "--running-ratio", "0.5",
        "--older-running-ratio", "0",
        "--world-forbidden-ratio", "0.2",
        "--build-interval", "60",
        "--min-build-time", "5",
        "--max-build-time", "9",
        "--stop-delay", "1.5",
        "--ignore-stop-ratio", "0.1",
        "--timer-job-interval", "30",
        "--timer-build-time", "120",
    )  # fmt: skip
    assert built.world == WorldConfig(
        project_id=PROJECT,
        jobs=7,
        builds_per_job=3,
        running_ratio=0.5,
        older_running_ratio=0.0,
        forbidden_ratio=0.2,
        build_interval=60.0,
        min_build_time=5.0,
        max_build_time=9.0,
        stop_delay=1.5,
        ignore_stop_ratio=0.1,
        timer_interval=30.0,
        timer_build_time=120.0,
    )


def test_no_jobs_means_no_world() -> None:
    assert config("--jobs", "0").world is None


def test_read_options_build_the_read_config() -> None:
    built = config(
        "--read-throttle", "50",
        "--read-throttle-window", "30",
        "--read-throttle-style", "cb400",
        "--read-throttle-retry-after", "seconds",
        "--read-throttle-per-api",
        "--jobs-shape", "sdk",
        "--repeat-first-page",
        "--total-as-string",
    )  # fmt: skip
    assert built.reads == ReadConfig(
        throttle=ThrottleConfig(limit=50, window=30.0, style="cb400", retry_after="seconds"),
        throttle_per_api=True,
        jobs_shape="sdk",
        repeat_first_page=True,
        total_as_string=True,
    )
    assert built.throttle is None


def test_the_read_window_is_a_minute_by_default_and_apart_from_the_stop_window() -> None:
    built = config("--throttle", "10", "--read-throttle", "50")
    assert built.throttle == ThrottleConfig(limit=10, window=1.0)
    assert built.reads.throttle == ThrottleConfig(limit=50, window=60.0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--project", "XYZ"), "--project 'XYZ': must be 32 lowercase hexadecimal digits"),
        (("--project", PROJECT.upper()), "must be 32 lowercase hexadecimal digits"),
        (("--jobs", "0", "--project", PROJECT), "--project needs a world"),
        (("--min-build-time", "10", "--max-build-time", "5"), "--min-build-time must not exceed"),
    ],
)
def test_bad_world_options_are_refused_with_the_option_named(
    args: tuple[str, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        config(*args)


@pytest.mark.parametrize("name", [param.name for param in simulate_command.params])
def test_every_simulate_option_says_what_it_does(name: str) -> None:
    [param] = [param for param in simulate_command.params if param.name == name]
    assert isinstance(param, click.Option)
    assert param.help


def test_simulate_help_shows_the_world_and_read_options() -> None:
    result = CliRunner().invoke(main, ["simulate", "--help"])
    assert result.exit_code == 0
    for flag in ("--project", "--jobs", "--stop-delay", "--ignore-stop-ratio", "--read-throttle"):
        assert flag in result.output


@pytest.mark.parametrize(
    ("args", "world_line"),
    [
        ((), f"world: project {derive_project_id(0)}, 50 jobs (state: URL/_sim/world)"),
        (
            ("--project", PROJECT, "--jobs", "3", "--timer-job-interval", "5"),
            f"world: project {PROJECT}, 3 jobs and a runaway timer job (state: URL/_sim/world)",
        ),
    ],
)
def test_the_ready_lines_name_the_url_then_the_world(
    args: tuple[str, ...], world_line: str
) -> None:
    assert ready_lines(config(*args), "URL") == [
        "bulkstop simulator listening on URL (stats: URL/_sim/stats)",
        world_line,
    ]


def test_without_a_world_only_the_url_is_printed() -> None:
    assert ready_lines(config("--jobs", "0"), "URL") == [
        "bulkstop simulator listening on URL (stats: URL/_sim/stats)"
    ]


@pytest.mark.e2e  # a fresh interpreter is a subprocess
def test_bulkstop_help_does_not_load_the_simulators_server() -> None:
    # A fresh interpreter: this test process has long imported the server.
    probe = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from bulkstop.cli import main\n"
        "result = CliRunner().invoke(main, ['--help'])\n"
        "assert result.exit_code == 0 and 'simulate' in result.output, result.output\n"
        "heavy = ('bulkstop.simulator.server', 'aiohttp.web')\n"
        "print(sorted(name for name in heavy if name in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
