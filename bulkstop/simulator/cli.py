"""``bulkstop simulate``: serve the built-in CodeArts Build simulator until interrupted.

The command and the builder that turns its options into a
:class:`~bulkstop.simulator.config.SimulatorConfig` (:func:`simulator_config`). ``bulkstop``'s
own CLI registers the command lazily: importing this module loads the configuration classes
only, and the server (aiohttp's web side) is imported when the command runs.

Like the rest of the CLI, this is a place that prints and exits; the simulator itself never does.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from typing import Any, NoReturn, TypeVar

import anyio
import click

from bulkstop.cli.jsonlog import JsonUsageCommand
from bulkstop.errors import ExitCode
from bulkstop.logconfig import LEVELS, configure_logging
from bulkstop.models import parse_target
from bulkstop.simulator.config import (
    FaultConfig,
    ReadConfig,
    SimulatorConfig,
    ThrottleConfig,
)
from bulkstop.simulator.options import world_config, world_options
from bulkstop.simulator.world import derive_project_id

__all__ = [
    "ready_lines",
    "simulate_command",
    "simulator_config",
]

F = TypeVar("F", bound=Callable[..., Any])

#: Where ``bulkstop simulate`` reads the secrets it accepts (never from its command line).
_SIM_IAM_PASSWORD_ENV = "BULKSTOP_SIM_IAM_PASSWORD"  # noqa: S105 - a variable name
_SIM_SK_ENV = "BULKSTOP_SIM_SK"

_THROTTLE_STYLES = click.Choice(["apig429", "cb400", "cb500"])
_RETRY_AFTER_FORMS = click.Choice(["none", "seconds", "http-date"])
_RATIO = click.FloatRange(0, 1)


def _fail(message: str) -> NoReturn:
    from bulkstop.cli import output

    output.fail(message, ExitCode.USAGE)


@click.command("simulate", cls=JsonUsageCommand)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="Port on 127.0.0.1 (0: any free port).",
)
@click.option(
    "--token", default=None, help="Token the simulator accepts (default: any non-empty token)."
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of everything derived: jobs, builds, faults, ignored stops.",
)
@click.option(
    "--finished-ratio",
    type=_RATIO,
    default=0.1,
    show_default=True,
    help="Share of builds outside the world that already finished (stop: 'not stopped').",
)
@click.option(
    "--unknown-ratio",
    type=_RATIO,
    default=0.0,
    show_default=True,
    help="Share of jobs outside the world that do not exist (404).",
)
@click.option(
    "--forbidden-ratio",
    type=_RATIO,
    default=0.0,
    show_default=True,
    help="Share of jobs outside the world the caller may not touch (403).",
)
@click.option(
    "--latency",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Seconds added to every stop call.",
)
@click.option(
    "--throttle",
    "throttle_limit",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Allow N stop calls per --throttle-window across all clients.",
)
@click.option(
    "--throttle-window",
    type=click.FloatRange(min=0.001),
    default=1.0,
    show_default=True,
    help="Seconds of one stop-throttle window.",
)
@click.option(
    "--throttle-style",
    type=_THROTTLE_STYLES,
    default="apig429",
    show_default=True,
    help="How a throttled call is answered: 429 APIG.0308, or CB.00060211 with 400 or 500.",
)
@click.option(
    "--throttle-retry-after",
    type=_RETRY_AFTER_FORMS,
    default="none",
    show_default=True,
    help="Send Retry-After with throttled answers (the real gateway sends none).",
)
@click.option(
    "--read-throttle",
    "read_throttle_limit",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Allow N read calls per --read-throttle-window, counted apart from the stop calls.",
)
@click.option(
    "--read-throttle-window",
    type=click.FloatRange(min=0.001),
    default=60.0,
    show_default=True,
    help="Seconds of one read-throttle window.",
)
@click.option(
    "--read-throttle-style",
    type=_THROTTLE_STYLES,
    default="apig429",
    show_default=True,
    help="How a throttled read call is answered.",
)
@click.option(
    "--read-throttle-retry-after",
    type=_RETRY_AFTER_FORMS,
    default="none",
    show_default=True,
    help="Send Retry-After with throttled read answers.",
)
@click.option(
    "--read-throttle-per-api",
    is_flag=True,
    help="Give every read API its own read-throttle window instead of one shared window.",
)
@click.option(
    "--fault-500",
    type=_RATIO,
    default=0.0,
    show_default=True,
    help="Share of stop calls answered 500 CB.00060101/CB.00060100.",
)
@click.option(
    "--fault-502",
    type=_RATIO,
    default=0.0,
    show_default=True,
    help="Share of stop calls answered 502 with an HTML page.",
)
@click.option(
    "--fault-503",
    type=_RATIO,
    default=0.0,
    show_default=True,
    help="Share of stop calls answered 503 with an HTML page and Retry-After: 1.",
)
@click.option(
    "--fault-reset",
    type=_RATIO,
    default=0.0,
    show_default=True,
    help="Share of stop calls whose connection is reset without an answer.",
)
@click.option(
    "--fault-hang",
    type=_RATIO,
    default=0.0,
    show_default=True,
    help="Share of stop calls that get no answer for --hang-seconds.",
)
@click.option(
    "--fault-bad-json",
    type=_RATIO,
    default=0.0,
    show_default=True,
    help="Share of stop calls answered 200 with cut-off JSON.",
)
@click.option(
    "--fault-after-stop",
    type=_RATIO,
    default=0.0,
    show_default=True,
    help="Share of faults that happen after the stop took effect.",
)
@click.option(
    "--hang-seconds",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="How long a --fault-hang call waits before its 504.",
)
@click.option(
    "--token-ttl",
    type=click.IntRange(min=1),
    default=None,
    help="Tokens expire after this many requests (401 APIG.0307).",
)
@click.option(
    "--unknown-job",
    "unknown_jobs",
    multiple=True,
    metavar="JOB_ID",
    help="A job that does not exist (404); repeatable.",
)
@click.option(
    "--forbidden-job",
    "forbidden_jobs",
    multiple=True,
    metavar="JOB_ID",
    help="A job the caller may not touch (403); repeatable.",
)
@click.option(
    "--finished-build",
    "finished_builds",
    multiple=True,
    metavar="JOB_ID:BUILD_NO",
    help="A build that already finished (stop answers 'not stopped'); repeatable.",
)
@world_options()
@click.option(
    "--jobs-shape",
    type=click.Choice(["live", "sdk"]),
    default="live",
    show_default=True,
    help="Body of GET /v1/job/{project_id}/list: the live service's or the SDK model's.",
)
@click.option(
    "--repeat-first-page",
    is_flag=True,
    help="Answer a page index past the end with the first page again.",
)
@click.option(
    "--total-as-string",
    is_flag=True,
    help="Send the job lists' and the history's 'total' as a string.",
)
@click.option(
    "--iam-user",
    default=None,
    help=f"Serve IAM password login for this user (password from ${_SIM_IAM_PASSWORD_ENV}).",
)
@click.option("--iam-domain", default=None, help="The IAM user's domain (account) name.")
@click.option(
    "--ak",
    default=None,
    help=f"Accept AK/SK signing with this access key (secret key from ${_SIM_SK_ENV}).",
)
@click.option(
    "--log-level",
    type=click.Choice(LEVELS),
    default="info",
    show_default=True,
    help="Least severe log level shown on stderr.",
)
@click.option(
    "--log-format",
    type=click.Choice(["console", "json"]),
    default="console",
    show_default=True,
    help="console: lines for a person; json: every stderr line one JSON object (the lines on"
    " stdout, which scripts read for the URL, stay as they are).",
)
def simulate_command(log_level: str, log_format: str, **kwargs: Any) -> None:
    """Serve the built-in CodeArts Build simulator on 127.0.0.1 until interrupted."""
    from bulkstop.cli import output
    from bulkstop.simulator.server import serve_forever

    configure_logging(log_level, log_format)
    output.configure_console(log_format=log_format)
    try:
        config = simulator_config(**kwargs)
    except ValueError as exc:
        _fail(f"simulate: {exc}")
    port = kwargs["port"]

    def ready(url: str) -> None:
        for line in ready_lines(config, url):
            click.echo(line)
        sys.stdout.flush()

    try:
        anyio.run(serve_forever, config, "127.0.0.1", port, ready)
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        _fail(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}")


def ready_lines(config: SimulatorConfig, url: str) -> list[str]:
    """What ``bulkstop simulate`` prints once it listens.

    The first line is read by scripts (the URL is its fifth word) and does not change.
    """
    lines = [f"bulkstop simulator listening on {url} (stats: {url}/_sim/stats)"]
    world = config.world
    if world is not None:
        project = world.project_id or derive_project_id(config.seed)
        timer = " and a runaway timer job" if world.timer_interval is not None else ""
        lines.append(
            f"world: project {project}, {world.jobs} jobs{timer} (state: {url}/_sim/world)"
        )
    return lines


def simulator_config(**kwargs: Any) -> SimulatorConfig:
    """Build a SimulatorConfig from the ``simulate`` command's options.

    Raises :class:`ValueError` with a message that names the option at fault.
    """
    iam_user, iam_domain, ak = kwargs["iam_user"], kwargs["iam_domain"], kwargs["ak"]
    iam_password = None
    if iam_user is not None or iam_domain is not None:
        if not (iam_user and iam_domain):
            raise ValueError("--iam-user and --iam-domain go together")
        iam_password = os.environ.get(_SIM_IAM_PASSWORD_ENV, "")
        if not iam_password:
            raise ValueError(f"--iam-user needs the password in ${_SIM_IAM_PASSWORD_ENV}")
    aksk = None
    if ak is not None:
        sk = os.environ.get(_SIM_SK_ENV, "")
        if not (ak and sk):
            raise ValueError(
                f"--ak needs a non-empty access key and the secret key in ${_SIM_SK_ENV}"
            )
        aksk = (ak, sk)
    return SimulatorConfig(
        token=kwargs["token"],
        seed=kwargs["seed"],
        finished_ratio=kwargs["finished_ratio"],
        unknown_job_ratio=kwargs["unknown_ratio"],
        forbidden_job_ratio=kwargs["forbidden_ratio"],
        latency=kwargs["latency"],
        throttle=_throttle(kwargs, "throttle"),
        faults=FaultConfig(
            error_500=kwargs["fault_500"],
            html_502=kwargs["fault_502"],
            unavailable_503=kwargs["fault_503"],
            reset=kwargs["fault_reset"],
            hang=kwargs["fault_hang"],
            bad_json_200=kwargs["fault_bad_json"],
            after_stop=kwargs["fault_after_stop"],
            hang_seconds=kwargs["hang_seconds"],
        ),
        token_ttl_requests=kwargs["token_ttl"],
        unknown_jobs=frozenset(_job_ids("--unknown-job", kwargs["unknown_jobs"])),
        forbidden_jobs=frozenset(_job_ids("--forbidden-job", kwargs["forbidden_jobs"])),
        finished_builds=frozenset(_builds(kwargs["finished_builds"])),
        iam_user=iam_user,
        iam_password=iam_password,
        iam_domain=iam_domain,
        aksk=aksk,
        world=world_config(kwargs),
        reads=ReadConfig(
            throttle=_throttle(kwargs, "read_throttle"),
            throttle_per_api=kwargs["read_throttle_per_api"],
            jobs_shape=kwargs["jobs_shape"],
            repeat_first_page=kwargs["repeat_first_page"],
            total_as_string=kwargs["total_as_string"],
        ),
    )


def _throttle(kwargs: dict[str, Any], prefix: str) -> ThrottleConfig | None:
    """The stop (``throttle``) or read (``read_throttle``) limit, if its N was given."""
    limit = kwargs.get(f"{prefix}_limit")
    if not limit:
        return None
    return ThrottleConfig(
        limit=limit,
        window=kwargs[f"{prefix}_window"],
        style=kwargs[f"{prefix}_style"],
        retry_after=kwargs[f"{prefix}_retry_after"],
    )


def _job_ids(option: str, values: Iterable[str]) -> list[str]:
    jobs = []
    for value in values:
        parsed = parse_target(value, 1)
        if isinstance(parsed, str):
            raise ValueError(f"{option}: {parsed}")
        jobs.append(parsed.job_id)
    return jobs


def _builds(values: Iterable[str]) -> list[tuple[str, int]]:
    builds: list[tuple[str, int]] = []
    for value in values:
        job_id, colon, build_no = value.rpartition(":")
        parsed = parse_target(job_id, build_no) if colon else "expected JOB_ID:BUILD_NO"
        if isinstance(parsed, str):
            raise ValueError(f"--finished-build {value!r}: {parsed}")
        builds.append(parsed.key)
    return builds
