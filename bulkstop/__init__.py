"""bulkstop: stop many Huawei Cloud CodeArts Build runs at once, safely, as fast as allowed.

The library in five names::

    import bulkstop

    async with bulkstop.CodeArtsClient(endpoint, bulkstop.TokenAuth(token)) as client:
        stopper = bulkstop.Stopper(client, pacer=bulkstop.Pacer(rate=10))
        async with stopper.run([("f9d6c8466d614a9788e9a0acf6c15f46", 20)]) as results:
            async for result in results:
                print(result.line, result.outcome)
"""

from __future__ import annotations

from bulkstop.auth import AkSkAuth, Auth, IamPasswordAuth, Secret, TokenAuth
from bulkstop.client import CodeArtsClient, ReadClient, StopClient
from bulkstop.clock import Clock, MonotonicClock
from bulkstop.discover import DiscoveredBuild, DiscoverQuery, Discovery
from bulkstop.engine import Results, RunSettings, RunStats, Stopper, StopRun
from bulkstop.errors import (
    BulkstopError,
    CredentialsRejected,
    InputError,
    ReportMismatchError,
    RunAborted,
    ServerFailing,
    SystematicFailure,
    UsageError,
)
from bulkstop.guards import FailureThreshold
from bulkstop.models import InputRow, Outcome, Reply, ReplyKind, Result, Target, TransportFailure
from bulkstop.pacing import Pacer
from bulkstop.reader import ReadSettings
from bulkstop.retry import RetryPolicy, SystematicFault
from bulkstop.verify import Verification, VerifyResult, VerifySettings, VerifyVerdict

__version__ = "0.1.0"

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
    "FailureThreshold",
    "IamPasswordAuth",
    "InputError",
    "InputRow",
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
