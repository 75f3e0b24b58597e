"""The options several commands share."""

from __future__ import annotations

from typing import Any

import click
from click.testing import CliRunner

from bulkstop.cli.options import (
    DEFAULT_READ_RATE,
    SIMULATED_READ_RATE,
    read_options,
    simulated_read_rate,
)


def read_rate_of(*args: str) -> float:
    """The read rate a command with the shared read options ends up with."""
    seen: dict[str, Any] = {}

    @click.command()
    @click.option("--simulate", is_flag=True)
    @read_options
    def command(**options: Any) -> None:
        simulated_read_rate(click.get_current_context(), options)
        seen.update(options)

    result = CliRunner().invoke(command, list(args))
    assert result.exit_code == 0, result.output
    return float(seen["read_rate"])


def test_the_simulator_is_read_faster_unless_a_read_rate_is_given() -> None:
    assert read_rate_of() == DEFAULT_READ_RATE
    assert read_rate_of("--simulate") == SIMULATED_READ_RATE
    assert read_rate_of("--simulate", "--read-rate", "2") == 2.0
    assert read_rate_of("--read-rate", "3") == 3.0
