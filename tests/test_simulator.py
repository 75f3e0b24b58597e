"""The built-in CodeArts simulator, over a real socket on 127.0.0.1.

Time-dependent behaviour (throttle windows, the sliding request-rate maximum, the AK lockout,
X-Sdk-Date) runs on hand-moved clocks injected into :class:`Simulator`; no test sleeps to
measure anything.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDictProxy
from yarl import URL

from bulkstop.simulator import (
    FaultConfig,
    Simulator,
    SimulatorConfig,
    SlidingWindowMax,
    ThrottleConfig,
    serve_forever,
)
from bulkstop.simulator.faults import FaultPlan
from bulkstop.simulator.model import BuildModel, SeededHash, StopOutcome, unit_hashes
from bulkstop.simulator.stats import READ_API_NAMES

pytestmark = pytest.mark.anyio

TOKEN = "sim-token"
JOB = "f9d6c8466d614a9788e9a0acf6c15f46"
JOB2 = "0123456789abcdefghijklmnopqrstuv"
AUTH = {"X-Auth-Token": TOKEN}
WALL_START = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC).timestamp()


class HandClock:
    """A clock that only moves when told to: ``clock()`` reads it, ``clock.now = t`` sets it."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


Start = Callable[..., Awaitable[Simulator]]


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    """Start simulators (default: token auth, nothing finished); all are closed afterwards."""
    simulators: list[Simulator] = []

    async def _start(config: SimulatorConfig | None = None, **kwargs: Any) -> Simulator:
        simulator = Simulator(config or SimulatorConfig(token=TOKEN, finished_ratio=0.0), **kwargs)
        await simulator.start()
        simulators.append(simulator)
        return simulator

    yield _start
    for simulator in simulators:
        await simulator.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        yield session


async def call(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> tuple[int, Any, CIMultiDictProxy[str]]:
    """``(status, parsed JSON or raw text, headers)``; the token is sent unless overridden."""
    sent = dict(AUTH) if headers is None else headers
    async with http.request(method, url, headers=sent, **kwargs) as response:
        text = await response.text()
        try:
            body: Any = json.loads(text)
        except ValueError:
            body = text
        return response.status, body, response.headers


def stop_request(api: str, base: str, job_id: str, build_no: int) -> tuple[str, dict[str, Any]]:
    """URL and request options for one stop call of ``api``, shaped as bulkstop sends them."""
    if api == "legacy":
        return f"{base}/v3/jobs/stop", {"json": {"job_id": job_id, "build_no": str(build_no)}}
    if api == "v3":
        return f"{base}/v3/jobs/{job_id}/{build_no}/stop", {}
    return f"{base}/v1/job/{job_id}/stop?build_no={build_no}", {"json": {"build_no": build_no}}


async def stop(
    http: aiohttp.ClientSession,
    sim: Simulator,
    job_id: str = JOB,
    build_no: int = 1,
    *,
    api: str = "legacy",
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, CIMultiDictProxy[str]]:
    url, options = stop_request(api, sim.url, job_id, build_no)
    return await call(http, "POST", url, headers=headers, **options)


async def build_status(http: aiohttp.ClientSession, sim: Simulator, build_no: int = 1) -> str:
    _, body, _ = await call(http, "GET", f"{sim.url}/v3/jobs/{JOB}/{build_no}/record-info")
    status: str = body["result"]["status"]
    return status


STOPPED = {
    "legacy": ({"result": True}, {"result": False}),
    "v3": ({"success": True, "result": ""}, {"success": False, "result": ""}),
    "v1": ({"status": "success"}, {"status": "fail"}),
}


# --- the three stop APIs -------------------------------------------------------------------------


@pytest.mark.parametrize("api", ["legacy", "v3", "v1"])
async def test_first_stop_stops_and_second_says_not_stopped(
    start: Start, http: aiohttp.ClientSession, api: str
) -> None:
    sim = await start()
    first = await stop(http, sim, api=api)
    second = await stop(http, sim, api=api)
    assert (first[0], first[1]) == (200, STOPPED[api][0])
    assert (second[0], second[1]) == (200, STOPPED[api][1])


async def test_legacy_accepts_build_no_as_json_number(
    start: Start, http: aiohttp.ClientSession
) -> None:
    sim = await start()
    status, body, _ = await call(
        http, "POST", f"{sim.url}/v3/jobs/stop", json={"job_id": JOB, "build_no": 7}
    )
    assert (status, body) == (200, {"result": True})


@pytest.mark.parametrize(
    ("query", "body"),
    [
        pytest.param("?build_no=4", None, id="query-only"),
        pytest.param("", {"build_no": 4}, id="body-only"),
        pytest.param("?build_no=4", {"build_no": 4}, id="both"),
    ],
)
async def test_v1_reads_build_no_from_query_or_body(
    start: Start, http: aiohttp.ClientSession, query: str, body: dict[str, int] | None
) -> None:
    sim = await start()
    status, answer, _ = await call(http, "POST", f"{sim.url}/v1/job/{JOB}/stop{query}", json=body)
    assert (status, answer) == (200, {"status": "success"})
    assert sim.stats.stop_requests_per_target == {(JOB, 4): 1}


async def test_v1_refuses_query_and_body_that_disagree(
    start: Start, http: aiohttp.ClientSession
) -> None:
    sim = await start()
    status, body, _ = await call(
        http, "POST", f"{sim.url}/v1/job/{JOB}/stop?build_no=4", json={"build_no": 5}
    )
    assert (status, body["error_code"]) == (400, "CB.00060200")


async def test_every_response_has_a_unique_32_hex_request_id(
    start: Start, http: aiohttp.ClientSession
) -> None:
    sim = await start()
    answers = [
        await stop(http, sim),
        await stop(http, sim),
        await stop(http, sim, headers={}),
        await call(http, "GET", f"{sim.url}/nowhere"),
    ]
    ids = [headers["X-Request-Id"] for _, _, headers in answers]
    assert all(re.fullmatch(r"[0-9a-f]{32}", request_id) for request_id in ids)
    assert len(set(ids)) == len(ids)


# --- routing, auth and validation ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/v3/jobs/nothing-here"), ("GET", "/v3/jobs/stop"), ("POST", "/v3/jobs/Stop")],
)
async def test_unknown_path_or_method_is_url_not_found(
    start: Start, http: aiohttp.ClientSession, method: str, path: str
) -> None:
    sim = await start()
    status, body, _ = await call(http, method, sim.url + path)
    assert (status, body) == (404, {"error_code": "CB.00060214", "error_msg": "URL not found"})


