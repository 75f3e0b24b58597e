"""The ``bulkstop`` command line: the only place that reads argv, prints, configures logging or
exits.

A thin layer over library calls, one module per command, each imported only when that command
runs or shows its own help::

    bulkstop run        bulkstop.cli.run         over bulkstop.job
    bulkstop discover   bulkstop.cli.discover    over bulkstop.discover
    bulkstop verify     bulkstop.cli.verify      over bulkstop.verifying
    bulkstop status     bulkstop.cli.status      over bulkstop.report.report_status
    bulkstop simulate   bulkstop.simulator.cli   over bulkstop.simulator

The console side (the one-line error, the progress display, the summary, the resume hint) is
:mod:`bulkstop.cli.output`; the exit codes are :class:`bulkstop.errors.ExitCode`.

Shell completion is click's own (``eval "$(_BULKSTOP_COMPLETE=bash_source bulkstop)"``; also
``zsh_source`` and ``fish_source``); completing a command's name imports no command either.

The ``bulkstop`` program (its console script and ``python -m bulkstop``) is :func:`program`,
which runs :func:`main` and leaves out the interpreter's last sweep for reference cycles.

This module imports click and nothing heavy, so that ``bulkstop --help`` and
``bulkstop --version`` start at once: the group knows each command's one-line help without
importing it, and the version is bulkstop's own constant rather than read from the installed
package's metadata.
"""

from __future__ import annotations

import atexit
import gc
import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import click

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

from bulkstop import __version__

__all__ = ["COMMANDS", "LazyCommand", "LazyGroup", "main", "program"]


class LazyCommand(NamedTuple):
    """A command of a :class:`LazyGroup`: where it lives, and its line in the group's help."""

    #: ``"module:attribute"`` of the :class:`click.Command`
    where: str
    #: the first sentence of the command's help, as the group lists it
    summary: str


class LazyGroup(click.Group):
    """A group whose commands are imported when one is run or shows its own help.

    Click's documented way to load subcommands lazily (``list_commands``/``get_command``),
    plus the one thing it does not cover: listing the commands in the group's help, which
    click does by importing every one of them for its short help. Here each
    :class:`LazyCommand` brings its summary along instead.
    """

    def __init__(self, *args: Any, lazy_commands: Mapping[str, LazyCommand], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands)
        self._listing = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        lazy = self.lazy_commands.get(cmd_name)
        if lazy is None:
            return super().get_command(ctx, cmd_name)
        if self._listing:
            # A bare command holding the summary: click shortens its line in the listing
            # exactly as it would the command's own help, and nothing is imported.
            return click.Command(cmd_name, help=lazy.summary)
        module_name, _, attribute = lazy.where.partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{lazy.where} is not a click command")
        return command

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[CompletionItem]:
        """Click's completion of a command name (``_BULKSTOP_COMPLETE``), from the summaries:
        a tab after ``bulkstop`` imports no command. A command's own options are completed
        from the command itself, which click then loads as for a run."""
        self._listing = True
        try:
            return super().shell_complete(ctx, incomplete)
        finally:
            self._listing = False

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Click's "Commands" section, from the summaries of lazy commands."""
        self._listing = True
        try:
            super().format_commands(ctx, formatter)
        finally:
            self._listing = False


#: Every command of ``bulkstop``, imported when used.
COMMANDS: Mapping[str, LazyCommand] = {
    "run": LazyCommand(
        "bulkstop.cli.run:run_command",
        "Stop every build listed in INPUT (a .csv, .json or .jsonl file, or - for stdin).",
    ),
    "discover": LazyCommand(
        "bulkstop.cli.discover:discover_command",
        "List the running builds of jobs or a whole project, as input for bulkstop run.",
    ),
    "verify": LazyCommand(
        "bulkstop.cli.verify:verify_command",
        "Check that the builds a report's run sent stops to have ended; record the verdicts.",
    ),
    "status": LazyCommand(
        "bulkstop.cli.status:status_command",
        "Say what a report says: counts, whether its run finished, what --resume would send.",
    ),
    "simulate": LazyCommand(
        "bulkstop.simulator.cli:simulate_command",
        "Serve the built-in CodeArts Build simulator on 127.0.0.1 until interrupted.",
    ),
}


@click.group(
    cls=LazyGroup,
    lazy_commands=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, package_name="bulkstop")
def main() -> None:
    """Stop many CodeArts Build runs at once, safely, as fast as the server allows."""


def program() -> None:
    """The ``bulkstop`` program: :func:`main`, for a process of its own.

    At exit, CPython looks for reference cycles among every object still alive, most of them
    the modules' own (aiohttp, click, structlog, bulkstop): about 40 ms here, a sixth of a
    one-row run's wall time, paid by every cron run and every process a test starts.
    :func:`gc.freeze`, run as an exit handler, hides those objects from that sweep; the rest
    of the shutdown is as before (the other exit handlers, such as logging's flush, the
    standard streams' flush, the modules' clearing). What it leaves out are the ``__del__``
    methods of objects that only a cycle keeps alive, and bulkstop leaves no file or
    connection to one: it closes its report, its sidecars and its sessions itself.

    Not done by :func:`main`, which a test or a host program may call in a process that goes
    on afterwards.
    """
    atexit.register(gc.freeze)
    main()
