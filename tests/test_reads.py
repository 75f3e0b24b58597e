"""The read APIs' requests and parsers (bulkstop.reads), on literal bodies: pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

from bulkstop.reads import (
    BUILD_APIS,
    JOB_LIST_APIS,
    RECORD_LIST_APIS,
    BuildRecord,
    BuildState,
    JobInfo,
    JobsPage,
    ReadApi,
    ReadProblem,
    RecordsPage,
    answer_error,
    build_parser,
    build_request,
    history_interval,
    jobs_request,
    parse_build_details,
    parse_history_page,
    parse_jobs_page,
    parse_record_info,
    parse_records_page,
    record_window,
    records_parser,
    records_request,
)
from bulkstop.transport import server_text

JOB = "f9d6c8466d614a9788e9a0acf6c15f46"
JOB2 = "0123456789abcdef0123456789abcdef"
PROJECT = "aaaabbbbccccddddeeeeffff00001111"
ENDPOINT = URL("https://cloudbuild-ext.cn-north-4.myhuaweicloud.com")
NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
#: 2026-11-28T11:00:00Z in epoch milliseconds
MS = 1_795_863_600_000
AT = datetime(2026, 11, 28, 11, 0, 0, tzinfo=UTC)


def clean(value: str, limit: int) -> str:
    return server_text(value, limit)


def jobs(payload: Any) -> JobsPage:
    page = parse_jobs_page(payload, clean)
    assert isinstance(page, JobsPage), page
    return page


def records(payload: Any) -> RecordsPage:
    page = parse_records_page(payload, clean)
    assert isinstance(page, RecordsPage), page
    return page


def problem(value: object) -> str:
    assert isinstance(value, ReadProblem), value
    return value.message


def v1_records(entries: list[Any], **counts: Any) -> dict[str, Any]:
    return {"result": {"job_build_states": entries, **counts}, "error": None, "status": "success"}


# --- requests ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("api", "project", "url"),
    [
        (ReadApi.LIST_PROJECT_JOBS, PROJECT, f"/v1/job/{PROJECT}/list?page_index=2&page_size=100"),
        (
            ReadApi.SHOW_JOB_LIST_BY_PROJECT_ID,
            PROJECT,
            f"/v3/{PROJECT}/jobs?page_index=2&page_size=100",
        ),
        (ReadApi.LIST_JOB, None, "/v1/job/list?page_index=2&page_size=100"),
    ],
)
def test_job_list_requests_page_from_index_0_with_page_size_100(
    api: ReadApi, project: str | None, url: str
) -> None:
    request = jobs_request(api, project, 2)

    assert str(request.url(ENDPOINT)) == str(ENDPOINT) + url


def test_a_project_job_list_without_a_project_is_refused() -> None:
    with pytest.raises(ValueError, match="project"):
        jobs_request(ReadApi.LIST_PROJECT_JOBS, None, 0)


@pytest.mark.parametrize(("page_index", "page_size"), [(-1, 10), (0, 0), (0, 101)])
def test_paging_outside_what_the_api_accepts_is_refused(page_index: int, page_size: int) -> None:
    with pytest.raises(ValueError, match="page_size"):
        jobs_request(ReadApi.LIST_JOB, None, page_index, page_size)


def test_record_list_request_carries_the_window_in_utc_and_the_page() -> None:
    window = record_window(datetime(2026, 11, 28, 8, 0, tzinfo=timezone(timedelta(hours=8))), NOW)

    request = records_request(ReadApi.LIST_BUILD_INFO_RECORD_BY_JOB_ID, JOB, window, 3, 50, now=NOW)

    assert request.path == ("v1", "record", JOB, "list")
    assert dict(request.query) == {
        "start_time": "2026-11-27 00:00:00",
        "end_time": "2026-11-29 12:00:00",
        "page_index": "3",
        "page_size": "50",
    }


def test_outdated_record_list_request_has_the_same_query_on_its_own_path() -> None:
    window = record_window(NOW - timedelta(hours=1), NOW)
    current = records_request(ReadApi.LIST_BUILD_INFO_RECORD_BY_JOB_ID, JOB, window, 0, now=NOW)

    outdated = records_request(ReadApi.LIST_BUILD_INFO_RECORD, JOB, window, 0, now=NOW)

    assert outdated.path == ("v3", "jobs", JOB, "build-info-records")
    assert outdated.query == current.query


def test_history_request_pages_by_offset_and_limit_and_asks_days_back() -> None:
    window = record_window(NOW - timedelta(hours=30), NOW)  # starts 54 h before NOW

    request = records_request(ReadApi.SHOW_LIST_HISTORY, JOB, window, 1, 100, now=NOW)

    assert request.path == ("v3", "jobs", JOB, "history")
    assert dict(request.query) == {"offset": "1", "limit": "100", "interval": "3"}


@pytest.mark.parametrize(
    ("api", "path"),
    [
        (ReadApi.SHOW_BUILD_DETAILS, f"/v1/job/{JOB}/20/build-info"),
        (ReadApi.SHOW_JOB_BUILD_RECORD_DETAIL, f"/v1/record/{JOB}/20/record-info"),
        (ReadApi.SHOW_RECORD_DETAIL, f"/v4/jobs/{JOB}/20/record-info"),
        (ReadApi.SHOW_RECORD_INFO, f"/v3/jobs/{JOB}/20/record-info"),
    ],
)
def test_one_build_requests(api: ReadApi, path: str) -> None:
    assert build_request(api, JOB, 20).url(ENDPOINT).path == path


def test_a_base_path_of_the_endpoint_is_kept() -> None:
    request = build_request(ReadApi.SHOW_BUILD_DETAILS, JOB, 20)

    assert request.url(URL("https://proxy.example/codearts")).path == (
        f"/codearts/v1/job/{JOB}/20/build-info"
    )


def test_the_fallback_orders_put_the_current_api_first() -> None:
    assert JOB_LIST_APIS[0] is ReadApi.LIST_PROJECT_JOBS
    assert RECORD_LIST_APIS == (
        ReadApi.LIST_BUILD_INFO_RECORD_BY_JOB_ID,
        ReadApi.LIST_BUILD_INFO_RECORD,
        ReadApi.SHOW_LIST_HISTORY,
    )
    assert BUILD_APIS[0] is ReadApi.SHOW_BUILD_DETAILS


# --- the window ----------------------------------------------------------------------------


def test_window_is_a_day_wider_on_both_sides_in_utc() -> None:
    low = datetime(2026, 11, 28, 2, 30, tzinfo=timezone(timedelta(hours=-5)))  # 07:30 UTC

    window = record_window(low, NOW)

    assert window.start == datetime(2026, 11, 27, 7, 30, tzinfo=UTC)
    assert window.end == datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def test_window_rounds_outwards_to_whole_seconds() -> None:
    window = record_window(NOW + timedelta(microseconds=300), NOW + timedelta(microseconds=700))

    assert window.params() == (
        ("start_time", "2026-11-27 12:00:00"),
        ("end_time", "2026-11-29 12:00:01"),
    )


def test_window_covers_every_utc_offset_of_the_query_zone() -> None:
    """Whatever zone the service reads the window in (−12 h … +14 h), the asked range holds."""
    low, high = NOW - timedelta(hours=3), NOW
    window = record_window(low, high)

    for hours in range(-12, 15):
        shift = timedelta(hours=hours)
        assert window.start - shift <= low
        assert window.end - shift >= high


def test_window_refuses_naive_times() -> None:
    with pytest.raises(ValueError, match="aware"):
        record_window(datetime(2026, 11, 28), NOW)


def test_window_refuses_low_after_high() -> None:
    with pytest.raises(ValueError, match="after"):
        record_window(NOW, NOW - timedelta(seconds=1))


@pytest.mark.parametrize(
    ("back", "days"),
    [(timedelta(minutes=5), 1), (timedelta(hours=24), 1), (timedelta(hours=25), 2),
     (timedelta(days=29, hours=1), 30), (timedelta(days=90), 30), (timedelta(0), 1)],
)  # fmt: skip
def test_history_interval_counts_whole_days_back_within_its_bounds(
    back: timedelta, days: int
) -> None:
    assert history_interval(NOW - back, NOW) == days


# --- 2xx bodies that are errors ------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ({"error_code": "CB.00060211", "error_msg": "too many"}, ("CB.00060211", "too many")),
        ({"status": "fail", "error": {"code": "X.1", "message": "m"}}, ("X.1", "m")),
        ({"errorCode": "DEVCB.00031006", "errorMsg": "gone"}, ("DEVCB.00031006", "gone")),
        ({"success": False, "err_code": "CB.1", "message": "no"}, ("CB.1", "no")),
    ],
)
def test_a_2xx_body_with_an_error_code_is_that_error(
    payload: dict[str, Any], error: tuple[str, str]
) -> None:
    assert answer_error(payload) == error


@pytest.mark.parametrize(
    "payload",
    [
        v1_records([]),
        {"success": True, "message": "", "err_code": "", "result": {}},
        {"success": True, "err_code": 0, "result": {}},
        {"jobs": [], "total": 0},
        {"error_code": None, "error_msg": None, "result": {}},
        [],
        None,
    ],
)
def test_ordinary_answers_carry_no_error(payload: Any) -> None:
    assert answer_error(payload) is None


# --- job lists -----------------------------------------------------------------------------


def test_live_shape_job_list_is_read() -> None:
    payload = {
        "result": {
            "job_list": [
                {"id": JOB, "job_name": "payments-api-ci", "last_build_time": MS},
                {"id": JOB2, "job_name": "web"},
            ],
            "total": 2,
        },
        "status": "success",
    }

    page = jobs(payload)

    assert page == JobsPage(
        (JobInfo(JOB, "payments-api-ci", AT), JobInfo(JOB2, "web", None)), 2, 2, ()
    )


def test_sdk_shape_job_list_is_read_like_the_live_one() -> None:
    live = {"result": {"job_list": [{"id": JOB, "job_name": "a"}], "total": 7}, "status": "ok"}
    sdk = {"jobs": [{"id": JOB, "job_name": "a"}], "total": 7}

    assert jobs(sdk) == jobs(live)


@pytest.mark.parametrize(("total", "read"), [("50", 50), (" 50 ", 50), (50, 50)])
def test_total_may_be_a_string_or_a_number(total: Any, read: int) -> None:
    assert jobs({"jobs": [], "total": total}).total == read


@pytest.mark.parametrize(
    "total", [None, "abc", -1, True, 1.5, 10**30, "99999999999", "1e3", "٣"]
)  # fmt: skip
def test_a_total_that_cannot_be_believed_is_unknown(total: Any) -> None:
    assert jobs({"jobs": [], "total": total}).total is None


def test_unreadable_job_entries_are_left_out_and_named_and_still_counted() -> None:
    payload = {
        "jobs": [
            {"id": JOB},
            {"id": "NOT-A-JOB"},
            "a string",
            {"job_name": "no id"},
            {"id": JOB2},
        ],
        "total": 5,
    }

    page = jobs(payload)

    assert [job.job_id for job in page.jobs] == [JOB, JOB2]
    assert page.entries == 5
    assert page.unreadable == (
        "jobs[1]: id: not a job id (NOT-A-JOB)",
        "jobs[2]: is a string, not an object",
        "jobs[3]: id: not a job id (null)",
    )


def test_many_unreadable_entries_are_named_a_few_and_counted() -> None:
    page = jobs({"jobs": [7] * 10, "total": 10})

    assert len(page.unreadable) == 4
    assert page.unreadable[-1] == "and 7 more"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([], "the answer is an array, not an object"),
        ({"total": 3}, "the answer has neither result.job_list nor jobs"),
        ({"result": {"job_list": {"id": JOB}}}, "result.job_list is an object, not an array"),
        ({"jobs": None, "total": 0}, "jobs is null, not an array"),
    ],
)
def test_a_job_list_of_the_wrong_shape_is_a_problem(payload: Any, message: str) -> None:
    assert problem(parse_jobs_page(payload, clean)) == message


def test_server_text_in_a_job_list_is_cleaned_by_the_given_cleaner() -> None:
    def scrub(value: str, limit: int) -> str:
        return server_text(value, limit, ["tok-SECRET-123"])

    payload = {"jobs": [{"id": JOB, "job_name": "x\ntok-SECRET-123\x1b[31m" + "y" * 500}]}

    page = parse_jobs_page(payload, scrub)

    assert isinstance(page, JobsPage)
    name = page.jobs[0].job_name
    assert "tok-SECRET-123" not in name
    assert name.isprintable()
    assert name.startswith("x *** [31my")
    assert len(name) == 200


# --- record lists --------------------------------------------------------------------------


RECORD = {
    "number": 20,
    "job_running_status": "Running",
    "state": "RUNNING",
    "start_time": MS,
    "code_branch": "release/2.3",
    "commit_id": "3f2a" + "0" * 36,
    "trigger_type": "Manual",
    "executor": "Zhang Wei",
    "nickname": "zhangwei",
}


def test_a_record_list_page_is_read_with_its_string_counts() -> None:
    page = records(v1_records([RECORD], page_index="0", total_page="3", total_record="250"))

    assert page == RecordsPage(
        (
            BuildRecord(
                build_no=20,
                state="RUNNING",
                running_status="Running",
                start_time=AT,
                branch="release/2.3",
                commit_id="3f2a" + "0" * 36,
                trigger_type="Manual",
                executor="Zhang Wei",
            ),
        ),
        entries=1,
        total_records=250,
        total_pages=3,
    )


def test_a_short_last_page_says_how_many_entries_it_had() -> None:
    page = records(v1_records([RECORD, {**RECORD, "number": 19}], total_record="102"))

    assert page.entries == 2
    assert [r.build_no for r in page.records] == [20, 19]


@pytest.mark.parametrize(
    ("start_time", "read"),
    [
        (MS, AT),
        (str(MS), AT),
        (MS + 0.5, AT + timedelta(microseconds=500)),
        ("2026-11-28T11:00:00.000+00:00", AT),
        ("2026-11-28T19:00:00+08:00", AT),
        ("2026-11-28T11:00:00Z", AT),
    ],
)
def test_record_times_are_epoch_ms_or_iso_with_an_offset(start_time: Any, read: datetime) -> None:
    assert records(v1_records([{**RECORD, "start_time": start_time}])).records[0].start_time == read


@pytest.mark.parametrize(
    "start_time",
    [
        "2026-11-28 11:00:00",  # no zone: not guessed
        "2026-11-28T11:00:00",
        None,
        True,
        float("nan"),
        float("inf"),
        -5,
        0,
        10**400,
        "9" * 5000,
        "yesterday",
        "9999-12-31T23:59:59-14:00",  # past year 9999 in UTC
        ["2026"],
    ],
)
def test_a_time_that_cannot_be_placed_is_unknown(start_time: Any) -> None:
    page = records(v1_records([{**RECORD, "start_time": start_time}]))

    assert page.records[0].start_time is None


def test_the_commit_may_come_from_commit_info() -> None:
    entry = {**RECORD, "commit_id": None, "commit_info": {"commit_id": "abc123", "created_at": 1}}

    assert records(v1_records([entry])).records[0].commit_id == "abc123"


@pytest.mark.parametrize("value", [None, 42, True, ["main"], {"name": "main"}])
def test_text_fields_of_the_wrong_type_read_as_empty_or_as_digits(value: Any) -> None:
    record = records(v1_records([{**RECORD, "code_branch": value}])).records[0]

    assert record.branch == ("42" if value == 42 else "")


@pytest.mark.parametrize(
    ("number", "why"),
    [
        (None, "number: not a build number (null)"),
        (0, "number: not a build number (a number)"),
        (-3, "number: not a build number (a number)"),
        (2**31, "number: not a build number (a number)"),
        (10**3000, "number: not a build number (a number)"),
        (20.0, "number: not a build number (a number)"),
        (True, "number: not a build number (a boolean)"),
        ("x20", "number: not a build number ('x20')"),
    ],
)
def test_a_record_without_a_build_number_is_unreadable_and_named(number: Any, why: str) -> None:
    page = records(v1_records([{**RECORD, "number": number}, RECORD]))

    assert [r.build_no for r in page.records] == [20]
    assert page.unreadable == (f"result.job_build_states[0]: {why}",)


def test_a_build_number_may_be_a_string_of_digits() -> None:
    assert records(v1_records([{**RECORD, "number": "2147483647"}])).records[0].build_no == (
        2**31 - 1
    )


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"status": "success"}, "result is null, not an object"),
        ({"result": []}, "result is an array, not an object"),
        ({"result": {"total_record": "3"}}, "result.job_build_states is null, not an array"),
        ("ok", "the answer is a string, not an object"),
        ({"status": "fail", "error": "job gone"}, "the call answered status 'fail': job gone"),
    ],
)
def test_a_record_list_of_the_wrong_shape_is_a_problem(payload: Any, message: str) -> None:
    assert problem(parse_records_page(payload, clean)) == message


@pytest.mark.parametrize(
    ("fields", "ended"),
    [
        ({"state": "RUNNING", "job_running_status": "Running"}, False),
        ({"state": "ABORTING", "job_running_status": "Running"}, False),
        ({"state": "ABORTED", "job_running_status": "Finished"}, True),
        ({"state": "", "job_running_status": "Finished"}, True),
        ({"state": "SUCCESS", "job_running_status": None}, True),
        ({"state": None, "job_running_status": None}, False),
    ],
)
def test_a_record_has_ended_only_when_it_says_so(fields: dict[str, Any], ended: bool) -> None:
    assert records(v1_records([{**RECORD, **fields}])).records[0].ended is ended


def test_history_page_is_read_with_its_total_as_a_string() -> None:
    payload = {
        "history_records": [
            {"record_id": "r", "job_id": JOB, "build_number": 7, "start_time": MS,
             "end_time": None, "result": "RUNNING"},
            {"build_number": 6, "start_time": "2026-11-28 10:00:00", "result": "SUCCESS"},
            {"build_number": "x"},
        ],
        "total": "3",
    }  # fmt: skip

    page = parse_history_page(payload, clean)

    assert page == RecordsPage(
        (
            BuildRecord(build_no=7, state="RUNNING", start_time=AT),
            BuildRecord(build_no=6, state="SUCCESS", start_time=None),
        ),
        entries=3,
        total_records=3,
        unreadable=("history_records[2]: build_number: not a build number ('x')",),
    )


def test_history_of_the_wrong_shape_is_a_problem() -> None:
    assert problem(parse_history_page({"records": []}, clean)) == (
        "history_records is null, not an array"
    )


@pytest.mark.parametrize(
    ("api", "parser"),
    [
        (ReadApi.LIST_BUILD_INFO_RECORD_BY_JOB_ID, parse_records_page),
        (ReadApi.LIST_BUILD_INFO_RECORD, parse_records_page),
        (ReadApi.SHOW_LIST_HISTORY, parse_history_page),
    ],
)
def test_each_record_list_api_has_its_parser(api: ReadApi, parser: Any) -> None:
    assert records_parser(api) is parser


# --- one build -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("result", "state"),
    [
        ({"building": True, "build_result": None}, BuildState(False, "building")),
        ({"building": False, "build_result": "ABORTED"}, BuildState(True, "ABORTED")),
        ({"building": False}, BuildState(True, "")),
        ({"build_result": "FAILURE"}, BuildState(True, "FAILURE")),
        ({"building": "no", "build_result": "RUNNING"}, BuildState(False, "RUNNING")),
    ],
)
def test_build_details_say_ended_by_building_false(
    result: dict[str, Any], state: BuildState
) -> None:
    payload = {"result": {**result, "region": "cn-north-4"}, "status": "success"}

    assert parse_build_details(payload, clean) == state


def test_build_details_without_building_or_a_result_word_are_a_problem() -> None:
    payload = {"result": {"building": "yes"}, "status": "success"}

    assert problem(parse_build_details(payload, clean)) == (
        "result has neither building (a boolean) nor build_result"
    )


@pytest.mark.parametrize(
    ("payload", "state"),
    [
        ({"status": "success", "result": {"build_no": 20, "status": "SUCCESS"}},
         BuildState(True, "SUCCESS", 20)),
        ({"status": "success", "result": {"build_no": "-3", "status": "FAILED"}},
         BuildState(True, "FAILED")),
        ({"status": "success", "result": {"status": "ABORTING"}}, BuildState(False, "ABORTING")),
        ({"success": True, "message": "", "err_code": "", "result": {"status": "aborted"}},
         BuildState(True, "aborted")),
    ],
)  # fmt: skip
def test_record_info_reads_its_result_status(payload: dict[str, Any], state: BuildState) -> None:
    assert parse_record_info(payload, clean) == state


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"success": False, "message": "no such record"}, "success is false: no such record"),
        ({"result": {"status": None}}, "result.status is null, not a status word"),
        ({"status": "success", "result": None}, "result is null, not an object"),
    ],
)  # fmt: skip
def test_record_info_of_the_wrong_shape_is_a_problem(payload: Any, message: str) -> None:
    assert problem(parse_record_info(payload, clean)) == message


@pytest.mark.parametrize(
    ("api", "parser"),
    [
        (ReadApi.SHOW_BUILD_DETAILS, parse_build_details),
        (ReadApi.SHOW_JOB_BUILD_RECORD_DETAIL, parse_record_info),
        (ReadApi.SHOW_RECORD_DETAIL, parse_record_info),
        (ReadApi.SHOW_RECORD_INFO, parse_record_info),
    ],
)
def test_each_one_build_api_has_its_parser(api: ReadApi, parser: Any) -> None:
    assert build_parser(api) is parser


# --- hostile bodies ------------------------------------------------------------------------

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats()
    | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(
        st.sampled_from(
            ["result", "job_list", "jobs", "total", "id", "job_build_states", "number",
             "start_time", "state", "history_records", "build_number", "building", "status",
             "success", "build_result", "code_branch", "commit_info", "commit_id", "error"]
        ),
        children,
        max_size=6,
    ),
    max_leaves=30,
)  # fmt: skip

PARSERS = [
    parse_jobs_page,
    parse_records_page,
    parse_history_page,
    parse_build_details,
    parse_record_info,
]


@pytest.mark.parametrize("parser", PARSERS)
@given(payload=JSON)
def test_no_body_makes_a_parser_raise(parser: Any, payload: Any) -> None:
    value = parser(payload, clean)

    assert isinstance(value, JobsPage | RecordsPage | BuildState | ReadProblem)