@pytest.mark.parametrize("api", ["legacy", "v3", "v1"])
async def test_a_stop_api_not_served_is_url_not_found_and_stops_nothing(
    start: Start, http: aiohttp.ClientSession, api: str
) -> None:
    others = frozenset({"legacy", "v3", "v1"} - {api})
    sim = await start(SimulatorConfig(token=TOKEN, finished_ratio=0.0, stop_apis=others))
    status, body, _ = await stop(http, sim, api=api)
    assert (status, body) == (404, {"error_code": "CB.00060214", "error_msg": "URL not found"})
    assert (sim.stats.stop_requests, sim.stats.effective_stops) == (0, 0)
    served = next(iter(others))
    assert (await stop(http, sim, api=served))[0] == 200


def test_simulator_refuses_to_serve_an_unknown_stop_api() -> None:
    with pytest.raises(ValueError, match="unknown stop APIs"):
        SimulatorConfig(stop_apis=frozenset({"v2"}))


@pytest.mark.parametrize(
    "headers",
    [pytest.param({}, id="missing"), pytest.param({"X-Auth-Token": "wrong"}, id="wrong")],
)
@pytest.mark.parametrize("api", ["legacy", "v3", "v1"])
async def test_missing_or_wrong_token_is_apig_0301(
    start: Start, http: aiohttp.ClientSession, headers: dict[str, str], api: str
) -> None:
    sim = await start()
    status, body, _ = await stop(http, sim, api=api, headers=headers)
    assert (status, body["error_code"]) == (401, "APIG.0301")
    assert TOKEN not in body["error_msg"]
    assert sim.stats.auth_failures == 1
    assert sim.stats.effective_stops == 0


async def test_without_configured_token_any_token_is_accepted(
    start: Start, http: aiohttp.ClientSession
) -> None:
    sim = await start(SimulatorConfig(finished_ratio=0.0))
    status, body, _ = await stop(http, sim, headers={"X-Auth-Token": "anything"})
    assert (status, body) == (200, {"result": True})


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        pytest.param({"job_id": JOB.upper(), "build_no": "1"}, "CB.00060201", id="uppercase-job"),
        pytest.param({"job_id": "abc", "build_no": "1"}, "CB.00060201", id="short-job"),
        pytest.param({"job_id": 12, "build_no": "1"}, "CB.00060201", id="number-job"),
        pytest.param({"build_no": "1"}, "CB.00060200", id="missing-job"),
        pytest.param({"job_id": JOB}, "CB.00060200", id="missing-build"),
        pytest.param({"job_id": JOB, "build_no": "0"}, "CB.00060200", id="build-zero"),
        pytest.param({"job_id": JOB, "build_no": "+3"}, "CB.00060200", id="build-signed"),
        pytest.param({"job_id": JOB, "build_no": "3.0"}, "CB.00060200", id="build-decimal"),
        pytest.param({"job_id": JOB, "build_no": True}, "CB.00060200", id="build-bool"),
        pytest.param({"job_id": JOB, "build_no": 3.0}, "CB.00060200", id="build-float"),
        pytest.param({"job_id": JOB, "build_no": "99999999999"}, "CB.00060200", id="build-huge"),
        pytest.param([JOB, "1"], "CB.00060200", id="not-an-object"),
    ],
)
async def test_legacy_validation_codes(
    start: Start, http: aiohttp.ClientSession, payload: Any, code: str
) -> None:
    sim = await start()
    status, body, _ = await call(http, "POST", f"{sim.url}/v3/jobs/stop", json=payload)
    assert (status, body["error_code"]) == (400, code)


