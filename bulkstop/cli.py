"""The ``bulkstop`` command: the only place that reads argv, prints, configures logging or exits.

Exit codes (also in the README):

====  ==========================================================================
0     every valid target ended ``stopped`` or ``not_stopped``
1     some row ended otherwise (failed, rejected, invalid, uncertain, ...)
2     usage or configuration error: nothing was sent; or the first answers show
      the call itself is wrong (the stop API is not served there, the host does
      not resolve, the connection is refused, the certificate is not trusted):
      a handful of targets were sent, the rest is ``aborted``, resumable
3     the run was aborted on purpose: failure threshold, auth circuit breaker,
      or a server failing (nearly) every call for ``--failing-server-window``
130   interrupted (SIGINT/SIGTERM): in-flight calls drained, the rest ``aborted``
====  ==========================================================================
"""

from __future__ import annotations

import contextlib
import importlib
import os
import secrets
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import anyio
import click
from rich.console import Console

from bulkstop.apis import STOP_APIS
from bulkstop.auth import Auth, TokenAuth
from bulkstop.client import CodeArtsClient, resolve_endpoint
from bulkstop.clock import MonotonicClock, utcnow
from bulkstop.credentials import CredentialOptions, resolve_auth
from bulkstop.engine import RunSettings, RunStats, Stopper, StopRun
from bulkstop.errors import (
    BulkstopError,
    CredentialsRejected,
    RunAborted,
    ServerFailing,
    SystematicFailure,
    UsageError,
)
from bulkstop.guards import FailureThreshold
from bulkstop.log import get_logger
from bulkstop.logconfig import LEVELS, configure_logging, redactor
from bulkstop.models import ACCEPTABLE, Outcome, Result
from bulkstop.pacing import Pacer
from bulkstop.progress import ProgressDisplay
from bulkstop.report import (
    CarriedRecords,
    ReportLock,
    ReportWriter,
    default_report_path,
    open_resume,
    refuse_report_as_input,
    report_format,
)
from bulkstop.retry import RetryPolicy, SystematicFault
from bulkstop.sources import TargetSource, open_source

__all__ = ["main"]

log = get_logger(__name__)

EXIT_OK, EXIT_ROWS, EXIT_USAGE, EXIT_ABORTED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def _fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    click.echo(f"bulkstop: error: {redactor.scrub(message)}", err=True)
    sys.exit(code)


