"""The CodeArts read APIs: how each request is shaped and how each answer is read.

There is no "list running builds" API: finding them is two steps, the jobs and then each job's
recent records; checking one build has its own calls. Names are the official SDK's methods:

==================================  ==============================================  ============
api                                 request                                         reads
==================================  ==============================================  ============
``list_project_jobs``               ``GET /v1/job/{project_id}/list``               jobs
``show_job_list_by_project_id``     ``GET /v3/{project_id}/jobs`` (fallback)        jobs
``list_job``                        ``GET /v1/job/list`` (every job one can see)    jobs
``list_build_info_record_by_job_id`` ``GET /v1/record/{job_id}/list``               records
``list_build_info_record``          ``GET /v3/jobs/{job_id}/build-info-records``    records
``show_list_history``               ``GET /v3/jobs/{job_id}/history``               records
``show_build_details``              ``GET /v1/job/{job_id}/{build_no}/build-info``  one build
``show_job_build_record_detail``    ``GET /v1/record/{job_id}/{build_no}/record-info``  one build
``show_record_detail``              ``GET /v4/jobs/{job_id}/{build_no}/record-info``    one build
``show_record_info``                ``GET /v3/jobs/{job_id}/{build_no}/record-info``    one build
==================================  ==============================================  ============

Each group is listed in the order it is tried: the next one when the service answers 404
``CB.00060214`` ("URL not found") for the one before (:data:`JOB_LIST_APIS`,
:data:`RECORD_LIST_APIS`, :data:`BUILD_APIS`).

The answers, as the notes on CodeArts describe them, and how they are read here:

* Job lists come in two shapes, both accepted: the live service's
  ``{"result": {"job_list": [...], "total": N}, "status": ...}`` and the SDK model's
  ``{"jobs": [...], "total": N}``.
* Record lists: ``{"result": {"job_build_states": [...], "page_index", "total_page",
  "total_record"}}``; the history: ``{"history_records": [...], "total": N}``.
* Counts may be numbers or strings of digits; times epoch milliseconds or ISO-8601 with an
  offset. A time without a zone (the history's ``yyyy-MM-dd HH:mm:ss``, whose zone nobody
  documents) is read as *unknown*, never guessed.
* The record lists' ``start_time``/``end_time`` query is ``yyyy-MM-dd HH:mm:ss`` in a zone the
  docs do not name: :func:`record_window` asks in UTC for a window a day wider than needed on
  both sides (wider than any UTC offset), and callers filter on each record's own epoch
  ``start_time``.
* A 2xx whose body carries an error code is that error, never a success
  (:func:`answer_error`).

Every parser is a pure function of the decoded JSON body and a text cleaner (the client's: one
line, capped, live secrets scrubbed), and never raises for what a body holds: a body of the
wrong shape is a :class:`ReadProblem` for that one call; an entry that cannot be read (no build
number, a job id that is not one) is left out and named in the page's ``unreadable``; a field
of the wrong type, a number out of range or a time that cannot be placed is read as absent.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Generic, NamedTuple, TypeVar

from yarl import URL

from bulkstop.apis import parse_error_body
from bulkstop.codes import build_ended
from bulkstop.models import BUILD_NO_MAX, JOB_ID_PATTERN, Reply

__all__ = [
    "BUILD_APIS",
    "JOB_LIST_APIS",
    "MAX_HISTORY_DAYS",
    "MAX_PAGE_SIZE",
    "RECORD_LIST_APIS",
    "WINDOW_MARGIN",
    "BuildRecord",
    "BuildState",
    "Clean",
    "JobInfo",
    "JobsPage",
    "Parser",
    "ReadApi",
    "ReadProblem",
    "ReadReply",
    "ReadRequest",
    "RecordWindow",
    "RecordsPage",
    "answer_error",
    "build_parser",
    "build_request",
    "history_interval",
    "jobs_request",
    "parse_build_details",
    "parse_history_page",
    "parse_jobs_page",
    "parse_record_info",
    "parse_records_page",
    "record_window",
    "records_parser",
    "records_request",
]

T = TypeVar("T")

#: Cleans text a server chose: ``clean(value, limit)`` gives one line of at most ``limit``
#: characters (the client's cleaner also scrubs its live secrets).
Clean = Callable[[str, int], str]

#: The largest ``page_size`` / ``limit`` the list APIs accept.
MAX_PAGE_SIZE: Final = 100
#: The history's ``interval`` (days back) is at most this.
MAX_HISTORY_DAYS: Final = 30
#: How much wider than needed a record list's window is asked for, on both sides: more than
#: any UTC offset (−12 h to +14 h), so the undocumented zone of the query cannot hide a build.
WINDOW_MARGIN: Final = timedelta(days=1)
_WINDOW_FORMAT: Final = "%Y-%m-%d %H:%M:%S"

# Caps on server text kept in a record (real values are far shorter).
_MAX_NAME: Final = 200
_MAX_WORD: Final = 64
_MAX_BRANCH: Final = 255
_MAX_COMMIT: Final = 64
_MAX_PERSON: Final = 128
_MAX_PROBLEM: Final = 200
#: The most unreadable entries of one page that are named (the rest are counted).
_MAX_NAMED: Final = 3
#: Counts above this are not believed (a page of int32 builds cannot hold more).
_MAX_COUNT: Final = 2**31 - 1
#: Epoch milliseconds believed as a time: after 1970, before 2100.
_MAX_EPOCH_MS: Final = 4_102_444_800_000
_DIGITS: Final = re.compile(r"[0-9]{1,13}")
_MAX_TIME_TEXT: Final = 40


class ReadApi(enum.StrEnum):
    """The read APIs bulkstop calls, named as the official SDK names its methods."""

    LIST_PROJECT_JOBS = "list_project_jobs"
    SHOW_JOB_LIST_BY_PROJECT_ID = "show_job_list_by_project_id"
    LIST_JOB = "list_job"
    LIST_BUILD_INFO_RECORD_BY_JOB_ID = "list_build_info_record_by_job_id"
    LIST_BUILD_INFO_RECORD = "list_build_info_record"
    SHOW_LIST_HISTORY = "show_list_history"
    SHOW_BUILD_DETAILS = "show_build_details"
    SHOW_JOB_BUILD_RECORD_DETAIL = "show_job_build_record_detail"
    SHOW_RECORD_DETAIL = "show_record_detail"
    SHOW_RECORD_INFO = "show_record_info"


#: The jobs of a CodeArts project, in the order tried.
JOB_LIST_APIS: Final = (ReadApi.LIST_PROJECT_JOBS, ReadApi.SHOW_JOB_LIST_BY_PROJECT_ID)
#: A job's records, in the order tried (the current API first, then the outdated ones).
RECORD_LIST_APIS: Final = (
    ReadApi.LIST_BUILD_INFO_RECORD_BY_JOB_ID,
    ReadApi.LIST_BUILD_INFO_RECORD,
    ReadApi.SHOW_LIST_HISTORY,
)
#: One build, in the order tried: ``building`` is the plainest answer.
BUILD_APIS: Final = (
    ReadApi.SHOW_BUILD_DETAILS,
    ReadApi.SHOW_JOB_BUILD_RECORD_DETAIL,
    ReadApi.SHOW_RECORD_DETAIL,
    ReadApi.SHOW_RECORD_INFO,
)


class ReadRequest(NamedTuple):
    """One read call: which API, its path segments below the endpoint and its query."""

    api: ReadApi
    path: tuple[str, ...]
    query: tuple[tuple[str, str], ...] = ()

    def url(self, endpoint: URL) -> URL:
        url = endpoint.joinpath(*self.path)
        return url.with_query(self.query) if self.query else url


class ReadProblem(NamedTuple):
    """A 2xx answer whose body is not this API's answer: what is wrong with it, one line."""

    message: str