async def test_body_that_is_not_json_is_invalid_parameter(
    start: Start, http: aiohttp.ClientSession
) -> None:
    sim = await start()
    status, body, _ = await call(http, "POST", f"{sim.url}/v3/jobs/stop", data=b"job_id=x")
    assert (status, body["error_code"]) == (400, "CB.00060200")


@pytest.mark.parametrize(
    ("path", "code"),
    [
        (f"/v3/jobs/{'X' * 32}/1/stop", "CB.00060201"),
        (f"/v3/jobs/{JOB}/zero/stop", "CB.00060200"),
        (f"/v1/job/{'x' * 31}/stop?build_no=1", "CB.00060201"),
        (f"/v1/job/{JOB}/stop", "CB.00060200"),
    ],
)
async def test_path_api_validation_codes(
    start: Start, http: aiohttp.ClientSession, path: str, code: str
) -> None:
    sim = await start()
    status, body, _ = await call(http, "POST", sim.url + path)
    assert (status, body["error_code"]) == (400, code)


# --- the build model -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "status", "code"),
    [
        pytest.param(
            SimulatorConfig(token=TOKEN, unknown_jobs=frozenset({JOB})),
            404,
            "CB.00060404",
            id="404",
        ),
        pytest.param(
            SimulatorConfig(token=TOKEN, forbidden_jobs=frozenset({JOB})),
            403,
            "CB.00060403",
            id="403",
        ),
        pytest.param(SimulatorConfig(token=TOKEN, unknown_job_ratio=1.0), 404, "CB.00060404"),
        pytest.param(SimulatorConfig(token=TOKEN, forbidden_job_ratio=1.0), 403, "CB.00060403"),
    ],
)
@pytest.mark.parametrize("api", ["legacy", "v3", "v1"])
async def test_unknown_and_forbidden_jobs(
    start: Start,
    http: aiohttp.ClientSession,
    config: SimulatorConfig,
    status: int,
    code: str,
    api: str,
) -> None:
    sim = await start(config)
    answer = await stop(http, sim, api=api)
    assert (answer[0], answer[1]["error_code"]) == (status, code)
    assert sim.stats.effective_stops == 0


async def test_explicitly_finished_build_is_not_stopped(
    start: Start, http: aiohttp.ClientSession
) -> None:
    sim = await start(
        SimulatorConfig(token=TOKEN, finished_ratio=0.0, finished_builds=frozenset({(JOB, 3)}))
    )
    finished = await stop(http, sim, build_no=3)
    running = await stop(http, sim, build_no=4)
    assert finished[1] == {"result": False}
    assert running[1] == {"result": True}
    assert (sim.stats.already_finished, sim.stats.effective_stops) == (1, 1)


def test_same_seed_gives_the_same_finished_builds() -> None:
    def finished(seed: int) -> set[int]:
        model = BuildModel(SimulatorConfig(seed=seed, finished_ratio=0.3), wall_start=WALL_START)
        return {n for n in range(1, 2001) if model.finished_from_start(JOB, n)}

    first, again, other = finished(7), finished(7), finished(8)
    assert first == again
    assert first != other
    assert 500 < len(first) < 700  # about 30 % of 2000


def test_seeded_hash_equals_its_reference_definition() -> None:
    fast = SeededHash(b"bulkstop.fault", 42, count=2)
    assert fast(JOB, 3, 1) == unit_hashes(b"bulkstop.fault", 42, JOB, 3, 1, count=2)


async def test_two_simulators_with_one_seed_answer_alike(
    start: Start, http: aiohttp.ClientSession
) -> None:
    config = SimulatorConfig(token=TOKEN, seed=3, finished_ratio=0.5)
    answers = []
    for _ in range(2):
        sim = await start(config)
        answers.append([(await stop(http, sim, build_no=n))[1]["result"] for n in range(1, 21)])
    assert answers[0] == answers[1]
    assert set(answers[0]) == {True, False}


async def test_record_info_follows_the_build(start: Start, http: aiohttp.ClientSession) -> None:
    sim = await start(
        SimulatorConfig(token=TOKEN, finished_ratio=0.0, finished_builds=frozenset({(JOB, 9)})),
        wall=HandClock(WALL_START),
    )
    before = await build_status(http, sim, 1)
    await stop(http, sim, build_no=1)
    status, body, _ = await call(http, "GET", f"{sim.url}/v3/jobs/{JOB}/1/record-info")
    assert before == "RUNNING"
    assert status == 200
    assert body["success"] is True
    assert body["result"]["status"] == "ABORTED"
    assert body["result"]["finish_time"] == "2026-11-28T12:00:00.000+00:00"
    assert await build_status(http, sim, 9) in ("SUCCESS", "FAILURE")


