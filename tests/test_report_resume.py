"""open_resume: the one call that opens a report for a resume of an input."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import IO

import pytest

from bulkstop.errors import InputError, ReportMismatchError, UsageError
from bulkstop.models import Outcome, Result, TargetKey
from bulkstop.report import ReportLock, ReportWriter, inflight_path, lock_path, open_resume
from bulkstop.sources import TargetSource


def job(i: int) -> str:
    return f"{i:032x}"


def write_input(path: Path, count: int, *, first: int = 0) -> Path:
    """A CSV of targets ``first..first+count-1``: target ``i`` is ``(job(i), i + 1)``."""
    rows = "".join(f"{job(i)},{i + 1}\n" for i in range(first, first + count))
    path.write_text("job_id,build_no\n" + rows, encoding="utf-8")
    return path


def write_report(path: Path, outcomes: list[Outcome], *, finalize: bool = True) -> Path:
    """A report of a run over the first ``len(outcomes)`` targets of :func:`write_input`."""
    writer = ReportWriter(path)
    for i, outcome in enumerate(outcomes):
        writer.write(
            Result(line=i + 2, job_id=job(i), build_no=str(i + 1), outcome=outcome, attempts=1)
        )
    if finalize:
        writer.finalize()
    else:
        writer.close()
    return path


@pytest.fixture
def targets(tmp_path: Path) -> Path:
    return write_input(tmp_path / "targets.csv", 4)


@pytest.fixture
def report(tmp_path: Path) -> Path:
    return write_report(tmp_path / "report.csv", [Outcome.STOPPED, Outcome.ABORTED])


def rows_of(source: TargetSource) -> list[tuple[int, TargetKey | None]]:
    return [(row.line, row.target.key if row.target else None) for row in source]


ALL_ROWS = [(i + 2, TargetKey(job(i), i + 1)) for i in range(4)]


def test_a_resume_holds_the_lock_the_input_from_its_first_row_and_the_plan(
    targets: Path, report: Path
) -> None:
    with open_resume(report, str(targets)) as resume:
        assert resume.lock.held
        with pytest.raises(UsageError, match="is in use by"):
            ReportLock.acquire(report)
        assert rows_of(resume.source) == ALL_ROWS  # read once for the check, then again
        assert resume.plan.run == 2
        carried = resume.plan.carried
        assert carried.get(TargetKey(job(0), 1), 2) is not None  # stopped: carried
        assert carried.get(TargetKey(job(1), 2), 3) is None  # aborted: sent again

    assert not resume.lock.held
    assert not lock_path(report).exists()
    ReportLock.acquire(report).release()


def test_retry_failed_sends_failed_targets_again(tmp_path: Path, targets: Path) -> None:
    report = write_report(tmp_path / "r.csv", [Outcome.FAILED])
    with open_resume(report, str(targets), retry_failed=False) as plain:
        assert plain.plan.carried.get(TargetKey(job(0), 1), 2) is not None
    with open_resume(report, str(targets), retry_failed=True) as again:
        assert again.plan.carried.get(TargetKey(job(0), 1), 2) is None
        assert again.plan.retry_failed


def _pipe_of(path: Path) -> IO[bytes]:
    """A pipe that holds the bytes of ``path`` and then ends, as ``cat path |`` gives."""
    read_fd, write_fd = os.pipe()
    os.write(write_fd, path.read_bytes())
    os.close(write_fd)
    return os.fdopen(read_fd, "rb")


def test_stdin_is_spooled_so_that_it_is_checked_and_then_read_again(
    targets: Path, report: Path
) -> None:
    with _pipe_of(targets) as stdin:
        with open_resume(report, "-", input_format="csv", stdin=stdin) as resume:
            assert resume.source.name == "<stdin>"
            assert rows_of(resume.source) == ALL_ROWS
        assert stdin.read() == b""  # read to its end once, before the check
    # No lock file and no spooled copy of stdin is left beside the report.
    assert sorted(p.name for p in report.parent.iterdir()) == ["report.csv", "targets.csv"]


def test_stdin_of_another_input_is_refused(tmp_path: Path, report: Path) -> None:
    other = write_input(tmp_path / "other.csv", 4, first=10)
    with _pipe_of(other) as stdin, pytest.raises(ReportMismatchError) as caught:
        open_resume(report, "-", input_format="csv", stdin=stdin)
    assert f"{report} is not a report of <stdin>: 2 of its 2 targets" in str(caught.value)
    ReportLock.acquire(report).release()  # nothing left locked


def test_a_report_of_another_input_is_refused_naming_count_and_example(
    tmp_path: Path, report: Path
) -> None:
    other = write_input(tmp_path / "other.csv", 4, first=1)  # holds target 1, not target 0
    content = report.read_bytes()

    with pytest.raises(ReportMismatchError) as caught:
        open_resume(report, str(other))

    message = str(caught.value)
    assert message == (
        f"{report} is not a report of {other}: 1 of its 2 targets are not in the input "
        f"(e.g. {job(0)}:1); use a new --report path for this input"
    )
    assert report.read_bytes() == content
    ReportLock.acquire(report).release()


def test_a_missing_report_is_refused_and_leaves_nothing_behind(
    tmp_path: Path, targets: Path
) -> None:
    missing = tmp_path / "reprot.csv"
    with pytest.raises(UsageError, match=r"^--resume: the report .*reprot\.csv does not exist"):
        open_resume(missing, str(targets))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["targets.csv"]


@pytest.mark.parametrize("way", ["same-path", "hard-link", "stdin"])
def test_a_report_that_is_the_input_is_refused(tmp_path: Path, way: str) -> None:
    report = write_report(tmp_path / "report.csv", [Outcome.STOPPED])
    content = report.read_bytes()
    input_name, stdin = str(report), None
    if way == "hard-link":
        input_name = str(tmp_path / "targets.csv")
        os.link(report, input_name)
    elif way == "stdin":
        input_name, stdin = "-", report.open("rb")  # what a shell's "< report.csv" gives
    try:
        with pytest.raises(UsageError, match="writing the report would destroy the input"):
            open_resume(report, input_name, input_format="csv", stdin=stdin)
    finally:
        if stdin is not None:
            stdin.close()
    assert report.read_bytes() == content
    assert not lock_path(report).exists()


def test_a_report_locked_by_another_run_is_refused_naming_it(targets: Path, report: Path) -> None:
    with ReportLock.acquire(report), pytest.raises(UsageError) as caught:
        open_resume(report, str(targets))
    assert f"is in use by process {os.getpid()} on {socket.gethostname()}" in str(caught.value)


def test_a_report_path_without_a_report_extension_is_refused(tmp_path: Path, targets: Path) -> None:
    with pytest.raises(UsageError, match=r"\.csv, \.jsonl, \.ndjson or \.json"):
        open_resume(tmp_path / "report.txt", str(targets))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["targets.csv"]


def test_an_unreadable_input_is_an_input_error_and_releases_the_lock(
    tmp_path: Path, report: Path
) -> None:
    with pytest.raises(InputError, match="no such file"):
        open_resume(report, str(tmp_path / "nope.csv"))
    ReportLock.acquire(report).release()


def test_a_report_cut_short_by_a_crash_is_resumed(tmp_path: Path, targets: Path) -> None:
    report = write_report(tmp_path / "r.csv", [Outcome.STOPPED, Outcome.STOPPED], finalize=False)
    with report.open("ab") as torn:
        torn.write(b"4,")  # a record the crash cut short
    with open_resume(report, str(targets)) as resume:
        assert resume.plan.carried.get(TargetKey(job(1), 2), 3) is not None


def test_a_sidecar_that_is_a_link_is_refused(tmp_path: Path, targets: Path) -> None:
    report = write_report(tmp_path / "r.csv", [Outcome.STOPPED], finalize=False)
    victim = tmp_path / "victim.txt"
    victim.write_text("someone else's\n")
    inflight_path(report).unlink()  # the crashed run's sidecar, replaced by a link
    inflight_path(report).symlink_to(victim)
    with pytest.raises(UsageError, match=r"^the in-flight sidecar .* is a symbolic link"):
        open_resume(report, str(targets))
    assert victim.read_text() == "someone else's\n"
    ReportLock.acquire(report).release()
