"""Every code, message and status string the simulator answers with, in one place.

Codes documented by CodeArts / API Gateway (see the project's CodeArts notes) are used as
documented. The ones marked *simulator-chosen* are not documented anywhere; they are plausible
values picked so that clients can be tested, and a client must not rely on their exact text.
"""

from __future__ import annotations

import json
from typing import Final

__all__ = [
    "BUILD_STATUS_ABORTED",
    "BUILD_STATUS_ABORTING",
    "BUILD_STATUS_FAILURE",
    "BUILD_STATUS_RUNNING",
    "BUILD_STATUS_SUCCESS",
    "JOB_RUNNING_STATUS_FINISHED",
    "JOB_RUNNING_STATUS_RUNNING",
    "V1_NOT_STOPPED",
    "ErrorReply",
    "error_body",
    "iam_error_body",
]

# --- documented CodeArts Build codes -------------------------------------------------------
CB_INVALID_PARAMETER: Final = ("CB.00060200", "invalid parameter")
CB_INVALID_JOB_ID: Final = ("CB.00060201", "invalid task id")
CB_TOO_MANY_REQUESTS: Final = ("CB.00060211", "too many requests, try again later")
CB_URL_NOT_FOUND: Final = ("CB.00060214", "URL not found")
CB_NETWORK_BUSY: Final = ("CB.00060100", "network busy")
CB_INTERNAL_ERROR: Final = ("CB.00060101", "internal error")

# --- simulator-chosen CodeArts codes (undocumented upstream) -------------------------------
#: 404 for a job that does not exist.
CB_JOB_NOT_FOUND: Final = ("CB.00060404", "the build task does not exist")
#: 403 for a job the caller may not operate.
CB_JOB_FORBIDDEN: Final = ("CB.00060403", "no permission to operate on this build task")
#: 404 for a build number a job of the world has not reached (or a record that is not there).
CB_BUILD_NOT_FOUND: Final = ("CB.00060405", "the build record does not exist")
#: 404 for a CodeArts project id that is not the world's project.
CB_PROJECT_NOT_FOUND: Final = ("CB.00060406", "the project does not exist")

# --- documented API Gateway codes ----------------------------------------------------------
APIG_AUTH_FAILED: Final = "APIG.0301"
APIG_TOKEN_EXPIRED: Final = ("APIG.0307", "The token must be updated.")
APIG_THROTTLED: Final = "APIG.0308"

# APIG.0301 messages: the gateway prefixes every reason with this text; the reasons are
# simulator-chosen. None of them ever carries the credential itself.
_AUTH_PREFIX = "Incorrect IAM authentication information: "
AUTH_NO_CREDENTIAL: Final = _AUTH_PREFIX + "x-auth-token not found"
AUTH_BAD_TOKEN: Final = _AUTH_PREFIX + "decrypt token fail"
AUTH_BAD_AK: Final = _AUTH_PREFIX + "ak not found"
AUTH_BAD_SIGNATURE: Final = _AUTH_PREFIX + "verify aksk signature fail"
AUTH_BAD_DATE: Final = _AUTH_PREFIX + "x-sdk-date is missing, malformed or out of range"
AUTH_AK_LOCKED: Final = _AUTH_PREFIX + "AK access failed to reach the limit,forbidden."
AUTH_BAD_HEADER: Final = _AUTH_PREFIX + "the Authorization header is malformed"

# --- build status strings -------------------------------------------------------------------
# ``SUCCESS``, ``FAILURE`` and ``ABORTED`` are the examples the docs give for a build's state;
# every one of them is a terminal word. ``RUNNING`` and ``ABORTING`` are simulator-chosen (the
# docs name no running value) and are deliberately *not* terminal words: a build that is being
# aborted is still running until its stop takes effect.
BUILD_STATUS_RUNNING: Final = "RUNNING"
BUILD_STATUS_ABORTING: Final = "ABORTING"
BUILD_STATUS_ABORTED: Final = "ABORTED"
BUILD_STATUS_SUCCESS: Final = "SUCCESS"
BUILD_STATUS_FAILURE: Final = "FAILURE"

#: ``job_running_status`` / ``last_job_running_status`` / running-status ``last_build_status``:
#: ``Finished`` is the documented example; the running value is simulator-chosen.
JOB_RUNNING_STATUS_FINISHED: Final = "Finished"
JOB_RUNNING_STATUS_RUNNING: Final = "Running"

#: A job's ``last_build_status`` in the job lists, from its last build's state. The words are the
#: documented ``build_status`` filter values; which state maps to which is simulator-chosen.
LAST_BUILD_STATUS: Final = {
    BUILD_STATUS_RUNNING: "building",
    BUILD_STATUS_ABORTING: "building",
    BUILD_STATUS_SUCCESS: "blue",
    BUILD_STATUS_FAILURE: "red",
    BUILD_STATUS_ABORTED: "aborted",
}

#: Trigger types of simulated builds. ``Manual`` is the documented example; the others are
#: simulator-chosen. The runaway timer job's builds are all ``TRIGGER_TIMER``.
TRIGGER_TYPES: Final = ("Manual", "Webhook", "Timer", "Pipeline")
TRIGGER_TIMER: Final = "Timer"

#: ``region`` of ``show_build_details`` (simulator-chosen).
REGION: Final = "cn-north-4"

#: The v1 read envelope's ``status`` of a call that was answered (documented).
V1_CALL_SUCCESS: Final = "success"

#: v1's ``status`` when the build was not stopped (simulator-chosen; success is ``"success"``).
V1_NOT_STOPPED: Final = "fail"

#: IAM answers in the Keystone error shape (simulator-chosen messages).
IAM_BAD_CREDENTIALS: Final = (401, "Unauthorized", "The username or password is wrong.")
IAM_BAD_REQUEST: Final = (400, "Bad Request", "The request body is invalid.")


class ErrorReply:
    """A prepared error answer: status and the encoded ``{"error_code", "error_msg"}`` body."""

    __slots__ = ("body", "code", "status")

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status = status
        self.code = code
        self.body = error_body(code, message)

    def __repr__(self) -> str:
        return f"ErrorReply({self.status}, {self.code!r})"


def error_body(code: str, message: str) -> bytes:
    """The CodeArts / gateway error body, encoded."""
    return json.dumps({"error_code": code, "error_msg": message}).encode()


def iam_error_body(status: int, title: str, message: str) -> bytes:
    """An IAM (Keystone-shaped) error body, encoded."""
    return json.dumps({"error": {"code": status, "title": title, "message": message}}).encode()


# Prepared replies used on the request path (encoded once, at import).
INVALID_PARAMETER = ErrorReply(400, *CB_INVALID_PARAMETER)
INVALID_JOB_ID = ErrorReply(400, *CB_INVALID_JOB_ID)
URL_NOT_FOUND = ErrorReply(404, *CB_URL_NOT_FOUND)
JOB_NOT_FOUND = ErrorReply(404, *CB_JOB_NOT_FOUND)
JOB_FORBIDDEN = ErrorReply(403, *CB_JOB_FORBIDDEN)
BUILD_NOT_FOUND = ErrorReply(404, *CB_BUILD_NOT_FOUND)
PROJECT_NOT_FOUND = ErrorReply(404, *CB_PROJECT_NOT_FOUND)
TOKEN_EXPIRED = ErrorReply(401, *APIG_TOKEN_EXPIRED)
INTERNAL_ERROR = ErrorReply(500, *CB_INTERNAL_ERROR)
NETWORK_BUSY = ErrorReply(500, *CB_NETWORK_BUSY)