async def test_running_status_reports_the_last_build(
    start: Start, http: aiohttp.ClientSession
) -> None:
    sim = await start()
    await stop(http, sim, build_no=500)
    status, body, _ = await call(http, "GET", f"{sim.url}/v1/job/{JOB}/running-status")
    assert status == 200
    assert body == {
        "result": {
            "last_job_id": JOB,
            "last_build_no": "500",
            "last_build_status": "Finished",
            "is_running": False,
        },
        "error": None,
        "status": "success",
    }


# --- throttling ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("style", "status", "code", "message"),
    [
        (
            "apig429",
            429,
            "APIG.0308",
            "The throttling threshold has been reached: policy user over ratelimit,"
            "limit:2,time:1 second",
        ),
        ("cb400", 400, "CB.00060211", "too many requests, try again later"),
        ("cb500", 500, "CB.00060211", "too many requests, try again later"),
    ],
)
async def test_throttle_styles(
    start: Start, http: aiohttp.ClientSession, style: Any, status: int, code: str, message: str
) -> None:
    sim = await start(
        SimulatorConfig(token=TOKEN, throttle=ThrottleConfig(limit=2, style=style)),
        monotonic=HandClock(100.0),
    )
    answers = [await stop(http, sim, build_no=n) for n in (1, 2, 3)]
    assert [answer[0] for answer in answers[:2]] == [200, 200]
    assert (answers[2][0], answers[2][1]) == (status, {"error_code": code, "error_msg": message})
    assert "Retry-After" not in answers[2][2]


async def test_throttle_counts_fixed_windows_across_all_apis(
    start: Start, http: aiohttp.ClientSession
) -> None:
    clock = HandClock(100.0)
    sim = await start(
        SimulatorConfig(token=TOKEN, throttle=ThrottleConfig(limit=3, window=2.0)),
        monotonic=clock,
    )
    statuses: list[int] = []
    for at, api in [
        (100.0, "legacy"),
        (100.5, "v3"),
        (101.0, "v1"),
        (101.9, "legacy"),  # 4th in window [100, 102)
        (102.0, "v3"),  # a new window
        (103.99, "v1"),
        (103.99, "legacy"),
        (103.99, "v3"),  # 4th in window [102, 104)
    ]:
        clock.now = at
        statuses.append((await stop(http, sim, build_no=len(statuses) + 1, api=api))[0])
    assert statuses == [200, 200, 200, 429, 200, 200, 200, 429]
    assert sim.stats.throttled == 2


async def test_throttled_request_does_not_stop_the_build(
    start: Start, http: aiohttp.ClientSession
) -> None:
    clock = HandClock(100.0)
    sim = await start(
        SimulatorConfig(token=TOKEN, throttle=ThrottleConfig(limit=1)), monotonic=clock
    )
    await stop(http, sim, build_no=1)
    throttled = await stop(http, sim, build_no=2)
    clock.now = 101.0
    retried = await stop(http, sim, build_no=2)
    assert throttled[0] == 429
    assert retried[1] == {"result": True}


@pytest.mark.parametrize(
    ("window", "at", "expected"),
    [(1.0, 100.25, "1"), (10.0, 102.5, "8"), (10.0, 109.999, "1")],
)
async def test_throttle_retry_after_in_seconds_is_the_rounded_up_wait(
    start: Start, http: aiohttp.ClientSession, window: float, at: float, expected: str
) -> None:
    clock = HandClock(100.0)
    sim = await start(
        SimulatorConfig(
            token=TOKEN, throttle=ThrottleConfig(limit=1, window=window, retry_after="seconds")
        ),
        monotonic=clock,
    )
    clock.now = at
    await stop(http, sim, build_no=1)
    _, _, headers = await stop(http, sim, build_no=2)
    assert headers["Retry-After"] == expected


async def test_throttle_retry_after_as_http_date_is_the_window_reset(
    start: Start, http: aiohttp.ClientSession
) -> None:
    clock = HandClock(100.0)
    sim = await start(
        SimulatorConfig(
            token=TOKEN, throttle=ThrottleConfig(limit=1, window=10.0, retry_after="http-date")
        ),
        monotonic=clock,
        wall=HandClock(WALL_START),
    )
    clock.now = 102.5
    await stop(http, sim, build_no=1)
    _, _, headers = await stop(http, sim, build_no=2)
    reset_at = parsedate_to_datetime(headers["Retry-After"])
    # 7.5 s to the reset, rounded up to the whole second an HTTP-date can say.
    assert reset_at == datetime.fromtimestamp(WALL_START, UTC) + timedelta(seconds=8)


async def test_throttle_comes_after_auth(start: Start, http: aiohttp.ClientSession) -> None:
    sim = await start(
        SimulatorConfig(token=TOKEN, throttle=ThrottleConfig(limit=1)), monotonic=HandClock(0.0)
    )
    refused = [await stop(http, sim, build_no=n, headers={}) for n in (1, 2)]
    admitted = await stop(http, sim, build_no=3)
    assert [answer[0] for answer in refused] == [401, 401]
    assert admitted[0] == 200


# --- faults --------------------------------------------------------------------------------------


