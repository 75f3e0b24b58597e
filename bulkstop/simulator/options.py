"""The simulated world's command-line options: one definition for ``bulkstop simulate`` and
for the ``--simulate`` of other commands (``discover --simulate --sim-jobs 10``).

Importing this module loads click and the simulator's configuration classes only, so that a
command's ``--help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from bulkstop.simulator.config import WorldConfig

__all__ = ["WORLD_OPTIONS", "world_config", "world_options"]

F = TypeVar("F", bound=Callable[..., Any])

_RATIO = click.FloatRange(0, 1)


#: The world's options: (flag without "--", parameter name, click.option arguments). One
#: definition for ``bulkstop simulate`` and for the ``--simulate`` of other commands, which
#: take them behind a prefix (:func:`world_options`).
WORLD_OPTIONS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    (
        "project",
        "project_id",
        dict(
            default=None,
            metavar="ID",
            help="The world's CodeArts project id, 32 hex digits (default: derived from --seed).",
        ),
    ),
    (
        "jobs",
        "jobs",
        dict(
            type=click.IntRange(0, 100_000),
            default=50,
            show_default=True,
            help="Jobs in the world's project (0: no world, only the stop model).",
        ),
    ),
    (
        "builds-per-job",
        "builds_per_job",
        dict(
            type=click.IntRange(1, 10_000),
            default=30,
            show_default=True,
            help="Builds each world job has behind it when the simulator starts.",
        ),
    ),
    (
        "running-ratio",
        "running_ratio",
        dict(
            type=_RATIO,
            default=0.3,
            show_default=True,
            help="Share of world jobs with a build running when the simulator starts.",
        ),
    ),
    (
        "older-running-ratio",
        "older_running_ratio",
        dict(
            type=_RATIO,
            default=0.2,
            show_default=True,
            help=(
                "Share of those whose running build is not their last one (the last has finished)."
            ),
        ),
    ),
    (
        "world-forbidden-ratio",
        "world_forbidden_ratio",
        dict(
            type=_RATIO,
            default=0.0,
            show_default=True,
            help="Share of world jobs that are listed but may not be read or stopped (403).",
        ),
    ),
    (
        "build-interval",
        "build_interval",
        dict(
            type=click.FloatRange(min=0.001),
            default=3600.0,
            show_default=True,
            help="Mean seconds between two builds of one world job.",
        ),
    ),
    (
        "min-build-time",
        "min_build_time",
        dict(
            type=click.FloatRange(min=0.001),
            default=60.0,
            show_default=True,
            help="Shortest run of a world build, in seconds.",
        ),
    ),
    (
        "max-build-time",
        "max_build_time",
        dict(
            type=click.FloatRange(min=0.001),
            default=1200.0,
            show_default=True,
            help="Longest run of a world build, in seconds.",
        ),
    ),
    (
        "stop-delay",
        "stop_delay",
        dict(
            type=click.FloatRange(min=0),
            default=2.0,
            show_default=True,
            help="Seconds a stopped world build stays ABORTING (still running) before ABORTED.",
        ),
    ),
    (
        "ignore-stop-ratio",
        "ignore_stop_ratio",
        dict(
            type=_RATIO,
            default=0.05,
            show_default=True,
            help="Share of stop calls of world builds answered 'stopped' that change nothing.",
        ),
    ),
    (
        "timer-job-interval",
        "timer_interval",
        dict(
            type=click.FloatRange(min=0.001),
            default=None,
            metavar="S",
            help="Add a runaway timer job to the world that starts a build every S seconds.",
        ),
    ),
    (
        "timer-build-time",
        "timer_build_time",
        dict(
            type=click.FloatRange(min=0.001),
            default=3600.0,
            show_default=True,
            help="Seconds each build of the runaway timer job runs.",
        ),
    ),
)


def world_options(prefix: str = "") -> Callable[[F], F]:
    """The world's options as a click decorator; with ``prefix`` (``"sim-"``) every flag and
    parameter name carries it (``--sim-jobs``, ``sim_jobs``), for a command whose own options
    would clash (``discover --project``)."""
    under = prefix.replace("-", "_")

    def decorate(function: F) -> F:
        for flag, param, arguments in reversed(WORLD_OPTIONS):
            function = click.option(f"--{prefix}{flag}", f"{under}{param}", **arguments)(function)
        return function

    return decorate


def world_config(values: dict[str, Any], prefix: str = "") -> WorldConfig | None:
    """The :class:`WorldConfig` that :func:`world_options` (with the same ``prefix``) parsed
    into ``values``; ``None`` for ``jobs`` 0. Raises ``ValueError`` naming the option."""
    under = prefix.replace("-", "_")
    return _world({param: values[f"{under}{param}"] for _, param, _ in WORLD_OPTIONS})


def _world(kwargs: dict[str, Any]) -> WorldConfig | None:
    project_id = kwargs["project_id"]
    if kwargs["jobs"] == 0:
        if project_id is not None:
            raise ValueError("--project needs a world: --jobs must be at least 1")
        return None
    if project_id is not None:
        project_id = project_id.strip()
        if len(project_id) != 32 or any(char not in "0123456789abcdef" for char in project_id):
            raise ValueError(
                f"--project {kwargs['project_id']!r}: must be 32 lowercase hexadecimal digits"
            )
    if kwargs["min_build_time"] > kwargs["max_build_time"]:
        raise ValueError("--min-build-time must not exceed --max-build-time")
    return WorldConfig(
        project_id=project_id,
        jobs=kwargs["jobs"],
        builds_per_job=kwargs["builds_per_job"],
        running_ratio=kwargs["running_ratio"],
        older_running_ratio=kwargs["older_running_ratio"],
        forbidden_ratio=kwargs["world_forbidden_ratio"],
        build_interval=kwargs["build_interval"],
        min_build_time=kwargs["min_build_time"],
        max_build_time=kwargs["max_build_time"],
        stop_delay=kwargs["stop_delay"],
        ignore_stop_ratio=kwargs["ignore_stop_ratio"],
        timer_interval=kwargs["timer_interval"],
        timer_build_time=kwargs["timer_build_time"],
    )
