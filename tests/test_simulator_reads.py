"""The simulator's read APIs, read throttling and world-consistent stops, over 127.0.0.1.

The wall clock (the world's time) and the monotonic clock (throttle windows) are hand-moved
clocks injected into :class:`Simulator`; no test sleeps. Expected values come from the world
object itself (``sim.world``), which ``test_simulator_world.py`` checks on its own.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDictProxy
from yarl import URL

from bulkstop.simulator import (
    ReadConfig,
    Simulator,
    SimulatorConfig,
    ThrottleConfig,
    World,
    WorldConfig,
)
from bulkstop.simulator.stats import READ_API_NAMES
from bulkstop.simulator.world import WorldBuild, WorldJob

pytestmark = pytest.mark.anyio

TOKEN = "sim-token"
AUTH = {"X-Auth-Token": TOKEN}
T0 = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC).timestamp()
OUTSIDE = "f9d6c8466d614a9788e9a0acf6c15f46"  # a job id that is not the world's
ISO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+00:00")
DAY = 86400.0

#: 12 jobs of 25 builds an hour apart on average; 6 run at the start (2 of them an older build);
#: every build runs exactly 600 s; stops take 2 s and are never ignored unless a test says so.
WORLD = WorldConfig(
    jobs=12,
    builds_per_job=25,
    running_ratio=0.5,
    older_running_ratio=0.34,
    build_interval=3600.0,
    min_build_time=600.0,
    max_build_time=600.0,
    stop_delay=2.0,
    ignore_stop_ratio=0.0,
)


class HandClock:
    """A clock that only moves when told to: ``clock()`` reads it, ``clock.now = t`` sets it."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Sim:
    """A started simulator with its two hand clocks."""

    def __init__(self, simulator: Simulator, wall: HandClock, monotonic: HandClock) -> None:
        self.simulator = simulator
        self.wall = wall
        self.monotonic = monotonic

    @property
    def world(self) -> World:
        world = self.simulator.world
        assert world is not None
        return world

    @property
    def url(self) -> str:
        return self.simulator.url


Start = Callable[..., Awaitable[Sim]]


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    """Start simulators with a world (default :data:`WORLD`) at T0; all closed afterwards."""
    started: list[Simulator] = []

    async def _start(**config: Any) -> Sim:
        config.setdefault("token", TOKEN)
        config.setdefault("finished_ratio", 0.0)
        config.setdefault("world", WORLD)
        wall, monotonic = HandClock(T0), HandClock(100.0)
        simulator = Simulator(SimulatorConfig(**config), wall=wall, monotonic=monotonic)
        await simulator.start()
        started.append(simulator)
        return Sim(simulator, wall, monotonic)

    yield _start
    for simulator in started:
        await simulator.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        yield session