def faulty(**faults: float) -> SimulatorConfig:
    return SimulatorConfig(token=TOKEN, finished_ratio=0.0, faults=FaultConfig(**faults))


async def test_error_500_fault_is_a_codearts_internal_error(
    start: Start, http: aiohttp.ClientSession
) -> None:
    sim = await start(faulty(error_500=1.0))
    answers = [await stop(http, sim, build_no=n) for n in range(1, 21)]
    assert {answer[0] for answer in answers} == {500}
    assert {answer[1]["error_code"] for answer in answers} == {"CB.00060101", "CB.00060100"}
    assert sim.stats.faults["error_500"] == 20


@pytest.mark.parametrize(
    ("fault", "status", "retry_after"),
    [("html_502", 502, None), ("unavailable_503", 503, "1")],
)
async def test_gateway_faults_answer_html(
    start: Start,
    http: aiohttp.ClientSession,
    fault: str,
    status: int,
    retry_after: str | None,
) -> None:
    sim = await start(faulty(**{fault: 1.0}))
    answer_status, body, headers = await stop(http, sim)
    assert answer_status == status
    assert headers["Content-Type"].startswith("text/html")
    assert str(status) in body
    assert headers.get("Retry-After") == retry_after


async def test_bad_json_fault_is_a_200_that_does_not_parse(
    start: Start, http: aiohttp.ClientSession
) -> None:
    sim = await start(faulty(bad_json_200=1.0))
    status, body, _ = await stop(http, sim)
    assert status == 200
    assert isinstance(body, str)  # call() could not parse it
    with pytest.raises(ValueError, match=r"Expecting|Unterminated"):
        json.loads(body)


async def test_reset_fault_is_a_connection_error_without_response(
    start: Start, http: aiohttp.ClientSession
) -> None:
    sim = await start(faulty(reset=1.0))
    with pytest.raises(aiohttp.ClientConnectionError):
        await stop(http, sim)
    assert sim.stats.faults["reset"] == 1
    assert sim.stats.by_status == {}


async def test_hang_fault_outlasts_the_client_timeout(start: Start) -> None:
    sim = await start(faulty(hang=1.0, hang_seconds=0.5))
    timeout = aiohttp.ClientTimeout(total=0.1)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        with pytest.raises(TimeoutError):
            await stop(session, sim)
    assert sim.stats.faults["hang"] == 1


@pytest.mark.parametrize(
    "config", [faulty(hang=1.0, hang_seconds=60.0), SimulatorConfig(latency=60)]
)
async def test_close_is_prompt_while_a_handler_waits(
    config: SimulatorConfig, http: aiohttp.ClientSession
) -> None:
    arrived = asyncio.Event()

    def monotonic() -> float:
        arrived.set()  # the simulator reads its clock first when a stop request arrives
        return 0.0

    sim = Simulator(config, monotonic=monotonic)
    await sim.start()
    request = asyncio.ensure_future(stop(http, sim))
    await arrived.wait()
    with anyio.fail_after(3):
        await sim.close()
        with pytest.raises(aiohttp.ClientConnectionError):
            await request


async def test_fault_before_the_stop_leaves_the_build_running(
    start: Start, http: aiohttp.ClientSession
) -> None:
    sim = await start(faulty(error_500=1.0))
    status, _, _ = await stop(http, sim)
    assert status == 500
    assert await build_status(http, sim) == "RUNNING"
    assert (sim.stats.effective_stops, sim.stats.faults_after_stop) == (0, 0)


@pytest.mark.parametrize("fault", ["error_500", "html_502", "bad_json_200", "reset"])
async def test_fault_after_the_stop_has_stopped_the_build(
    start: Start, http: aiohttp.ClientSession, fault: str
) -> None:
    sim = await start(faulty(**{fault: 1.0}, after_stop=1.0))
    try:
        status, _, _ = await stop(http, sim)
    except aiohttp.ClientConnectionError:
        status = 0
    assert status != 200 or fault == "bad_json_200"
    assert await build_status(http, sim) == "ABORTED"
    assert (sim.stats.effective_stops, sim.stats.faults_after_stop) == (1, 1)


async def test_retry_after_a_fault_after_the_stop_says_not_stopped(
    start: Start, http: aiohttp.ClientSession
) -> None:
    faults = FaultConfig(error_500=0.5, after_stop=1.0)
    # A build whose first request gets the fault and whose second does not (seeded, so fixed).
    build_no = next(
        n
        for n in range(1, 100)
        if (plan := FaultPlan(faults, seed=0)).decide(JOB, n) and not plan.decide(JOB, n)
    )
    sim = await start(SimulatorConfig(token=TOKEN, finished_ratio=0.0, faults=faults))
    first = await stop(http, sim, build_no=build_no)
    retry = await stop(http, sim, build_no=build_no)
    assert first[0] == 500
    assert (retry[0], retry[1]) == (200, {"result": False})


