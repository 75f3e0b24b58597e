"""``bulkstop discover``: list the running builds of jobs or a whole project, as a file that
``bulkstop run`` reads.

Options in, one :class:`~bulkstop.discover.Discovery` run, builds out (stdout or ``--output``),
problems and a one-line summary on stderr, exit. The stderr lines are the console's
(:mod:`bulkstop.cli.output`): under ``--log-format json`` each is one JSON object
(``discover.simulating``, ``discover.not_listed``, ``discover.aborted``, ``discover.summary``
with its counts as numbers); ``--quiet`` keeps the errors and the summary. The live progress
line (``\r``, rewritten in place) is for a person at a terminal only. Importing this module
loads click only.
"""

from __future__ import annotations

import contextlib
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from bulkstop.cli import COMMANDS
from bulkstop.cli.jsonlog import JsonUsageCommand, JsonUsageError
from bulkstop.cli.options import (
    CONNECTION_OPTIONS,
    connection_options,
    log_options,
    read_options,
    simulated_read_rate,
)
from bulkstop.errors import BulkstopError, ExitCode, UsageError
from bulkstop.simulator.options import world_options

if TYPE_CHECKING:
    from bulkstop.buildlist import BuildListWriter
    from bulkstop.discover import DiscoverQuery, Discovery
    from bulkstop.simulator.config import WorldConfig

__all__ = ["discover_command", "selection_query"]

_EXIT_CODES = (
    "Exit codes:\n\n\b\n"
    "0    every selected job was listed\n"
    "1    some job could not be listed (each is named on stderr)\n"
    "2    usage error\n"
    "3    aborted: authentication failed again and again (--auth-breaker)"
)
_SELECTION = "--project, --job, --jobs-file or --all"


def selection_query(
    *,
    project: str | None,
    jobs: tuple[str, ...],
    jobs_file: Path | None,
    all_jobs: bool,
    since: str,
    running_longer_than: str | None,
    branch: str | None,
    commit: str | None,
    trigger: str | None,
    executor: str | None,
) -> DiscoverQuery:
    """The :class:`~bulkstop.discover.DiscoverQuery` the options ask for.

    Raises :class:`click.UsageError` (exit 2) naming the options at fault.
    """
    from bulkstop.discover import DiscoverQuery, parse_duration

    chosen = [
        flag
        for flag, given in (
            ("--project", project is not None),
            ("--job", bool(jobs)),
            ("--jobs-file", jobs_file is not None),
            ("--all", all_jobs),
        )
        if given
    ]
    if not chosen:
        raise click.UsageError(f"select the jobs to look at: give one of {_SELECTION}")
    if len(chosen) > 1:
        raise click.UsageError(f"give only one of {_SELECTION} (got {', '.join(chosen)})")
    try:
        since_value = _since(since)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    try:
        older = None if running_longer_than is None else parse_duration(running_longer_than)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--running-longer-than") from None
    try:
        return DiscoverQuery(
            project_id=None if project is None else project.strip(),
            job_ids=tuple(job.strip() for job in jobs),
            jobs_file=None if jobs_file is None else str(jobs_file),
            all_jobs=all_jobs,
            since=since_value,
            running_longer_than=older,
            branch=branch,
            commit=commit,
            trigger_type=trigger,
            executor=executor,
        )
    except ValueError as exc:
        raise click.UsageError(_option_named(str(exc))) from None


def _since(text: str) -> timedelta | datetime:
    """A duration stays a duration (counted back from the start of discovery); a time is a
    time. Raises ``ValueError`` with a one-line message."""
    from bulkstop.clock import utcnow
    from bulkstop.discover import parse_duration, parse_since

    try:
        return parse_duration(text)
    except ValueError:
        now = utcnow()
        moment = parse_since(text, now)
    if moment > now:  # no build that started after it can be running now: say so, not 0 rows
        raise ValueError(
            f"{text.strip()!r} is in the future (it is {now:%Y-%m-%dT%H:%M:%SZ} now): "
            "no build started after it can be running"
        )
    return moment


def _option_named(message: str) -> str:
    """A query's message with its field named as the option that sets it."""
    for field, flag in (
        ("project_id", "--project"),
        ("trigger_type", "--trigger"),
        ("branch", "--branch"),
        ("commit", "--commit"),
        ("executor", "--executor"),
    ):
        if message.startswith(field + ":"):
            return flag + message[len(field) :]
    return message


