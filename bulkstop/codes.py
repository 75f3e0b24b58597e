"""What CodeArts' answers mean: its error codes and statuses, in one place.

The facts (``CODEARTS.md`` in the project's notes; Huawei Cloud's API docs and the official
SDK) and bulkstop's reading of them:

==============================  =============================================================
answer                          meaning for bulkstop
==============================  =============================================================
429, or APIG.0308 / CB.00060211 throttling ("too many requests"), whatever the status
at any status                   (CB.00060211 is documented with 400 and with 500)
401 APIG.0307                   the token must be updated: refresh it once, then retry
401 / 403                       an authentication / authorisation failure (the auth breaker)
404 CB.00060214                 "URL not found": the route, not the job, is unknown — the
                                endpoint does not serve that API
other 404, 401, 403             the target's outcome: not found, unauthorized, forbidden
other 4xx                       rejected (invalid parameter or job id)
5xx (not throttling), 408       a server failure: retried, and it may have been carried out
==============================  =============================================================

"May have been carried out" matters after a crash or a retry: a call that got no answer, or
a server error other than throttling, may have reached the service and stopped the build, so
a later "not stopped" for it is ``uncertain``, not ``not_stopped``. A definite 4xx did not,
and a throttled call was turned away at the gateway.

The read APIs add two readings:

==============================  =============================================================
answer                          meaning for bulkstop
==============================  =============================================================
DEVCB.00031006, at any status   the job does not exist (the v1 job APIs answer it with 422)
CB.00060100 / CB.00060101 in a  a server failure ("network busy", "internal error"), as with
2xx body                        a 500: a 2xx whose body carries an error code is that error
==============================  =============================================================

Has a build ended? (:func:`build_ended`) — on the safe side: only when an answer says so
positively. ``building: false``; a ``job_running_status`` of ``Finished`` (any case); or a
status that is a known terminal word (:data:`TERMINAL_BUILD_STATUSES`, any case). Anything
else — a running word, a word nobody documented, an empty or missing value, a value of the
wrong type — means *not ended*, and so does any answer that also says ``building: true``.
Every status word CodeArts documents is an example, not an enumeration, so a word this module
does not know must never count as ended: when finding builds to stop, a finished build listed
by mistake costs one stop call that answers "not stopped"; a running build missed by mistake
keeps running. A build being aborted (the simulator's ``ABORTING``) has not ended.
"""

from __future__ import annotations

from typing import Final

from bulkstop.models import Outcome

__all__ = [
    "AUTH_FAILURE_STATUSES",
    "FINISHED_RUNNING_STATUS",
    "FORBIDDEN_STATUS",
    "JOB_NOT_FOUND_CODE",
    "SERVER_FAILURE_CODES",
    "TERMINAL_BUILD_STATUSES",
    "THROTTLE_CODES",
    "TOKEN_EXPIRED_CODE",
    "URL_NOT_FOUND_CODE",
    "build_ended",
    "error_outcome",
    "is_job_not_found",
    "is_server_failure",
    "is_throttling",
    "is_token_expired",
    "may_have_applied",
]

#: Error codes that mean "too many requests" whatever the HTTP status (400, 429 or 500).
THROTTLE_CODES: Final[frozenset[str]] = frozenset({"APIG.0308", "CB.00060211"})
#: "The token must be updated." — refresh the credential once, then retry.
TOKEN_EXPIRED_CODE: Final = "APIG.0307"  # noqa: S105 - an error code, not a secret
#: 404 "URL not found": the route, not the job, is unknown (the API is not served there).
URL_NOT_FOUND_CODE: Final = "CB.00060214"
#: Statuses that say the credential (401) or its rights (403) are the problem.
AUTH_FAILURE_STATUSES: Final[frozenset[int]] = frozenset({401, 403})
#: The status of "no permission on this job": about one job as much as about the credential.
FORBIDDEN_STATUS: Final = 403
#: "Job not found" on the v1 job APIs (answered with HTTP 422).
JOB_NOT_FOUND_CODE: Final = "DEVCB.00031006"
#: "Network busy" and "internal error": server failures, whatever status they come with.
SERVER_FAILURE_CODES: Final[frozenset[str]] = frozenset({"CB.00060100", "CB.00060101"})

#: Build statuses that say a build has ended, upper case (compared case-insensitively). The
#: docs' examples (SUCCESS, FAILURE, ABORTED, SCHEDULE_FAILURE) and the other usual terminal
#: words; a word not listed here never counts as ended.
TERMINAL_BUILD_STATUSES: Final[frozenset[str]] = frozenset(
    {
        "SUCCESS",
        "FAILURE",
        "FAILED",
        "ABORTED",
        "CANCELED",
        "CANCELLED",
        "TIMEOUT",
        "SCHEDULE_FAILURE",
    }
)
#: ``job_running_status`` of an ended build (the documented example), compared case-insensitively.
FINISHED_RUNNING_STATUS: Final = "Finished"

_OUTCOME_BY_STATUS: Final[dict[int, Outcome]] = {
    401: Outcome.UNAUTHORIZED,
    403: Outcome.FORBIDDEN,
    404: Outcome.NOT_FOUND,
}


def is_throttling(status: int | None, code: str) -> bool:
    """Whether an error answer says "too many requests" (its code wins over its status)."""
    return code in THROTTLE_CODES or status == 429


def is_token_expired(status: int | None, code: str) -> bool:
    """Whether an error answer says the token must be refreshed."""
    return status == 401 and code == TOKEN_EXPIRED_CODE


def is_server_failure(status: int | None, code: str) -> bool:
    """Whether an error answer is a server failure worth retrying (5xx or 408, not throttling)."""
    if status is None or is_throttling(status, code):
        return False
    return status >= 500 or status == 408


def may_have_applied(status: int | None, code: str) -> bool:
    """Whether a call answered this way may still have been carried out by the service.

    ``status`` ``None`` means no answer at all (a timeout, a cut connection): it may have been.
    A server failure may have been too; a throttled call or any other 4xx was not.
    """
    if status is None:
        return True
    return status >= 500 and not is_throttling(status, code)


def error_outcome(status: int) -> Outcome:
    """The final outcome of a non-retryable error answer with this status."""
    return _OUTCOME_BY_STATUS.get(status, Outcome.REJECTED)


def is_job_not_found(status: int | None, code: str) -> bool:
    """Whether an error answer says the job does not exist: ``DEVCB.00031006`` at any status.

    (A 404 with another CodeArts code says it too; :func:`error_outcome` reads that one.)
    """
    return code == JOB_NOT_FOUND_CODE


def _word(value: object) -> str:
    """A status word as compared: stripped and upper-cased; empty for anything not a string."""
    return value.strip().upper() if isinstance(value, str) else ""


def build_ended(
    *,
    building: object = None,
    job_running_status: object = None,
    status: object = None,
) -> bool:
    """Whether an answer says positively that a build has ended (the safe-side rule above).

    Pass what the answer holds, as it came (wrong types are fine: they say nothing):
    ``building`` from ``show_build_details``; ``job_running_status`` from a build record;
    ``status`` for a build's state word (a record's ``state``, RecordInfo's ``status``, the
    history's ``result``, ``build_result``). ``building: true`` wins over any other field.
    """
    if building is True:
        return False
    if building is False:
        return True
    if _word(job_running_status) == FINISHED_RUNNING_STATUS.upper():
        return True
    return _word(status) in TERMINAL_BUILD_STATUSES