async def test_faults_are_deterministic_per_seed(start: Start, http: aiohttp.ClientSession) -> None:
    config = SimulatorConfig(token=TOKEN, seed=11, faults=FaultConfig(error_500=0.3, html_502=0.3))
    runs = []
    for _ in range(2):
        sim = await start(config)
        runs.append([(await stop(http, sim, build_no=n % 4 + 1))[0] for n in range(24)])
    assert runs[0] == runs[1]
    assert {200, 500, 502} <= set(runs[0])


def test_fault_probabilities_must_not_exceed_one() -> None:
    with pytest.raises(ValueError, match="add up"):
        FaultConfig(error_500=0.6, reset=0.6)


# --- statistics ----------------------------------------------------------------------------------


async def test_stats_count_exactly(start: Start, http: aiohttp.ClientSession) -> None:
    clock = HandClock(100.0)
    sim = await start(
        SimulatorConfig(
            token=TOKEN,
            finished_ratio=0.0,
            finished_builds=frozenset({(JOB, 2)}),
            throttle=ThrottleConfig(limit=4),
        ),
        monotonic=clock,
    )
    await stop(http, sim, build_no=1)  # stopped
    await stop(http, sim, build_no=1, api="v3")  # repeat
    await stop(http, sim, build_no=2, api="v1")  # already finished
    await stop(http, sim, build_no=3, headers={})  # 401
    await stop(http, sim, build_no=3)  # 200, 4th admitted
    await stop(http, sim, build_no=4)  # throttled
    await call(http, "GET", f"{sim.url}/nowhere")  # 404
    status, snapshot, _ = await call(http, "GET", f"{sim.url}/_sim/stats?targets=1", headers={})
    assert status == 200
    expected = {
        "requests_total": 7,
        "stop_requests": 6,
        "by_status": {"200": 4, "401": 1, "404": 1, "429": 1},
        "by_api": {"legacy": 4, "v3": 1, "v1": 1},
        "reads": 0,
        "read_requests": dict.fromkeys(READ_API_NAMES, 0),
        "effective_stops": 2,
        "repeat_stops": 1,
        "already_finished": 1,
        "ignored_stops": 0,
        "unknown_builds": 0,
        "throttled": 1,
        "read_throttled": 0,
        "faults": {
            "error_500": 0,
            "html_502": 0,
            "unavailable_503": 0,
            "reset": 0,
            "hang": 0,
            "bad_json_200": 0,
        },
        "faults_after_stop": 0,
        "max_requests_in_1s": 6,
        "iam_token_requests": 0,
        "auth_failures": 1,
        "security_token_requests": 0,
        "stop_requests_per_target": {f"{JOB}:1": 2, f"{JOB}:2": 1, f"{JOB}:3": 1, f"{JOB}:4": 1},
        "effective_stops_per_target": {f"{JOB}:1": 1, f"{JOB}:3": 1},
    }
    assert snapshot == expected


async def test_stats_without_targets_leave_out_per_target_counts(
    start: Start, http: aiohttp.ClientSession
) -> None:
    sim = await start()
    await stop(http, sim)
    _, snapshot, _ = await call(http, "GET", f"{sim.url}/_sim/stats", headers={})
    assert snapshot["effective_stops"] == 1
    assert "stop_requests_per_target" not in snapshot


async def test_max_requests_in_1s_uses_arrival_times(
    start: Start, http: aiohttp.ClientSession
) -> None:
    clock = HandClock(0.0)
    sim = await start(monotonic=clock)
    for at in (10.0, 10.2, 10.4, 11.3, 11.35, 11.39):
        clock.now = at
        await stop(http, sim, build_no=1)
    # (10.39, 11.39] holds 10.4, 11.3, 11.35 and 11.39.
    assert sim.stats.max_requests_in_1s == 4


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        ([], 0),
        ([5.0], 1),
        ([0.0, 0.5, 0.99, 1.0, 1.5], 3),
        ([0.0, 1.0, 2.0, 3.0], 1),  # the interval is half-open: (t - 1, t]
        ([2.0] * 5 + [2.999], 6),
    ],
)
def test_sliding_window_max_on_explicit_times(times: list[float], expected: int) -> None:
    window = SlidingWindowMax(1.0)
    for at in times:
        window.record(at)
    assert window.maximum == expected


@given(st.lists(st.floats(min_value=0, max_value=20, allow_nan=False), max_size=60))
def test_sliding_window_max_matches_brute_force(times: list[float]) -> None:
    times.sort()
    window = SlidingWindowMax(1.0)
    for at in times:
        window.record(at)
    brute = max((sum(1 for u in times if t - 1.0 < u <= t) for t in times), default=0)
    assert window.maximum == brute


# --- IAM tokens and expiry -----------------------------------------------------------------------


def iam_body(user: str = "alice", password: str = "pw", domain: str = "acme") -> dict[str, Any]:
    return {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {"name": user, "password": password, "domain": {"name": domain}}
                },
            },
            "scope": {"project": {"name": "cn-north-4"}},
        }
    }


