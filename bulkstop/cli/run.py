"""``bulkstop run``: options in, one job (:mod:`bulkstop.job`) run, its summary out, exit.

What the command keeps for itself: parsing the options, configuring logging, the signals (a
first SIGINT/SIGTERM drains the job, a second cancels the calls in flight), the console
output (:mod:`bulkstop.cli.output`) and the exit code. Everything between "options parsed"
and "results printed" is the job's.

Importing this module loads click and bulkstop's exception tree only: ``bulkstop run --help``
needs nothing more, and a run imports the rest when it starts.
"""

from __future__ import annotations

import functools
import signal
import sys
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from bulkstop.cli import COMMANDS
from bulkstop.cli.jsonlog import JsonUsageCommand
from bulkstop.cli.options import (
    connection_options,
    log_options,
    read_options,
    simulated_read_rate,
)
from bulkstop.errors import BulkstopError, ExitCode

if TYPE_CHECKING:
    from bulkstop.job import Job, JobSettings

__all__ = ["run_command"]

#: What each exit code of ``bulkstop run`` means, as ``run --help`` lists them.
_MEANINGS: Mapping[ExitCode, str] = {
    ExitCode.OK: (
        "every valid target ended stopped or not_stopped (with --verify: and ended); in a dry"
        " run, dry_run; rows an --only-outcome run did not choose, skipped"
    ),
    ExitCode.ROWS: (
        "some row ended otherwise (including invalid rows); with --verify, also: a target sent"
        " is still running or could not be checked"
    ),
    ExitCode.USAGE: (
        "usage or configuration error, nothing was sent; or the first answers showed that the"
        " call itself is wrong (a handful were sent, the rest is aborted)"
    ),
    ExitCode.ABORTED: (
        "aborted on purpose: --max-failures exceeded, --auth-breaker tripped, or the server"
        " failing for --failing-server-window; or the question before a large run was"
        " answered no (nothing was sent)"
    ),
    ExitCode.INTERRUPTED: (
        "interrupted (SIGINT/SIGTERM): in-flight calls drained, the rest is aborted; --resume"
        " continues"
    ),
}
#: The end of ``run --help``; ``\b`` keeps click from joining the lines of the table.
_EXIT_CODES = "Exit codes:\n\n\b\n" + "\n".join(
    "\n".join(textwrap.wrap(_MEANINGS[code], 76, initial_indent=f"{int(code):<5}",
                             subsequent_indent=" " * 5))
    for code in ExitCode
)  # fmt: skip


