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
    "BUILD_STATUS_FAILED",
    "BUILD_STATUS_RUNNING",
    "BUILD_STATUS_SUCCESS",
    "V1_NOT_STOPPED",
    "ErrorReply",
    "error_body",
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

# --- build status strings (simulator-chosen: CodeArts does not document them) ---------------
BUILD_STATUS_RUNNING: Final = "RUNNING"
BUILD_STATUS_ABORTED: Final = "ABORTED"
BUILD_STATUS_SUCCESS: Final = "SUCCESS"
BUILD_STATUS_FAILED: Final = "FAILED"

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
TOKEN_EXPIRED = ErrorReply(401, *APIG_TOKEN_EXPIRED)
INTERNAL_ERROR = ErrorReply(500, *CB_INTERNAL_ERROR)
NETWORK_BUSY = ErrorReply(500, *CB_NETWORK_BUSY)
