"""``bulkstop verify REPORT``: check that the builds an earlier run sent stops to have ended,
and write the verdicts into its report.

For the targets a crash, an interrupt or an ``uncertain`` answer left open. The report is
locked (:class:`~bulkstop.report.ReportLock`) for the whole check, and each verdict reaches
it with the journal's crash-safety (:mod:`bulkstop.report.verdicts`). The stderr lines are the
console's (:mod:`bulkstop.cli.output`): one JSON object each under ``--log-format json``
(``verify.summary`` with the counts, ``verify.summary_not_ended``, ``verify.unrecorded``, ...),
the errors and the summary only with ``--quiet``. Importing this module loads click only.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from bulkstop.cli import COMMANDS
from bulkstop.cli.jsonlog import JsonUsageCommand
from bulkstop.cli.options import CONNECTION_OPTIONS, connection_options, log_options, read_options
from bulkstop.errors import BulkstopError, ExitCode

if TYPE_CHECKING:
    from bulkstop.report import LoadedReport, ReportLock

__all__ = ["verify_command"]

_EXIT_CODES = (
    "Exit codes:\n\n\b\n"
    "0    every target checked has ended\n"
    "1    some target is still running, or could not be checked\n"
    "2    usage error (no such report, the report is locked by a run)\n"
    "3    aborted: authentication failed again and again (--auth-breaker)"
)
#: Connection options that are the read settings', not the connection's.
_NOT_CONNECTION = frozenset({"max_attempts", "auth_breaker"})


@click.command("verify", cls=JsonUsageCommand, help=COMMANDS["verify"].summary, epilog=_EXIT_CODES)
@click.argument("report", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--verify-timeout",
    type=click.FloatRange(min=0),
    default=120.0,
    show_default=True,
    metavar="SECONDS",
    help="How long a build that is still running is polled for.",
)
@connection_options
@read_options
@log_options
@click.option(
    "--quiet",
    "-q",
    is_flag=True,
    help="Errors and the one-line summary only: no info logs, no list of targets not ended.",
)
def verify_command(log_level: str, log_format: str, quiet: bool, **options: Any) -> None:
    # The help is COMMANDS["verify"].summary, which the group lists without importing this.
    from bulkstop.cli import output
    from bulkstop.logconfig import configure_logging

    configure_logging("error" if quiet else log_level, log_format)
    output.configure_console(log_format=log_format, quiet=quiet)
    try:
        code = _verify(options)
    except KeyboardInterrupt:
        output.fail(
            "interrupted: the verdicts written so far stay in the report", ExitCode.INTERRUPTED
        )
    except BulkstopError as exc:
        output.fail(str(exc), exc.exit_code)
    except OSError as exc:
        output.fail(f"{exc.filename or 'I/O'}: {exc.strerror or exc}", ExitCode.ROWS)
    sys.exit(code)


def _verify(options: dict[str, Any]) -> ExitCode:
    import anyio

    from bulkstop.errors import UsageError
    from bulkstop.report import ReportLock, load_report, report_format

    path: Path = options["report"]
    report_format(path)
    if not path.is_file():
        raise UsageError(f"the report {path} does not exist")
    options, notices = _remembered(options, path)
    with ReportLock.acquire(path) as lock:
        from bulkstop.cli import output

        for notice in notices:  # once the report is this command's
            output.notice("verify.settings", notice)
        loaded = load_report(path)
        return anyio.run(_check, options, loaded, lock)


def _remembered(options: dict[str, Any], path: Path) -> tuple[dict[str, Any], list[str]]:
    """The connection options the report's run recorded, for those not given now: the builds
    to check are where that run stopped them."""
    from bulkstop.cli.resumed import with_remembered
    from bulkstop.errors import UsageError
    from bulkstop.report import read_settings

    remembered = read_settings(path)
    if remembered is not None and remembered.values.get("simulate"):
        raise UsageError(
            f"{path} is the report of a --simulate run: its builds were in a simulator that"
            " ended with the run; verify it with run --simulate --verify instead"
        )
    return with_remembered(click.get_current_context(), options, doing="verifying")


async def _check(options: dict[str, Any], loaded: LoadedReport, lock: ReportLock) -> ExitCode:
    from bulkstop.cli import output
    from bulkstop.cli.verdicts import print_verify_summary
    from bulkstop.connection import ConnectionSettings, connect
    from bulkstop.logconfig import redactor
    from bulkstop.reader import ReadSettings
    from bulkstop.report.verdicts import VerdictJournal
    from bulkstop.retry import RetryPolicy
    from bulkstop.verify import VerifySettings
    from bulkstop.verifying import targets_to_verify, verify_records

    records = list(loaded.latest.values())
    unrecorded = sorted(key for key in loaded.in_flight if key not in loaded.latest)
    if not targets_to_verify(records) and not unrecorded:
        output.say_summary(
            "verify.summary",
            f"verify: {loaded.path}: no sent target left to check",
            report=str(loaded.path),
            targets=0,
            ended=0,
            running=0,
            unknown=0,
            calls=0,
            throttled=0,
            all_ended=True,
        )
        return ExitCode.OK
    connection = ConnectionSettings(
        **{name: options[name] for name in CONNECTION_OPTIONS if name not in _NOT_CONNECTION},
        pool_size=options["read_concurrency"],
    )
    reads = ReadSettings(
        concurrency=options["read_concurrency"],
        rate=options["read_rate"],
        retry=RetryPolicy(max_attempts=options["max_attempts"]),
        auth_breaker=options["auth_breaker"],
    )
    settings = VerifySettings(timeout=options["verify_timeout"], reads=reads)
    async with contextlib.AsyncExitStack() as stack:
        client, auth = await connect(stack, connection)
        redactor.watch(auth.secret_values)
        journal = VerdictJournal(loaded.path, lock=lock, run=loaded.last_run)
        try:
            outcome = await verify_records(
                client, records, journal, settings, unrecorded=unrecorded
            )
        except BaseException:
            journal.close()  # the verdicts written so far stay in the report's journal
            raise
        journal.finish()
    print_verify_summary(outcome)
    if unrecorded:
        output.notice(
            "verify.unrecorded",
            f"verify: {len(unrecorded)} targets were in flight when the run ended and have no"
            " row yet: continue the run with --resume to give them one",
            targets=len(unrecorded),
        )
    if outcome.aborted_by is not None:
        return outcome.aborted_by.exit_code
    return ExitCode.OK if outcome.all_ended else ExitCode.ROWS
