"""The ``bulkstop`` command: the only place that reads argv, prints, configures logging or exits.

Exit codes (also in the README):

====  ==========================================================================
0     every valid target ended ``stopped`` or ``not_stopped``
1     some row ended otherwise (failed, rejected, invalid, uncertain, ...)
2     usage or configuration error: nothing was sent
3     the run was aborted on purpose: failure threshold or auth circuit breaker
130   interrupted (SIGINT/SIGTERM): in-flight calls drained, the rest ``aborted``
====  ==========================================================================
"""

from __future__ import annotations

import os
import secrets
import signal
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import anyio
import click
from rich.console import Console

from bulkstop.auth import Auth, TokenAuth
from bulkstop.client import CodeArtsClient, resolve_endpoint
from bulkstop.clock import MonotonicClock, utcnow
from bulkstop.credentials import CredentialOptions, resolve_auth
from bulkstop.engine import RunSettings, RunStats, Stopper, StopRun
from bulkstop.errors import BulkstopError, CredentialsRejected, RunAborted, UsageError
from bulkstop.guards import FailureThreshold
from bulkstop.log import get_logger
from bulkstop.logconfig import LEVELS, configure_logging, redactor
from bulkstop.models import ACCEPTABLE, Outcome, Result, parse_target
from bulkstop.pacing import Pacer
from bulkstop.progress import ProgressDisplay
from bulkstop.report import (
    KeyFingerprint,
    ReportWriter,
    check_report_matches,
    default_report_path,
    load_report,
    plan_resume,
    report_format,
)
from bulkstop.retry import RetryPolicy
from bulkstop.sources import TargetSource, open_source

__all__ = ["main"]

log = get_logger(__name__)

EXIT_OK, EXIT_ROWS, EXIT_USAGE, EXIT_ABORTED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

#: Where ``bulkstop simulate`` reads the secrets it accepts (never from its command line).
_SIM_IAM_PASSWORD_ENV = "BULKSTOP_SIM_IAM_PASSWORD"  # noqa: S105 - a variable name
_SIM_SK_ENV = "BULKSTOP_SIM_SK"


def _fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    click.echo(f"bulkstop: error: {redactor.scrub(message)}", err=True)
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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
    help="INSECURE: allow plain http:// to a non-loopback endpoint.",
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
    run_number: int = 1
    append: bool = False
    carry: dict[tuple[str, str], Result] = field(default_factory=dict)
    maybe_applied: frozenset[tuple[str, str]] = frozenset()


async def _run_main(options: RunOptions) -> int:
    """Prepare everything that can fail (input, report, credentials), then run."""
    report_path = options.report or default_report_path(utcnow())
    report_format(report_path)  # checks the extension before anything happens
    exists = report_path.exists() and report_path.stat().st_size > 0
    if exists and not options.resume and not options.overwrite:
        raise UsageError(
            f"report {report_path} already exists: add --resume to continue that run, "
            "--overwrite to replace it, or choose another --report path"
        )
    stdin = sys.stdin.buffer if options.input == "-" else None
    with open_source(options.input, options.input_format, stdin=stdin) as source:
        plan = _Plan(source=source, report_path=report_path)
        if options.resume and report_path.exists():
            loaded = load_report(report_path)
            if options.input != "-":
                fingerprint = KeyFingerprint.from_keys(_input_keys(options))
                check_report_matches(loaded, fingerprint, report_path, source.name)
            else:
                log.warning(
                    "resume.input_not_checked",
                    report=str(report_path),
                    reason="stdin is read once, so it cannot be compared with the report "
                    "before the run; make sure it is the same input",
                )
            resume = plan_resume(loaded, retry_failed=options.retry_failed)
            plan = _Plan(
                source=source,
                report_path=report_path,
                run_number=loaded.last_run + 1,
                append=True,
                carry=dict(resume.skip),
                maybe_applied=frozenset(resume.maybe_applied),
            )
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


def _input_keys(options: RunOptions) -> Iterator[tuple[str, int]]:
    with open_source(options.input, options.input_format) as again:
        for row in again:
            if row.target is not None:
                yield row.target.key


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
    source, report_path, run_number, carry = (
        plan.source,
        plan.report_path,
        plan.run_number,
        plan.carry,
    )
    settings = RunSettings(
        concurrency=options.concurrency,
        retry=RetryPolicy(max_attempts=options.max_attempts, deadline=options.deadline),
        max_failures=options.max_failures,
        auth_breaker=options.auth_breaker,
        run=run_number,
    )
    pacer = Pacer(rate=options.rate, burst=options.burst, adaptive=options.adaptive)
    writer = ReportWriter(
        report_path, run=run_number, append=plan.append, overwrite=options.overwrite
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
        carried_over=len(carry),
    )
    console = _console()
    show = options.progress == "always" or (
        options.progress == "auto" and console.is_terminal and options.log_format != "json"
    )
    interrupted = False
    aborted: RunAborted | None = None
    # The source itself, not iter(source): its async reading lets a drain stop reading a pipe.
    run = stopper.run(source, carry_over=carry, maybe_applied=plan.maybe_applied)
    with writer:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_watch_signals, run, options.grace)
            try:
                async with run as results:
                    if show:
                        with ProgressDisplay(console, None) as display:
                            async for result in results:
                                _record(writer, result, run_number, source.name)
                                display.update(run.stats, pacer.rate)
                    else:
                        async for result in results:
                            _record(writer, result, run_number, source.name)
            except RunAborted as exc:
                aborted = exc
            interrupted = run.stopping and aborted is None
            tg.cancel_scope.cancel()
        # Only a run that reached its end is finalized. If anything escapes (a full disk, an
        # error), leaving the block just closes the report: it stays a journal, with its
        # in-flight sidecar, that --resume continues.
        final_path = writer.finalize()
    _summary(console, run.stats, final_path, pacer, interrupted, aborted, options)
    if aborted is not None:
        return EXIT_ABORTED
    if interrupted:
        return EXIT_INTERRUPTED
    bad = run.stats.done - sum(run.stats.count(o) for o in ACCEPTABLE)
    return EXIT_ROWS if bad else EXIT_OK


