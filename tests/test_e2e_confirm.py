"""End to end: before a large run on a terminal, bulkstop shows the plan and asks; without a
terminal it never asks. The terminal is a pseudo-terminal (``os.openpty``) given to a real
``bulkstop run`` process as its stdin and stderr."""

from __future__ import annotations

import csv
import hashlib
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from simhost import HostedSimulator, SimulatorHost

from bulkstop.simulator import SimulatorConfig

pytestmark = pytest.mark.e2e

TOKEN = "e2e-confirm-token-5d1a0f3e"
PROCESS_TIMEOUT = 20.0
QUESTION = b"Send these stops? [y/N]"


@pytest.fixture
def simulator(simulator_host: SimulatorHost) -> Iterator[HostedSimulator]:
    hosted = simulator_host.start(SimulatorConfig(token=TOKEN, finished_ratio=0.0))
    yield hosted
    hosted.close()


def write_input(path: Path, count: int) -> Path:
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["job_id", "build_no"])
        for i in range(count):
            writer.writerow([hashlib.blake2b(b"%d" % i, digest_size=16).hexdigest(), 1])
        writer.writerow([hashlib.blake2b(b"0", digest_size=16).hexdigest(), 1])  # a duplicate
    return path


def command(source: Path, report: Path, url: str, *options: str) -> list[str]:
    return [
        sys.executable, "-m", "bulkstop", "run", str(source), "--endpoint", url,
        "--report", str(report), "--rate", "500", "--progress", "never", *options,
    ]  # fmt: skip


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CODEARTS_", "HUAWEICLOUD_"))}
    return {**env, "CODEARTS_TOKEN": TOKEN, "TERM": "xterm"}


class Terminal:
    """A ``bulkstop run`` whose stdin and stderr are a pseudo-terminal."""

    def __init__(self, args: list[str]) -> None:
        self.master, slave = os.openpty()
        try:
            self.process = subprocess.Popen(
                args, stdin=slave, stdout=subprocess.DEVNULL, stderr=slave, env=environment()
            )
        finally:
            os.close(slave)
        self.screen = b""

    def read_until(self, wanted: bytes) -> None:
        deadline = time.monotonic() + PROCESS_TIMEOUT
        while wanted not in self.screen:
            assert time.monotonic() < deadline, self.screen.decode(errors="replace")
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                try:
                    self.screen += os.read(self.master, 4096)
                except OSError:  # the process closed its end
                    break
        assert wanted in self.screen, self.screen.decode(errors="replace")

    def type(self, text: bytes) -> None:
        os.write(self.master, text)

    def wait(self) -> int:
        try:
            code = self.process.wait(timeout=PROCESS_TIMEOUT)
        finally:
            self.drain()
        return code

    def drain(self) -> None:
        while select.select([self.master], [], [], 0.05)[0]:
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                return
            if not chunk:
                return
            self.screen += chunk

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)
        os.close(self.master)


@pytest.fixture
def terminals() -> Iterator[list[Terminal]]:
    opened: list[Terminal] = []
    yield opened
    for terminal in opened:
        terminal.close()


def test_on_a_terminal_the_plan_is_shown_and_no_sends_nothing(
    tmp_path: Path, simulator: HostedSimulator, terminals: list[Terminal]
) -> None:
    source = write_input(tmp_path / "targets.csv", 12)
    report = tmp_path / "report.csv"
    terminal = Terminal(command(source, report, simulator.url, "--confirm-above", "10"))
    terminals.append(terminal)

    terminal.read_until(QUESTION)
    terminal.type(b"n\n")

    assert terminal.wait() == 3
    screen = terminal.screen.decode()
    # the plan: how many (the duplicate is not counted), where, which API, what rate, how long
    assert f"about to stop 12 targets to {simulator.url} with the legacy API at up to 500/s" in (
        screen
    )
    assert "about 1 s at that rate" in screen
    assert "nothing was sent" in screen
    assert simulator.stats()["requests_total"] == 0
    assert not report.exists()


def test_on_a_terminal_yes_runs(
    tmp_path: Path, simulator: HostedSimulator, terminals: list[Terminal]
) -> None:
    source = write_input(tmp_path / "targets.csv", 12)
    report = tmp_path / "report.csv"
    terminal = Terminal(command(source, report, simulator.url, "--confirm-above", "10"))
    terminals.append(terminal)

    terminal.read_until(QUESTION)
    terminal.type(b"y\n")

    assert terminal.wait() == 1  # the duplicate row
    assert simulator.stats()["stop_requests"] == 12


@pytest.mark.parametrize("options", [("--yes",), ("--confirm-above", "12")])
def test_on_a_terminal_yes_or_a_run_within_the_limit_is_not_asked(
    tmp_path: Path, simulator: HostedSimulator, terminals: list[Terminal], options: tuple[str, ...]
) -> None:
    source = write_input(tmp_path / "targets.csv", 12)
    terminal = Terminal(command(source, tmp_path / "report.csv", simulator.url, *options))
    terminals.append(terminal)

    assert terminal.wait() == 1
    assert QUESTION not in terminal.screen
    assert simulator.stats()["stop_requests"] == 12


def test_without_a_terminal_it_never_asks(tmp_path: Path, simulator: HostedSimulator) -> None:
    source = write_input(tmp_path / "targets.csv", 12)
    args = command(source, tmp_path / "report.csv", simulator.url, "--confirm-above", "1")

    done = subprocess.run(
        args, stdin=subprocess.DEVNULL, capture_output=True, env=environment(),
        timeout=PROCESS_TIMEOUT, check=False,
    )  # fmt: skip

    assert done.returncode == 1, done.stderr
    assert QUESTION not in done.stderr
    assert b"about to stop" not in done.stderr
    assert simulator.stats()["stop_requests"] == 12