#: Reads one API's decoded 2xx body: its value, or what is wrong with it.
Parser = Callable[[Any, Clean], T | ReadProblem]


class JobInfo(NamedTuple):
    """One job of a job list."""

    job_id: str
    job_name: str = ""
    #: when its last build started (epoch ms in the answer); ``None`` when not given
    last_build_time: datetime | None = None


class JobsPage(NamedTuple):
    """One page of a job list."""

    jobs: tuple[JobInfo, ...]
    #: entries on the page, readable or not (a page shorter than asked is the last)
    entries: int
    total: int | None
    #: what was wrong with the entries left out (at most a few named, the rest counted)
    unreadable: tuple[str, ...] = ()


class BuildRecord(NamedTuple):
    """One build of a record list or of the history."""

    build_no: int
    #: the build's state word (``state``, or the history's ``result``), e.g. ``SUCCESS``
    state: str = ""
    #: ``job_running_status``, e.g. ``Finished``
    running_status: str = ""
    #: ``None`` when the answer gives no time that can be placed (see the module docstring)
    start_time: datetime | None = None
    branch: str = ""
    commit_id: str = ""
    trigger_type: str = ""
    executor: str = ""

    @property
    def ended(self) -> bool:
        """Whether the record says positively that the build ended (:func:`build_ended`)."""
        return build_ended(job_running_status=self.running_status, status=self.state)

    @property
    def status(self) -> str:
        """The word to show for the build: its state, else its running status."""
        return self.state or self.running_status


