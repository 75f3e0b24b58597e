"""A fake read client and a small fake CodeArts read service, for unit tests on a fake clock.

:class:`FakeReadClient` has the :class:`~bulkstop.client.ReadClient` shape: it hands each
request to a handler and turns the handler's literal answer into a
:class:`~bulkstop.reads.ReadReply` the way the real client does (an error status or a 2xx
carrying an error code is an error; otherwise the request's parser reads the body).

:class:`FakeService` is a handler holding jobs and their records, answering the job lists,
the record lists and the one-build APIs with literal bodies; tests switch APIs off (404
``CB.00060214``), make jobs fail, repeat pages, and read back the requests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fakeclock import FakeClock

from bulkstop.apis import parse_error_body
from bulkstop.models import Reply, ReplyKind
from bulkstop.reads import Parser, ReadApi, ReadProblem, ReadReply, ReadRequest, answer_error
from bulkstop.transport import server_text

#: A handler's answer: a body (200), ``(status, body)``, or a transport failure as a Reply.
Answer = Any
Handler = Callable[[ReadRequest], Answer]

URL_NOT_FOUND = (404, {"error_code": "CB.00060214", "error_msg": "URL not found"})
THROTTLED = (429, {"error_code": "APIG.0308", "error_msg": "over ratelimit"})
UNAUTHORIZED = (401, {"error_code": "APIG.0301", "error_msg": "bad token"})
TOKEN_EXPIRED = (401, {"error_code": "APIG.0307", "error_msg": "The token must be updated."})
SERVER_ERROR = (500, {"error_code": "CB.00060101", "error_msg": "internal error"})
JOB_NOT_FOUND_422 = (422, {"error_code": "DEVCB.00031006", "error_msg": "job not found"})
JOB_NOT_FOUND_404 = (404, {"error_code": "CB.00060404", "error_msg": "no such job"})
FORBIDDEN = (403, {"error_code": "CB.00060403", "error_msg": "no permission"})


#: The states the fake service reports as "Finished" and not building.
ENDED = frozenset({"SUCCESS", "FAILURE", "FAILED", "ABORTED", "CANCELED", "TIMEOUT"})
JOB_LISTS = (ReadApi.LIST_PROJECT_JOBS, ReadApi.SHOW_JOB_LIST_BY_PROJECT_ID, ReadApi.LIST_JOB)


def clean(value: str, limit: int) -> str:
    return server_text(value, limit)


class FakeReadClient:
    """Answers read calls from ``handler``; ``latency`` seconds of the fake clock each."""

    def __init__(
        self,
        handler: Handler,
        *,
        clock: FakeClock | None = None,
        latency: float = 0.0,
        refresh: bool = True,
    ) -> None:
        self.handler = handler
        self.clock = clock
        self.latency = latency
        self.refresh = refresh
        self.requests: list[ReadRequest] = []
        self.times: list[float] = []
        self.refreshes: list[int] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.generation = 0

    def calls(self, api: ReadApi) -> list[ReadRequest]:
        return [request for request in self.requests if request.api is api]

    async def read(self, request: ReadRequest, parse: Parser[Any]) -> ReadReply[Any]:
        self.requests.append(request)
        if self.clock is not None:
            self.times.append(self.clock.now())
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.latency and self.clock is not None:
                await self.clock.sleep(self.latency)
            answer = self.handler(request)
        finally:
            self.in_flight -= 1
        if isinstance(answer, Reply):
            return ReadReply(error=answer)
        status, payload = answer if isinstance(answer, tuple) else (200, answer)
        if not 200 <= status < 300:
            code, message = parse_error_body(payload)
            return ReadReply(error=self._error(status, code, message), http_status=status)
        carried = answer_error(payload)
        if carried is not None:
            return ReadReply(error=self._error(status, *carried), http_status=status)
        value = parse(payload, clean)
        if isinstance(value, ReadProblem):
            return ReadReply(problem=value.message, http_status=status)
        return ReadReply(value=value, http_status=status)

    def _error(self, status: int, code: str, message: str) -> Reply:
        return Reply(
            kind=ReplyKind.HTTP_ERROR,
            http_status=status,
            error_code=code,
            error_msg=message,
            credential_generation=self.generation,
        )

    async def refresh_credentials(self, generation: int) -> bool:
        self.refreshes.append(generation)
        if self.refresh:
            self.generation += 1
        return self.refresh


def epoch_ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def parse_window(request: ReadRequest) -> tuple[datetime, datetime]:
    query = dict(request.query)
    start, end = (
        datetime.strptime(query[name], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        for name in ("start_time", "end_time")
    )
    return start, end


@dataclass
class FakeBuild:
    number: int
    state: str = "RUNNING"
    start: datetime | None = None
    running_status: str | None = None
    branch: str = "main"
    commit_id: str = "ab12cd34" + "0" * 32
    trigger_type: str = "Manual"
    executor: str = "Zhang Wei"

    def record(self) -> dict[str, Any]:
        running = self.running_status
        if running is None:
            running = "Finished" if self.state in ENDED else "Running"
        return {
            "number": self.number,
            "state": self.state,
            "job_running_status": running,
            "start_time": None if self.start is None else epoch_ms(self.start),
            "code_branch": self.branch,
            "commit_id": self.commit_id,
            "trigger_type": self.trigger_type,
            "executor": self.executor,
        }


@dataclass
class FakeJob:
    job_id: str
    name: str = ""
    builds: list[FakeBuild] = field(default_factory=list)
    last_build_time: datetime | None = None
    #: a fixed error answer for every read of this job's records and builds
    failure: tuple[int, dict[str, Any]] | None = None

    def summary(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"id": self.job_id, "job_name": self.name or self.job_id[:6]}
        if self.last_build_time is not None:
            entry["last_build_time"] = epoch_ms(self.last_build_time)
        return entry


class FakeService:
    """Jobs and records behind the read APIs, answered with literal bodies (newest first).

    ``not_served`` APIs answer 404 ``CB.00060214``; ``repeat_pages`` answers every page
    index past the end with the first page again and no totals; ``script`` holds answers
    to give, per API, before the normal ones (one per call).
    """

    def __init__(self, jobs: list[FakeJob], project_id: str = "a" * 32) -> None:
        self.jobs = jobs
        self.project_id = project_id
        self.not_served: set[ReadApi] = set()
        self.repeat_pages = False
        self.sdk_shape = False
        self.script: dict[ReadApi, list[Answer]] = {}

    def job(self, job_id: str) -> FakeJob | None:
        return next((job for job in self.jobs if job.job_id == job_id), None)

    def __call__(self, request: ReadRequest) -> Answer:
        api = request.api
        scripted = self.script.get(api)
        if scripted:
            return scripted.pop(0)
        if api in self.not_served:
            return URL_NOT_FOUND
        query = dict(request.query)
        if api in (
            ReadApi.LIST_PROJECT_JOBS,
            ReadApi.SHOW_JOB_LIST_BY_PROJECT_ID,
            ReadApi.LIST_JOB,
        ):
            return self._jobs(api, int(query["page_index"]), int(query["page_size"]))
        job = self.job(request.path[2])  # every job path is /<version>/<kind>/<job_id>/...
        if job is None:
            return JOB_NOT_FOUND_404
        if job.failure is not None:
            return job.failure
        if api in (ReadApi.LIST_BUILD_INFO_RECORD_BY_JOB_ID, ReadApi.LIST_BUILD_INFO_RECORD):
            return self._records(job, request, int(query["page_index"]), int(query["page_size"]))
        if api is ReadApi.SHOW_LIST_HISTORY:
            return self._history(job, int(query["offset"]), int(query["limit"]))
        return self._one_build(api, job, int(request.path[3]))

    def _page(self, items: list[Any], index: int, size: int) -> tuple[list[Any], bool]:
        first = index * size
        if first >= len(items) and index > 0 and self.repeat_pages:
            return items[:size], True
        return items[first : first + size], False

    def _jobs(self, api: ReadApi, index: int, size: int) -> Answer:
        page, _ = self._page([job.summary() for job in self.jobs], index, size)
        total: int | None = None if self.repeat_pages else len(self.jobs)
        if api is ReadApi.SHOW_JOB_LIST_BY_PROJECT_ID or self.sdk_shape:
            return {"jobs": page, "total": total}
        return {"result": {"job_list": page, "total": total}, "status": "success"}

    def _in_window(self, job: FakeJob, request: ReadRequest) -> list[FakeBuild]:
        low, high = parse_window(request)
        return [
            build
            for build in reversed(job.builds)
            if build.start is None or low <= build.start.replace(microsecond=0) <= high
        ]

    def _records(self, job: FakeJob, request: ReadRequest, index: int, size: int) -> Answer:
        builds = self._in_window(job, request)
        page, _ = self._page([build.record() for build in builds], index, size)
        result: dict[str, Any] = {"job_build_states": page, "page_index": str(index)}
        if not self.repeat_pages:
            result["total_record"] = str(len(builds))
            result["total_page"] = str(-(-len(builds) // size))
        return {"result": result, "error": None, "status": "success"}

    def _history(self, job: FakeJob, index: int, size: int) -> Answer:
        entries = [
            {
                "build_number": build.number,
                "start_time": None if build.start is None else epoch_ms(build.start),
                "result": build.state,
            }
            for build in reversed(job.builds)
        ]
        page, _ = self._page(entries, index, size)
        return {"history_records": page, "total": None if self.repeat_pages else len(entries)}

    def _one_build(self, api: ReadApi, job: FakeJob, number: int) -> Answer:
        build = next((b for b in job.builds if b.number == number), None)
        if build is None:
            return (404, {"error_code": "CB.00060405", "error_msg": "no such build"})
        running = build.state not in ENDED
        if api is ReadApi.SHOW_BUILD_DETAILS:
            result = None if running else build.state
            return {"result": {"building": running, "build_result": result}, "status": "success"}
        info = {"build_no": number, "status": build.state}
        if api is ReadApi.SHOW_RECORD_INFO:
            return {"success": True, "message": "", "err_code": "", "result": info}
        return {"status": "success", "error": None, "result": info}
