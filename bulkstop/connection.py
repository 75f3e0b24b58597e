"""Connecting to CodeArts: the endpoint, the client, the one credential, made ready.

What every command that calls CodeArts does before its first call (``run``'s job, discovery,
verification), as one function::

    async with contextlib.AsyncExitStack() as stack:
        client, auth = await connect(stack, ConnectionSettings(region="cn-north-4"))
        ...  # client.stop(...), client.read(...)

:func:`connect` resolves the endpoint (``endpoint`` wins over ``region``), opens the client
(TLS, the transport rule for plain http), resolves the credential the settings and the
environment configure (:func:`~bulkstop.credentials.resolve_auth`) and makes it ready (an IAM
password is exchanged for a token here). A refused login is a
:class:`~bulkstop.errors.UsageError`: nothing can be done as asked. :func:`connect_simulated`
starts the built-in simulator instead, with a throwaway token. What either opens is closed
when ``stack`` is.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bulkstop.auth import Auth, TokenAuth
from bulkstop.client import CodeArtsClient, resolve_endpoint
from bulkstop.clock import MonotonicClock
from bulkstop.credentials import CredentialOptions, resolve_auth
from bulkstop.errors import CredentialsRejected, UsageError
from bulkstop.log import get_logger

if TYPE_CHECKING:
    from bulkstop.simulator import Simulator, SimulatorConfig

__all__ = ["SIMULATED_STOP_DELAY", "ConnectionSettings", "connect", "connect_simulated"]

log = get_logger(__name__)

#: Seconds a stop takes to take effect in the simulator :func:`connect_simulated` starts.
SIMULATED_STOP_DELAY = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionSettings:
    """Where CodeArts is and how to reach it (see :class:`~bulkstop.job.JobSettings`).

    Attributes:
        endpoint / region: where CodeArts is; an endpoint wins over a region.
        api: which stop API the client calls (``legacy``, ``v3``, ``v1``).
        token_file / project_id / project_name / iam_endpoint: the credential options; the
            credential itself comes from the environment (see :mod:`bulkstop.credentials`).
        ca_bundle: a PEM file of extra CA certificates to trust.
        insecure_http: allow plain ``http://`` to a non-loopback endpoint (CodeArts or IAM).
        timeout: seconds for one call.
        pool_size: connections the client keeps open.
    """

    endpoint: str | None = None
    region: str | None = None
    api: str = "legacy"
    token_file: Path | None = None
    project_id: str | None = None
    project_name: str | None = None
    iam_endpoint: str | None = None
    ca_bundle: Path | None = None
    insecure_http: bool = False
    timeout: float = 30.0
    pool_size: int = 8

    def credential_options(self) -> CredentialOptions:
        """The command-line side of choosing the credential."""
        return CredentialOptions(
            token_file=self.token_file,
            project_id=self.project_id,
            project_name=self.project_name,
            region=self.region,
            iam_endpoint=self.iam_endpoint,
            allow_insecure_http=self.insecure_http,
        )

    def client(self, endpoint: str, auth: Auth | None) -> CodeArtsClient:
        """The CodeArts client the settings ask for (it vets the endpoint itself)."""
        return CodeArtsClient(
            endpoint,
            auth,
            api=self.api,
            timeout=self.timeout,
            pool_size=self.pool_size,
            ca_bundle=self.ca_bundle,
            allow_insecure_http=self.insecure_http,
        )


async def connect(
    stack: contextlib.AsyncExitStack,
    settings: ConnectionSettings,
    environ: Mapping[str, str] | None = None,
) -> tuple[CodeArtsClient, Auth]:
    """A client of the configured endpoint, with its credential resolved and ready.

    ``environ`` is where the credential variables are read (default ``os.environ``).
    """
    endpoint = resolve_endpoint(settings.endpoint, settings.region)
    # No auth yet: an IAM login needs this client's session
    client = await stack.enter_async_context(settings.client(endpoint, None))
    auth, description = resolve_auth(
        settings.credential_options(),
        os.environ if environ is None else environ,
        session=client.session,
        clock=MonotonicClock(),
    )
    log.info("auth.source", mode=auth.mode, source=description)
    try:
        await auth.prepare()
    except CredentialsRejected as exc:
        # A refused login: nothing was sent, the command cannot start as asked.
        raise UsageError(str(exc)) from exc
    client.auth = auth
    return client, auth


async def connect_simulated(
    stack: contextlib.AsyncExitStack,
    settings: ConnectionSettings,
    config: SimulatorConfig | None = None,
) -> tuple[CodeArtsClient, Auth, Simulator]:
    """A client of the built-in simulator, started here with a throwaway token.

    ``config`` shapes the simulator (its ``token`` is replaced); default: seed 0, and a stop
    that takes :data:`SIMULATED_STOP_DELAY` to take effect, as on the service (so that a
    verification sees a build pass from aborting to aborted).
    """
    import dataclasses

    from bulkstop.simulator import Simulator, SimulatorConfig

    token = secrets.token_hex(16)
    auth = TokenAuth(token)
    if config is None:
        config = SimulatorConfig(seed=0, derived_stop_delay=SIMULATED_STOP_DELAY)
    simulator = await stack.enter_async_context(Simulator(dataclasses.replace(config, token=token)))
    client = await stack.enter_async_context(settings.client(simulator.url, auth))
    return client, auth, simulator