class RecordsPage(NamedTuple):
    """One page of a record list or of the history."""

    records: tuple[BuildRecord, ...]
    entries: int
    total_records: int | None = None
    total_pages: int | None = None
    unreadable: tuple[str, ...] = ()


class BuildState(NamedTuple):
    """What a one-build API says: has the build ended, and the service's own word for it."""

    ended: bool
    status: str = ""
    #: the build the answer says it is about (record-info's ``build_no``); ``None``: not said
    build_no: int | None = None


class RecordWindow(NamedTuple):
    """The ``start_time``/``end_time`` of a record list query (aware datetimes)."""

    start: datetime
    end: datetime

    def params(self) -> tuple[tuple[str, str], tuple[str, str]]:
        """The two query parameters, ``yyyy-MM-dd HH:mm:ss`` in UTC."""
        return (
            ("start_time", self.start.astimezone(UTC).strftime(_WINDOW_FORMAT)),
            ("end_time", self.end.astimezone(UTC).strftime(_WINDOW_FORMAT)),
        )


def record_window(low: datetime, high: datetime, margin: timedelta = WINDOW_MARGIN) -> RecordWindow:
    """The window to ask for so that every build started in ``[low, high]`` is listed.

    ``margin`` wider on both sides (the query's zone is undocumented), whole seconds (the
    format has no fraction: the start rounds down, the end up). Raises ``ValueError`` for a
    naive datetime or ``low`` after ``high``.
    """
    if low.tzinfo is None or high.tzinfo is None:
        raise ValueError("record_window needs aware datetimes (a time zone)")
    if low > high:
        raise ValueError("record_window: low is after high")
    start = (low - margin).astimezone(UTC).replace(microsecond=0)
    end = (high + margin).astimezone(UTC)
    if end.microsecond:
        end = end.replace(microsecond=0) + timedelta(seconds=1)
    return RecordWindow(start, end)


def history_interval(start: datetime, now: datetime) -> int:
    """The history's ``interval`` (whole days back from ``now``) covering ``start``, ≤ 30."""
    days = math.ceil((now - start).total_seconds() / 86400.0)
    return max(1, min(MAX_HISTORY_DAYS, days))


# --- requests ------------------------------------------------------------------------------


def _paging(page_index: int, page_size: int) -> tuple[tuple[str, str], ...]:
    if page_index < 0 or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_index must be ≥ 0 and page_size in 1..{MAX_PAGE_SIZE}")
    return (("page_index", str(page_index)), ("page_size", str(page_size)))


def jobs_request(
    api: ReadApi, project_id: str | None, page_index: int, page_size: int = MAX_PAGE_SIZE
) -> ReadRequest:
    """A page of a job list: a project's (``project_id``) or every job's (``list_job``)."""
    query = _paging(page_index, page_size)
    if api is ReadApi.LIST_JOB:
        return ReadRequest(api, ("v1", "job", "list"), query)
    if project_id is None:
        raise ValueError(f"{api} needs a project id")
    if api is ReadApi.LIST_PROJECT_JOBS:
        return ReadRequest(api, ("v1", "job", project_id, "list"), query)
    if api is ReadApi.SHOW_JOB_LIST_BY_PROJECT_ID:
        return ReadRequest(api, ("v3", project_id, "jobs"), query)
    raise ValueError(f"{api} is not a job list API")