def _record(writer: ReportWriter, result: Result, run_number: int, source_name: str) -> None:
    if result.outcome is Outcome.INVALID:
        log.warning(
            "input.invalid_row", where=f"{source_name}:{result.line}", problem=result.detail
        )
    if result.run == run_number:  # carried-over records are already in the report
        writer.write(result)


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
    aborted: RunAborted | None,
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
    if aborted is not None:
        kind = "credentials" if isinstance(aborted, CredentialsRejected) else "threshold"
        lines.append(f"  ABORTED ({kind}): {aborted}")
    if interrupted or aborted is not None:
        resume = f"bulkstop run {options.input} --report {report_path} --resume"
        lines.append(f"  to continue: {resume}")
    for line in lines:
        click.echo(redactor.scrub(line), err=True)


# -- the simulator --------------------------------------------------------------------------


@main.command("simulate")
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
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--finished-ratio",
    type=click.FloatRange(0, 1),
    default=0.1,
    show_default=True,
    help="Share of builds that already finished (stop answers 'not stopped').",
)
@click.option(
    "--unknown-ratio",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of jobs that do not exist (404).",
)
@click.option(
    "--forbidden-ratio",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of jobs the caller may not touch (403).",
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
@click.option("--throttle-window", type=click.FloatRange(min=0.001), default=1.0, show_default=True)
@click.option(
    "--throttle-style",
    type=click.Choice(["apig429", "cb400", "cb500"]),
    default="apig429",
    show_default=True,
)
@click.option(
    "--throttle-retry-after",
    type=click.Choice(["none", "seconds", "http-date"]),
    default="none",
    show_default=True,
)
@click.option("--fault-500", type=click.FloatRange(0, 1), default=0.0)
@click.option("--fault-502", type=click.FloatRange(0, 1), default=0.0)
@click.option("--fault-503", type=click.FloatRange(0, 1), default=0.0)
@click.option("--fault-reset", type=click.FloatRange(0, 1), default=0.0)
@click.option("--fault-hang", type=click.FloatRange(0, 1), default=0.0)
@click.option("--fault-bad-json", type=click.FloatRange(0, 1), default=0.0)
@click.option(
    "--fault-after-stop",
    type=click.FloatRange(0, 1),
    default=0.0,
    help="Share of faults that happen after the stop took effect.",
)
@click.option("--hang-seconds", type=click.FloatRange(min=0), default=60.0, show_default=True)
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
@click.option("--log-level", type=click.Choice(LEVELS), default="info", show_default=True)
def simulate_command(log_level: str, **kwargs: Any) -> None:
    """Serve the built-in CodeArts Build simulator on 127.0.0.1 until interrupted."""
    from bulkstop.simulator import serve_forever

    configure_logging(log_level, "console")
    try:
        config = simulator_config(**kwargs)
    except ValueError as exc:
        _fail(f"simulate: {exc}")
    port = kwargs["port"]

    def ready(url: str) -> None:
        click.echo(f"bulkstop simulator listening on {url} (stats: {url}/_sim/stats)")
        sys.stdout.flush()

    try:
        anyio.run(serve_forever, config, "127.0.0.1", port, ready)
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        _fail(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}")


def simulator_config(**kwargs: Any) -> Any:
    """Build a SimulatorConfig from the ``simulate`` command's options."""
    from bulkstop.simulator import FaultConfig, SimulatorConfig, ThrottleConfig

    throttle = None
    if kwargs.get("throttle_limit"):
        throttle = ThrottleConfig(
            limit=kwargs["throttle_limit"],
            window=kwargs["throttle_window"],
            style=kwargs["throttle_style"],
            retry_after=kwargs["throttle_retry_after"],
        )
    faults = FaultConfig(
        error_500=kwargs["fault_500"],
        html_502=kwargs["fault_502"],
        unavailable_503=kwargs["fault_503"],
        reset=kwargs["fault_reset"],
        hang=kwargs["fault_hang"],
        bad_json_200=kwargs["fault_bad_json"],
        after_stop=kwargs["fault_after_stop"],
        hang_seconds=kwargs["hang_seconds"],
    )
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
        throttle=throttle,
        faults=faults,
        token_ttl_requests=kwargs["token_ttl"],
        unknown_jobs=frozenset(_job_ids("--unknown-job", kwargs["unknown_jobs"])),
        forbidden_jobs=frozenset(_job_ids("--forbidden-job", kwargs["forbidden_jobs"])),
        finished_builds=frozenset(_builds(kwargs["finished_builds"])),
        iam_user=iam_user,
        iam_password=iam_password,
        iam_domain=iam_domain,
        aksk=aksk,
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
    builds = []
    for value in values:
        job_id, colon, build_no = value.rpartition(":")
        parsed = parse_target(job_id, build_no) if colon else "expected JOB_ID:BUILD_NO"
        if isinstance(parsed, str):
            raise ValueError(f"--finished-build {value!r}: {parsed}")
        builds.append(parsed.key)
    return builds