class _LazyGroup(click.Group):
    """A group whose commands named in ``lazy_commands`` are imported when first asked for.

    Click's documented way to load subcommands lazily. ``bulkstop simulate`` lives with the
    simulator (``bulkstop.simulator.cli``), and ``bulkstop run`` should not pay for importing it.
    ``bulkstop --help`` does import the command to show its short help, which is why that module
    keeps the simulator's server out of its imports.
    """

    def __init__(self, *args: Any, lazy_commands: Mapping[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: command name → ``"module:attribute"``
        self.lazy_commands = dict(lazy_commands)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        where = self.lazy_commands.get(cmd_name)
        if where is None:
            return super().get_command(ctx, cmd_name)
        module_name, _, attribute = where.partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{where} is not a click command")
        return command


@click.group(
    cls=_LazyGroup,
    lazy_commands={"simulate": "bulkstop.simulator.cli:simulate_command"},
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="bulkstop")
def main() -> None:
    """Stop many CodeArts Build runs at once, safely, as fast as the server allows."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOptions:
    input: str
    input_format: str | None
    report: Path | None
    resume: bool
    overwrite: bool
    retry_failed: bool
    endpoint: str | None
    region: str | None
    api: str
    token_file: Path | None
    project_id: str | None
    project_name: str | None
    iam_endpoint: str | None
    ca_bundle: Path | None
    insecure_http: bool
    concurrency: int
    rate: float
    burst: int
    adaptive: bool
    max_attempts: int
    timeout: float
    deadline: float | None
    max_failures: FailureThreshold | None
    auth_breaker: int
    failing_server_window: float
    grace: float
    simulate: bool
    progress: str
    log_format: str


def _threshold(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    try:
        return FailureThreshold.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


@main.command("run")
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
@click.option(
    "--endpoint",
    envvar="CODEARTS_ENDPOINT",
    default=None,
    help="CodeArts Build endpoint URL (env CODEARTS_ENDPOINT). Wins over --region.",
)
@click.option(
    "--region",
    default=None,
    help="Region, meaning https://cloudbuild-ext.REGION.myhuaweicloud.com.",
)
@click.option(
    "--api",
    type=click.Choice(["legacy", "v3", "v1"]),
    default="legacy",
    show_default=True,
    help="Which stop API to call.",
)
@click.option(
    "--token-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Read the IAM token from this file (else env CODEARTS_TOKEN).",
)
@click.option("--project-id", default=None, help="Project id (IAM password and AK/SK modes).")
@click.option(
    "--project-name",
    default=None,
    help="Project name for IAM password mode (default: the region name).",
)
@click.option(
    "--iam-endpoint",
    default=None,
    help="IAM endpoint URL (default: https://iam.REGION.myhuaweicloud.com).",
)
@click.option(
    "--ca-bundle",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="PEM file of extra CA certificates to trust.",
)
@click.option(
    "--insecure-http",
    is_flag=True,
    help="INSECURE: allow plain http:// to a non-loopback endpoint (CodeArts or IAM).",
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
    "--max-attempts",
    type=click.IntRange(1, 100),
    default=5,
    show_default=True,
    help="Attempts per target for transient failures.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=30.0,
    show_default=True,
    help="Seconds for one stop call.",
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
    "--auth-breaker",
    type=click.IntRange(0, 1000),
    default=5,
    show_default=True,
    help="Abort (exit 3) after this many authentication failures in a row (0: never).",
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
    help="Live progress display on stderr.",
)
@click.option("--log-level", type=click.Choice(LEVELS), default="info", show_default=True)
@click.option(
    "--log-format", type=click.Choice(["console", "json"]), default="console", show_default=True
)
def run_command(log_level: str, **kwargs: Any) -> None:
    """Stop every build listed in INPUT (a .csv, .json or .jsonl file, or - for stdin)."""
    configure_logging(log_level, kwargs["log_format"])
    options = RunOptions(**kwargs)
    if options.retry_failed and not options.resume:
        _fail("--retry-failed needs --resume")
    if options.resume and options.report is None:
        _fail("--resume needs --report PATH (the report of the run to continue)")
    try:
        code = anyio.run(_run_main, options)
    except KeyboardInterrupt:
        # Outside a run's own signal handling (while starting up or finishing): a run that had
        # started left its report as a journal that --resume continues.
        _fail("interrupted", EXIT_INTERRUPTED)
    except BulkstopError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"{exc.filename or 'I/O'}: {exc.strerror or exc}", EXIT_ROWS)
    except BaseExceptionGroup as group:
        matched, _rest = group.split(BulkstopError)
        if matched is None:
            raise
        _fail(str(_first_leaf(matched)))
    sys.exit(code)


def _first_leaf(group: BaseExceptionGroup[Any]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


def _console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Plan:
    """What a run continues from: its input, its report, and an earlier run's results."""

    source: TargetSource
    report_path: Path
    #: held from before the report was read until the run's writer is done with it
    lock: ReportLock
    run_number: int = 1
    append: bool = False
    #: a resume's: the records it carries over from earlier runs
    carried: CarriedRecords | None = None


async def _run_main(options: RunOptions) -> int:
    """Prepare everything that can fail (input, report, credentials), then run."""
    report_path = options.report or default_report_path(utcnow())
    report_format(report_path)  # checks the extension before anything happens
    stdin = sys.stdin.buffer if options.input == "-" else None
    with contextlib.ExitStack() as held:
        if options.resume:
            resume = held.enter_context(
                open_resume(
                    report_path,
                    options.input,
                    input_format=options.input_format,
                    stdin=stdin,
                    retry_failed=options.retry_failed,
                )
            )
            plan = _Plan(
                source=resume.source,
                report_path=report_path,
                lock=resume.lock,
                run_number=resume.plan.run,
                append=True,
                carried=resume.plan.carried,
            )
        else:
            refuse_report_as_input(options.input, stdin, report_path)
            # Locked before the report is looked at, so that no other run writes it meanwhile.
            lock = held.enter_context(ReportLock.acquire(report_path))
            if report_path.exists() and report_path.stat().st_size > 0 and not options.overwrite:
                raise UsageError(
                    f"report {report_path} already exists: add --resume to continue that run, "
                    "--overwrite to replace it, or choose another --report path"
                )
            source = held.enter_context(
                open_source(options.input, options.input_format, stdin=stdin)
            )
            plan = _Plan(source=source, report_path=report_path, lock=lock)
        if options.simulate:
            return await _simulated(options, plan)
        endpoint = resolve_endpoint(options.endpoint, options.region)
        # None: credentials are resolved below, as IAM login needs this client's session
        async with _client(options, endpoint, None) as client:
            credential_options = CredentialOptions(
                token_file=options.token_file,
                project_id=options.project_id,
                project_name=options.project_name,
                region=options.region,
                iam_endpoint=options.iam_endpoint,
                allow_insecure_http=options.insecure_http,
            )
            auth, description = resolve_auth(
                credential_options, os.environ, session=client.session, clock=MonotonicClock()
            )
            redactor.watch(auth.secret_values)
            log.info("auth.source", mode=auth.mode, source=description)
            await auth.prepare()
            client.auth = auth
            return await _execute(options, client, plan)


def _client(options: RunOptions, endpoint: str, auth: Auth | None) -> CodeArtsClient:
    """The CodeArts client the run's options ask for (it vets the endpoint itself)."""
    return CodeArtsClient(
        endpoint,
        auth,
        api=options.api,
        timeout=options.timeout,
        pool_size=options.concurrency,
        ca_bundle=options.ca_bundle,
        allow_insecure_http=options.insecure_http,
    )


async def _simulated(options: RunOptions, plan: _Plan) -> int:
    from bulkstop.simulator import Simulator, SimulatorConfig

    token = secrets.token_hex(16)
    redactor.register([token])
    async with Simulator(SimulatorConfig(token=token, seed=0)) as simulator:
        _console().print(
            f"[bold yellow]SIMULATION[/]: stopping builds on the built-in CodeArts simulator at "
            f"{simulator.url} — no cloud service is contacted, nothing real is stopped."
        )
        async with _client(options, simulator.url, TokenAuth(token)) as client:
            return await _execute(options, client, plan)


async def _execute(options: RunOptions, client: CodeArtsClient, plan: _Plan) -> int:
    source, report_path, run_number, carried = (
        plan.source,
        plan.report_path,
        plan.run_number,
        plan.carried,
    )
    settings = RunSettings(
        concurrency=options.concurrency,
        retry=RetryPolicy(max_attempts=options.max_attempts, deadline=options.deadline),
        max_failures=options.max_failures,
        auth_breaker=options.auth_breaker,
        failing_server_window=options.failing_server_window,
        run=run_number,
    )
    pacer = Pacer(rate=options.rate, burst=options.burst, adaptive=options.adaptive)
    writer = ReportWriter(
        report_path,
        run=run_number,
        append=plan.append,
        overwrite=options.overwrite,
        lock=plan.lock,
        carried=carried,
    )
    stopper = Stopper(client, pacer=pacer, settings=settings, observer=writer)
    log.info(
        "run.start",
        input=source.name,
        report=str(report_path),
        endpoint=str(client.endpoint),
        api=options.api,
        rate=options.rate,
        concurrency=options.concurrency,
        run=run_number,
        carried=0 if carried is None else len(carried),
    )
    console = _console()
    show = options.progress == "always" or (
        options.progress == "auto" and console.is_terminal and options.log_format != "json"
    )
    interrupted = False
    aborted: RunAborted | None = None
    # The source itself, not iter(source): its async reading lets a drain stop reading a pipe.
    run = stopper.run(source, carried=carried)
    with writer:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_watch_signals, run, options.grace)
            try:
                async with run as results:
                    if show:
                        with ProgressDisplay(console, None) as display:
                            async for result in results:
                                _record(writer, result, plan)
                                display.update(run.stats, pacer.rate)
                    else:
                        async for result in results:
                            _record(writer, result, plan)
            except RunAborted as exc:
                aborted = exc
            interrupted = run.stopping and aborted is None
            tg.cancel_scope.cancel()
        # Only a run that reached its end is finalized. If anything escapes (a full disk, an
        # error), leaving the block just closes the report: it stays a journal, with its
        # in-flight sidecar, that --resume continues.
        final_path = writer.finalize()
    _summary(console, run.stats, final_path, pacer, interrupted, options)
    if isinstance(aborted, SystematicFailure):
        return EXIT_USAGE  # the run as asked cannot work: what to change is in the summary
    if aborted is not None:
        return EXIT_ABORTED
    if interrupted:
        return EXIT_INTERRUPTED
    bad = run.stats.done - sum(run.stats.count(o) for o in ACCEPTABLE)
    return EXIT_ROWS if bad else EXIT_OK


def _record(writer: ReportWriter, result: Result, plan: _Plan) -> None:
    if result.outcome is Outcome.INVALID:
        log.warning(
            "input.invalid_row", where=f"{plan.source.name}:{result.line}", problem=result.detail
        )
    writer.write(result)  # a carried record is in the report already: the writer knows


async def _watch_signals(run: StopRun, grace: float) -> None:
    """First SIGINT/SIGTERM: drain, then cancel in-flight calls after ``grace`` s. Second: now.

    Later ones change nothing. The handlers stay installed until the run ends (this task is
    cancelled then), so that pressing Ctrl-C again cannot raise KeyboardInterrupt into the
    writing of the report while every remaining row is reported ``aborted``.
    """
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        count = 0
        async for signum in signals:
            count += 1
            name = signal.Signals(signum).name
            if count == 1:
                click.echo(
                    f"bulkstop: {name}: starting no new stop calls; in-flight calls get {grace:g} s"
                    " to finish (press Ctrl-C again to cancel them now)",
                    err=True,
                )
                run.drain(f"interrupted by {name}")

                async def cancel_later() -> None:
                    await anyio.sleep(grace)
                    run.cancel_in_flight()

                async with anyio.create_task_group() as later:
                    later.start_soon(cancel_later)
                    async for _ in signals:
                        run.cancel_in_flight()
                        later.cancel_scope.cancel()
                        break


def _summary(
    console: Console,
    stats: RunStats,
    report_path: Path,
    pacer: Pacer,
    interrupted: bool,
    options: RunOptions,
) -> None:
    elapsed = (stats.finished or 0.0) - stats.started
    rps = stats.requests / elapsed if elapsed > 0 else 0.0
    counts = ", ".join(
        f"{outcome.value} {stats.count(outcome)}" for outcome in Outcome if stats.count(outcome)
    )
    lines = [
        f"bulkstop: {stats.rows} rows: {counts or 'nothing to do'}",
        f"  {stats.requests} requests in {elapsed:.1f} s ({rps:.1f}/s), {stats.retries} retries,"
        f" {stats.throttled} throttled, final rate {pacer.rate:.1f}/s",
    ]
    if stats.carried_over:
        lines.append(f"  {stats.carried_over} targets carried over from earlier runs")
    lines.append(f"  report: {report_path}")
    aborted = stats.aborted_by
    if isinstance(aborted, SystematicFailure):
        lines.append(f"  ABORTED (the call is wrong): {_diagnosis(aborted, options)}")
    elif aborted is not None:
        kind = "threshold"
        if isinstance(aborted, CredentialsRejected):
            kind = "credentials"
        elif isinstance(aborted, ServerFailing):
            kind = "server failing"
        lines.append(f"  ABORTED ({kind}): {aborted}")
    if interrupted or aborted is not None:
        resume = f"bulkstop run {options.input} --report {report_path} --resume"
        when = ", once the call is fixed" if isinstance(aborted, SystematicFailure) else ""
        lines.append(f"  to continue{when}: {resume}")
    for line in lines:
        click.echo(redactor.scrub(line), err=True)


def _diagnosis(error: SystematicFailure, options: RunOptions) -> str:
    """What the first answers showed, and which option to change."""
    if error.fault is SystematicFault.API_NOT_SERVED:
        others = " or ".join(f"--api {name}" for name in STOP_APIS if name != options.api)
        return (
            f"this endpoint does not serve the {options.api} stop API ({error.evidence});"
            f" try {others}, or check --endpoint"
        )
    change = {
        SystematicFault.DNS: "check --endpoint/--region",
        SystematicFault.REFUSED: "check --endpoint (host and port) and that the service is up",
        SystematicFault.CERTIFICATE: "add the CA that signed it with --ca-bundle PATH",
    }[error.fault]
    return f"{error}: {change}"