def records_request(
    api: ReadApi,
    job_id: str,
    window: RecordWindow,
    page_index: int,
    page_size: int = MAX_PAGE_SIZE,
    *,
    now: datetime,
) -> ReadRequest:
    """A page of a job's records started within ``window`` (the history: since its start)."""
    paging = _paging(page_index, page_size)
    if api is ReadApi.LIST_BUILD_INFO_RECORD_BY_JOB_ID:
        return ReadRequest(api, ("v1", "record", job_id, "list"), (*window.params(), *paging))
    if api is ReadApi.LIST_BUILD_INFO_RECORD:
        path = ("v3", "jobs", job_id, "build-info-records")
        return ReadRequest(api, path, (*window.params(), *paging))
    if api is ReadApi.SHOW_LIST_HISTORY:
        query = (
            ("offset", str(page_index)),
            ("limit", str(page_size)),
            ("interval", str(history_interval(window.start, now))),
        )
        return ReadRequest(api, ("v3", "jobs", job_id, "history"), query)
    raise ValueError(f"{api} is not a record list API")


def build_request(api: ReadApi, job_id: str, build_no: int) -> ReadRequest:
    """One build's state."""
    number = str(build_no)
    paths = {
        ReadApi.SHOW_BUILD_DETAILS: ("v1", "job", job_id, number, "build-info"),
        ReadApi.SHOW_JOB_BUILD_RECORD_DETAIL: ("v1", "record", job_id, number, "record-info"),
        ReadApi.SHOW_RECORD_DETAIL: ("v4", "jobs", job_id, number, "record-info"),
        ReadApi.SHOW_RECORD_INFO: ("v3", "jobs", job_id, number, "record-info"),
    }
    path = paths.get(api)
    if path is None:
        raise ValueError(f"{api} is not a one-build API")
    return ReadRequest(api, path)


# --- answers -------------------------------------------------------------------------------


def answer_error(payload: Any) -> tuple[str, str] | None:
    """``(code, message)`` when a 2xx body carries an error code, else ``None``.

    Every error form the stop calls accept (``error_code``, ``errorCode``, ``code``, nested
    under ``error``), and the ``err_code``/``message`` of the outdated v3 read shape.
    """
    code, message = parse_error_body(payload)
    if code:
        return code, message
    if isinstance(payload, dict):
        err_code = payload.get("err_code")
        if isinstance(err_code, str) and err_code.strip():
            text = payload.get("message")
            return err_code, "" if text is None else str(text)
    return None


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


def _count(value: Any, *, low: int = 0, high: int = _MAX_COUNT) -> int | None:
    """A count given as a JSON integer or a string of digits, in ``low..high``; else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text.isascii() or not text.isdigit() or len(text) > 10:
            return None
        value = int(text)
    if not isinstance(value, int) or not low <= value <= high:
        return None
    return value


def _time(value: Any) -> datetime | None:
    """An epoch-ms number (or digits), or ISO-8601 text with an offset; ``None`` otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        if _DIGITS.fullmatch(text):
            value = int(text)
        else:
            if not text or len(text) > _MAX_TIME_TEXT:
                return None
            try:
                moment = datetime.fromisoformat(text)
                # A time without a zone is not placed: its zone is what nobody documents.
                return moment.astimezone(UTC) if moment.tzinfo is not None else None
            except (ValueError, OverflowError):  # not ISO-8601, or past year 9999 in UTC
                return None
    # Compared before any float arithmetic: a huge integer cannot even become a float.
    if isinstance(value, int | float) and 0 < value < _MAX_EPOCH_MS:
        return datetime.fromtimestamp(value / 1000.0, UTC)
    return None  # NaN compares false: it ends here too


def _text(value: Any, limit: int, clean: Clean) -> str:
    if isinstance(value, str):
        return clean(value, limit)
    if isinstance(value, int) and not isinstance(value, bool):
        return clean(str(value), limit) if abs(value) < 10**20 else ""
    return ""


def _summarise(problems: list[str], count: int) -> tuple[str, ...]:
    named = problems[:_MAX_NAMED]
    if count > len(named):
        named.append(f"and {count - len(named)} more")
    return tuple(named)


def _entries(container: dict[str, Any], key: str, where: str) -> list[Any] | ReadProblem:
    entries = container.get(key)
    if not isinstance(entries, list):
        return ReadProblem(f"{where}{key} is {_kind(entries)}, not an array")
    return entries


