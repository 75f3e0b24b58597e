"""What a resume carries over: the decision table, and the compact index it is kept in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from reportkit import FORMATS, job, key, result, write_run

from bulkstop.models import Outcome, Result, TargetKey
from bulkstop.report import CarriedRecords, ReportFormat, ReportWriter, load_report
from bulkstop.report import index as index_module
from bulkstop.report.index import HANDED_OUT, MOVED, ReportIndex


@pytest.fixture(params=FORMATS)
def path(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    fmt: ReportFormat = request.param
    return tmp_path / f"report.{fmt}"


def carried_of(path: Path, *records: Result, retry_failed: bool = False) -> CarriedRecords:
    write_run(path, list(records))
    return CarriedRecords.load(path, retry_failed=retry_failed)


# -- the decision table --------------------------------------------------------------------------


def case(latest: Result, retry_failed: bool, sent: bool, maybe: bool, name: str) -> Any:
    return pytest.param(latest, retry_failed, sent, maybe, id=name)


@pytest.mark.parametrize(
    ("latest", "retry_failed", "sent", "maybe_applied"),
    [
        case(result(0), False, False, False, "stopped-kept"),
        case(result(0, Outcome.NOT_STOPPED), True, False, False, "not_stopped-kept-by-retry"),
        case(result(0, Outcome.NOT_FOUND, http_status=404), True, False, False, "not_found-kept"),
        case(result(0, Outcome.FORBIDDEN, http_status=403), True, False, False, "forbidden-kept"),
        case(result(0, Outcome.FAILED, http_status=503), False, False, False, "failed-kept"),
        case(result(0, Outcome.FAILED, http_status=503), True, True, True, "failed-503-retried"),
        case(result(0, Outcome.FAILED, http_status=None), True, True, True, "failed-timeout"),
        case(
            result(0, Outcome.FAILED, http_status=500, error_code="CB.00060211"),
            True,
            True,
            False,
            "failed-throttled-500",
        ),
        case(result(0, Outcome.FAILED, http_status=429), True, True, False, "failed-429"),
        case(result(0, Outcome.UNCERTAIN), False, False, False, "uncertain-kept"),
        case(result(0, Outcome.UNCERTAIN), True, True, True, "uncertain-retried"),
        case(
            result(0, Outcome.ABORTED, http_status=None, attempts=0),
            False,
            True,
            False,
            "aborted-unsent",
        ),
        case(
            result(0, Outcome.ABORTED, http_status=None, attempts=1),
            False,
            True,
            True,
            "aborted-mid-call",
        ),
        case(result(0, Outcome.UNAUTHORIZED, http_status=401), False, True, False, "unauthorized"),
        # the flag carries what earlier runs knew, whatever this record's own last reply was
        case(
            result(0, Outcome.ABORTED, http_status=None, attempts=0, maybe_applied=True),
            False,
            True,
            True,
            "aborted-unsent-flagged",
        ),
        case(
            result(0, Outcome.ABORTED, http_status=429, maybe_applied=True),
            False,
            True,
            True,
            "aborted-after-429-flagged",
        ),
        case(
            result(0, Outcome.FAILED, http_status=429, maybe_applied=True),
            True,
            True,
            True,
            "failed-429-flagged",
        ),
    ],
)
def test_a_target_is_carried_or_sent_by_its_latest_record(
    tmp_path: Path, latest: Result, retry_failed: bool, sent: bool, maybe_applied: bool
) -> None:
    carried = carried_of(tmp_path / "r.jsonl", latest, retry_failed=retry_failed)
    assert (carried.get(key(0), 2) is None) is sent
    assert carried.maybe_applied(key(0)) is maybe_applied


@pytest.mark.parametrize("retry_failed", [False, True])
def test_a_target_in_flight_at_a_crash_is_sent_maybe_applied(
    path: Path, retry_failed: bool
) -> None:
    write_run(path, [result(0, Outcome.FAILED, http_status=429)])
    write_run(path, [], run=2, append=True, attempting=[0])  # retried, then the process died
    carried = CarriedRecords.load(path, retry_failed=retry_failed)
    assert carried.get(key(0), 2) is None
    assert carried.maybe_applied(key(0))


def test_a_marker_of_an_earlier_run_than_the_record_is_answered(path: Path) -> None:
    write_run(path, [], attempting=[0])  # run 1 sent it and died
    write_run(path, [result(0)], run=2, append=True)  # run 2 stopped it
    carried = CarriedRecords.load(path, retry_failed=False)
    assert carried.get(key(0), 2) is not None
    assert not carried.maybe_applied(key(0))


def test_a_target_only_a_marker_names_is_sent_maybe_applied(path: Path) -> None:
    write_run(path, [result(0)], attempting=[0, 1])
    carried = CarriedRecords.load(path, retry_failed=False)
    assert carried.get(key(1), 3) is None
    assert carried.maybe_applied(key(1))
    assert carried.index.targets == 2


def test_a_target_the_report_never_saw_is_sent(path: Path) -> None:
    carried = carried_of(path, result(0))
    assert carried.get(key(1), 3) is None
    assert not carried.maybe_applied(key(1))


def test_the_last_run_counts_the_report_and_its_sidecar(path: Path) -> None:
    write_run(path, [result(0)])
    write_run(path, [], run=2, append=True, attempting=[1])
    assert CarriedRecords.load(path, retry_failed=False).index.last_run == 2


# -- what is handed out ------------------------------------------------------------------------


def test_a_carried_record_is_handed_out_as_a_summary_at_the_line_asked(path: Path) -> None:
    write_run(path, [result(0, Outcome.UNCERTAIN, maybe_applied=True, error_code="X")], run=3)
    carried = CarriedRecords.load(path, retry_failed=False)

    handed_out = carried.get(key(0), 7)

    assert handed_out == Result(
        line=7,
        job_id=job(0),
        build_no="1",
        outcome=Outcome.UNCERTAIN,
        maybe_applied=True,
        run=3,
    )


def test_the_latest_of_several_records_is_the_one_carried(path: Path) -> None:
    write_run(path, [result(0, Outcome.ABORTED, attempts=0)])
    write_run(path, [result(0, Outcome.FAILED, http_status=503)], run=2, append=True)
    write_run(path, [result(0, Outcome.NOT_STOPPED)], run=3, append=True)
    carried = CarriedRecords.load(path, retry_failed=True)
    handed_out = carried.get(key(0), 2)
    assert handed_out is not None
    assert (handed_out.outcome, handed_out.run) == (Outcome.NOT_STOPPED, 3)
    assert (carried.index.targets, len(carried.index)) == (1, 3)


@pytest.mark.parametrize(("line", "moved"), [(2, False), (9, True)], ids=["same", "moved"])
def test_handing_out_notes_a_line_the_input_moved_the_target_to(
    path: Path, line: int, moved: bool
) -> None:
    carried = carried_of(path, result(0))
    carried.get(key(0), line)
    slot = carried.index.find(key(0))
    assert carried.index.flags(slot) & HANDED_OUT
    assert bool(carried.index.flags(slot) & MOVED) is moved
    assert carried.index.line(slot) == line


def test_finalize_writes_a_moved_record_with_its_new_line_and_the_rest_as_they_were(
    path: Path,
) -> None:
    write_run(path, [result(i) for i in range(3)], finalize=True)  # lines 2, 3, 4
    before = load_report(path).records
    carried = CarriedRecords.load(path, retry_failed=False)
    with ReportWriter(path, run=2, append=True, carried=carried) as writer:
        for i, line in ((0, 2), (1, 9), (2, 4)):  # the input moved target 1 to line 9
            handed_out = carried.get(key(i), line)
            assert handed_out is not None
            writer.write(handed_out)
    assert load_report(path).records == [before[0], before[1]._replace(line=9), before[2]]


def test_a_record_this_run_writes_supersedes_the_carried_one(path: Path) -> None:
    write_run(path, [result(0, Outcome.FAILED, http_status=503), result(1)], finalize=True)
    carried = CarriedRecords.load(path, retry_failed=True)
    assert carried.get(key(0), 2) is None  # retried
    with ReportWriter(path, run=2, append=True, carried=carried) as writer:
        writer.write(result(0))
        handed_out = carried.get(key(1), 3)
        assert handed_out is not None
        writer.write(handed_out)
    assert [(r.line, r.outcome, r.run) for r in load_report(path).records] == [
        (3, Outcome.STOPPED, 1),
        (2, Outcome.STOPPED, 2),
    ]


def test_the_number_of_carried_targets(path: Path) -> None:
    carried = carried_of(
        path, result(0), result(1, Outcome.ABORTED, attempts=0), result(2, Outcome.FAILED)
    )
    assert len(carried) == 2


# -- the input check ---------------------------------------------------------------------------


def test_strangers_are_the_targets_the_input_does_not_hold(path: Path) -> None:
    write_run(path, [result(0), result(1), result(5, Outcome.INVALID, job_id="x")], attempting=[2])
    index = ReportIndex.build(path)
    index.mark_seen(key(1))
    index.mark_seen(key(7))  # the input may hold more than the report

    count, first = index.strangers()

    assert (count, index.targets) == (2, 3)  # target 0, and target 2 of the marker
    assert index.key_at(first) == key(0)


def test_a_stranger_only_a_marker_names_is_read_back_from_the_sidecar(path: Path) -> None:
    write_run(path, [result(0)], attempting=[3])
    index = ReportIndex.build(path)
    index.mark_seen(key(0))
    count, first = index.strangers()
    assert (count, index.key_at(first)) == (1, key(3))


def test_an_empty_report_has_no_strangers(path: Path) -> None:
    write_run(path, [])
    assert ReportIndex.build(path).strangers() == (0, -1)


def test_the_runs_rows_are_sighted_once_each_after_the_input_check(path: Path) -> None:
    write_run(path, [result(0), result(1)], attempting=[2])
    index = ReportIndex.build(path)
    for i in (0, 1, 2):
        index.mark_seen(key(i))
    assert index.strangers() == (0, -1)
    index.clear_seen()
    # the report's targets (records and markers alike) are deduped in the index's flags ...
    assert [index.sight(key(i)) for i in (0, 0, 2, 1, 2)] == [True, False, True, True, False]
    # ... and a target the report never saw is left to the engine's own dedupe
    assert index.sight(key(9)) is None


def test_a_resume_dedupes_its_reports_targets_without_the_engines_dedupe(path: Path) -> None:
    import anyio

    from bulkstop import Pacer, Stopper
    from bulkstop.models import Reply, ReplyKind, Target

    write_run(path, [result(0), result(1, Outcome.ABORTED, attempts=0)])
    carried = CarriedRecords.load(path, retry_failed=False)
    carried.index.clear_seen()

    class Instant:
        async def stop(self, target: Target) -> Reply:
            return Reply(kind=ReplyKind.STOPPED, http_status=200)

        async def refresh_credentials(self, generation: int) -> bool:
            return False

    rows = [key(0), key(1), key(0), key(1), key(5), key(5)]

    async def run() -> list[tuple[int, Outcome]]:
        stopper = Stopper(Instant(), pacer=Pacer(rate=1e6, burst=10))
        run = stopper.run([tuple(k) for k in rows], carried=carried)
        async with run as results:
            out = [(r.line, r.outcome) async for r in results]
        assert run._seen.targets == 1  # only the target the report never saw
        return sorted(out)

    assert anyio.run(run) == [
        (1, Outcome.STOPPED),  # carried over
        (2, Outcome.STOPPED),  # sent again: aborted before any attempt
        (3, Outcome.DUPLICATE),
        (4, Outcome.DUPLICATE),
        (5, Outcome.STOPPED),
        (6, Outcome.DUPLICATE),
    ]


# -- collisions ----------------------------------------------------------------------------------


def test_keys_whose_digests_share_64_bits_are_told_apart_by_the_rest(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = index_module.key_digest
    monkeypatch.setattr(index_module, "key_digest", lambda k: real(k) & 0xFFFFFFFF)  # hi == 0
    carried = carried_of(path, result(0), result(1, Outcome.ABORTED, attempts=0), result(2))
    assert carried.get(key(0), 2) is not None
    assert carried.get(key(1), 3) is None
    handed_out = carried.get(key(2), 4)
    assert handed_out is not None
    assert (handed_out.job_id, handed_out.build_no) == (job(2), "3")


def test_a_colliding_key_found_at_another_line_is_sent_instead(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index_module, "key_digest", lambda k: 42)  # every key collides
    carried = carried_of(path, result(0))
    stranger = TargetKey(job(9), 10)
    assert carried.get(stranger, 5) is None  # read back: the record is target 0's
    assert carried.get(key(0), 5) is not None  # the record's own target, moved


# -- size ----------------------------------------------------------------------------------------


def test_the_index_holds_at_most_32_bytes_per_record(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    write_run(path, [result(i) for i in range(10_000)], finalize=True)
    index = ReportIndex.build(path)
    assert index.targets == 10_000
    assert index.nbytes / index.targets <= 32
