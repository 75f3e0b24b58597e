"""bulkstop: stop many Huawei Cloud CodeArts Build runs at once, safely, as fast as allowed.

The library in five names::

    import bulkstop

    async with bulkstop.CodeArtsClient(endpoint, bulkstop.TokenAuth(token)) as client:
        stopper = bulkstop.Stopper(client, pacer=bulkstop.Pacer(rate=10))
        async with stopper.run([("f9d6c8466d614a9788e9a0acf6c15f46", 20)]) as results:
            async for result in results:
                print(result.line, result.outcome)

or a whole run from an input file to its report, as ``bulkstop run`` does it::

    async with bulkstop.Job(bulkstop.JobSettings(input="targets.csv", region="cn-north-4")) as job:
        outcome = await job.run()

``import bulkstop`` imports nothing else: each name below is imported from its module at its
first use (PEP 562), so that a program, or ``bulkstop --help``, pays only for what it uses.
"""

import importlib as _importlib
import typing as _typing

__version__ = "0.1.0"

#: Each public name, and the module it lives in.
_WHERE: dict[str, str] = {
    "AkSkAuth": "bulkstop.auth",
    "Auth": "bulkstop.auth",
    "BulkstopError": "bulkstop.errors",
    "Clock": "bulkstop.clock",
    "CodeArtsClient": "bulkstop.client",
    "CredentialsRejected": "bulkstop.errors",
    "DiscoverQuery": "bulkstop.discover",
    "DiscoveredBuild": "bulkstop.discover",
    "Discovery": "bulkstop.discover",
    "ExitCode": "bulkstop.errors",
    "FailureThreshold": "bulkstop.guards",
    "IamPasswordAuth": "bulkstop.iam",
    "InputError": "bulkstop.errors",
    "InputRow": "bulkstop.models",
    "Job": "bulkstop.job",
    "JobEvents": "bulkstop.job",
    "JobOutcome": "bulkstop.job",
    "JobSettings": "bulkstop.job",
    "MonotonicClock": "bulkstop.clock",
    "Outcome": "bulkstop.models",
    "Pacer": "bulkstop.pacing",
    "ReadClient": "bulkstop.client",
    "ReadSettings": "bulkstop.reader",
    "Reply": "bulkstop.models",
    "ReplyKind": "bulkstop.models",
    "ReportMismatchError": "bulkstop.errors",
    "Result": "bulkstop.models",
    "Results": "bulkstop.engine",
    "RetryPolicy": "bulkstop.retry",
    "RunAborted": "bulkstop.errors",
    "RunSettings": "bulkstop.engine",
    "RunStats": "bulkstop.engine",
    "Secret": "bulkstop.auth",
    "ServerFailing": "bulkstop.errors",
    "StopClient": "bulkstop.client",
    "StopRun": "bulkstop.engine",
    "Stopper": "bulkstop.engine",
    "SystematicFailure": "bulkstop.errors",
    "SystematicFault": "bulkstop.retry",
    "Target": "bulkstop.models",
    "TokenAuth": "bulkstop.auth",
    "TransportFailure": "bulkstop.models",
    "UsageError": "bulkstop.errors",
    "Verification": "bulkstop.verify",
    "VerifyResult": "bulkstop.verify",
    "VerifySettings": "bulkstop.verify",
    "VerifyVerdict": "bulkstop.verify",
}

__all__ = [
    "AkSkAuth",
    "Auth",
    "BulkstopError",
    "Clock",
    "CodeArtsClient",
    "CredentialsRejected",
    "DiscoverQuery",
    "DiscoveredBuild",
    "Discovery",
    "ExitCode",
    "FailureThreshold",
    "IamPasswordAuth",
    "InputError",
    "InputRow",
    "Job",
    "JobEvents",
    "JobOutcome",
    "JobSettings",
    "MonotonicClock",
    "Outcome",
    "Pacer",
    "ReadClient",
    "ReadSettings",
    "Reply",
    "ReplyKind",
    "ReportMismatchError",
    "Result",
    "Results",
    "RetryPolicy",
    "RunAborted",
    "RunSettings",
    "RunStats",
    "Secret",
    "ServerFailing",
    "StopClient",
    "StopRun",
    "Stopper",
    "SystematicFailure",
    "SystematicFault",
    "Target",
    "TokenAuth",
    "TransportFailure",
    "UsageError",
    "Verification",
    "VerifyResult",
    "VerifySettings",
    "VerifyVerdict",
    "__version__",
]


def __getattr__(name: str) -> object:
    """A public name, imported from its module at its first use and kept here after."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'bulkstop' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})


if _typing.TYPE_CHECKING:
    from bulkstop.auth import AkSkAuth, Auth, Secret, TokenAuth
    from bulkstop.client import CodeArtsClient, ReadClient, StopClient
    from bulkstop.clock import Clock, MonotonicClock
    from bulkstop.discover import DiscoveredBuild, DiscoverQuery, Discovery
    from bulkstop.engine import Results, RunSettings, RunStats, Stopper, StopRun
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
    from bulkstop.guards import FailureThreshold
    from bulkstop.iam import IamPasswordAuth
    from bulkstop.job import Job, JobEvents, JobOutcome, JobSettings
    from bulkstop.models import (
        InputRow,
        Outcome,
        Reply,
        ReplyKind,
        Result,
        Target,
        TransportFailure,
    )
    from bulkstop.pacing import Pacer
    from bulkstop.reader import ReadSettings
    from bulkstop.retry import RetryPolicy, SystematicFault
    from bulkstop.verify import Verification, VerifyResult, VerifySettings, VerifyVerdict
