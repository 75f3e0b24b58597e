"""``bulkstop status REPORT``: what a report says, read without touching it.

Counts per outcome, whether the run finished or left a journal (a crash, or a run still
going), the targets unsettled or ``uncertain``, what ``--resume`` would send, and the command
that continues (:func:`bulkstop.report.report_status`). ``--json`` prints the same as one JSON
object on stdout.

Its one-line error goes through the console (:func:`bulkstop.cli.output.fail`), on stderr: with
``--json`` it is one JSON object (``cli.error``, with its ``exit_code``) like every other stderr
line under ``--log-format json``, because a caller that asked for JSON parses what it gets and
should not have to tell a status from an error by trying; stdout then stays empty.
"""

from __future__ import annotations

from pathlib import Path

import click

from bulkstop.cli import COMMANDS
from bulkstop.errors import BulkstopError

__all__ = ["status_command"]


@click.command("status", help=COMMANDS["status"].summary)
@click.argument("report", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the status as one JSON object.")
def status_command(report: Path, as_json: bool) -> None:
    import json

    from bulkstop.cli import output
    from bulkstop.errors import ExitCode
    from bulkstop.report import report_status

    output.configure_console(log_format="json" if as_json else "console")
    try:
        status = report_status(report)
    except BulkstopError as exc:
        output.fail(str(exc), exc.exit_code)
    except OSError as exc:
        output.fail(f"{exc.filename or 'I/O'}: {exc.strerror or exc}", ExitCode.ROWS)
    if as_json:
        click.echo(json.dumps(status.as_json(), sort_keys=True))
        return
    counts = ", ".join(f"{outcome.value} {n}" for outcome, n in status.counts.items())
    state = {
        "finished": "finished: the run reached its end",
        "ended early": "ended early (interrupted or aborted); the report is whole",
        "journal": "not finalized: the run crashed; this is its journal",
        "running": f"a run is writing it now: {status.holder}",
    }[status.state]
    lines = [
        f"{report}: {state}",
        f"  runs: {status.runs}; rows: {sum(status.counts.values())}: {counts or 'none'}",
        f"  unsettled (sent or about to be, no answer recorded): {status.unsettled}; uncertain:"
        f" {status.uncertain}",
    ]
    settings = status.settings
    if settings is not None:
        values = settings.values
        where = (
            "the simulator"
            if values.get("simulate")
            else (values.get("endpoint") or f"region {values.get('region')}")
        )
        lines.append(
            f"  recorded: {where}, API {values.get('api')}, rate {values.get('rate')}/s,"
            f" credential {settings.credential or 'none'}"
        )
    if status.resume_sends or not status.finished:
        lines.append(
            f"  --resume would send {status.resume_sends} of its targets (with --retry-failed:"
            f" {status.retry_failed_sends}), and any input rows it has not seen:"
        )
        lines.append(f"    {status.resume_command()}")
    elif status.retry_failed_sends:
        lines.append(
            f"  --resume --retry-failed would send {status.retry_failed_sends} failed or uncertain"
            " targets again:"
        )
        lines.append(f"    {status.resume_command()} --retry-failed")
    for line in lines:
        click.echo(line)
