"""Reading what a command wrote on stderr under ``--log-format json``."""

from __future__ import annotations

import json
from typing import Any

import pytest


def json_lines(stderr: str) -> list[dict[str, Any]]:
    """Every line of ``stderr`` as a JSON object; fails on the first that is not one."""
    events = []
    for line in stderr.splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON line: {line!r}")
        assert isinstance(event, dict), line
        assert {"event", "level", "timestamp"} <= set(event), line
        events.append(event)
    assert events, "nothing on stderr"
    return events


def named(events: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [event for event in events if event["event"] == name]
