"""The command's own lines under ``--log-format json``, and click's usage errors among them.

Under ``--log-format json`` every line bulkstop writes on stderr is one JSON object: structlog
renders the log events (:mod:`bulkstop.logconfig`), and :func:`json_line` the lines of the
command itself (its one-line error, the simulation banner, the summary), with the same
``event``, ``level`` and ``timestamp`` keys.

Click prints its own usage errors (a bad option value, an unknown option: exit 2) before the
command runs. :class:`JsonUsageCommand` looks, when one is raised, whether the arguments ask
for JSON logs, and if so raises it again as a :class:`JsonUsageError`, which click shows as
one JSON object. An error in the group's own arguments, before the command's name, is plain
text: there is no command, and so no ``--log-format``, yet.

Imported by ``bulkstop run`` at import time, so it loads click and the standard library only.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import IO, Any

import click

__all__ = ["JsonUsageCommand", "JsonUsageError", "asks_for_json", "json_line"]


def json_line(
    event: str, level: str, fields: Mapping[str, Any], scrub: Callable[[str], str] | None = None
) -> str:
    """One JSON object for a line of the command's own; every string passes ``scrub``."""
    stamp = datetime.now(tz=UTC).isoformat().replace("+00:00", "Z")
    record = {"event": event, "level": level, "timestamp": stamp, **fields}
    return json.dumps(_scrubbed(record, scrub), ensure_ascii=False, default=str)


def _scrubbed(value: Any, scrub: Callable[[str], str] | None) -> Any:
    if scrub is None:
        return value
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, Mapping):
        return {key: _scrubbed(item, scrub) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_scrubbed(item, scrub) for item in value]
    return value


def asks_for_json(args: Sequence[str]) -> bool:
    """Whether a command's arguments set ``--log-format json`` (the last one given counts, as
    for click; nothing after ``--``)."""
    fmt = None
    items = list(args)
    for index, arg in enumerate(items):
        if arg == "--":
            break
        if arg == "--log-format" and index + 1 < len(items):
            fmt = items[index + 1]
        elif arg.startswith("--log-format="):
            fmt = arg.partition("=")[2]
    return fmt == "json"


class JsonUsageError(click.UsageError):
    """A usage error shown as one JSON object (``cli.usage_error``); exits 2 as click's do."""

    def __init__(self, error: click.UsageError) -> None:
        super().__init__(error.format_message(), getattr(error, "ctx", None))
        self.error = error

    def show(self, file: IO[Any] | None = None) -> None:
        fields: dict[str, Any] = {"message": self.error.format_message()}
        if self.ctx is not None:
            fields["usage"] = self.ctx.get_usage()
        fields["exit_code"] = self.exit_code
        click.echo(json_line("cli.usage_error", "error", fields), file=file, err=file is None)


class JsonUsageCommand(click.Command):
    """A command whose usage errors are JSON when its arguments ask for JSON logs."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        given = list(args)
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as error:
            if isinstance(error, JsonUsageError) or not asks_for_json(given):
                raise
            raise JsonUsageError(error) from error
