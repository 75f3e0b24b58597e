"""The read APIs: job lists, a job's build records, one build — their parameters and bodies.

Every API of the CodeArts notes' "Reading builds" section, named as the official SDK names its
method (the names are also the keys of ``SimulatorStats.read_requests``):

===================================  ===========================================================
``list_project_jobs``                ``GET /v1/job/{project_id}/list``
``show_job_list_by_project_id``      ``GET /v3/{project_id}/jobs``
``list_job``                         ``GET /v1/job/list``
``list_build_info_record_by_job_id`` ``GET /v1/record/{job_id}/list``
``list_build_info_record``           ``GET /v3/jobs/{job_id}/build-info-records``
``show_list_history``                ``GET /v3/jobs/{job_id}/history``
``show_build_details``               ``GET /v1/job/{job_id}/{build_no}/build-info``
``show_job_build_record_detail``     ``GET /v1/record/{job_id}/{build_no}/record-info``
``show_record_detail``               ``GET /v4/jobs/{job_id}/{build_no}/record-info``
``show_record_info``                 ``GET /v3/jobs/{job_id}/{build_no}/record-info``
``show_running_status``              ``GET /v1/job/{job_id}/running-status``
===================================  ===========================================================

:class:`ReadAnswers` turns a request's path and query parameters into ``(status, JSON body)`` or
the :class:`~bulkstop.simulator.codes.ErrorReply` to send. It does no I/O: the server
authenticates and throttles first, then calls it.

Conventions (documented where the docs say so, simulator-chosen otherwise):

* paging: ``page_index`` (``offset`` for the history) counts pages from 0; ``page_size``
  (``limit``) is 1..100, default 10 (simulator-chosen); anything else is 400 ``CB.00060200``.
  A page past the end is empty, or the first page again with ``repeat_first_page``.
* records: newest first (simulator-chosen). ``start_time``/``end_time`` are required,
  ``yyyy-MM-dd HH:mm:ss`` **in UTC** (the zone is undocumented; UTC is the simulator's
  choice); a record is listed when its start, to the second, lies in ``[start_time,
  end_time]``. The counts ``page_index``, ``total_page``, ``total_record`` are strings.
* the history: ``interval`` (days back, 1..30, default 30) keeps builds started since
  ``now - interval days``; its ``start_time``/``end_time`` are ``yyyy-MM-dd HH:mm:ss`` UTC
  (simulator-chosen).
* times: epoch milliseconds in job lists and records; ISO-8601 with offset
  (``2026-11-28T12:00:00.000+00:00``) in RecordInfo; ``finish_time``/``duration`` are
  ``null`` while a build runs.
* job lists: ``build_status`` keeps jobs whose *last* build has that ``last_build_status``
  (``building``, ``blue``, ``red``, ``aborted``; ``none``/``timeout`` never match); ``search``
  is a case-insensitive part of the name; ``creator_id`` the creator's user id;
  ``sort_field`` ``job_name`` or ``last_build_time`` with ``sort_order`` ``asc``/``desc``
  (default: project order). A project id that is not the world's is 404 (simulator-chosen).
* jobs outside the world list no records; their single builds are answered as ever.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

from bulkstop.simulator import codes
from bulkstop.simulator.codes import ErrorReply
from bulkstop.simulator.config import ReadConfig
from bulkstop.simulator.model import BuildModel, BuildView, JobAccess
from bulkstop.simulator.world import PROJECT_NAME, World, WorldJob

__all__ = [
    "READ_APIS",
    "Answer",
    "ReadAnswers",
    "build_info_record",
    "history_record",
    "job_summary",
    "record_info",
]

#: Every read API: its name and the route that serves it (all ``GET``).
READ_APIS: Final[tuple[tuple[str, str], ...]] = (
    ("list_project_jobs", "/v1/job/{project_id}/list"),
    ("show_job_list_by_project_id", "/v3/{project_id}/jobs"),
    ("list_job", "/v1/job/list"),
    ("list_build_info_record_by_job_id", "/v1/record/{job_id}/list"),
    ("list_build_info_record", "/v3/jobs/{job_id}/build-info-records"),
    ("show_list_history", "/v3/jobs/{job_id}/history"),
    ("show_build_details", "/v1/job/{job_id}/{build_no}/build-info"),
    ("show_job_build_record_detail", "/v1/record/{job_id}/{build_no}/record-info"),
    ("show_record_detail", "/v4/jobs/{job_id}/{build_no}/record-info"),
    ("show_record_info", "/v3/jobs/{job_id}/{build_no}/record-info"),
    ("show_running_status", "/v1/job/{job_id}/running-status"),
)

#: ``(status, JSON-able body)`` of a 200, or the error to answer.
Answer = tuple[int, Any] | ErrorReply
Params = Mapping[str, str]

_T = TypeVar("_T")
_ID = re.compile(r"[0-9a-z]{32}")
_DIGITS = re.compile(r"[0-9]{1,10}")
_WINDOW_TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
_WINDOW_FORMAT = "%Y-%m-%d %H:%M:%S"
_MAX_INT = 2**31 - 1
_MAX_PAGE_SIZE = 100
_DEFAULT_PAGE_SIZE = 10
_MAX_INTERVAL_DAYS = 30
#: How many of a job's last ended builds its ``health_score`` looks at.
_HEALTH_WINDOW = 10


def _v1(result: Any) -> tuple[int, Any]:
    """The v1 envelope: the call's own ``status``, not the build's."""
    return 200, {"result": result, "error": None, "status": codes.V1_CALL_SUCCESS}


def _int_param(params: Params, name: str, *, default: int | None, low: int, high: int) -> int:
    """An integer parameter in ``low..high``; raises :class:`_Invalid` otherwise."""
    raw = params.get(name)
    if raw is None or raw == "":
        if default is None:
            raise _Invalid
        return default
    if _DIGITS.fullmatch(raw) is None:
        raise _Invalid
    value = int(raw)
    if not low <= value <= high:
        raise _Invalid
    return value


def _window_param(params: Params, name: str) -> int:
    """A required ``yyyy-MM-dd HH:mm:ss`` (UTC) parameter as epoch seconds."""
    raw = params.get(name)
    if raw is None or _WINDOW_TIME.fullmatch(raw) is None:
        raise _Invalid
    try:
        moment = datetime.strptime(raw, _WINDOW_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise _Invalid from None
    return int(moment.timestamp())


class _Invalid(Exception):
    """A parameter is missing or out of range: 400 ``CB.00060200``."""


def _page(items: Sequence[_T], index: int, size: int, *, repeat_first: bool) -> Sequence[_T]:
    first = index * size
    if repeat_first and index > 0 and first >= len(items):
        first = 0
    return items[first : first + size]


def _epoch_ms(seconds: float) -> int:
    return round(seconds * 1000.0)


def _iso(seconds: float | None) -> str | None:
    """RecordInfo's ISO-8601 with offset: ``2026-11-28T12:00:00.000+00:00``."""
    if seconds is None:
        return None
    moment = datetime.fromtimestamp(round(seconds, 3), UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}+00:00"


