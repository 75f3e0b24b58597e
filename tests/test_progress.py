"""The live progress display's words, on a fake clock, and its frame as rich draws it."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

import pytest
from fakeclock import FakeClock

from bulkstop.cli.output import (
    ConsoleEvents,
    ProgressDisplay,
    ProgressStatus,
    RateMeter,
    StatusLines,
    count_in_background,
    count_rows,
)
from bulkstop.engine import RunStats
from bulkstop.job import Job, JobSettings
from bulkstop.models import Outcome

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def test_the_rate_is_the_growth_over_the_window() -> None:
    meter = RateMeter(window=4.0)
    assert meter.rate() is None
    for now, count in [(0.0, 0), (1.0, 10), (2.0, 30), (3.0, 30), (4.0, 40)]:
        meter.add(now, count)
    assert meter.rate() == 10.0  # 40 in 4 s
    meter.add(6.0, 100)  # the window now starts at 2.0 s: 70 in 4 s
    assert meter.rate() == 17.5


def test_a_rate_needs_two_times() -> None:
    meter = RateMeter()
    meter.add(1.0, 5)
    meter.add(1.0, 6)

    assert meter.rate() is None


def stats(done: dict[Outcome, int], requests: int) -> RunStats:
    return RunStats(rows=sum(done.values()), outcomes=dict(done), requests=requests)


def test_the_status_shows_counts_achieved_rate_ceiling_and_eta() -> None:
    clock = FakeClock()
    status = ProgressStatus(total=100, asked=40.0, clock=clock.now)

    first = status.describe(stats({}, 0), 40.0)
    assert first == StatusLines("?/s of 40.0/s · ETA ?", "nothing done yet")
    clock.advance(2.0)
    later = status.describe(stats({Outcome.STOPPED: 18, Outcome.FAILED: 2}, 24), 40.0)
    # 24 requests and 20 rows in 2 s: 80 rows left at 10 rows/s
    assert later == StatusLines("12.0/s of 40.0/s · ETA 0:00:08", "stopped 18 · failed 2")


def test_a_lowered_pacer_is_shown_as_throttled() -> None:
    clock = FakeClock()
    status = ProgressStatus(total=None, asked=40.0, clock=clock.now)
    status.describe(stats({}, 0), 40.0)
    clock.advance(4.0)

    lines = status.describe(stats({Outcome.STOPPED: 40}, 50), 12.5)

    assert lines.pace == "12.5/s of 12.5/s · throttled, backing off · ETA ?"


def test_the_eta_of_a_long_run_is_in_hours() -> None:
    clock = FakeClock()
    status = ProgressStatus(total=100_000, asked=10.0, clock=clock.now)
    status.describe(stats({}, 0), 10.0)
    clock.advance(10.0)

    lines = status.describe(stats({Outcome.STOPPED: 10}, 10), 10.0)

    assert lines.pace.endswith("ETA 27:46:30")  # 99 990 rows at 1 row/s


def test_a_finished_run_has_nothing_left() -> None:
    status = ProgressStatus(total=3, asked=10.0, clock=FakeClock().now)

    assert status.describe(stats({Outcome.STOPPED: 3}, 3), 10.0).pace.endswith("ETA 0:00:00")


@pytest.mark.parametrize(
    ("name", "rows"), [("targets.csv", 25), ("targets.jsonl", 25), ("targets.json", 25)]
)
def test_the_rows_of_a_regular_file_are_counted_as_the_run_reads_them(name: str, rows: int) -> None:
    assert count_rows(JobSettings(input=str(SAMPLES / name))) == rows


def test_the_display_counts_on_a_thread_and_sets_the_total_when_done() -> None:
    status = ProgressStatus(total=None, asked=10.0)
    counting = count_in_background(JobSettings(input=str(SAMPLES / "targets.csv")), status)
    counting.thread.join(timeout=10)

    assert not counting.thread.is_alive()
    assert status.total == 25


def test_a_run_without_a_display_starts_no_thread_to_count_its_rows() -> None:
    events = ConsoleEvents(progress=False)
    events.job = Job(JobSettings(input=str(SAMPLES / "targets.csv")), events=events)
    before = set(threading.enumerate())

    events.started()
    started = set(threading.enumerate()) - before
    events.ended()

    assert started == set()


def test_a_long_count_gives_up_when_cancelled(tmp_path: Path) -> None:
    big = tmp_path / "big.csv"
    big.write_text("job_id,build_no\n" + "".join(f"{i:032x},{i + 1}\n" for i in range(3000)))
    cancelled = threading.Event()
    cancelled.set()

    assert count_rows(JobSettings(input=str(big)), cancelled) is None
    assert count_rows(JobSettings(input=str(big))) == 3000


def test_a_stream_has_no_total(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)

    assert count_rows(JobSettings(input="-", input_format="csv")) is None
    assert count_rows(JobSettings(input=str(fifo))) is None  # never opened: no wait for a writer
    assert count_rows(JobSettings(input=str(tmp_path / "missing.csv"))) is None


def test_the_frame_shows_done_of_total_and_the_counts_below() -> None:
    from rich.console import Console

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100, color_system=None)
    clock = FakeClock()
    display = ProgressDisplay(ProgressStatus(total=50, asked=20.0, clock=clock.now), console)
    display.start()
    display.update(stats({}, 0), 20.0)
    clock.advance(1.0)
    display.update(stats({Outcome.STOPPED: 9, Outcome.NOT_FOUND: 1}, 10), 20.0)
    display.stop()

    last = out.getvalue().rsplit("\x1b[2K", 2)  # rich erases a line before drawing it again
    frame = "".join(last[-2:])
    assert "10/50" in frame
    assert "10.0/s of 20.0/s · ETA 0:00:04" in frame
    assert "stopped 9 · not_found 1" in frame
