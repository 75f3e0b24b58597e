"""The console's digest of repeated per-row events, on a fake clock."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from fakeclock import FakeClock

from bulkstop.logconfig import Digest, configure_logging, flush_digest


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    yield
    configure_logging("debug", "json", stream=io.StringIO())  # drops the module's digest
    structlog.reset_defaults()


def retry(reason: str = "timeout", *, throttled: bool = False) -> dict[str, Any]:
    return {"event": "stop.retry_scheduled", "reason": reason, "throttled": throttled}


def failed(outcome: str = "failed") -> dict[str, Any]:
    return {"event": "stop.failed", "outcome": outcome}


def feed(digest: Digest, event: dict[str, Any]) -> dict[str, Any] | None:
    """The processor's answer to ``event``: the line it becomes, or ``None`` when dropped."""
    try:
        return dict(digest(None, "info", {**event, "level": "info", "timestamp": "t"}))
    except structlog.DropEvent:
        return None


def test_the_first_event_is_said_at_once_and_the_next_ones_a_second_later() -> None:
    clock = FakeClock()
    digest = Digest(interval=1.0, clock=clock.now)

    assert feed(digest, retry()) == {"event": "retries 1 (timeout 1)", "level": "info",
                                     "timestamp": "t"}  # fmt: skip
    said = []
    for _ in range(4):
        clock.advance(0.25)
        said.append(feed(digest, retry("HTTP 503")))

    # at 0.25, 0.5 and 0.75 s counted and dropped; at 1.0 s the digest of all of them
    assert said[:3] == [None, None, None]
    assert said[3] == {"event": "retries 4 (HTTP 503 4)", "level": "info", "timestamp": "t"}
    assert digest.said == 1.0
    clock.advance(0.75)
    assert feed(digest, failed()) is None
    assert digest.pending


def test_throttling_failures_and_rate_cuts_are_counted_apart() -> None:
    clock = FakeClock()
    digest = Digest(interval=1.0, clock=clock.now)
    digest.said = 0.0  # a digest was just said
    for event in [
        retry("timeout"),
        retry("HTTP 429 APIG.0308", throttled=True),
        retry("HTTP 429 APIG.0308", throttled=True),
        retry("HTTP 503"),
        retry("timeout"),
        failed("not_found"),
        failed("failed"),
        failed("not_found"),
        {"event": "pacing.rate_cut", "rate": 12.5, "previous": 25.0},
    ]:
        assert feed(digest, event) is None
    clock.advance(1.0)

    assert digest.take() == (
        "warning",
        "retries 3 (timeout 2, HTTP 503 1) · throttled 2 · rate cut to 12.5/s"
        " · failed 3 (not_found 2, failed 1)",
    )
    assert not digest.pending
    assert digest.said == 1.0


@pytest.mark.parametrize(
    "event",
    [{"event": "run.start", "rate": 10.0}, {"event": "input.invalid_row", "where": "t.csv:3"}],
)
def test_other_events_pass_untouched(event: dict[str, Any]) -> None:
    digest = Digest(clock=FakeClock().now)

    assert digest(None, "info", dict(event)) == event
    assert not digest.pending


def test_a_flush_says_what_is_pending_only_when_due_or_forced() -> None:
    clock = FakeClock()
    stream = io.StringIO()
    digest = Digest(interval=1.0, clock=clock.now)
    configure_logging("info", "console", stream=stream, digest=digest)
    log = structlog.get_logger("bulkstop.engine")
    log.info("stop.retry_scheduled", reason="timeout", throttled=False)  # said at once: 0.0 s
    log.info("stop.retry_scheduled", reason="timeout", throttled=False)  # counted

    clock.advance(0.5)
    flush_digest()
    assert stream.getvalue().count("retries") == 1  # not due yet
    clock.advance(0.5)
    flush_digest()
    assert stream.getvalue().count("retries 1 (timeout 1)") == 2
    flush_digest(force=True)
    assert stream.getvalue().count("retries") == 2  # nothing pending: nothing said
    log.warning("stop.failed", outcome="rejected")
    flush_digest(force=True)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    assert "failed 1 (rejected 1)" in lines[-1]
    assert "warning" in lines[-1]


def per_row_lines(level: str, fmt: str) -> list[str]:
    stream = io.StringIO()
    configure_logging(level, fmt, stream=stream, digest=Digest(clock=FakeClock().now))
    log = structlog.get_logger("bulkstop.engine")
    for _ in range(5):
        log.info("stop.retry_scheduled", reason="timeout", throttled=False, job_id="j")
        log.warning("stop.failed", outcome="failed", job_id="j")
    flush_digest(force=True)
    return stream.getvalue().splitlines()


def test_the_console_at_info_says_digests_not_rows() -> None:
    lines = per_row_lines("info", "console")

    assert len(lines) == 2  # the first event at once, the rest at the end
    assert "stop.retry_scheduled" not in "".join(lines)
    assert "retries 4 (timeout 4) · failed 5 (failed 5)" in lines[1]


def test_debug_keeps_every_row() -> None:
    lines = per_row_lines("debug", "console")

    assert len(lines) == 10
    assert sum("stop.retry_scheduled" in line for line in lines) == 5


def test_json_logs_keep_every_row_for_machines() -> None:
    events = [json.loads(line)["event"] for line in per_row_lines("info", "json")]

    assert events == ["stop.retry_scheduled", "stop.failed"] * 5