def _plain(seconds: float | None) -> str | None:
    """``yyyy-MM-dd HH:mm:ss`` in UTC (the history's times)."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime(_WINDOW_FORMAT)


def _running_word(running: bool) -> str:
    return codes.JOB_RUNNING_STATUS_RUNNING if running else codes.JOB_RUNNING_STATUS_FINISHED


def _took_ms(view: BuildView, now: float) -> int:
    """How long the build ran: until its end, or until ``now`` while it runs."""
    return _epoch_ms((now if view.end is None else view.end) - view.start)


def build_info_record(view: BuildView, now: float) -> dict[str, Any]:
    """A ``BuildInfoRecord`` of the record lists."""
    took = _took_ms(view, now)
    return {
        "number": view.number,
        "build_time": took,
        "cost_time": took,
        "start_time": _epoch_ms(view.start),
        "job_running_status": _running_word(view.running),
        "state": view.state,
        "user_id": view.user.user_id,
        "executor": view.user.nickname,
        "nickname": view.user.user_name,
        "daily_build_number": view.daily_build_number,
        "trigger_type": view.trigger_type,
        "commit_id": view.commit_id,
        "commit_info": {"commit_id": view.commit_id, "created_at": _iso(view.commit_time)},
        "build_type": "branch",
        "code_branch": view.branch,
        "scm_type": "codehub",
    }


def record_info(view: BuildView) -> dict[str, Any]:
    """A ``RecordInfo``: the ``result`` of the three record-info APIs."""
    return {
        "id": view.record_id,
        "build_project_id": view.build_project_id,
        "build_record_id": view.record_id,
        "devcloud_project_id": view.project_id,
        "user_id": view.user.user_id,
        "build_no": view.number,
        "daily_build_num": view.daily_build_number,
        "repo_name": view.repo_name,
        "branch": view.branch,
        "commit": view.commit_id,
        "trigger_type": view.trigger_type,
        "status": view.state,
        "create_time": _iso(view.queued),
        "queued_time": _iso(view.queued),
        "start_time": _iso(view.start),
        "finish_time": _iso(view.end),
        "duration": None if view.end is None else _epoch_ms(view.end - view.start),
        "region": codes.REGION,
        "err_msg": "",
    }


def history_record(view: BuildView) -> dict[str, Any]:
    """One entry of ``history_records``."""
    return {
        "record_id": view.record_id,
        "job_id": view.job_id,
        "build_number": view.number,
        "start_time": _plain(view.start),
        "end_time": _plain(view.end),
        "result": view.state,
    }


def job_summary(job: WorldJob, now: float) -> dict[str, Any]:
    """A ``Job`` of the job lists, from its last build at ``now``."""
    last = job.last.view(now)
    allowed = not job.forbidden
    ended = [build for build in job.builds[-(_HEALTH_WINDOW + 1) :] if not build.is_running(now)]
    passed = sum(build.state(now) == codes.BUILD_STATUS_SUCCESS for build in ended)
    creator = job.creator
    return {
        "id": job.job_id,
        "job_name": job.name,
        "job_creator": creator.nickname,
        "user_id": creator.user_id,
        "user_name": creator.user_name,
        "nick_name": creator.nickname,
        "project_id": job.project_id,
        "project_name": PROJECT_NAME,
        "last_build_time": _epoch_ms(last.start),
        "health_score": round(100 * passed / len(ended)) if ended else 0,
        "source_code": "codehub",
        "last_build_status": codes.LAST_BUILD_STATUS[last.state],
        "last_job_running_status": _running_word(last.running),
        "last_build_user": last.user.nickname,
        "last_build_user_id": last.user.user_id,
        "is_finished": not last.running,
        "disabled": False,
        "favorite": False,
        "is_modify": allowed,
        "is_delete": allowed,
        "is_view": allowed,
        "is_execute": allowed,
        "is_copy": allowed,
        "is_forbidden": allowed,
        "code_branch": last.branch,
        "commit_id": last.commit_id,
        "trigger_type": last.trigger_type,
        "build_time": _took_ms(last, now),
        "scm_type": "codehub",
        "repo_id": job.build_project_id,
        "build_number": str(last.number),
        "build_project_id": job.build_project_id,
        "build_type": "branch",
    }


class ReadAnswers:
    """Answers every read API from the build model (and its world) at a given ``now``.

    Attributes:
        config: how the answers are shaped.
        model: the builds, world and derived.
    """

    __slots__ = ("_handlers", "config", "model")

    def __init__(self, config: ReadConfig, model: BuildModel) -> None:
        self.config = config
        self.model = model
        self._handlers: dict[str, Callable[[Params, Params, float], Answer]] = {
            "list_project_jobs": self.list_project_jobs,
            "show_job_list_by_project_id": self.show_job_list_by_project_id,
            "list_job": self.list_job,
            "list_build_info_record_by_job_id": self.list_records,
            "list_build_info_record": self.list_records,
            "show_list_history": self.show_list_history,
            "show_build_details": self.show_build_details,
            "show_job_build_record_detail": self.record_detail_v1,
            "show_record_detail": self.record_detail_v1,
            "show_record_info": self.show_record_info,
            "show_running_status": self.show_running_status,
        }

    def answer(self, api: str, path: Params, query: Params, now: float) -> Answer:
        """The answer of read API ``api`` (a name of :data:`READ_APIS`)."""
        try:
            return self._handlers[api](path, query, now)
        except _Invalid:
            return codes.INVALID_PARAMETER

    # --- job lists -----------------------------------------------------------------------------

    def list_project_jobs(self, path: Params, query: Params, now: float) -> Answer:
        listed = self._project_jobs(path["project_id"], query, now, required=False)
        if isinstance(listed, ErrorReply):
            return listed
        jobs, total = listed
        if self.config.jobs_shape == "sdk":
            return 200, {"jobs": jobs, "total": total}
        return _v1({"job_list": jobs, "total": total})

    def show_job_list_by_project_id(self, path: Params, query: Params, now: float) -> Answer:
        listed = self._project_jobs(path["project_id"], query, now, required=True)
        if isinstance(listed, ErrorReply):
            return listed
        jobs, total = listed
        return 200, {"jobs": jobs, "total": total}

    def list_job(self, path: Params, query: Params, now: float) -> Answer:
        jobs, total = self._jobs_page(query, now, required=False)
        return _v1({"job_list": jobs, "total": total})

    def _project_jobs(
        self, project_id: str, query: Params, now: float, *, required: bool
    ) -> tuple[list[dict[str, Any]], int | str] | ErrorReply:
        if _ID.fullmatch(project_id) is None:
            return codes.INVALID_PARAMETER
        world = self.model.world
        if world is None or project_id != world.project_id:
            return codes.PROJECT_NOT_FOUND
        return self._jobs_page(query, now, required=required)

    def _jobs_page(
        self, query: Params, now: float, *, required: bool
    ) -> tuple[list[dict[str, Any]], int | str]:
        default_index, default_size = (None, None) if required else (0, _DEFAULT_PAGE_SIZE)
        index = _int_param(query, "page_index", default=default_index, low=0, high=_MAX_INT)
        size = _int_param(query, "page_size", default=default_size, low=1, high=_MAX_PAGE_SIZE)
        world = self.model.world
        if world is None:
            return [], self._total(0)
        world.advance(now)
        jobs = _select_jobs(world, query, now)
        page = _page(jobs, index, size, repeat_first=self.config.repeat_first_page)
        return [job_summary(job, now) for job in page], self._total(len(jobs))

    def _total(self, total: int) -> int | str:
        return str(total) if self.config.total_as_string else total

    # --- records of a job ----------------------------------------------------------------------

    def list_records(self, path: Params, query: Params, now: float) -> Answer:
        job_id = path["job_id"]
        problem = self._job_problem(job_id)
        if problem is not None:
            return problem
        low = _window_param(query, "start_time")
        high = _window_param(query, "end_time")
        index = _int_param(query, "page_index", default=0, low=0, high=_MAX_INT)
        size = _int_param(
            query, "page_size", default=_DEFAULT_PAGE_SIZE, low=1, high=_MAX_PAGE_SIZE
        )
        views = [
            view
            for view in self.model.records(job_id, now=now)
            if low <= math.floor(view.start) <= high
        ]
        page = _page(views, index, size, repeat_first=self.config.repeat_first_page)
        ended = [view for view in views if not view.running]
        passed = sum(view.state == codes.BUILD_STATUS_SUCCESS for view in ended)
        return _v1(
            {
                "job_build_states": [build_info_record(view, now) for view in page],
                "page_index": str(index),
                "total_page": str(math.ceil(len(views) / size)),
                "total_record": str(len(views)),
                "health_score": str(round(100 * passed / len(ended)) if ended else 0),
            }
        )

    def show_list_history(self, path: Params, query: Params, now: float) -> Answer:
        job_id = path["job_id"]
        problem = self._job_problem(job_id)
        if problem is not None:
            return problem
        index = _int_param(query, "offset", default=0, low=0, high=_MAX_INT)
        size = _int_param(query, "limit", default=_DEFAULT_PAGE_SIZE, low=1, high=_MAX_PAGE_SIZE)
        days = _int_param(
            query, "interval", default=_MAX_INTERVAL_DAYS, low=1, high=_MAX_INTERVAL_DAYS
        )
        since = now - days * 86400.0
        views = [view for view in self.model.records(job_id, now=now) if view.start >= since]
        page = _page(views, index, size, repeat_first=self.config.repeat_first_page)
        return 200, {
            "history_records": [history_record(view) for view in page],
            "total": self._total(len(views)),
        }

    # --- one build -----------------------------------------------------------------------------

    def show_build_details(self, path: Params, query: Params, now: float) -> Answer:
        view = self._one_build(path, now)
        if isinstance(view, ErrorReply):
            return view
        return _v1({"building": view.running, "build_result": view.state, "region": codes.REGION})

    def record_detail_v1(self, path: Params, query: Params, now: float) -> Answer:
        view = self._one_build(path, now)
        if isinstance(view, ErrorReply):
            return view
        return 200, {"status": codes.V1_CALL_SUCCESS, "error": None, "result": record_info(view)}

    def show_record_info(self, path: Params, query: Params, now: float) -> Answer:
        view = self._one_build(path, now)
        if isinstance(view, ErrorReply):
            return view
        return 200, {"success": True, "message": "", "err_code": "", "result": record_info(view)}

    def show_running_status(self, path: Params, query: Params, now: float) -> Answer:
        job_id = path["job_id"]
        problem = self._job_problem(job_id)
        if problem is not None:
            return problem
        last = self.model.last_build(job_id, now=now)
        return _v1(
            {
                "last_job_id": job_id,
                "last_build_no": str(last.number),
                "last_build_status": _running_word(last.running),
                "is_running": last.running,
            }
        )

    def _one_build(self, path: Params, now: float) -> BuildView | ErrorReply:
        job_id = path["job_id"]
        problem = self._job_problem(job_id)
        if problem is not None:
            return problem
        raw = path["build_no"]
        if _DIGITS.fullmatch(raw) is None or not 1 <= int(raw) <= _MAX_INT:
            return codes.INVALID_PARAMETER
        view = self.model.view(job_id, int(raw), now=now)
        return codes.BUILD_NOT_FOUND if view is None else view

    def _job_problem(self, job_id: str) -> ErrorReply | None:
        """The error for a malformed, unknown or forbidden job id, else ``None``."""
        if _ID.fullmatch(job_id) is None:
            return codes.INVALID_JOB_ID
        access = self.model.access(job_id)
        if access is JobAccess.UNKNOWN:
            return codes.JOB_NOT_FOUND
        if access is JobAccess.FORBIDDEN:
            return codes.JOB_FORBIDDEN
        return None

    def __repr__(self) -> str:
        return f"ReadAnswers(jobs_shape={self.config.jobs_shape!r})"


def _select_jobs(world: World, query: Params, now: float) -> list[WorldJob]:
    """The world's jobs that pass the list filters, in the asked order."""
    jobs = world.jobs
    status = query.get("build_status")
    if status:
        jobs = [job for job in jobs if codes.LAST_BUILD_STATUS[job.last.state(now)] == status]
    search = query.get("search", "").lower()
    if search:
        jobs = [job for job in jobs if search in job.name.lower()]
    creator = query.get("creator_id")
    if creator:
        jobs = [job for job in jobs if job.creator.user_id == creator]
    field = query.get("sort_field")
    descending = query.get("sort_order", "").lower() == "desc"
    if field == "job_name":
        return sorted(jobs, key=lambda job: job.name, reverse=descending)
    if field == "last_build_time":
        return sorted(jobs, key=lambda job: job.last.start, reverse=descending)
    return list(jobs)