def _threshold(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    from bulkstop.guards import FailureThreshold

    try:
        return FailureThreshold.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def _outcomes(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    from bulkstop.subset import parse_outcomes

    try:
        return parse_outcomes(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


#: What ``run --help`` says about where the credential and the endpoint come from. Written
#: out, not built from :mod:`bulkstop.credentials`, which would import aiohttp for a help text;
#: a test checks it names every variable that module reads.
_ENVIRONMENT = """Environment (one credential; never give a secret on the command line):

\b
CODEARTS_ENDPOINT                   the endpoint, as --endpoint
CODEARTS_REGION                     the region, as --region
CODEARTS_API                        the stop API, as --api
CODEARTS_TOKEN                      an IAM token (or --token-file)
HUAWEICLOUD_USERNAME, HUAWEICLOUD_PASSWORD, HUAWEICLOUD_DOMAIN
                                    IAM password login
HUAWEICLOUD_SDK_AK, HUAWEICLOUD_SDK_SK [, HUAWEICLOUD_SDK_PROJECT_ID,
HUAWEICLOUD_SDK_SECURITY_TOKEN]     AK/SK signing (temporary keys add the token)"""


@click.command(
    "run",
    cls=JsonUsageCommand,
    help=COMMANDS["run"].summary,
    epilog=f"{_ENVIRONMENT}\n\n{_EXIT_CODES}",
)
@click.argument("input", metavar="INPUT")
@click.option(
    "--input-format",
    type=click.Choice(["csv", "json", "jsonl"]),
    default=None,
    help="Input format (default: from the file extension; required for stdin '-').",
)
@click.option(
    "--report",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Report path (.csv, .jsonl or .json). Default: a timestamped CSV here.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the run recorded in --report: skip targets it already settled.",
)
@click.option(
    "--overwrite", is_flag=True, help="Replace an existing report instead of refusing to touch it."
)
@click.option(
    "--retry-failed",
    is_flag=True,
    help="With --resume: also re-run targets that ended failed or uncertain.",
)
@connection_options
@click.option(
    "--api",
    envvar="CODEARTS_API",
    type=click.Choice(["legacy", "v3", "v1"]),
    default="legacy",
    show_default=True,
    help="Which stop API to call (env CODEARTS_API).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 512),
    default=8,
    show_default=True,
    help="Stop calls in flight at once.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0.01),
    default=10.0,
    show_default=True,
    help="Most stop calls started per second (the ceiling of adaptive pacing).",
)
@click.option(
    "--burst",
    type=click.IntRange(1, 10_000),
    default=1,
    show_default=True,
    help="Calls that may start back to back after an idle moment.",
)
@click.option(
    "--adaptive/--fixed-rate",
    default=True,
    show_default=True,
    help="Lower the rate when throttled and raise it again on success.",
)
@click.option(
    "--deadline",
    type=click.FloatRange(min=0.1),
    default=None,
    help="Seconds per target from its first attempt after which it is not retried.",
)
@click.option(
    "--max-failures",
    callback=_threshold,
    default=None,
    metavar="N|P%",
    help="Abort (exit 3) after more than N failed targets, or P% of them.",
)
@click.option(
    "--failing-server-window",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="Abort (exit 3) when the server failed 95% of the calls of the last SECONDS (0: never).",
)
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Seconds in-flight calls may take to finish after an interrupt.",
)
@click.option(
    "--simulate",
    is_flag=True,
    help="Run against the built-in simulator on 127.0.0.1: nothing real is stopped.",
)
@click.option(
    "--progress",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    show_default=True,
    help="Live progress display on stderr (auto: on a terminal; never with JSON logs or -q).",
)
# -- verification after the stops --
@click.option(
    "--verify",
    is_flag=True,
    help="After the stops, check that every target sent has ended; exit 1 unless all have.",
)
@click.option(
    "--verify-timeout",
    type=click.FloatRange(min=0),
    default=120.0,
    show_default=True,
    metavar="SECONDS",
    help="How long --verify polls a build that is still running.",
)
@read_options
@log_options
# -- look before stopping (bulkstop.cli.plan) ------------------------------------------------
@click.option(
    "--dry-run",
    is_flag=True,
    help=(
        "Read, check and plan as a run would, write the report with outcome dry_run for each"
        " target a run would send, and contact nothing (no credential needed). A --resume of"
        " that report then sends them."
    ),
)
@click.option(
    "--confirm-above",
    type=click.IntRange(min=0),
    default=50,
    show_default=True,
    metavar="N",
    help="On a terminal, show the plan and ask before sending more than N stops.",
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask before a large run.")
@click.option(
    "--only-outcome",
    callback=_outcomes,
    default=None,
    metavar="OUTCOME[,OUTCOME...]",
    help=(
        "INPUT is an earlier report: send only the targets it left with one of these outcomes"
        " (e.g. uncertain,failed); the other rows are reported skipped."
    ),
)
# -- resume remembers the run (bulkstop.cli.resumed) ------------------------------------------
@click.option(
    "--allow-settings-change",
    is_flag=True,
    help=(
        "With --resume: allow another --endpoint, --region, --simulate or --api than the run"
        " recorded (its records then describe other calls)."
    ),
)
# -- the console's own options ------------------------------------------------------------
@click.option(
    "--quiet",
    "-q",
    is_flag=True,
    help="Errors and the one-line summary only: no progress display, no info logs.",
)
@click.option(
    "--summary-json",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    metavar="PATH",
    help="Also write the run's summary to PATH as one JSON document.",
)
def run_command(
    log_level: str,
    log_format: str,
    progress: str,
    grace: float,
    quiet: bool,
    summary_json: Path | None,
    confirm_above: int,
    yes: bool,
    **options: Any,
) -> None:
    # The help is COMMANDS["run"].summary, which the group lists without importing this.
    from bulkstop.cli import output
    from bulkstop.logconfig import configure_logging

    configure_logging("error" if quiet else log_level, log_format)
    output.configure_console(log_format=log_format, quiet=quiet)
    shown = output.show_progress(progress, log_format, quiet=quiet)
    try:
        if summary_json is not None:
            from bulkstop.cli.summary import check_summary_path

            others = {"the report": options["report"], "the input": options["input"]}
            if options["report"] is not None:
                # Over <report>.settings or .inflight the summary would leave a report that
                # no --resume can read; over .lock, one that another run could take.
                from bulkstop.report.paths import inflight_path, lock_path, settings_path

                for name, companion in (
                    ("settings", settings_path), ("inflight", inflight_path), ("lock", lock_path)
                ):  # fmt: skip
                    others[f"the report's {name} file"] = companion(options["report"])
            check_summary_path(summary_json, others)  # refused before anything is sent
        asking = None if yes else confirm_above
        code = _run(options, progress=shown, grace=grace, summary_json=summary_json, ask=asking)
    except KeyboardInterrupt:
        # Outside a run's own signal handling (while starting up or finishing): a run that had
        # started left its report as a journal that --resume continues.
        output.fail("interrupted", ExitCode.INTERRUPTED)
    except BulkstopError as exc:
        output.fail(str(exc), exc.exit_code)
    except OSError as exc:
        output.fail(f"{exc.filename or 'I/O'}: {exc.strerror or exc}", ExitCode.ROWS)
    except BaseExceptionGroup as group:
        matched, _rest = group.split(BulkstopError)
        if matched is None:
            raise
        error = _first_leaf(matched)
        output.fail(
            str(error), error.exit_code if isinstance(error, BulkstopError) else ExitCode.USAGE
        )
    sys.exit(code)


def _first_leaf(group: BaseExceptionGroup[Any]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


def _run(
    options: dict[str, Any],
    *,
    progress: bool,
    grace: float,
    summary_json: Path | None = None,
    ask: int | None = None,
) -> ExitCode:
    import anyio

    from bulkstop.cli.resumed import with_remembered
    from bulkstop.job import JobSettings

    # Before the remembered settings: a resume reads at the rate its run recorded.
    simulated_read_rate(click.get_current_context(), options)
    options, notices = with_remembered(click.get_current_context(), options)
    settings = JobSettings(**options)
    if ask is not None:
        from bulkstop.cli import plan

        if plan.asks(settings) and not plan.confirmed(settings, above=ask):
            from bulkstop.cli import output

            output.say("run.declined", "bulkstop: nothing was sent", "warning")
            return ExitCode.ABORTED
    return anyio.run(_run_job, settings, progress, grace, notices, summary_json)


async def _run_job(
    settings: JobSettings,
    progress: bool,
    grace: float,
    notices: Sequence[str] = (),
    summary_json: Path | None = None,
) -> ExitCode:
    from bulkstop.cli import output
    from bulkstop.job import Job
    from bulkstop.logconfig import redactor

    events = output.ConsoleEvents(progress=progress)
    job = Job(settings, events=events)
    events.job = job
    redactor.watch(job.secret_values)
    async with job:
        for notice in notices:  # once the job holds the report: it is this run's
            output.notice("run.settings", notice)
        outcome = await job.run(beside=functools.partial(_watch_signals, grace=grace))
        summary = output.summarize(outcome, settings)
        output.print_summary(summary)
        if outcome.verification is not None:
            from bulkstop.cli.verdicts import print_verify_summary

            print_verify_summary(outcome.verification)
        if settings.dry_run:
            from bulkstop.cli.plan import dry_run_lines

            for line in dry_run_lines(settings, outcome):
                output.say("run.dry_run", line)
    if summary_json is not None:
        from bulkstop.cli.summary import write_summary

        write_summary(summary_json, summary)
    return outcome.exit_code


async def _watch_signals(job: Job, grace: float) -> None:
    """First SIGINT/SIGTERM: drain, then cancel in-flight calls after ``grace`` s. Second: now.

    Later ones change nothing. The handlers stay installed until the run ends (this task is
    cancelled then), so that pressing Ctrl-C again cannot raise KeyboardInterrupt into the
    writing of the report while every remaining row is reported ``aborted``.
    """
    import anyio

    from bulkstop.cli import output

    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        count = 0
        async for signum in signals:
            count += 1
            name = signal.Signals(signum).name
            if count == 1:
                output.notice(
                    "run.interrupt",
                    f"bulkstop: {name}: starting no new stop calls; in-flight calls get {grace:g} s"
                    " to finish (press Ctrl-C again to cancel them now)",
                    signal=name,
                    grace=grace,
                )
                job.drain(f"interrupted by {name}")

                async def cancel_later() -> None:
                    await anyio.sleep(grace)
                    job.cancel_in_flight()

                async with anyio.create_task_group() as later:
                    later.start_soon(cancel_later)
                    async for _ in signals:
                        job.cancel_in_flight()
                        later.cancel_scope.cancel()
                        break