@click.command(
    "discover", cls=JsonUsageCommand, help=COMMANDS["discover"].summary, epilog=_EXIT_CODES
)
@click.option("--project", default=None, metavar="ID", help="A CodeArts project: all its jobs.")
@click.option("--job", "jobs", multiple=True, metavar="JOB_ID", help="A job by its id; repeatable.")
@click.option(
    "--jobs-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="A file of job ids: one a line, or a CSV with a job_id column.",
)
@click.option("--all", "all_jobs", is_flag=True, help="Every job the credentials can see.")
@click.option(
    "--since",
    default="24h",
    show_default=True,
    metavar="DURATION|TIME",
    help="Builds started since: a duration back (90s, 45m, 6h, 2d) or an ISO time with a zone.",
)
@click.option(
    "--running-longer-than",
    default=None,
    metavar="DURATION",
    help="Only builds running for longer than this.",
)
@click.option("--branch", default=None, metavar="GLOB", help="Only builds of matching branches.")
@click.option("--commit", default=None, metavar="PREFIX", help="Only builds of this commit.")
@click.option("--trigger", default=None, metavar="TYPE", help="Only builds of this trigger type.")
@click.option("--executor", default=None, metavar="NAME", help="Only builds run by this user.")
@click.option(
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write the list here (written whole, 0600) instead of stdout.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "jsonl", "json"]),
    default=None,
    help="Output format (default: from the --output extension; CSV on stdout).",
)
@connection_options
@read_options
@click.option(
    "--simulate",
    is_flag=True,
    help="Discover in the built-in simulator's world (the --sim-* options shape it).",
)
@click.option(
    "--sim-seed", type=int, default=0, show_default=True, help="Seed of the simulated world."
)
@world_options("sim-")
@click.option(
    "--progress",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    show_default=True,
    help="A live progress line on stderr (never under --log-format json or --quiet; auto: only"
    " when stderr is a terminal).",
)
@log_options
@click.option(
    "--quiet",
    "-q",
    is_flag=True,
    help="Errors and the one-line summary only: no progress line, no info logs.",
)
def discover_command(log_level: str, log_format: str, quiet: bool, **options: Any) -> None:
    # The help is COMMANDS["discover"].summary, which the group lists without importing this.
    from bulkstop.cli import output
    from bulkstop.logconfig import configure_logging

    configure_logging("error" if quiet else log_level, log_format)
    output.configure_console(log_format=log_format, quiet=quiet)
    progress = output.show_progress(options["progress"], log_format, quiet=quiet)
    try:
        code = _discover(options, progress=progress)
    except click.UsageError as exc:
        # The selection is checked here, not while click parses: shown as click's own are.
        if log_format != "json" or isinstance(exc, JsonUsageError):
            raise
        if exc.ctx is None:
            exc.ctx = click.get_current_context()
        raise JsonUsageError(exc) from exc
    except KeyboardInterrupt:
        output.fail("interrupted", ExitCode.INTERRUPTED)
    except BulkstopError as exc:
        output.fail(str(exc), exc.exit_code)
    except OSError as exc:
        output.fail(f"{exc.filename or 'I/O'}: {exc.strerror or exc}", ExitCode.ROWS)
    sys.exit(code)


def _discover(options: dict[str, Any], *, progress: bool) -> ExitCode:
    import anyio

    from bulkstop.buildlist import BuildListWriter, build_list_format
    from bulkstop.cli import output

    world = None
    simulated_project = None  # said once every other option has passed its checks
    if options["simulate"]:
        from bulkstop.simulator.options import world_config

        simulated_read_rate(click.get_current_context(), options)
        from bulkstop.simulator.world import derive_project_id

        try:
            world = world_config(options, "sim-")
        except ValueError as exc:
            raise UsageError(f"--simulate: {exc}") from None
        if world is None:
            raise UsageError("--simulate needs a world: --sim-jobs must be at least 1")
        selection = ("project", "jobs", "jobs_file", "all_jobs")
        if not any(options[name] for name in selection):
            simulated_project = world.project_id or derive_project_id(options["sim_seed"])
            options["project"] = simulated_project
    query = selection_query(
        project=options["project"],
        jobs=options["jobs"],
        jobs_file=options["jobs_file"],
        all_jobs=options["all_jobs"],
        since=options["since"],
        running_longer_than=options["running_longer_than"],
        branch=options["branch"],
        commit=options["commit"],
        trigger=options["trigger"],
        executor=options["executor"],
    )
    path: Path | None = options["output"]
    fmt = build_list_format(path, options["fmt"])
    writer = BuildListWriter(fmt, path=path, stream=None if path else sys.stdout)
    if simulated_project is not None:
        output.say(
            "discover.simulated_project",
            f"discover: the simulated project is {simulated_project}",
            project=simulated_project,
        )
    with writer:
        return anyio.run(_run_discovery, options, query, writer, world, progress)


