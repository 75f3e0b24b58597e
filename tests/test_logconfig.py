"""The CLI's log redaction: registered and watched secrets never reach a rendered line."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
import structlog

from bulkstop.auth import TokenAuth
from bulkstop.logconfig import Redactor, configure_logging


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def test_redactor_scrubs_registered_and_watched_values() -> None:
    redactor = Redactor()
    current = ["first-token-abcdef"]
    redactor.register(["static-secret-123"])
    redactor.watch(lambda: current)
    event = {"event": "x", "a": "static-secret-123 here", "b": ["first-token-abcdef"], "n": 3}
    assert redactor(None, "info", event) == {
        "event": "x",
        "a": "*** here",
        "b": "['***']",
        "n": 3,
    }
    current[0] = "refreshed-token-987654"  # a token renewed mid-run is redacted too
    assert redactor(None, "info", {"m": "got refreshed-token-987654"}) == {"m": "got ***"}


def test_json_logs_are_one_object_per_line_without_the_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bulkstop import logconfig

    fresh = Redactor()
    monkeypatch.setattr(logconfig, "redactor", fresh)
    stream = io.StringIO()
    configure_logging("debug", "json", stream=stream)
    auth = TokenAuth("tok-SECRET-0123456789abcdef")
    fresh.watch(auth.secret_values)
    header = "X-Auth-Token: tok-SECRET-0123456789abcdef"
    structlog.get_logger("t").info("auth.header", header=header)
    line = stream.getvalue().strip()
    record = json.loads(line)
    assert record["event"] == "auth.header"
    assert record["header"] == "X-Auth-Token: ***"
    assert "tok-SECRET" not in line


def test_other_libraries_warnings_are_json_lines_too() -> None:
    import logging

    from bulkstop import logconfig

    stream = io.StringIO()
    configure_logging("info", "json", stream=stream)
    try:
        logging.getLogger("aiohttp.client").warning("Unclosed %s", "client session")
        logging.getLogger("asyncio").error("Task exception was never retrieved")
        logging.getLogger("aiohttp.client").info("below the handler's level")
    finally:
        logging.getLogger().removeHandler(logconfig._stdlib_handler)
        logging.captureWarnings(False)

    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(e["event"], e["level"], e["logger"]) for e in events] == [
        ("Unclosed client session", "warning", "aiohttp.client"),
        ("Task exception was never retrieved", "error", "asyncio"),
    ]