IAM_CONFIG = SimulatorConfig(
    token=TOKEN, finished_ratio=0.0, iam_user="alice", iam_password="pw", iam_domain="acme"
)


async def test_iam_issues_a_token_that_authenticates(
    start: Start, http: aiohttp.ClientSession
) -> None:
    sim = await start(IAM_CONFIG)
    status, body, headers = await call(
        http, "POST", f"{sim.url}/v3/auth/tokens", headers={}, json=iam_body()
    )
    token = headers["X-Subject-Token"]
    answer = await stop(http, sim, headers={"X-Auth-Token": token})
    assert status == 201
    assert datetime.fromisoformat(body["token"]["expires_at"]) > datetime.now(UTC)
    assert answer[1] == {"result": True}
    assert sim.stats.iam_token_requests == 1


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        (iam_body(password="nope"), 401),
        (iam_body(user="bob"), 401),
        (iam_body(domain="other"), 401),
        ({"auth": {}}, 400),
    ],
)
async def test_iam_refuses_wrong_credentials_and_bad_bodies(
    start: Start, http: aiohttp.ClientSession, payload: dict[str, Any], status: int
) -> None:
    sim = await start(IAM_CONFIG)
    answer_status, body, headers = await call(
        http, "POST", f"{sim.url}/v3/auth/tokens", headers={}, json=payload
    )
    assert answer_status == status
    assert body["error"]["code"] == status
    assert "X-Subject-Token" not in headers
    assert "nope" not in json.dumps(body)


async def test_iam_endpoint_is_absent_unless_configured(
    start: Start, http: aiohttp.ClientSession
) -> None:
    sim = await start()
    status, _, _ = await call(http, "POST", f"{sim.url}/v3/auth/tokens", json=iam_body())
    assert status == 404


async def test_token_expires_after_its_request_budget(
    start: Start, http: aiohttp.ClientSession
) -> None:
    sim = await start(SimulatorConfig(token=TOKEN, token_ttl_requests=2))
    statuses = [(await stop(http, sim, build_no=n))[0] for n in (1, 2)]
    expired = await stop(http, sim, build_no=3)
    assert statuses == [200, 200]
    assert (expired[0], expired[1]) == (
        401,
        {"error_code": "APIG.0307", "error_msg": "The token must be updated."},
    )


async def test_a_fresh_iam_token_works_after_expiry(
    start: Start, http: aiohttp.ClientSession
) -> None:
    sim = await start(
        SimulatorConfig(
            token_ttl_requests=1, iam_user="alice", iam_password="pw", iam_domain="acme"
        )
    )
    tokens = []
    for _ in range(2):
        _, _, headers = await call(http, "POST", f"{sim.url}/v3/auth/tokens", json=iam_body())
        tokens.append(headers["X-Subject-Token"])
    used = await stop(http, sim, build_no=1, headers={"X-Auth-Token": tokens[0]})
    expired = await stop(http, sim, build_no=2, headers={"X-Auth-Token": tokens[0]})
    fresh = await stop(http, sim, build_no=2, headers={"X-Auth-Token": tokens[1]})
    assert [used[0], expired[0], fresh[0]] == [200, 401, 200]
    assert expired[1]["error_code"] == "APIG.0307"


# --- AK/SK ---------------------------------------------------------------------------------------

AK = "AKEXAMPLE0000000000"
SK = "SKEXAMPLE00000000000000000000000000000000"
NOW = datetime.fromtimestamp(WALL_START, UTC)


def signed(
    api: str,
    base: str,
    build_no: int = 1,
    *,
    ak: str = AK,
    sk: str = SK,
    now: datetime = NOW,
    security_token: str | None = None,
) -> tuple[str, dict[str, str], bytes]:
    """URL, headers and body of a stop request signed the way bulkstop signs it."""
    signing = pytest.importorskip("bulkstop.signing")
    from bulkstop.auth import OutgoingRequest

    url, options = stop_request(api, base, JOB, build_no)
    body = json.dumps(options["json"]).encode() if "json" in options else b""
    request = OutgoingRequest(
        method="POST", url=URL(url), headers={"Content-Type": "application/json"}, body=body
    )
    signing.sign_request(
        request,
        ak=ak,
        sk=sk,
        now=now,
        project_id="0123456789abcdef0123456789abcdef",
        security_token=security_token,
    )
    return url, request.headers, body


def aksk_config(**overrides: Any) -> SimulatorConfig:
    return SimulatorConfig(finished_ratio=0.0, aksk=(AK, SK), **overrides)