def _result(payload: Any, clean: Clean) -> dict[str, Any] | ReadProblem:
    """The v1 envelope's ``result`` object (its ``status`` is the call's, not the build's)."""
    if not isinstance(payload, dict):
        return ReadProblem(f"the answer is {_kind(payload)}, not an object")
    result = payload.get("result")
    if not isinstance(result, dict):
        status = payload.get("status")
        if isinstance(status, str) and status != "success":
            detail = _text(payload.get("error"), _MAX_PROBLEM, clean)
            shown = clean(status, _MAX_WORD)
            return ReadProblem(
                f"the call answered status {shown!r}{': ' + detail if detail else ''}"
            )
        return ReadProblem(f"result is {_kind(result)}, not an object")
    return result


def parse_jobs_page(payload: Any, clean: Clean) -> JobsPage | ReadProblem:
    """A job list page, in the live shape (``result.job_list``) or the SDK's (``jobs``)."""
    if not isinstance(payload, dict):
        return ReadProblem(f"the answer is {_kind(payload)}, not an object")
    result = payload.get("result")
    if isinstance(result, dict) and "job_list" in result:
        container, key, where = result, "job_list", "result."
    elif "jobs" in payload:
        container, key, where = payload, "jobs", ""
    else:
        return ReadProblem("the answer has neither result.job_list nor jobs")
    entries = _entries(container, key, where)
    if isinstance(entries, ReadProblem):
        return entries
    jobs: list[JobInfo] = []
    problems: list[str] = []
    bad = 0
    for position, entry in enumerate(entries):
        job = _job(entry, clean)
        if isinstance(job, str):
            bad += 1
            if len(problems) < _MAX_NAMED:
                problems.append(f"{where}{key}[{position}]: {job}")
            continue
        jobs.append(job)
    return JobsPage(
        tuple(jobs), len(entries), _count(container.get("total")), _summarise(problems, bad)
    )


def _job(entry: Any, clean: Clean) -> JobInfo | str:
    if not isinstance(entry, dict):
        return f"is {_kind(entry)}, not an object"
    job_id = entry.get("id")
    if not isinstance(job_id, str) or not JOB_ID_PATTERN.fullmatch(job_id):
        shown = clean(job_id, 40) if isinstance(job_id, str) else _kind(job_id)
        return f"id: not a job id ({shown})"
    return JobInfo(
        job_id=job_id,
        job_name=_text(entry.get("job_name"), _MAX_NAME, clean),
        last_build_time=_time(entry.get("last_build_time")),
    )


def parse_records_page(payload: Any, clean: Clean) -> RecordsPage | ReadProblem:
    """A record list page: ``result.job_build_states`` and its counts (strings or numbers)."""
    result = _result(payload, clean)
    if isinstance(result, ReadProblem):
        return result
    entries = _entries(result, "job_build_states", "result.")
    if isinstance(entries, ReadProblem):
        return entries
    records, unreadable = _records(entries, "result.job_build_states", _record, clean)
    return RecordsPage(
        records,
        len(entries),
        total_records=_count(result.get("total_record")),
        total_pages=_count(result.get("total_page")),
        unreadable=unreadable,
    )


def parse_history_page(payload: Any, clean: Clean) -> RecordsPage | ReadProblem:
    """A history page: ``history_records`` and ``total``."""
    if not isinstance(payload, dict):
        return ReadProblem(f"the answer is {_kind(payload)}, not an object")
    entries = _entries(payload, "history_records", "")
    if isinstance(entries, ReadProblem):
        return entries
    records, unreadable = _records(entries, "history_records", _history_record, clean)
    return RecordsPage(
        records, len(entries), total_records=_count(payload.get("total")), unreadable=unreadable
    )


def _records(
    entries: list[Any],
    where: str,
    read: Callable[[Any, Clean], BuildRecord | str],
    clean: Clean,
) -> tuple[tuple[BuildRecord, ...], tuple[str, ...]]:
    records: list[BuildRecord] = []
    problems: list[str] = []
    bad = 0
    for position, entry in enumerate(entries):
        record = read(entry, clean)
        if isinstance(record, str):
            bad += 1
            if len(problems) < _MAX_NAMED:
                problems.append(f"{where}[{position}]: {record}")
            continue
        records.append(record)
    return tuple(records), _summarise(problems, bad)


