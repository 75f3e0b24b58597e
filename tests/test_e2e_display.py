"""End to end: the live progress display of ``bulkstop run`` in a pseudo-terminal.

The command runs as a process whose stdin, stdout and stderr are a pty, against a simulator
on 127.0.0.1 that fails some calls (so that digest lines are logged while the display is
shown). Everything the process writes is fed to a terminal emulator (pyte) with its
scrollback, and the test reads the screen as a person would see it: the total, the achieved
rate beside the pacer's, the ETA, and the log lines above the display with no torn copy of
the bar left among them.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pyte
import pytest
from simhost import HostedSimulator, SimulatorHost

from bulkstop.simulator import FaultConfig, SimulatorConfig, ThrottleConfig

pytestmark = pytest.mark.e2e

TOKEN = "e2e-display-token-8d1e4b7a"
COLUMNS, LINES = 110, 40
PROCESS_TIMEOUT = 30.0
ROWS = 90
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
    "NO_COLOR",
    "FORCE_COLOR",
    "TTY_COMPATIBLE",
)
#: The display's first line: ``bulkstop ━━━ 12/90 …``.
BAR = re.compile(r"bulkstop [━╺╸ ]+ *(\d+)/(\d+|\?) ")


@pytest.fixture
def throttling_simulator(simulator_host: SimulatorHost) -> Iterator[HostedSimulator]:
    config = SimulatorConfig(token=TOKEN, finished_ratio=0.0, throttle=ThrottleConfig(limit=15))
    simulator = simulator_host.start(config)
    yield simulator
    simulator.close()


@pytest.fixture
def failing_simulator(simulator_host: SimulatorHost) -> Iterator[HostedSimulator]:
    config = SimulatorConfig(token=TOKEN, finished_ratio=0.0, faults=FaultConfig(error_500=0.2))
    simulator = simulator_host.start(config)
    yield simulator
    simulator.close()


class Terminal:
    """A pty running one process, and pyte's screen of what it wrote (with scrollback)."""

    def __init__(self, args: list[str]) -> None:
        self.screen = pyte.HistoryScreen(COLUMNS, LINES, history=10_000)
        self.stream = pyte.ByteStream(self.screen)
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", LINES, COLUMNS, 0, 0))
        environment = {k: v for k, v in os.environ.items() if k not in OUTSIDE_VARIABLES}
        environment.update(
            TERM="xterm-256color", COLUMNS=str(COLUMNS), LINES=str(LINES), CODEARTS_TOKEN=TOKEN
        )
        self.process = subprocess.Popen(
            args, stdin=slave, stdout=slave, stderr=slave, env=environment, close_fds=True
        )
        os.close(slave)
        #: screens seen while the process ran, each as its lines
        self.frames: list[list[str]] = []

    def run_to_end(self) -> int:
        """Feed everything the process writes to the screen until it exits; its status."""
        deadline = time.monotonic() + PROCESS_TIMEOUT
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([self.master], [], [], 0.5)
                if not ready:
                    if self.process.poll() is not None:
                        break
                    continue
                try:
                    data = os.read(self.master, 65536)
                except OSError as exc:  # EIO: the process closed its end
                    if exc.errno != errno.EIO:
                        raise
                    break
                if not data:
                    break
                self.stream.feed(data)
                self.frames.append(self.display())
            return self.process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            os.close(self.master)

    def display(self) -> list[str]:
        return [line.rstrip() for line in self.screen.display]

    def everything(self) -> list[str]:
        """The scrollback and the screen, top to bottom, as a person can scroll through it."""
        history = [
            "".join(line[column].data for column in range(COLUMNS)).rstrip()
            for line in self.screen.history.top
        ]
        lines = history + self.display()
        while lines and not lines[-1]:
            lines.pop()
        return lines


def targets_csv(path: Path, rows: int) -> Path:
    lines = ["job_id,build_no"] + [f"{i:032x},{i + 1}" for i in range(1, rows + 1)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_the_display_shows_total_rate_and_eta_and_logs_go_above_it(
    tmp_path: Path, failing_simulator: HostedSimulator
) -> None:
    source = targets_csv(tmp_path / "t.csv", ROWS)
    terminal = Terminal(
        [sys.executable, "-m", "bulkstop", "run", str(source), "--endpoint",
         failing_simulator.url, "--report", str(tmp_path / "r.csv"), "--rate", "80",
         "--max-attempts", "2", "--yes"]
    )  # fmt: skip
    status = terminal.run_to_end()

    assert status == 1  # some targets failed after two 500s
    # While it ran: done out of the total, the achieved rate beside the pacer's, an ETA.
    running = [
        line
        for frame in terminal.frames
        for line in frame
        if (bar := BAR.search(line)) and int(bar[1]) < ROWS
    ]
    assert running, "no frame of a running display"
    assert all(f"/{ROWS} " in line for line in running)  # the total, known from the start
    assert any(re.search(r"\d+\.\d/s of 80\.0/s · ETA 0:00:0\d", line) for line in running)
    # Afterwards, as the scrollback shows it: the last frame once, every log line whole.
    lines = terminal.everything()
    bars = [line for line in lines if "bulkstop ━" in line or BAR.search(line)]
    assert len(bars) == 1, "\n".join(lines)
    final = BAR.search(bars[0])
    assert final is not None
    assert final.groups() == (str(ROWS), str(ROWS))
    logged = [line for line in lines if re.match(r"\d{4}-\d\d-\d\dT", line)]
    digests = [line for line in logged if "retries " in line or "failed " in line]
    assert digests, "\n".join(lines)
    for line in logged:
        assert "━" not in line, line  # no piece of a bar torn into a log line
    summary = [line for line in lines if line.startswith(f"bulkstop: {ROWS} rows: ")]
    assert len(summary) == 1
    assert lines.index(bars[0]) < lines.index(summary[0])


def test_a_throttled_run_shows_the_lowered_pacer(
    tmp_path: Path, throttling_simulator: HostedSimulator
) -> None:
    # At 40/s the first 32 calls span at most two of the simulator's 1 s windows, wherever the
    # run starts in one: one window gets more than its 15, and the pacer is lowered.
    source = targets_csv(tmp_path / "t.csv", 32)
    terminal = Terminal(
        [sys.executable, "-m", "bulkstop", "run", str(source), "--endpoint",
         throttling_simulator.url, "--report", str(tmp_path / "r.csv"), "--rate", "40",
         "--yes"]
    )  # fmt: skip
    status = terminal.run_to_end()

    assert status == 0
    shown = [line for frame in terminal.frames for line in frame if BAR.search(line)]
    lowered = [
        line
        for line in shown
        if (rate := re.search(r"/s of (\d+\.\d)/s · throttled, backing off", line))
        and float(rate[1]) < 40.0
    ]
    assert lowered, "\n".join(shown)
