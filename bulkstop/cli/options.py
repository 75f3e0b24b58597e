"""The command-line options several commands share: where CodeArts is, which credential, TLS,
the per-call retry, and logging — one definition each, so that ``run``, ``discover`` and
``verify`` spell and document them alike.

Each group is a decorator that adds its options to a click command. Importing this module
loads click and bulkstop's log levels only (``--help`` stays fast).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from bulkstop.logconfig import LEVELS

__all__ = [
    "CONNECTION_OPTIONS",
    "connection_options",
    "log_options",
    "read_options",
    "simulated_read_rate",
]

F = TypeVar("F", bound=Callable[..., Any])

#: :data:`bulkstop.reader.DEFAULT_READ_RATE`, repeated so that ``--help`` does not import the
#: reader (and anyio with it); a test keeps the two equal.
DEFAULT_READ_RATE = 1.0

#: The read rate with ``--simulate`` when ``--read-rate`` is not given: the built-in simulator
#: limits no reads unless told to, and a try on a laptop should not take a minute to list fifty
#: jobs; adaptive pacing still lowers it if the simulator is made to throttle.
SIMULATED_READ_RATE = 50.0

#: Parameter names that :func:`connection_options` adds (what a command hands to the
#: connection settings).
CONNECTION_OPTIONS = (
    "endpoint",
    "region",
    "token_file",
    "project_id",
    "project_name",
    "iam_endpoint",
    "ca_bundle",
    "insecure_http",
    "max_attempts",
    "timeout",
    "auth_breaker",
)


def _apply(options: list[Callable[[F], F]], function: F) -> F:
    for option in reversed(options):
        function = option(function)
    return function


def connection_options(function: F) -> F:
    """Endpoint, region, credential, TLS, attempts, call timeout and the auth breaker."""
    return _apply(
        [
            click.option(
                "--endpoint",
                envvar="CODEARTS_ENDPOINT",
                default=None,
                help="CodeArts Build endpoint URL (env CODEARTS_ENDPOINT). Wins over --region.",
            ),
            click.option(
                "--region",
                envvar="CODEARTS_REGION",
                default=None,
                help=(
                    "Region, meaning https://cloudbuild-ext.REGION.myhuaweicloud.com"
                    " (env CODEARTS_REGION)."
                ),
            ),
            click.option(
                "--token-file",
                type=click.Path(path_type=Path, dir_okay=False),
                default=None,
                help="Read the IAM token from this file (else env CODEARTS_TOKEN).",
            ),
            click.option(
                "--project-id", default=None, help="Project id (IAM password and AK/SK modes)."
            ),
            click.option(
                "--project-name",
                default=None,
                help="Project name for IAM password mode (default: the region name).",
            ),
            click.option(
                "--iam-endpoint",
                default=None,
                help="IAM endpoint URL (default: https://iam.REGION.myhuaweicloud.com).",
            ),
            click.option(
                "--ca-bundle",
                type=click.Path(path_type=Path, dir_okay=False, exists=True),
                default=None,
                help="PEM file of extra CA certificates to trust.",
            ),
            click.option(
                "--insecure-http",
                is_flag=True,
                help="INSECURE: allow plain http:// to a non-loopback endpoint (CodeArts or IAM).",
            ),
            click.option(
                "--max-attempts",
                type=click.IntRange(1, 100),
                default=5,
                show_default=True,
                help="Attempts per call for transient failures.",
            ),
            click.option(
                "--timeout",
                type=click.FloatRange(min=0.1),
                default=30.0,
                show_default=True,
                help="Seconds for one call.",
            ),
            click.option(
                "--auth-breaker",
                type=click.IntRange(0, 1000),
                default=5,
                show_default=True,
                help="Abort (exit 3) after this many authentication failures in a row (0: never).",
            ),
        ],
        function,
    )


def simulated_read_rate(ctx: click.Context, options: dict[str, Any]) -> None:
    """With ``--simulate`` and no ``--read-rate`` given, read at :data:`SIMULATED_READ_RATE`."""
    from click.core import ParameterSource

    if options.get("simulate") and ctx.get_parameter_source("read_rate") in (
        ParameterSource.DEFAULT,
        None,
    ):
        options["read_rate"] = SIMULATED_READ_RATE


def read_options(function: F) -> F:
    """The pacing of the read calls (listing builds, checking them), apart from the stops'."""
    return _apply(
        [
            click.option(
                "--read-rate",
                type=click.FloatRange(min=0.01),
                default=DEFAULT_READ_RATE,
                show_default=True,
                help="Most read calls started per second (the read APIs have their own, lower,"
                " per-minute limits; throttling lowers it further).",
            ),
            click.option(
                "--read-concurrency",
                type=click.IntRange(1, 64),
                default=4,
                show_default=True,
                help="Read calls in flight at once.",
            ),
        ],
        function,
    )


def log_options(function: F) -> F:
    """``--log-level`` and ``--log-format``."""
    return _apply(
        [
            click.option(
                "--log-level",
                type=click.Choice(LEVELS),
                default="info",
                show_default=True,
                help="Least severe log event shown on stderr (debug: every retry and failed row).",
            ),
            click.option(
                "--log-format",
                type=click.Choice(["console", "json"]),
                default="console",
                show_default=True,
                help="console: lines for a person; json: every stderr line one JSON object.",
            ),
        ],
        function,
    )
