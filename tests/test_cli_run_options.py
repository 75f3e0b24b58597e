"""``bulkstop run``'s options as click parses them, in-process (nothing is run)."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from bulkstop.cli.run import run_command


def parsed(args: list[str], environ: Mapping[str, str], monkeypatch: pytest.MonkeyPatch) -> dict:
    for name in ("CODEARTS_ENDPOINT", "CODEARTS_REGION", "CODEARTS_API"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    with run_command.make_context("run", ["targets.csv", *args]) as ctx:
        return dict(ctx.params)


@pytest.mark.parametrize(
    ("variable", "option", "value"),
    [
        ("CODEARTS_REGION", "region", "cn-north-4"),
        ("CODEARTS_API", "api", "v1"),
        ("CODEARTS_ENDPOINT", "endpoint", "https://build.example"),
    ],
)
def test_a_connection_option_comes_from_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, option: str, value: str
) -> None:
    assert parsed([], {variable: value}, monkeypatch)[option] == value


@pytest.mark.parametrize(
    ("variable", "args", "option", "value"),
    [
        ("CODEARTS_REGION", ["--region", "cn-east-3"], "region", "cn-east-3"),
        ("CODEARTS_API", ["--api", "v3"], "api", "v3"),
    ],
)
def test_a_flag_wins_over_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, args: list[str], option: str, value: str
) -> None:
    assert (
        parsed(args, {variable: "v1" if option == "api" else "cn-north-1"}, monkeypatch)[option]
        == value
    )


def test_an_unknown_api_in_the_variable_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import click

    with pytest.raises(click.BadParameter, match="v2"):
        parsed([], {"CODEARTS_API": "v2"}, monkeypatch)