@pytest.mark.parametrize("api", ["legacy", "v3", "v1"])
async def test_aksk_signature_is_accepted(
    start: Start, http: aiohttp.ClientSession, api: str
) -> None:
    sim = await start(aksk_config(), wall=HandClock(WALL_START))
    url, headers, body = signed(api, sim.url)
    status, answer, _ = await call(http, "POST", url, headers=headers, data=body)
    assert (status, answer) == (200, STOPPED[api][0])


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"sk": "S" * 40}, id="wrong-sk"),
        pytest.param({"ak": "AKOTHER000000000000"}, id="wrong-ak"),
        pytest.param({"now": NOW - timedelta(hours=1)}, id="skewed-date"),
    ],
)
async def test_aksk_wrong_key_or_date_is_apig_0301(
    start: Start, http: aiohttp.ClientSession, change: dict[str, Any]
) -> None:
    sim = await start(aksk_config(), wall=HandClock(WALL_START))
    url, headers, body = signed("legacy", sim.url, **change)
    status, answer, _ = await call(http, "POST", url, headers=headers, data=body)
    assert (status, answer["error_code"]) == (401, "APIG.0301")
    assert SK not in answer["error_msg"]


@pytest.mark.parametrize("tamper", ["body", "date-missing", "header-changed"])
async def test_aksk_tampered_request_is_apig_0301(
    start: Start, http: aiohttp.ClientSession, tamper: str
) -> None:
    sim = await start(aksk_config(), wall=HandClock(WALL_START))
    url, headers, body = signed("legacy", sim.url)
    if tamper == "body":
        body = body.replace(b'"1"', b'"2"')
    elif tamper == "date-missing":
        del headers["X-Sdk-Date"]
    else:
        headers["X-Project-Id"] = "f" * 32
    status, answer, _ = await call(http, "POST", url, headers=headers, data=body)
    assert (status, answer["error_code"]) == (401, "APIG.0301")
    assert sim.stats.effective_stops == 0


async def test_aksk_locks_after_five_failures_in_a_row(
    start: Start, http: aiohttp.ClientSession
) -> None:
    clock = HandClock(0.0)
    sim = await start(aksk_config(), monotonic=clock, wall=HandClock(WALL_START))
    for n in range(5):
        url, headers, body = signed("legacy", sim.url, n + 1, sk="S" * 40)
        await call(http, "POST", url, headers=headers, data=body)
    url, headers, body = signed("legacy", sim.url, 9)
    locked = await call(http, "POST", url, headers=headers, data=body)
    clock.now = 301.0
    unlocked = await call(http, "POST", url, headers=headers, data=body)
    assert locked[0] == 401
    assert "limit" in locked[1]["error_msg"]
    assert unlocked[0] == 200


async def test_security_token_requests_are_counted(
    start: Start, http: aiohttp.ClientSession
) -> None:
    sim = await start(aksk_config(), wall=HandClock(WALL_START))
    url, headers, body = signed("v3", sim.url, security_token="temporary")
    status, _, _ = await call(http, "POST", url, headers=headers, data=body)
    assert status == 200
    assert sim.stats.security_token_requests == 1


# --- lifetime ------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "example.com"])
async def test_non_loopback_hosts_are_refused(host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        await Simulator(SimulatorConfig()).start(host)


async def test_serve_forever_serves_until_cancelled(http: aiohttp.ClientSession) -> None:
    ready: asyncio.Queue[str] = asyncio.Queue()
    task = asyncio.ensure_future(
        serve_forever(SimulatorConfig(token=TOKEN), "127.0.0.1", 0, ready.put_nowait)
    )
    url = await ready.get()
    status, _, _ = await call(http, "GET", f"{url}/_sim/stats")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert status == 200
    with pytest.raises(aiohttp.ClientConnectionError):
        await call(http, "GET", f"{url}/_sim/stats")


def test_config_repr_hides_secrets() -> None:
    config = SimulatorConfig(
        token="tok-secret", iam_user="u", iam_password="pw-secret", iam_domain="d", aksk=("a", "sk")
    )
    text = repr(config)
    assert "tok-secret" not in text
    assert "pw-secret" not in text
    assert "'sk'" not in text


def test_the_tables_that_grow_with_every_stop_stay_out_of_the_garbage_collector() -> None:
    # A table holding tuples or enum members is tracked by the cyclic collector and put back
    # among the young objects at each insertion: every young collection then walks all of
    # it, and a long simulation's pauses grew with each stop.
    import gc

    from bulkstop.simulator.stats import SimulatorStats

    model = BuildModel(SimulatorConfig(seed=3, finished_ratio=0.0), wall_start=WALL_START)
    stats = SimulatorStats()
    for n in range(1, 200):
        job_id = f"{n:032x}"
        assert model.access(job_id) is model.access(job_id)
        assert model.stop(job_id, n, wall_now=WALL_START) is StopOutcome.STOPPED
        stats.target_seen((job_id, n))
        stats.stopped((job_id, n))
    # What untracks a table whose entries are all untracked (its tuples first, then it). One
    # collection: each walks the whole test process, a tenth of a second under pytest.
    gc.collect()
    tables = (
        model._stopped_at,
        model._jobs,
        model._highest_seen,
        stats._requests_per_target,
        stats._effective_per_target,
    )
    assert not any(gc.is_tracked(table) for table in tables)
    assert stats.stop_requests_per_target[f"{7:032x}", 7] == 1  # still keyed by target
    assert model.stop(f"{7:032x}", 7, wall_now=WALL_START) is StopOutcome.REPEAT
