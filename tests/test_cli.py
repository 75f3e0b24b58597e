"""The command line's own surface, in-process: help, version, exit codes (nothing is run)."""

from __future__ import annotations

import importlib

import click
import pytest
from click.testing import CliRunner

import bulkstop
from bulkstop.cli import COMMANDS, main
from bulkstop.errors import ExitCode


def help_text(group: click.Group, *args: str) -> str:
    result = CliRunner().invoke(group, [*args, "--help"], terminal_width=80)
    assert result.exit_code == 0, result.output
    return result.output


def test_run_help_lists_every_exit_code() -> None:
    text = help_text(main, "run")

    epilog = text[text.index("Exit codes:") :]
    listed = [line.split()[0] for line in epilog.splitlines()[1:] if line[2:3].isdigit()]
    assert listed == [str(int(code)) for code in ExitCode]


@pytest.mark.parametrize("width", [60, 80, 100])
def test_the_group_lists_each_command_as_click_would_with_the_command_loaded(width: int) -> None:
    # The same group with every command imported: click then reads each one's own help.
    commands = []
    for lazy in COMMANDS.values():
        module, _, attribute = lazy.where.partition(":")
        commands.append(getattr(importlib.import_module(module), attribute))
    eager = click.Group(
        "main", commands=commands, help=main.help, context_settings=main.context_settings
    )

    def listing(group: click.Group) -> str:
        result = CliRunner().invoke(group, ["--help"], terminal_width=width)
        return result.output[result.output.index("Commands:") :]

    assert listing(main) == listing(eager)


def test_version_is_the_packages() -> None:
    result = CliRunner().invoke(main, ["--version"])

    assert result.exit_code == 0
    assert result.output.strip().endswith(f"version {bulkstop.__version__}")


class Stream:
    """A stand-in for stderr that is a terminal or not."""

    def __init__(self, tty: bool) -> None:
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


@pytest.mark.parametrize(
    ("progress", "log_format", "tty", "environ", "shown"),
    [
        ("never", "console", True, {}, False),
        # every line of JSON logs is JSON: no display, even when asked for
        ("always", "json", True, {}, False),
        ("always", "console", False, {}, True),
        ("auto", "json", True, {}, False),
        ("auto", "console", True, {}, True),
        ("auto", "console", False, {}, False),
        # rich's own variables: it has the last word on what a terminal is
        ("auto", "console", False, {"FORCE_COLOR": "1"}, True),
        ("auto", "console", False, {"TTY_COMPATIBLE": "1"}, True),
        ("auto", "console", True, {"TTY_COMPATIBLE": "0"}, False),
    ],
)
def test_progress_is_shown_where_asked_or_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch,
    progress: str,
    log_format: str,
    tty: bool,
    environ: dict[str, str],
    shown: bool,
) -> None:
    from bulkstop.cli.output import show_progress

    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "NO_COLOR", "TERM"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("sys.stderr", Stream(tty))

    assert show_progress(progress, log_format) is shown


@pytest.mark.parametrize("progress", ["auto", "always"])
def test_quiet_shows_no_progress_display(monkeypatch: pytest.MonkeyPatch, progress: str) -> None:
    from bulkstop.cli.output import show_progress

    monkeypatch.setattr("sys.stderr", Stream(True))

    assert show_progress(progress, "console") is True
    assert show_progress(progress, "console", quiet=True) is False


# --------------------------------------------------------------------------------------------
# Help: every option described; run --help names the credential variables


def every_command() -> list[click.Command]:
    commands = []
    for lazy in COMMANDS.values():
        module, _, attribute = lazy.where.partition(":")
        commands.append(getattr(importlib.import_module(module), attribute))
    return commands


@pytest.mark.parametrize("command", every_command(), ids=lambda command: command.name)
def test_every_option_has_a_description(command: click.Command) -> None:
    options = [param for param in command.params if isinstance(param, click.Option)]
    undescribed = [option.opts[0] for option in options if not (option.help or "").strip()]

    assert options
    assert undescribed == []


def test_run_help_lists_every_credential_variable() -> None:
    from bulkstop import credentials

    text = help_text(main, "run")
    environment = text[text.index("Environment") : text.index("Exit codes:")]
    variables = [
        credentials.TOKEN_VARIABLE,
        *credentials.IAM_VARIABLES,
        credentials._AK,
        credentials._SK,
        credentials._AK_PROJECT,
        credentials._AK_SECURITY_TOKEN,
    ]
    variables += [
        envvar
        for param in every_command()[0].params
        for envvar in ([param.envvar] if isinstance(param.envvar, str) else param.envvar or [])
    ]
    missing = [name for name in variables if name not in environment]

    assert "CODEARTS_ENDPOINT" in variables
    assert missing == []


# --------------------------------------------------------------------------------------------
# Shell completion: click's own, through the lazy group


def complete(words: str, shell: str = "bash") -> list[str]:
    """What ``bulkstop``'s completion answers for ``words`` (the last one being completed)."""
    parts = words.split(" ")
    env = {
        "_BULKSTOP_COMPLETE": f"{shell}_complete",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(parts) - 1),
    }
    result = CliRunner().invoke(main, [], env=env, prog_name="bulkstop")
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


@pytest.mark.e2e  # click asks bash for its version
def test_completion_script_is_clicks_for_bash() -> None:
    result = CliRunner().invoke(
        main, [], env={"_BULKSTOP_COMPLETE": "bash_source"}, prog_name="bulkstop"
    )

    assert result.exit_code == 0
    assert "complete -o nosort -F _bulkstop_completion bulkstop" in result.output


def test_completion_offers_the_commands() -> None:
    assert complete("bulkstop ") == [
        "plain,discover",
        "plain,run",
        "plain,simulate",
        "plain,status",
        "plain,verify",
    ]
    assert complete("bulkstop s") == ["plain,simulate", "plain,status"]


def test_completion_describes_the_commands_for_zsh() -> None:
    lines = complete("bulkstop r", shell="zsh")

    assert lines[:2] == ["plain", "run"]
    assert lines[2].startswith("Stop every build listed in INPUT")


@pytest.mark.parametrize(
    ("words", "offered"),
    [
        ("bulkstop run --summ", ["plain,--summary-json"]),
        ("bulkstop run --log-format ", ["plain,console", "plain,json"]),
        ("bulkstop simulate --throttle-st", ["plain,--throttle-style"]),
    ],
)
def test_completion_offers_a_commands_options_and_choices(words: str, offered: list[str]) -> None:
    assert complete(words) == offered