async def call(
    http: aiohttp.ClientSession,
    method: str,
    url: str | URL,
    *,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> tuple[int, Any, CIMultiDictProxy[str]]:
    """``(status, parsed JSON, headers)``; the token is sent unless ``headers`` says otherwise."""
    sent = dict(AUTH) if headers is None else headers
    async with http.request(method, url, headers=sent, **kwargs) as response:
        return response.status, json.loads(await response.text()), response.headers


async def get(http: aiohttp.ClientSession, sim: Sim, path: str, **params: Any) -> tuple[int, Any]:
    status, body, _ = await call(http, "GET", sim.url + path, params=params)
    return status, body


def moment(epoch: float) -> str:
    """The record lists' window format, in UTC."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


WIDE = {"start_time": moment(T0 - 20 * DAY), "end_time": moment(T0 + DAY)}


def iso(epoch: float) -> str:
    """RecordInfo's time format, written out independently of the simulator's code."""
    whole = math.floor(epoch)
    millis = round((epoch - whole) * 1000)
    return datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{millis:03d}+00:00"


def ms(epoch: float) -> int:
    return round(epoch * 1000)


def running_job(sim: Sim, *, last: bool = True) -> WorldJob:
    """A job whose running build is (``last``) or is not its last build."""
    for build in sim.world.running_builds(sim.wall.now):
        if (build is build.job.last) is last:
            return build.job
    raise AssertionError("no such job in the world")


def running_build(sim: Sim) -> WorldBuild:
    return running_job(sim).last


def ended_build(sim: Sim) -> WorldBuild:
    return sim.world.jobs[0].builds[0]


def stop_request(api: str, base: str, job_id: str, build_no: int) -> tuple[str, dict[str, Any]]:
    if api == "legacy":
        return f"{base}/v3/jobs/stop", {"json": {"job_id": job_id, "build_no": str(build_no)}}
    if api == "v3":
        return f"{base}/v3/jobs/{job_id}/{build_no}/stop", {}
    return f"{base}/v1/job/{job_id}/stop?build_no={build_no}", {"json": {"build_no": build_no}}


async def stop(
    http: aiohttp.ClientSession, sim: Sim, job_id: str, build_no: int, api: str = "legacy"
) -> tuple[int, Any]:
    url, options = stop_request(api, sim.url, job_id, build_no)
    status, body, _ = await call(http, "POST", url, **options)
    return status, body


STOPPED = {
    "legacy": {"result": True},
    "v3": {"success": True, "result": ""},
    "v1": {"status": "success"},
}
NOT_STOPPED = {
    "legacy": {"result": False},
    "v3": {"success": False, "result": ""},
    "v1": {"status": "fail"},
}


def project_paths(sim: Sim) -> dict[str, str]:
    """The job-list APIs and their paths."""
    project = sim.world.project_id
    return {
        "list_project_jobs": f"/v1/job/{project}/list",
        "show_job_list_by_project_id": f"/v3/{project}/jobs",
        "list_job": "/v1/job/list",
    }


def job_list(api: str, body: Any) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = (
        body["jobs"] if api == "show_job_list_by_project_id" else body["result"]["job_list"]
    )
    return jobs


# --- job lists -----------------------------------------------------------------------------------


async def test_project_jobs_answer_in_the_live_shape(
    start: Start, http: aiohttp.ClientSession
) -> None:
    sim = await start()
    status, body = await get(http, sim, f"/v1/job/{sim.world.project_id}/list")
    assert status == 200
    assert set(body) == {"result", "error", "status"}
    assert body["status"] == "success"
    assert set(body["result"]) == {"job_list", "total"}
    assert body["result"]["total"] == 12
    assert len(body["result"]["job_list"]) == 10  # the default page size


async def test_project_jobs_answer_in_the_sdk_shape_when_asked(
    start: Start, http: aiohttp.ClientSession
) -> None:
    sim = await start(reads=ReadConfig(jobs_shape="sdk"))
    status, body = await get(http, sim, f"/v1/job/{sim.world.project_id}/list", page_size=100)
    assert status == 200
    assert set(body) == {"jobs", "total"}
    assert (len(body["jobs"]), body["total"]) == (12, 12)


@pytest.mark.parametrize("missing", ["page_index", "page_size"])
async def test_v3_project_jobs_need_both_page_parameters(
    start: Start, http: aiohttp.ClientSession, missing: str
) -> None:
    sim = await start()
    params = {"page_index": 0, "page_size": 10}
    del params[missing]
    status, body = await get(http, sim, f"/v3/{sim.world.project_id}/jobs", **params)
    assert (status, body["error_code"]) == (400, "CB.00060200")


@pytest.mark.parametrize("api", ["list_project_jobs", "show_job_list_by_project_id", "list_job"])
async def test_a_job_summary_describes_its_last_build(
    start: Start, http: aiohttp.ClientSession, api: str
) -> None:
    sim = await start()
    status, body = await get(http, sim, project_paths(sim)[api], page_index=0, page_size=100)
    assert status == 200
    listed = {job["id"]: job for job in job_list(api, body)}
    assert list(listed) == [job.job_id for job in sim.world.jobs]
    for job in sim.world.jobs:
        summary, last = listed[job.job_id], job.last
        running = last.is_running(T0)
        expected_status = "building" if running else {"SUCCESS": "blue", "FAILURE": "red"}
        assert summary["job_name"] == job.name
        assert summary["project_id"] == sim.world.project_id
        assert summary["last_build_time"] == ms(last.start)
        assert summary["build_number"] == str(last.number)
        assert summary["is_finished"] is not running
        assert summary["last_job_running_status"] == ("Running" if running else "Finished")
        if running:
            assert summary["last_build_status"] == expected_status
        else:
            assert isinstance(expected_status, dict)
            assert summary["last_build_status"] == expected_status[last.state(T0)]
        assert summary["trigger_type"] == last.trigger_type
        assert summary["disabled"] is False


async def test_build_status_building_sees_only_the_last_builds(
    start: Start, http: aiohttp.ClientSession
) -> None:
    sim = await start()
    status, body = await get(http, sim, "/v1/job/list", page_size=100, build_status="building")
    listed = {job["id"] for job in body["result"]["job_list"]}
    last_running = {job.job_id for job in sim.world.jobs if job.last.is_running(T0)}
    older_running = {
        build.job.job_id for build in sim.world.running_builds(T0) if build is not build.job.last
    }
    assert status == 200
    assert listed == last_running
    # The jobs whose older build runs are missed, as the CodeArts notes warn.
    assert len(older_running) == 2
    assert older_running.isdisjoint(listed)


async def test_search_filters_names_and_sort_orders_them(
    start: Start, http: aiohttp.ClientSession
) -> None:
    sim = await start()
    word = sim.world.jobs[0].name.split("-")[0].upper()
    _, found = await get(http, sim, "/v1/job/list", page_size=100, search=word)
    _, ordered = await get(
        http, sim, "/v1/job/list", page_size=100, sort_field="job_name", sort_order="desc"
    )
    names = [job["job_name"] for job in found["result"]["job_list"]]
    assert names
    assert all(word.lower() in name for name in names)
    assert found["result"]["total"] == len(names)
    every = [job["job_name"] for job in ordered["result"]["job_list"]]
    assert every == sorted((job.name for job in sim.world.jobs), reverse=True)


@pytest.mark.parametrize(
    ("project", "status", "code"),
    [("0" * 32, 404, "CB.00060406"), ("NOT-A-PROJECT", 400, "CB.00060200")],
)
@pytest.mark.parametrize("template", ["/v1/job/{}/list", "/v3/{}/jobs?page_index=0&page_size=5"])
async def test_a_project_other_than_the_worlds_is_refused(
    start: Start, http: aiohttp.ClientSession, project: str, status: int, code: str, template: str
) -> None:
    sim = await start()
    got = await call(http, "GET", sim.url + template.format(project))
    assert (got[0], got[1]["error_code"]) == (status, code)


async def test_without_a_world_no_job_is_listed(start: Start, http: aiohttp.ClientSession) -> None:
    sim = await start(world=None)
    assert await get(http, sim, "/v1/job/list") == (
        200,
        {"result": {"job_list": [], "total": 0}, "error": None, "status": "success"},
    )
    status, body = await get(http, sim, f"/v1/job/{'a' * 32}/list")
    assert (status, body["error_code"]) == (404, "CB.00060406")


# --- paging --------------------------------------------------------------------------------------


@pytest.mark.parametrize("api", ["list_project_jobs", "show_job_list_by_project_id", "list_job"])
async def test_pages_from_zero_cover_every_job_once(
    start: Start, http: aiohttp.ClientSession, api: str
) -> None:
    sim = await start()
    pages = []
    for index in range(4):
        _, body = await get(http, sim, project_paths(sim)[api], page_index=index, page_size=5)
        pages.append([job["id"] for job in job_list(api, body)])
    assert [len(page) for page in pages] == [5, 5, 2, 0]
    assert [job_id for page in pages for job_id in page] == [job.job_id for job in sim.world.jobs]


def paged_requests(sim: Sim, job_id: str) -> dict[str, tuple[str, dict[str, Any], str]]:
    """Every paged read API: its path, its other parameters and the name of its size."""
    project = sim.world.project_id
    return {
        "list_project_jobs": (f"/v1/job/{project}/list", {"page_index": 0}, "page_size"),
        "show_job_list_by_project_id": (f"/v3/{project}/jobs", {"page_index": 0}, "page_size"),
        "list_job": ("/v1/job/list", {}, "page_size"),
        "list_build_info_record_by_job_id": (f"/v1/record/{job_id}/list", WIDE, "page_size"),
        "list_build_info_record": (f"/v3/jobs/{job_id}/build-info-records", WIDE, "page_size"),
        "show_list_history": (f"/v3/jobs/{job_id}/history", {}, "limit"),
    }


PAGED_APIS = [
    "list_project_jobs",
    "show_job_list_by_project_id",
    "list_job",
    "list_build_info_record_by_job_id",
    "list_build_info_record",
    "show_list_history",
]


@pytest.mark.parametrize(("size", "status"), [(100, 200), (101, 400), (0, 400), ("ten", 400)])
@pytest.mark.parametrize("api", PAGED_APIS)
async def test_page_sizes_above_100_are_refused(
    start: Start, http: aiohttp.ClientSession, api: str, size: Any, status: int
) -> None:
    sim = await start()
    path, params, size_name = paged_requests(sim, sim.world.jobs[0].job_id)[api]
    got, body = await get(http, sim, path, **params, **{size_name: size})
    assert got == status
    if status == 400:
        assert body["error_code"] == "CB.00060200"


@pytest.mark.parametrize("index", ["-1", "first", "2147483648"])
async def test_a_bad_page_index_is_refused(
    start: Start, http: aiohttp.ClientSession, index: str
) -> None:
    sim = await start()
    status, body = await get(http, sim, "/v1/job/list", page_index=index)
    assert (status, body["error_code"]) == (400, "CB.00060200")


def page_items(api: str, body: Any) -> list[Any]:
    if api in ("list_build_info_record_by_job_id", "list_build_info_record"):
        return [record["number"] for record in body["result"]["job_build_states"]]
    if api == "show_list_history":
        return [record["build_number"] for record in body["history_records"]]
    return [job["id"] for job in job_list(api, body)]


@pytest.mark.parametrize("repeat", [True, False])
@pytest.mark.parametrize("api", PAGED_APIS)
async def test_a_page_past_the_end_repeats_the_first_only_with_the_knob(
    start: Start, http: aiohttp.ClientSession, api: str, repeat: bool
) -> None:
    sim = await start(reads=ReadConfig(repeat_first_page=repeat))
    path, params, size_name = paged_requests(sim, sim.world.jobs[0].job_id)[api]
    index_name = "offset" if api == "show_list_history" else "page_index"
    pages = []
    for index in (0, 50):
        _, body = await get(http, sim, path, **{**params, index_name: index, size_name: 4})
        pages.append(page_items(api, body))
    assert len(pages[0]) == 4
    assert pages[1] == (pages[0] if repeat else [])


@pytest.mark.parametrize("as_string", [True, False])
async def test_totals_are_strings_only_with_the_knob(
    start: Start, http: aiohttp.ClientSession, as_string: bool
) -> None:
    sim = await start(reads=ReadConfig(total_as_string=as_string))
    job_id = sim.world.jobs[0].job_id
    paths = project_paths(sim)
    _, v1 = await get(http, sim, paths["list_project_jobs"])
    _, v3 = await get(http, sim, paths["show_job_list_by_project_id"], page_index=0, page_size=5)
    _, every = await get(http, sim, paths["list_job"])
    _, history = await get(http, sim, f"/v3/jobs/{job_id}/history")
    totals = [v1["result"]["total"], v3["total"], every["result"]["total"], history["total"]]
    assert totals == (["12", "12", "12", "25"] if as_string else [12, 12, 12, 25])


# --- records of a job ----------------------------------------------------------------------------


@pytest.mark.parametrize("template", ["/v1/record/{}/list", "/v3/jobs/{}/build-info-records"])
async def test_records_come_newest_first_with_string_counts(
    start: Start, http: aiohttp.ClientSession, template: str
) -> None:
    sim = await start()
    job = running_job(sim)
    status, body = await get(http, sim, template.format(job.job_id), **WIDE, page_size=10)
    assert status == 200
    assert set(body) == {"result", "error", "status"}
    result = body["result"]
    assert (result["page_index"], result["total_page"], result["total_record"]) == ("0", "3", "25")
    records = result["job_build_states"]
    assert [record["number"] for record in records] == list(range(25, 15, -1))
    for record in records:
        build = job.builds[record["number"] - 1]
        assert record["start_time"] == ms(build.start)
        assert record["state"] == build.state(T0)
        assert record["job_running_status"] == ("Running" if build.is_running(T0) else "Finished")
    assert records[0]["state"] == "RUNNING"


async def test_a_build_info_record_has_the_documented_fields(
    start: Start, http: aiohttp.ClientSession
) -> None:
    sim = await start()
    job = next(job for job in sim.world.jobs if not job.last.is_running(T0))
    _, body = await get(http, sim, f"/v1/record/{job.job_id}/list", **WIDE, page_size=1)
    [record] = body["result"]["job_build_states"]
    last = job.last
    assert record == {
        "number": 25,
        "build_time": 600_000,
        "cost_time": 600_000,
        "start_time": ms(last.start),
        "job_running_status": "Finished",
        "state": last.state(T0),
        "user_id": last.user.user_id,
        "executor": last.user.nickname,
        "nickname": last.user.user_name,
        "daily_build_number": last.daily_build_number,
        "trigger_type": last.trigger_type,
        "commit_id": last.commit_id,
        "commit_info": {"commit_id": last.commit_id, "created_at": iso(last.commit_time)},
        "build_type": "branch",
        "code_branch": last.branch,
        "scm_type": "codehub",
    }


async def test_the_window_keeps_the_records_that_started_inside_it(
    start: Start, http: aiohttp.ClientSession
) -> None:
    sim = await start()
    job = sim.world.jobs[0]
    first, last = job.builds[9], job.builds[13]  # builds 10 and 14
    path = f"/v1/record/{job.job_id}/list"
    inside = {"start_time": moment(math.floor(first.start)), "end_time": moment(last.start)}
    before_last = {**inside, "end_time": moment(math.floor(last.start) - 1)}
    _, kept = await get(http, sim, path, **inside, page_size=100)
    _, cut = await get(http, sim, path, **before_last, page_size=100)
    assert page_items("list_build_info_record", kept) == [14, 13, 12, 11, 10]
    assert page_items("list_build_info_record", cut) == [13, 12, 11, 10]
    assert kept["result"]["total_record"] == "5"


@pytest.mark.parametrize(
    "window",
    [
        {"end_time": moment(T0)},
        {"start_time": moment(T0)},
        {"start_time": "2026-11-28T00:00:00", "end_time": moment(T0)},
        {"start_time": "2026-11-28", "end_time": moment(T0)},
        {"start_time": "2026-13-40 00:00:00", "end_time": moment(T0)},
    ],
)
async def test_the_window_is_required_in_its_format(
    start: Start, http: aiohttp.ClientSession, window: dict[str, str]
) -> None:
    sim = await start()
    status, body = await get(http, sim, f"/v1/record/{sim.world.jobs[0].job_id}/list", **window)
    assert (status, body["error_code"]) == (400, "CB.00060200")


async def test_a_job_outside_the_world_lists_no_records(
    start: Start, http: aiohttp.ClientSession
) -> None:
    sim = await start()
    status, body = await get(http, sim, f"/v1/record/{OUTSIDE}/list", **WIDE)
    assert status == 200
    assert body["result"]["job_build_states"] == []
    assert body["result"]["total_record"] == "0"


async def test_the_history_lists_recent_builds_in_its_own_shape(
    start: Start, http: aiohttp.ClientSession
) -> None:
    sim = await start()
    job = running_job(sim)
    status, body = await get(http, sim, f"/v3/jobs/{job.job_id}/history", limit=100)
    assert status == 200
    assert body["total"] == 25
    newest = body["history_records"][0]
    assert newest == {
        "record_id": job.last.record_id,
        "job_id": job.job_id,
        "build_number": 25,
        "start_time": moment(job.last.start),
        "end_time": None,
        "result": "RUNNING",
    }
    ended = body["history_records"][1]
    assert ended["end_time"] == moment(job.builds[23].natural_end)


async def test_the_history_interval_counts_days_back(
    start: Start, http: aiohttp.ClientSession
) -> None:
    sim = await start()
    job = sim.world.jobs[0]
    _, body = await get(http, sim, f"/v3/jobs/{job.job_id}/history", limit=100, interval=1)
    expected = [b.number for b in reversed(job.builds) if b.start >= T0 - DAY]
    assert [record["build_number"] for record in body["history_records"]] == expected
    assert 0 < len(expected) < 25


@pytest.mark.parametrize("interval", [0, 31])
async def test_the_history_interval_is_at_most_30_days(
    start: Start, http: aiohttp.ClientSession, interval: int
) -> None:
    sim = await start()
    path = f"/v3/jobs/{sim.world.jobs[0].job_id}/history"
    status, body = await get(http, sim, path, interval=interval)
    assert (status, body["error_code"]) == (400, "CB.00060200")


# --- one build -----------------------------------------------------------------------------------


async def test_build_info_says_whether_the_build_runs(
    start: Start, http: aiohttp.ClientSession
) -> None:
    sim = await start()
    running, ended = running_build(sim), ended_build(sim)
    for build, building in ((running, True), (ended, False)):
        path = f"/v1/job/{build.job.job_id}/{build.number}/build-info"
        result = {"building": building, "build_result": build.state(T0), "region": "cn-north-4"}
        assert await get(http, sim, path) == (
            200,
            {"result": result, "error": None, "status": "success"},
        )


RECORD_INFO = [
    pytest.param("/v1/record/{}/{}/record-info", ("status", "error"), id="v1"),
    pytest.param("/v4/jobs/{}/{}/record-info", ("status", "error"), id="v4"),
    pytest.param("/v3/jobs/{}/{}/record-info", ("success", "message", "err_code"), id="v3"),
]


@pytest.mark.parametrize(("template", "envelope"), RECORD_INFO)
async def test_record_info_has_iso_times_with_offset(
    start: Start, http: aiohttp.ClientSession, template: str, envelope: tuple[str, ...]
) -> None:
    sim = await start()
    build = ended_build(sim)
    status, body = await get(http, sim, template.format(build.job.job_id, build.number))
    assert status == 200
    assert set(body) == {*envelope, "result"}
    info = body["result"]
    assert info["build_no"] == build.number
    assert info["status"] == build.result
    assert info["start_time"] == iso(build.start)
    assert info["finish_time"] == iso(build.natural_end)
    assert ISO.fullmatch(info["create_time"])
    assert ISO.fullmatch(info["queued_time"])
    assert info["duration"] == ms(build.natural_end - build.start)
    assert info["branch"] == build.branch
    assert info["commit"] == build.commit_id
    assert info["build_record_id"] == build.record_id
    assert info["trigger_type"] == build.trigger_type


@pytest.mark.parametrize(("template", "envelope"), RECORD_INFO)
async def test_record_info_of_a_running_build_has_no_end(
    start: Start, http: aiohttp.ClientSession, template: str, envelope: tuple[str, ...]
) -> None:
    sim = await start()
    build = running_build(sim)
    _, body = await get(http, sim, template.format(build.job.job_id, build.number))
    info = body["result"]
    assert (info["status"], info["finish_time"], info["duration"]) == ("RUNNING", None, None)


async def test_running_status_reports_the_last_build_of_a_world_job(
    start: Start, http: aiohttp.ClientSession
) -> None:
    sim = await start()
    older = running_job(sim, last=False)
    _, body = await get(http, sim, f"/v1/job/{older.job_id}/running-status")
    # Only the last build counts: the older one that still runs is not seen here.
    assert body["result"] == {
        "last_job_id": older.job_id,
        "last_build_no": "25",
        "last_build_status": "Finished",
        "is_running": False,
    }
    job = running_job(sim)
    _, body = await get(http, sim, f"/v1/job/{job.job_id}/running-status")
    assert (body["result"]["last_build_status"], body["result"]["is_running"]) == ("Running", True)


JOB_READS = [
    "/v1/record/{}/list",
    "/v3/jobs/{}/build-info-records",
    "/v3/jobs/{}/history",
    "/v1/job/{}/1/build-info",
    "/v1/record/{}/1/record-info",
    "/v4/jobs/{}/1/record-info",
    "/v3/jobs/{}/1/record-info",
    "/v1/job/{}/running-status",
]


@pytest.mark.parametrize("template", JOB_READS)
@pytest.mark.parametrize(
    ("job", "status", "code"),
    [
        ("unknown", 404, "CB.00060404"),
        ("forbidden", 403, "CB.00060403"),
        ("world-forbidden", 403, "CB.00060403"),
        ("malformed", 400, "CB.00060201"),
    ],
)
async def test_reads_of_unknown_or_forbidden_jobs_answer_as_stops_do(
    start: Start, http: aiohttp.ClientSession, template: str, job: str, status: int, code: str
) -> None:
    sim = await start(
        unknown_jobs=frozenset({OUTSIDE}),
        forbidden_jobs=frozenset({OUTSIDE[::-1]}),
        world=WorldConfig(jobs=4, forbidden_ratio=0.25),
    )
    ids = {
        "unknown": OUTSIDE,
        "forbidden": OUTSIDE[::-1],
        "world-forbidden": next(j.job_id for j in sim.world.jobs if j.forbidden),
        "malformed": "X" * 32,
    }
    got = await call(http, "GET", sim.url + template.format(ids[job]), params=WIDE)
    assert (got[0], got[1]["error_code"]) == (status, code)


async def test_a_forbidden_world_job_is_listed_without_permissions(
    start: Start, http: aiohttp.ClientSession
) -> None:
    sim = await start(world=WorldConfig(jobs=4, forbidden_ratio=0.25))
    _, body = await get(http, sim, "/v1/job/list")
    permissions = {job["id"]: job["is_view"] for job in body["result"]["job_list"]}
    assert permissions == {job.job_id: not job.forbidden for job in sim.world.jobs}
    assert list(permissions.values()).count(False) == 1


@pytest.mark.parametrize("template", [t for t in JOB_READS if "/1/" in t])
async def test_a_build_number_a_world_job_has_not_reached_is_404(
    start: Start, http: aiohttp.ClientSession, template: str
) -> None:
    sim = await start()
    path = template.replace("/1/", "/26/").format(sim.world.jobs[0].job_id)
    status, body = await get(http, sim, path)
    assert (status, body["error_code"]) == (404, "CB.00060405")


# --- what the official SDK sends -----------------------------------------------------------------

#: The exact request lines ``huaweicloudsdkcodeartsbuild`` 3.1.219 sends for each read method
#: (seen once by hand against a recording server; the suite does not need the SDK). ``{P}``,
#: ``{J}``: the project and job ids, build 20, the window 2026-11-27 to 2026-11-29.
SDK_REQUESTS = {
    "list_project_jobs": "/v1/job/{P}/list?by_group=false&page_index=0&page_size=100",
    "show_job_list_by_project_id": "/v3/{P}/jobs?page_index=0&page_size=100",
    "list_job": "/v1/job/list?build_status=building&page_index=1&page_size=50",
    "list_build_info_record_by_job_id": "/v1/record/{J}/list?end_time=2026-11-29%2000%3A00%3A00"
    "&page_index=0&page_size=100&start_time=2026-11-27%2000%3A00%3A00",
    "list_build_info_record": "/v3/jobs/{J}/build-info-records?end_time=2026-11-29%2000%3A00%3A00"
    "&page_index=0&page_size=100&start_time=2026-11-27%2000%3A00%3A00",
    "show_list_history": "/v3/jobs/{J}/history?interval=7&limit=100&offset=0",
    "show_build_details": "/v1/job/{J}/20/build-info",
    "show_job_build_record_detail": "/v1/record/{J}/20/record-info",
    "show_record_detail": "/v4/jobs/{J}/20/record-info",
    "show_record_info": "/v3/jobs/{J}/20/record-info",
    "show_running_status": "/v1/job/{J}/running-status",
}
SDK_TOP_KEYS = {
    "show_job_list_by_project_id": {"jobs", "total"},
    "show_list_history": {"history_records", "total"},
    "show_record_info": {"success", "message", "err_code", "result"},
}


@pytest.mark.parametrize("api", list(SDK_REQUESTS))
async def test_the_official_sdks_requests_are_answered(
    start: Start, http: aiohttp.ClientSession, api: str
) -> None:
    sim = await start()
    job = sim.world.jobs[0]
    line = SDK_REQUESTS[api].replace("{P}", sim.world.project_id).replace("{J}", job.job_id)
    status, body, _ = await call(http, "GET", URL(sim.url + line, encoded=True))
    assert status == 200
    assert set(body) == SDK_TOP_KEYS.get(api, {"result", "error", "status"})
    assert sim.simulator.stats.read_requests[api] == 1
    if api.startswith("list_build_info_record"):
        assert body["result"]["total_record"] == "25"


# --- stops, as the reads see them ----------------------------------------------------------------


@pytest.mark.parametrize("api", ["legacy", "v3", "v1"])
async def test_a_stopped_world_build_is_aborting_then_aborted(
    start: Start, http: aiohttp.ClientSession, api: str
) -> None:
    sim = await start()
    build = running_build(sim)
    job_id, number = build.job.job_id, build.number
    sim.wall.now = T0 + 10.0
    assert await stop(http, sim, job_id, number, api) == (200, STOPPED[api])
    states = []
    for at in (T0 + 10.0, T0 + 11.999, T0 + 12.0):
        sim.wall.now = at
        _, details = await get(http, sim, f"/v1/job/{job_id}/{number}/build-info")
        _, record = await get(http, sim, f"/v1/record/{job_id}/{number}/record-info")
        result = details["result"]
        states.append((result["building"], result["build_result"], record["result"]["finish_time"]))
    assert states == [
        (True, "ABORTING", None),
        (True, "ABORTING", None),
        (False, "ABORTED", iso(T0 + 12.0)),
    ]
    assert (job_id, number) not in sim.simulator.running_builds()
    assert sim.simulator.stats.effective_stops == 1


@pytest.mark.parametrize("api", ["legacy", "v3", "v1"])
async def test_stopping_an_ended_world_build_is_not_stopped(
    start: Start, http: aiohttp.ClientSession, api: str
) -> None:
    sim = await start()
    build = ended_build(sim)
    assert await stop(http, sim, build.job.job_id, build.number, api) == (200, NOT_STOPPED[api])
    assert sim.simulator.stats.already_finished == 1


async def test_stopping_a_world_build_twice_says_not_stopped_the_second_time(
    start: Start, http: aiohttp.ClientSession
) -> None:
    sim = await start()
    build = running_build(sim)
    first = await stop(http, sim, build.job.job_id, build.number)
    second = await stop(http, sim, build.job.job_id, build.number)
    assert [first[1], second[1]] == [{"result": True}, {"result": False}]
    assert sim.simulator.stats.repeat_stops == 1


async def test_stopping_a_world_build_not_reached_is_404(
    start: Start, http: aiohttp.ClientSession
) -> None:
    sim = await start()
    status, body = await stop(http, sim, sim.world.jobs[0].job_id, 26)
    assert (status, body["error_code"]) == (404, "CB.00060405")
    assert sim.simulator.stats.unknown_builds == 1


async def test_an_ignored_stop_says_stopped_but_the_build_runs_on(
    start: Start, http: aiohttp.ClientSession
) -> None:
    sim = await start(world=WorldConfig(jobs=4, running_ratio=0.5, ignore_stop_ratio=1.0))
    build = running_build(sim)
    key = (build.job.job_id, build.number)
    assert await stop(http, sim, *key) == (200, {"result": True})
    sim.wall.now = T0 + 10.0
    _, details = await get(http, sim, f"/v1/job/{key[0]}/{key[1]}/build-info")
    assert details["result"]["building"] is True
    assert details["result"]["build_result"] == "RUNNING"
    assert sim.simulator.ignored_stops() == [key]
    assert key in sim.simulator.running_builds()
    stats = sim.simulator.stats
    assert (stats.ignored_stops, stats.effective_stops) == (1, 0)


async def test_sim_world_lists_running_builds_and_ignored_stops(
    start: Start, http: aiohttp.ClientSession
) -> None:
    sim = await start(world=WorldConfig(jobs=4, running_ratio=0.5, ignore_stop_ratio=1.0))
    build = running_build(sim)
    await stop(http, sim, build.job.job_id, build.number)
    before = sim.simulator.stats.requests_total
    status, body, _ = await call(http, "GET", f"{sim.url}/_sim/world", headers={})
    assert status == 200
    assert body["project_id"] == sim.world.project_id
    assert [(r["job_id"], r["build_no"]) for r in body["running"]] == (
        sim.simulator.running_builds()
    )
    assert body["ignored_stops"] == [
        {"job_id": build.job.job_id, "build_no": build.number, "stops_ignored": 1, "running": True}
    ]
    assert sim.simulator.stats.requests_total == before  # the simulator's own endpoint


async def test_sim_world_without_a_world_is_empty(
    start: Start, http: aiohttp.ClientSession
) -> None:
    sim = await start(world=None)
    _, body, _ = await call(http, "GET", f"{sim.url}/_sim/world", headers={})
    assert body == {"project_id": None, "jobs": [], "running": [], "ignored_stops": []}
    assert sim.simulator.running_builds() == []


async def discover(http: aiohttp.ClientSession, sim: Sim) -> list[tuple[str, int]]:
    """Running builds as a reader finds them: every job, then each job's records."""
    found = []
    _, jobs = await get(http, sim, "/v1/job/list", page_size=100)
    for job in jobs["result"]["job_list"]:  # in project order
        _, records = await get(http, sim, f"/v1/record/{job['id']}/list", **WIDE, page_size=100)
        for record in reversed(records["result"]["job_build_states"]):  # oldest first
            if record["job_running_status"] != "Finished":
                found.append((job["id"], record["number"]))
    return found


@pytest.mark.parametrize("later", [0.0, 300.0, 7200.0])
async def test_running_builds_are_what_the_read_apis_show(
    start: Start, http: aiohttp.ClientSession, later: float
) -> None:
    sim = await start(world=WorldConfig(jobs=12, builds_per_job=25, build_interval=600.0))
    sim.wall.now = T0 + later
    expected = sim.simulator.running_builds()
    assert expected
    assert await discover(http, sim) == expected


async def test_jobs_outside_the_world_keep_the_old_rules(
    start: Start, http: aiohttp.ClientSession
) -> None:
    sim = await start()
    assert await stop(http, sim, OUTSIDE, 7) == (200, {"result": True})
    _, record = await get(http, sim, f"/v3/jobs/{OUTSIDE}/7/record-info")
    assert record["result"]["status"] == "ABORTED"  # at once: no stop delay outside the world
    assert record["result"]["finish_time"] == iso(T0)


# --- read throttling -----------------------------------------------------------------------------

READ_LIMIT_MESSAGE = (
    "The throttling threshold has been reached: policy user over ratelimit,limit:3,time:1 minute"
)


async def test_reads_have_a_per_minute_limit_of_their_own(
    start: Start, http: aiohttp.ClientSession
) -> None:
    sim = await start(
        throttle=ThrottleConfig(limit=2, window=1.0),
        reads=ReadConfig(throttle=ThrottleConfig(limit=3, window=60.0)),
    )
    job = running_job(sim)
    path = sim.url + f"/v1/job/{job.job_id}/running-status"
    reads = [await call(http, "GET", path) for _ in range(4)]
    assert [status for status, _, _ in reads] == [200, 200, 200, 429]
    assert reads[3][1] == {"error_code": "APIG.0308", "error_msg": READ_LIMIT_MESSAGE}
    assert "Retry-After" not in reads[3][2]
    # The reads used none of the stop calls' window, and the stops none of the reads'.
    stops = [(await stop(http, sim, OUTSIDE, n))[0] for n in (1, 2, 3)]
    assert stops == [200, 200, 429]
    sim.monotonic.now = 159.999
    assert (await call(http, "GET", path))[0] == 429
    sim.monotonic.now = 160.0
    assert (await call(http, "GET", path))[0] == 200
    stats = sim.simulator.stats
    assert (stats.read_throttled, stats.throttled) == (2, 1)


async def test_read_windows_can_be_per_api(start: Start, http: aiohttp.ClientSession) -> None:
    per_api = ReadConfig(throttle=ThrottleConfig(limit=2, window=60.0), throttle_per_api=True)
    sim = await start(reads=per_api)
    job_id = sim.world.jobs[0].job_id
    listing = [(await get(http, sim, "/v1/job/list"))[0] for _ in range(3)]
    status = [(await get(http, sim, f"/v1/job/{job_id}/running-status"))[0] for _ in range(3)]
    assert listing == [200, 200, 429]
    assert status == [200, 200, 429]


async def test_a_read_refused_by_auth_uses_no_read_window(
    start: Start, http: aiohttp.ClientSession
) -> None:
    sim = await start(reads=ReadConfig(throttle=ThrottleConfig(limit=1, window=60.0)))
    refused = await call(http, "GET", f"{sim.url}/v1/job/list", headers={})
    admitted = await call(http, "GET", f"{sim.url}/v1/job/list")
    assert (refused[0], refused[1]["error_code"], admitted[0]) == (401, "APIG.0301", 200)


@pytest.mark.parametrize(
    ("style", "status", "code"),
    [("apig429", 429, "APIG.0308"), ("cb400", 400, "CB.00060211"), ("cb500", 500, "CB.00060211")],
)
async def test_read_throttle_styles(
    start: Start, http: aiohttp.ClientSession, style: Any, status: int, code: str
) -> None:
    sim = await start(reads=ReadConfig(throttle=ThrottleConfig(limit=1, window=60.0, style=style)))
    await get(http, sim, "/v1/job/list")
    got, body = await get(http, sim, "/v1/job/list")
    assert (got, body["error_code"]) == (status, code)


async def test_stats_count_every_read_api_apart(start: Start, http: aiohttp.ClientSession) -> None:
    sim = await start()
    job = sim.world.jobs[0]
    for api in READ_API_NAMES:
        line = SDK_REQUESTS[api].replace("{P}", sim.world.project_id).replace("{J}", job.job_id)
        await call(http, "GET", URL(sim.url + line, encoded=True))
    _, snapshot, _ = await call(http, "GET", f"{sim.url}/_sim/stats", headers={})
    assert snapshot["read_requests"] == dict.fromkeys(READ_API_NAMES, 1)
    assert (snapshot["reads"], snapshot["stop_requests"]) == (11, 0)
    assert snapshot["requests_total"] == 11


async def test_an_aksk_signed_read_with_a_query_is_accepted(
    start: Start, http: aiohttp.ClientSession
) -> None:
    from bulkstop.models import OutgoingRequest
    from bulkstop.signing import sign_request

    ak, sk = "AKEXAMPLE0000000000", "SKEXAMPLE00000000000000000000000000000000"
    sim = await start(token=None, aksk=(ak, sk))
    job = sim.world.jobs[0]
    url = URL(sim.url + f"/v1/record/{job.job_id}/list").with_query({**WIDE, "page_size": "5"})
    request = OutgoingRequest(method="GET", url=url, headers={}, body=b"")
    sign_request(
        request,
        ak=ak,
        sk=sk,
        now=datetime.fromtimestamp(T0, UTC),
        project_id="0123456789abcdef0123456789abcdef",
        security_token=None,
    )
    status, body, _ = await call(http, "GET", request.url, headers=dict(request.headers))
    assert status == 200
    assert body["result"]["total_record"] == "25"
