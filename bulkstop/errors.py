"""bulkstop's exceptions: one tree, for misuse and for the run as a whole; and its exit codes.

Per-target failures are never exceptions: they are :class:`bulkstop.Result` records with an
:class:`bulkstop.Outcome`. What is raised is about the run, and each class names the
:class:`ExitCode` the command line ends with for it (``exc.exit_code``)::

    BulkstopError
    ├── UsageError            the run cannot start: bad flags, missing credentials  (exit 2)
    │   └── InputError        the input cannot be read as a whole: file, format, header (exit 2)
    │       └── ReportMismatchError  --resume given a report of another input          (exit 2)
    └── RunAborted            the run stopped early on purpose; the rest is ``aborted``  (exit 3)
        ├── CredentialsRejected   the auth circuit breaker tripped                    (exit 3)
        ├── ServerFailing         the server failed (nearly) every call for a while   (exit 3)
        └── SystematicFailure     the first answers show the call itself is wrong:    (exit 2)
                                  a handful of targets were sent, the rest was not

Every ``RunAborted`` is raised when the run's ``async with`` block is left, after every row's
result was handed out: the rows not finished are ``aborted``, and ``--resume`` runs them.
``SystematicFailure`` is one too — the run did start — but it says what ``UsageError`` says,
that the run as asked cannot work, so it exits 2, as a usage error does.

Lower-level errors (aiohttp, OSError, json, csv) are mapped to these once, where they occur,
with ``raise ... from exc``; messages never carry a secret.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from bulkstop.retry import SystematicFault

__all__ = [
    "BulkstopError",
    "CredentialsRejected",
    "ExitCode",
    "InputError",
    "ReportMismatchError",
    "RunAborted",
    "ServerFailing",
    "SystematicFailure",
    "UsageError",
]


class ExitCode(enum.IntEnum):
    """How a ``bulkstop`` command ends: the process's exit status (also in the README)."""

    #: every valid target ended ``stopped`` or ``not_stopped``
    OK = 0
    #: some row ended otherwise (failed, rejected, invalid, uncertain, ...)
    ROWS = 1
    #: usage or configuration error, nothing was sent; or the first answers showed that the
    #: call itself is wrong (a handful were sent, the rest is ``aborted``)
    USAGE = 2
    #: aborted on purpose: failure threshold, auth circuit breaker, or a failing server
    ABORTED = 3
    #: interrupted (SIGINT/SIGTERM): in-flight calls drained, the rest ``aborted``
    INTERRUPTED = 130


class BulkstopError(Exception):
    """Base of every exception bulkstop raises on purpose."""

    #: the exit status of a command that ends with this error
    exit_code: ClassVar[ExitCode] = ExitCode.USAGE


class UsageError(BulkstopError):
    """The run cannot start as asked. Nothing has been sent."""

    exit_code = ExitCode.USAGE


class InputError(UsageError):
    """The input cannot be read as a whole (missing, a directory, not UTF-8, no usable header).

    ``str(exc)`` is a one-line message that names the source and, where known, the line.
    """


class ReportMismatchError(InputError):
    """``--resume`` was given a report that does not belong to this input."""


class RunAborted(BulkstopError):
    """The run was ended early on purpose; the remaining rows are reported ``aborted``."""

    exit_code = ExitCode.ABORTED


class CredentialsRejected(RunAborted):
    """Consecutive authentication failures tripped the circuit breaker."""


class ServerFailing(RunAborted):
    """The server failed (nearly) every call for a sustained time (see FailingServerGuard)."""


class SystematicFailure(RunAborted):
    """The run's first answers all showed that the call itself is wrong.

    ``fault`` says how (:class:`bulkstop.retry.SystematicFault`); ``targets`` how many
    targets showed it, and ``evidence`` what they showed (e.g. ``"404 CB.00060214 for 5 of 5
    first calls"``). ``str(exc)`` is the diagnosis; the CLI adds which flag to change.
    """

    #: the run as asked cannot work, as for a usage error
    exit_code = ExitCode.USAGE

    def __init__(
        self, message: str, *, fault: SystematicFault, targets: int, evidence: str
    ) -> None:
        super().__init__(message)
        self.fault = fault
        self.targets = targets
        self.evidence = evidence
