"""Discovery (bulkstop.discover) against a fake read service, on the fake clock; and its pure
parts: durations, the query, the filters and the jobs file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fakeclock import FakeClock
from fakereads import (
    FORBIDDEN,
    JOB_NOT_FOUND_404,
    JOB_NOT_FOUND_422,
    THROTTLED,
    UNAUTHORIZED,
    FakeBuild,
    FakeJob,
    FakeReadClient,
    FakeService,
    parse_window,
)

from bulkstop.discover import (
    DiscoveredBuild,
    DiscoverQuery,
    DiscoverStats,
    Discovery,
    JobProblem,
    parse_duration,
    parse_since,
    read_jobs_file,
    record_matches,
)
from bulkstop.errors import CredentialsRejected, InputError
from bulkstop.pacing import Pacer
from bulkstop.reader import ReadSettings
from bulkstop.reads import BuildRecord, ReadApi
from bulkstop.retry import RetryPolicy

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
PROJECT = "a" * 32
HOUR = timedelta(hours=1)
POLICY = RetryPolicy(initial_backoff=0.01, max_backoff=0.05, max_attempts=3)


def job_id(n: int) -> str:
    return f"{n:032x}"


def build(number: int, state: str = "RUNNING", ago: timedelta = HOUR, **fields: Any) -> FakeBuild:
    return FakeBuild(number, state, NOW - ago, **fields)


def job(n: int, *builds: FakeBuild, **fields: Any) -> FakeJob:
    return FakeJob(job_id(n), f"job-{n}", list(builds), **fields)


async def discover(
    service: FakeService,
    query: DiscoverQuery | None = None,
    *,
    settings: ReadSettings | None = None,
) -> tuple[list[DiscoveredBuild], DiscoverStats, FakeReadClient]:
    clock = FakeClock()
    client = FakeReadClient(service, clock=clock)
    discovery = Discovery(
        client,
        query or DiscoverQuery(project_id=PROJECT),
        settings=settings or ReadSettings(retry=POLICY, seed=3),
        pacer=Pacer(rate=50, clock=clock),
        wall=lambda: NOW,
    )
    async with clock.autojump(), discovery as builds:
        found = [b async for b in builds]
    return found, discovery.stats, client


def keys(builds: list[DiscoveredBuild]) -> list[tuple[str, int]]:
    return [(b.job_id, b.build_no) for b in builds]


# --- durations and times -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "duration"),
    [
        ("90s", timedelta(seconds=90)),
        ("45m", timedelta(minutes=45)),
        ("6h", timedelta(hours=6)),
        ("2d", timedelta(days=2)),
        ("1h30m", timedelta(minutes=90)),
        (" 6H ", timedelta(hours=6)),
        ("0s", timedelta(0)),
    ],
)
def test_durations_are_read(text: str, duration: timedelta) -> None:
    assert parse_duration(text) == duration


@pytest.mark.parametrize(
    "text", ["", "6", "h", "6 h", "-6h", "1.5h", "6w", "6hours", "h6", "3651d"]
)
def test_other_durations_are_refused_with_one_line(text: str) -> None:
    with pytest.raises(ValueError, match="duration") as caught:
        parse_duration(text)
    assert "\n" not in str(caught.value)


def test_since_is_a_duration_back_from_now_or_a_time_with_its_zone() -> None:
    assert parse_since("6h", NOW) == NOW - timedelta(hours=6)
    assert parse_since("2026-11-28T08:00:00+08:00", NOW) == datetime(2026, 11, 28, 0, tzinfo=UTC)
    assert parse_since("2026-11-28T00:00:00Z", NOW) == datetime(2026, 11, 28, 0, tzinfo=UTC)


@pytest.mark.parametrize(("text", "message"), [("2026-11-28T08:00:00", "zone"), ("soon", "like")])
def test_since_without_a_zone_or_unreadable_is_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_since(text, NOW)


# --- the query -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "selection",
    [{}, {"project_id": PROJECT, "all_jobs": True}, {"job_ids": (job_id(1),), "jobs_file": "f"}],
)
def test_a_query_needs_exactly_one_selection(selection: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        DiscoverQuery(**selection)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"project_id": "ABC"}, "project_id"),
        ({"project_id": PROJECT, "since": datetime(2026, 11, 28)}, "zone"),
        ({"project_id": PROJECT, "since": timedelta(days=-1)}, "since"),
        ({"project_id": PROJECT, "running_longer_than": timedelta(days=-1)}, "running_longer"),
        ({"project_id": PROJECT, "branch": " "}, "branch"),
        ({"job_ids": job_id(1)}, "not one string"),
    ],
)
def test_a_wrong_query_is_refused_before_anything_is_sent(
    fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        DiscoverQuery(**fields)


# --- the filters ---------------------------------------------------------------------------


def record(**fields: Any) -> BuildRecord:
    values: dict[str, Any] = {
        "build_no": 1,
        "state": "RUNNING",
        "start_time": NOW - HOUR,
        "branch": "release/2.3",
        "commit_id": "AB12cd34" + "0" * 32,
        "trigger_type": "Manual",
        "executor": "Zhang Wei",
    }
    values.update(fields)
    return BuildRecord(**values)


def query(**filters: Any) -> DiscoverQuery:
    return DiscoverQuery(project_id=PROJECT, **filters)


@pytest.mark.parametrize(
    ("filters", "fields", "matches"),
    [
        ({}, {}, True),
        ({}, {"start_time": NOW - timedelta(hours=24)}, True),  # exactly 24 h ago: since
        ({}, {"start_time": NOW - timedelta(hours=24, seconds=1)}, False),
        ({}, {"start_time": None}, True),  # may be recent: not missed
        ({"since": timedelta(minutes=30)}, {}, False),
        ({"since": NOW - 2 * HOUR}, {}, True),
        ({"running_longer_than": timedelta(minutes=59)}, {}, True),
        ({"running_longer_than": timedelta(minutes=61)}, {}, False),
        ({"running_longer_than": timedelta(0)}, {"start_time": None}, False),  # age unproven
        ({"branch": "release/*"}, {}, True),
        ({"branch": "release/*"}, {"branch": "main"}, False),
        ({"branch": "Release/*"}, {}, False),  # branch names are case-sensitive
        ({"branch": "*"}, {"branch": ""}, False),  # the answer gave no branch
        ({"commit": "ab12"}, {}, True),
        ({"commit": "AB12CD"}, {}, True),
        ({"commit": "ab13"}, {}, False),
        ({"commit": "ab12"}, {"commit_id": ""}, False),
        ({"trigger_type": "MANUAL"}, {}, True),
        ({"trigger_type": "Timer"}, {}, False),
        ({"executor": "zhang wei"}, {}, True),
        ({"executor": "Zhang"}, {}, False),
    ],
)
def test_record_matches(filters: dict[str, Any], fields: dict[str, Any], matches: bool) -> None:
    assert record_matches(query(**filters), record(**fields), NOW) is matches


# --- the jobs file -------------------------------------------------------------------------


def write(tmp_path: Path, text: str | bytes, name: str = "jobs.txt") -> Path:
    path = tmp_path / name
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8", newline="")
    else:
        path.write_bytes(text)
    return path


def test_a_jobs_file_of_one_id_a_line_is_read_with_its_line_numbers(tmp_path: Path) -> None:
    path = write(tmp_path, f"{job_id(1)}\n\n  {job_id(2)}  \r\n{job_id(1)}\n")

    jobs_file = read_jobs_file(path)

    assert jobs_file.jobs == ((1, job_id(1)), (3, job_id(2)))  # the repeat is read once
    assert jobs_file.problems == ()


@pytest.mark.parametrize("column", ["job_id", "jobId", "Job-ID", "task_id", "job"])
def test_a_csv_jobs_file_is_read_by_its_job_id_column(tmp_path: Path, column: str) -> None:
    text = f'\ufeffname,{column},owner\r\na,{job_id(1)},x\r\n"b\nc",{job_id(2)},y\r\n'
    path = write(tmp_path, text, "jobs.csv")

    jobs_file = read_jobs_file(path)

    assert jobs_file.jobs == ((2, job_id(1)), (3, job_id(2)))


def test_a_bad_line_is_a_problem_naming_file_line_and_field(tmp_path: Path) -> None:
    upper = "F9D6C8466D614A9788E9A0ACF6C15F46"
    path = write(tmp_path, f"{job_id(1)}\nNOT-A-JOB\n{upper}\n")

    jobs_file = read_jobs_file(path)

    assert jobs_file.jobs == ((1, job_id(1)),)
    assert [problem.message for problem in jobs_file.problems] == [
        f"{path}:2: job_id: must be 32 characters of [0-9a-z], got 'NOT-A-JOB' (9 characters)",
        f"{path}:3: job_id: must be lowercase [0-9a-z], got '{upper}'",
    ]
    assert {problem.reason for problem in jobs_file.problems} == {"invalid"}


def test_a_csv_row_without_the_job_column_is_a_problem(tmp_path: Path) -> None:
    path = write(tmp_path, f"job_id,name\n{job_id(1)},a\n\n,b\n", "jobs.csv")

    jobs_file = read_jobs_file(path)

    assert jobs_file.jobs == ((2, job_id(1)),)
    assert [problem.message for problem in jobs_file.problems] == [f"{path}:4: job_id: missing"]


def test_an_empty_jobs_file_selects_nothing(tmp_path: Path) -> None:
    assert read_jobs_file(write(tmp_path, "\n \n")).jobs == ()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"name,owner\na,b\n", ":1: the header has no job id column (found 'name', 'owner')"),
        (b"job_id,task_id\n", ":1: the header has more than one job id column"),
        (b"\xff\xfe" + b"x" * 10, ": not UTF-8 (byte 0)"),
        (b"abc\ndef\x00", ":2: NUL byte"),
    ],
)
def test_a_jobs_file_that_cannot_be_read_is_an_input_error(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = write(tmp_path, content)

    with pytest.raises(InputError) as caught:
        read_jobs_file(path)

    assert str(caught.value).startswith(f"{path}{message}")


def test_a_missing_jobs_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        read_jobs_file(tmp_path / "missing.txt")


# --- discovery -----------------------------------------------------------------------------

pytest_anyio = pytest.mark.anyio


@pytest_anyio
async def test_only_running_builds_are_found_in_job_then_build_order() -> None:
    service = FakeService(
        [
            job(2, build(7, "SUCCESS"), build(8, "RUNNING"), build(9, "ABORTING")),
            job(1, build(3, "RUNNING"), build(4, "FAILURE"), build(5, "QUEUED")),
            job(3, build(1, "ABORTED"), build(2, "SUCCESS", running_status="Running")),
        ]
    )

    found, stats, _ = await discover(service)

    # project order (2, 1, 3); an unknown word (QUEUED) is not an ended build
    assert keys(found) == [(job_id(2), 8), (job_id(2), 9), (job_id(1), 3), (job_id(1), 5)]
    assert (stats.jobs, stats.jobs_scanned, stats.builds_seen, stats.running) == (3, 3, 8, 4)
    assert stats.finished


@pytest_anyio
async def test_a_found_build_carries_its_record() -> None:
    service = FakeService([job(1, build(3, branch="dev", executor="Li Na"))])

    (found,), _, _ = await discover(service)

    assert found == DiscoveredBuild(
        job_id=job_id(1),
        build_no=3,
        job_name="job-1",
        status="RUNNING",
        start_time=NOW - HOUR,
        branch="dev",
        commit_id="ab12cd34" + "0" * 32,
        trigger_type="Manual",
        executor="Li Na",
    )
    assert found.target.key == (job_id(1), 3)


@pytest_anyio
async def test_a_project_is_paged_until_a_short_page() -> None:
    service = FakeService([job(n, build(1)) for n in range(1, 251)])

    found, stats, client = await discover(service)

    pages = [dict(r.query)["page_index"] for r in client.calls(ReadApi.LIST_PROJECT_JOBS)]
    assert pages == ["0", "1", "2"]
    assert len(found) == stats.jobs == 250
    assert stats.calls == 3 + 250


@pytest_anyio
async def test_a_project_list_ends_when_its_total_is_reached() -> None:
    service = FakeService([job(n, build(1)) for n in range(1, 201)])

    _, stats, client = await discover(service)

    assert len(client.calls(ReadApi.LIST_PROJECT_JOBS)) == 2  # 200 of 200: no empty 3rd page
    assert stats.jobs == 200


@pytest_anyio
async def test_a_repeated_page_of_jobs_does_not_duplicate_and_ends_the_list() -> None:
    service = FakeService([job(n, build(1)) for n in range(1, 101)])
    service.repeat_pages = True  # page 1 is page 0 again, and no total is given

    found, stats, client = await discover(service)

    assert len(client.calls(ReadApi.LIST_PROJECT_JOBS)) == 2
    assert stats.jobs == 100
    assert len(set(keys(found))) == len(found) == 100


@pytest_anyio
async def test_a_jobs_builds_are_paged_and_a_repeated_page_adds_nothing() -> None:
    builds = [build(n, ago=timedelta(minutes=n)) for n in range(1, 201)]
    service = FakeService([job(1, *builds)])
    service.repeat_pages = True

    found, stats, client = await discover(service)

    records = client.calls(ReadApi.LIST_BUILD_INFO_RECORD_BY_JOB_ID)
    assert [dict(r.query)["page_index"] for r in records] == ["0", "1", "2"]
    assert [b.build_no for b in found] == list(range(1, 201))
    assert stats.builds_seen == 200


@pytest_anyio
async def test_records_are_asked_in_a_window_a_day_wider_and_judged_by_their_own_time() -> None:
    service = FakeService(
        [job(1, build(1, ago=timedelta(hours=30)), build(2, ago=timedelta(hours=23)))]
    )

    found, stats, client = await discover(service)

    (request,) = client.calls(ReadApi.LIST_BUILD_INFO_RECORD_BY_JOB_ID)
    assert parse_window(request) == (NOW - timedelta(hours=48), NOW + timedelta(hours=24))
    assert [b.build_no for b in found] == [2]  # build 1 was listed, but started 30 h ago
    assert stats.filtered_out == 1


@pytest_anyio
async def test_a_job_whose_last_build_started_before_the_window_is_not_read() -> None:
    service = FakeService(
        [
            job(1, build(1, ago=timedelta(days=3)), last_build_time=NOW - timedelta(days=3)),
            job(2, build(1), last_build_time=NOW - HOUR),
        ]
    )

    found, stats, client = await discover(service)

    records = client.calls(ReadApi.LIST_BUILD_INFO_RECORD_BY_JOB_ID)
    assert [request.path[2] for request in records] == [job_id(2)]
    assert keys(found) == [(job_id(2), 1)]
    assert stats.jobs_skipped == 1


@pytest_anyio
async def test_when_the_record_list_is_not_served_the_next_api_is_used_and_kept() -> None:
    service = FakeService([job(n, build(1)) for n in range(1, 6)])
    service.not_served.add(ReadApi.LIST_BUILD_INFO_RECORD_BY_JOB_ID)

    found, stats, client = await discover(service, settings=ReadSettings(concurrency=1))

    assert len(found) == 5
    assert len(client.calls(ReadApi.LIST_BUILD_INFO_RECORD_BY_JOB_ID)) == 1
    assert len(client.calls(ReadApi.LIST_BUILD_INFO_RECORD)) == 5
    assert stats.records_api == "list_build_info_record"


@pytest_anyio
async def test_the_history_is_the_last_fallback() -> None:
    service = FakeService([job(1, build(1), build(2, "SUCCESS"))])
    service.not_served |= {ReadApi.LIST_BUILD_INFO_RECORD_BY_JOB_ID, ReadApi.LIST_BUILD_INFO_RECORD}

    found, stats, client = await discover(service)

    (history,) = client.calls(ReadApi.SHOW_LIST_HISTORY)
    assert dict(history.query)["interval"] == "2"
    assert keys(found) == [(job_id(1), 1)]
    assert stats.records_api == "show_list_history"


@pytest_anyio
async def test_when_the_project_job_list_is_not_served_the_v3_list_is_used() -> None:
    service = FakeService([job(1, build(1))])
    service.not_served.add(ReadApi.LIST_PROJECT_JOBS)

    found, _, client = await discover(service)

    assert keys(found) == [(job_id(1), 1)]
    assert len(client.calls(ReadApi.SHOW_JOB_LIST_BY_PROJECT_ID)) == 1


@pytest_anyio
async def test_jobs_that_cannot_be_read_are_problems_and_the_others_are_still_listed() -> None:
    service = FakeService(
        [
            job(1, build(1)),
            job(2, build(1), failure=JOB_NOT_FOUND_404),
            job(3, build(1), failure=FORBIDDEN),
            job(4, build(1), failure=JOB_NOT_FOUND_422),
            job(5, build(1)),
        ]
    )

    found, stats, _ = await discover(service)

    assert keys(found) == [(job_id(1), 1), (job_id(5), 1)]
    assert [(p.job_id, p.reason, p.http_status) for p in stats.problems] == [
        (job_id(2), "not_found", 404),
        (job_id(3), "forbidden", 403),
        (job_id(4), "not_found", 422),
    ]
    assert stats.problems[2].message == (f"job {job_id(4)}: HTTP 422 DEVCB.00031006: job not found")
    assert stats.jobs_scanned == 2


@pytest_anyio
async def test_a_project_that_cannot_be_listed_is_a_problem_and_nothing_is_found() -> None:
    service = FakeService([job(1, build(1))])
    service.script[ReadApi.LIST_PROJECT_JOBS] = [(404, {"error_code": "CB.00060406"})]

    found, stats, _ = await discover(service)

    assert found == []
    assert stats.problems == [
        JobProblem(
            "", f"project {PROJECT}, page 0: HTTP 404 CB.00060406", "not_found", 404, "CB.00060406"
        )
    ]


@pytest_anyio
async def test_a_401_on_the_projects_job_list_ends_discovery_with_credentials_rejected() -> None:
    service = FakeService([job(1, build(1))])
    service.script[ReadApi.LIST_PROJECT_JOBS] = [UNAUTHORIZED]
    clock = FakeClock()
    client = FakeReadClient(service, clock=clock)
    discovery = Discovery(
        client,
        DiscoverQuery(project_id=PROJECT),
        settings=ReadSettings(auth_breaker=5, retry=POLICY),
        pacer=Pacer(rate=50, clock=clock),
        wall=lambda: NOW,
    )

    async with clock.autojump():
        with pytest.raises(
            CredentialsRejected, match=f"project {PROJECT}: the credential was rejected"
        ):
            async with discovery as builds:
                assert [b async for b in builds] == []

    assert len(client.requests) == 1  # no job is asked for
    assert [problem.reason for problem in discovery.stats.problems] == ["unauthorized"]


@pytest_anyio
async def test_a_streak_of_401s_ends_discovery_with_credentials_rejected() -> None:
    service = FakeService([job(n, build(1)) for n in range(1, 21)])
    clock = FakeClock()
    client = FakeReadClient(
        lambda request: UNAUTHORIZED if request.api is not ReadApi.LIST_PROJECT_JOBS
        else service(request),
        clock=clock,
    )  # fmt: skip
    discovery = Discovery(
        client,
        DiscoverQuery(project_id=PROJECT),
        settings=ReadSettings(auth_breaker=5, retry=POLICY),
        pacer=Pacer(rate=50, clock=clock),
        wall=lambda: NOW,
    )

    async with clock.autojump():
        with pytest.raises(CredentialsRejected):
            async with discovery as builds:
                assert [b async for b in builds] == []

    record_calls = len(client.requests) - 1
    assert 5 <= record_calls <= 5 + ReadSettings().concurrency  # those in flight may finish
    assert discovery.stats.finished
    assert all(problem.reason == "unauthorized" for problem in discovery.stats.problems)


@pytest_anyio
async def test_a_throttled_read_is_retried_and_nothing_is_missed() -> None:
    service = FakeService([job(n, build(1)) for n in range(1, 4)])
    service.script[ReadApi.LIST_BUILD_INFO_RECORD_BY_JOB_ID] = [THROTTLED, THROTTLED]

    found, stats, _ = await discover(service)

    assert len(found) == 3
    assert stats.throttled == 2


@pytest_anyio
async def test_explicit_job_ids_are_read_once_each_and_a_bad_one_is_a_problem() -> None:
    service = FakeService([job(1, build(1)), job(2, build(4))])

    found, stats, client = await discover(
        service, DiscoverQuery(job_ids=(job_id(2), "nope", job_id(1), job_id(2)))
    )

    assert keys(found) == [(job_id(2), 4), (job_id(1), 1)]
    assert client.calls(ReadApi.LIST_PROJECT_JOBS) == []
    assert [p.message for p in stats.problems] == [
        "job_id: must be 32 characters of [0-9a-z], got 'nope' (4 characters)"
    ]
    assert found[0].job_name == ""  # a job given by id has no name from a list


@pytest_anyio
async def test_a_jobs_file_selects_its_jobs_and_its_bad_lines_are_problems(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, f"{job_id(2)}\nbad\n{job_id(1)}\n")
    service = FakeService([job(1, build(1)), job(2, build(4))])

    found, stats, _ = await discover(service, DiscoverQuery(jobs_file=str(path)))

    assert keys(found) == [(job_id(2), 4), (job_id(1), 1)]
    assert [p.message.split(": ")[0] for p in stats.problems] == [f"{path}:2"]


@pytest_anyio
async def test_a_missing_jobs_file_is_an_input_error_before_anything_is_sent(
    tmp_path: Path,
) -> None:
    service = FakeService([])
    client = FakeReadClient(service)
    discovery = Discovery(client, DiscoverQuery(jobs_file=str(tmp_path / "none.txt")))

    with pytest.raises(InputError, match="no such file"):
        async with discovery:
            pass

    assert client.requests == []


@pytest_anyio
async def test_all_jobs_are_listed_with_the_every_job_api() -> None:
    service = FakeService([job(1, build(1))])

    found, _, client = await discover(service, DiscoverQuery(all_jobs=True))

    assert keys(found) == [(job_id(1), 1)]
    assert [r.api for r in client.requests] == [
        ReadApi.LIST_JOB,
        ReadApi.LIST_BUILD_INFO_RECORD_BY_JOB_ID,
    ]


@pytest_anyio
async def test_unreadable_entries_are_left_out_and_reported() -> None:
    service = FakeService([job(1, build(1))])
    page = {"result": {"job_build_states": [{"number": "x"}, build(2).record()]}}
    service.script[ReadApi.LIST_BUILD_INFO_RECORD_BY_JOB_ID] = [page]

    found, stats, _ = await discover(service)

    assert keys(found) == [(job_id(1), 2)]
    assert [p.reason for p in stats.problems] == ["unreadable"]
    assert "number: not a build number" in stats.problems[0].message


@pytest_anyio
async def test_filters_apply_to_the_running_builds() -> None:
    service = FakeService(
        [job(1, build(1, branch="main"), build(2, branch="release/1"), build(3, branch="main"))]
    )

    found, stats, _ = await discover(service, DiscoverQuery(project_id=PROJECT, branch="rel*"))

    assert keys(found) == [(job_id(1), 2)]
    assert stats.filtered_out == 2


@pytest_anyio
async def test_leaving_the_block_early_stops_discovery() -> None:
    service = FakeService([job(n, build(1)) for n in range(1, 301)])
    clock = FakeClock()
    client = FakeReadClient(service, clock=clock)
    discovery = Discovery(
        client, DiscoverQuery(project_id=PROJECT), pacer=Pacer(rate=50, clock=clock),
        wall=lambda: NOW,
    )  # fmt: skip

    async with clock.autojump(), discovery as builds:
        async for _ in builds:
            break

    calls = len(client.requests)
    assert calls < 50
    assert not discovery.stats.finished


def test_results_are_plain_records() -> None:
    found = DiscoveredBuild(job_id(1), 2, "n", "RUNNING", None, "", "", "", "")

    assert found._asdict()["build_no"] == 2
    assert DiscoveredBuild._fields == (
        "job_id",
        "build_no",
        "job_name",
        "status",
        "start_time",
        "branch",
        "commit_id",
        "trigger_type",
        "executor",
    )