async def _run_discovery(
    options: dict[str, Any],
    query: DiscoverQuery,
    writer: BuildListWriter,
    world: WorldConfig | None,
    progress: bool,
) -> ExitCode:
    import anyio

    from bulkstop.cli import output
    from bulkstop.connection import ConnectionSettings, connect, connect_simulated
    from bulkstop.discover import Discovery
    from bulkstop.errors import CredentialsRejected
    from bulkstop.logconfig import redactor
    from bulkstop.reader import ReadSettings
    from bulkstop.retry import RetryPolicy

    connection = ConnectionSettings(
        **{name: options[name] for name in CONNECTION_OPTIONS if name not in _NOT_CONNECTION},
        pool_size=options["read_concurrency"],
    )
    settings = ReadSettings(
        concurrency=options["read_concurrency"],
        rate=options["read_rate"],
        retry=RetryPolicy(max_attempts=options["max_attempts"]),
        auth_breaker=options["auth_breaker"],
    )
    async with contextlib.AsyncExitStack() as stack:
        if world is not None:
            from bulkstop.simulator import SimulatorConfig

            config = SimulatorConfig(seed=options["sim_seed"], world=world)
            client, auth, simulator = await connect_simulated(stack, connection, config)
            output.notice(
                "discover.simulating", f"discover: SIMULATION on {simulator.url}", url=simulator.url
            )
        else:
            client, auth = await connect(stack, connection)
        redactor.watch(auth.secret_values)
        discovery = Discovery(client, query, settings=settings)
        code = ExitCode.OK
        try:
            # The breaker's error is raised when discovery's block is left: outside the
            # progress line's task group, so that it is not wrapped in an exception group.
            async with discovery as builds, anyio.create_task_group() as tg:
                if progress:
                    tg.start_soon(_show_progress, discovery)
                async for build in builds:
                    writer.write(build)
                tg.cancel_scope.cancel()
        except CredentialsRejected as exc:
            code = ExitCode.ABORTED
            output.say(
                "discover.aborted", f"discover: aborted: {exc}", "error", exit_code=int(code)
            )
        if progress:
            click.echo("\r" + " " * _PROGRESS_WIDTH + "\r", nl=False, err=True)
        stats = discovery.stats
        for problem in stats.problems:
            output.notice(
                "discover.not_listed",
                f"discover: not listed: {problem.message}",
                job_id=problem.job_id,
                reason=problem.reason,
                http_status=problem.http_status,
                error_code=problem.error_code,
                request_id=problem.request_id,
            )
        if code is ExitCode.OK and stats.problems:
            code = ExitCode.ROWS
        output.say_summary(
            "discover.summary",
            f"discover: {stats.jobs_scanned} of {stats.jobs} jobs scanned, {stats.builds_seen}"
            f" builds seen, {stats.running} running listed ({stats.filtered_out} filtered out),"
            f" {stats.calls} read calls, {stats.throttled} throttled",
            "info" if code is ExitCode.OK else "warning",
            jobs=stats.jobs,
            jobs_scanned=stats.jobs_scanned,
            builds_seen=stats.builds_seen,
            running=stats.running,
            filtered_out=stats.filtered_out,
            not_listed=len(stats.problems),
            calls=stats.calls,
            throttled=stats.throttled,
            exit_code=int(code),
        )
        return code


#: Columns the progress line takes (padded, so that a shorter line covers a longer one).
_PROGRESS_WIDTH = 79
#: Connection options that are the read settings', not the connection's.
_NOT_CONNECTION = frozenset({"max_attempts", "auth_breaker"})


async def _show_progress(discovery: Discovery) -> None:
    """One line on stderr, rewritten twice a second, until discovery ends."""
    import anyio

    while True:
        stats = discovery.stats
        line = (
            f"discover: {stats.jobs_scanned}/{stats.jobs} jobs, {stats.running} running,"
            f" {stats.calls} calls, {stats.throttled} throttled"
        )
        click.echo("\r" + line.ljust(_PROGRESS_WIDTH), nl=False, err=True)
        await anyio.sleep(0.5)