def _number(entry: Any, key: str, clean: Clean) -> int | str:
    if not isinstance(entry, dict):
        return f"is {_kind(entry)}, not an object"
    raw = entry.get(key)
    number = _count(raw, low=1, high=BUILD_NO_MAX)
    if number is None:
        shown = repr(clean(raw, 20)) if isinstance(raw, str) else _kind(raw)
        return f"{key}: not a build number ({shown})"
    return number


def _record(entry: Any, clean: Clean) -> BuildRecord | str:
    number = _number(entry, "number", clean)
    if isinstance(number, str):
        return number
    commit = entry.get("commit_id")
    if not isinstance(commit, str):
        info = entry.get("commit_info")
        commit = info.get("commit_id") if isinstance(info, dict) else None
    return BuildRecord(
        build_no=number,
        state=_text(entry.get("state"), _MAX_WORD, clean),
        running_status=_text(entry.get("job_running_status"), _MAX_WORD, clean),
        start_time=_time(entry.get("start_time")),
        branch=_text(entry.get("code_branch"), _MAX_BRANCH, clean),
        commit_id=_text(commit, _MAX_COMMIT, clean),
        trigger_type=_text(entry.get("trigger_type"), _MAX_WORD, clean),
        executor=_text(entry.get("executor"), _MAX_PERSON, clean),
    )


def _history_record(entry: Any, clean: Clean) -> BuildRecord | str:
    number = _number(entry, "build_number", clean)
    if isinstance(number, str):
        return number
    return BuildRecord(
        build_no=number,
        state=_text(entry.get("result"), _MAX_WORD, clean),
        start_time=_time(entry.get("start_time")),
    )


def parse_build_details(payload: Any, clean: Clean) -> BuildState | ReadProblem:
    """``show_build_details``: ``result.building`` (and ``build_result``, the word shown)."""
    result = _result(payload, clean)
    if isinstance(result, ReadProblem):
        return result
    building = result.get("building")
    word = _text(result.get("build_result"), _MAX_WORD, clean)
    if not isinstance(building, bool) and not word:
        return ReadProblem("result has neither building (a boolean) nor build_result")
    status = word or ("building" if building is True else "")
    return BuildState(build_ended(building=building, status=word), status)


def parse_record_info(payload: Any, clean: Clean) -> BuildState | ReadProblem:
    """The three record-info APIs: ``result.status`` (v3's also carries ``success``)."""
    if isinstance(payload, dict) and payload.get("success") is False:
        message = _text(payload.get("message"), _MAX_PROBLEM, clean)
        return ReadProblem(f"success is false{': ' + message if message else ''}")
    result = _result(payload, clean)
    if isinstance(result, ReadProblem):
        return result
    status = _text(result.get("status"), _MAX_WORD, clean)
    if not status:
        return ReadProblem(f"result.status is {_kind(result.get('status'))}, not a status word")
    number = _count(result.get("build_no"), low=1, high=BUILD_NO_MAX)
    return BuildState(build_ended(status=status), status, number)


def records_parser(api: ReadApi) -> Parser[RecordsPage]:
    """The parser of a record list API's answer."""
    if api is ReadApi.SHOW_LIST_HISTORY:
        return parse_history_page
    if api in RECORD_LIST_APIS:
        return parse_records_page
    raise ValueError(f"{api} is not a record list API")


def build_parser(api: ReadApi) -> Parser[BuildState]:
    """The parser of a one-build API's answer."""
    if api is ReadApi.SHOW_BUILD_DETAILS:
        return parse_build_details
    if api in BUILD_APIS:
        return parse_record_info
    raise ValueError(f"{api} is not a one-build API")


@dataclass(frozen=True, slots=True)
class ReadReply(Generic[T]):
    """What one read call produced, as the client saw it: exactly one of three things.

    * ``value``: the parsed answer of a 2xx;
    * ``error``: an error answer (also a 2xx whose body carries an error code), a timeout or a
      connection failure, as a :class:`~bulkstop.models.Reply` for
      :func:`~bulkstop.retry.classify` to judge;
    * ``problem``: a 2xx whose body is not this API's answer (one line; not worth retrying).
    """

    value: T | None = None
    error: Reply | None = None
    problem: str = ""
    http_status: int | None = None
    request_id: str = ""
