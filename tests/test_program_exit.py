"""The ``bulkstop`` program's exit: the interpreter's last sweep for cycles is left out.

``bulkstop.cli.program`` (the console script, ``python -m bulkstop``) freezes the collector
as it exits; ``bulkstop.cli.main``, which a test or a host program calls in a process that
goes on, does not. Each case runs a fresh interpreter, whose last exit handler (the first
registered) reports what the collector holds frozen by then, and checks that what the
command wrote and its exit code are whole.
"""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest
from fresh import run_fresh
from simhost import SimulatorHost

from bulkstop import __version__
from bulkstop.simulator import SimulatorConfig

pytestmark = pytest.mark.e2e  # a fresh interpreter is a subprocess

JOB = "f9d6c8466d614a9788e9a0acf6c15f46"


def run_probe(
    entry: str, args: list[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``bulkstop ARGS`` through ``bulkstop.cli.ENTRY`` in a fresh interpreter."""
    code = textwrap.dedent(
        f"""
        import atexit, gc, sys
        atexit.register(lambda: sys.stdout.write(f"FROZEN {{gc.get_freeze_count()}}\\n"))
        sys.argv = ["bulkstop", *{args!r}]
        from bulkstop.cli import {entry}
        {entry}()
        """
    )
    return run_fresh(code, env=env)


def frozen(done: subprocess.CompletedProcess[str]) -> int:
    last = done.stdout.splitlines()[-1]
    assert last.startswith("FROZEN "), done.stdout
    return int(last.removeprefix("FROZEN "))


def test_the_program_freezes_the_collector_at_exit() -> None:
    done = run_probe("program", ["--version"])

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == f"bulkstop, version {__version__}"
    # every module's objects: thousands (click alone makes more than 10,000)
    assert frozen(done) > 10_000


def test_main_leaves_the_collector_alone() -> None:
    done = run_probe("main", ["--version"])

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == f"bulkstop, version {__version__}"
    assert frozen(done) == 0


def test_a_run_through_the_program_is_whole_at_exit(
    tmp_path: Path, simulator_host: SimulatorHost
) -> None:
    simulator = simulator_host.start(SimulatorConfig(token="exit-token-1", finished_ratio=0.0))
    source = tmp_path / "in.csv"
    source.write_text(f"job_id,build_no\n{JOB},20\n{JOB},21\n{JOB},oops\n", encoding="utf-8")
    report = tmp_path / "r.csv"
    args = ["run", str(source), "--endpoint", simulator.url, "--report", str(report),
            "--progress", "never"]

    done = run_probe("program", args, env={"CODEARTS_TOKEN": "exit-token-1"})

    # exit code 1: one row was bad (stopped all the rest)
    assert done.returncode == 1, done.stderr
    assert frozen(done) > 10_000
    assert "3 rows: stopped 2, invalid 1" in done.stderr
    lines = report.read_text(encoding="utf-8").splitlines()
    outcomes = {int(fields[0]): fields[3] for fields in (line.split(",") for line in lines[1:])}
    assert outcomes == {2: "stopped", 3: "stopped", 4: "invalid"}  # by input line
    # the run's settings, kept for a resume; no lock, no in-flight sidecar left behind
    assert [path.name for path in tmp_path.glob("r.csv.*")] == ["r.csv.settings"]
    assert simulator.stats()["effective_stops"] == 2
    simulator.close()
