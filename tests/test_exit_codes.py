"""Exit codes: one enum, and each exception of the tree names the code it ends a command with."""

from __future__ import annotations

import pytest

from bulkstop.errors import (
    BulkstopError,
    CredentialsRejected,
    ExitCode,
    InputError,
    ReportMismatchError,
    RunAborted,
    ServerFailing,
    SystematicFailure,
    UsageError,
)
from bulkstop.retry import SystematicFault


def test_exit_codes_are_the_documented_numbers() -> None:
    assert {code.name: int(code) for code in ExitCode} == {
        "OK": 0,
        "ROWS": 1,
        "USAGE": 2,
        "ABORTED": 3,
        "INTERRUPTED": 130,
    }


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (BulkstopError("x"), ExitCode.USAGE),
        (UsageError("x"), ExitCode.USAGE),
        (InputError("x"), ExitCode.USAGE),
        (ReportMismatchError("x"), ExitCode.USAGE),
        (RunAborted("x"), ExitCode.ABORTED),
        (CredentialsRejected("x"), ExitCode.ABORTED),
        (ServerFailing("x"), ExitCode.ABORTED),
        # the run did start, but as asked it cannot work: as for a usage error
        (
            SystematicFailure(
                "x", fault=SystematicFault.DNS, targets=5, evidence="5 of 5 first calls"
            ),
            ExitCode.USAGE,
        ),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else None,
)
def test_each_exception_names_its_exit_code(error: BulkstopError, code: ExitCode) -> None:
    assert error.exit_code is code
