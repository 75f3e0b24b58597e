"""Library logging: nothing on stdout by default; structlog's pipeline once it is configured."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import anyio
import pytest
import structlog
from fakeclock import FakeClock

from bulkstop import Pacer, Reply, ReplyKind, RetryPolicy, RunSettings, Stopper, Target
from bulkstop.log import get_logger

JOB = "f9d6c8466d614a9788e9a0acf6c15f46"
REJECTED = Reply(kind=ReplyKind.HTTP_ERROR, http_status=400, error_code="CB.00060001")


@pytest.fixture(autouse=True)
def unconfigured() -> Iterator[None]:
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


class Rejecting:
    async def stop(self, target: Target) -> Reply:
        return REJECTED

    async def refresh_credentials(self, generation: int) -> bool:
        return False


def run_one_rejected_target() -> None:
    async def main() -> None:
        clock = FakeClock()
        stopper = Stopper(
            Rejecting(),
            pacer=Pacer(rate=100, clock=clock),
            settings=RunSettings(retry=RetryPolicy(max_attempts=1)),
        )
        async with stopper.run([(JOB, 5)]) as results:
            assert [r.outcome.value async for r in results] == ["rejected"]

    anyio.run(main)


def test_an_unconfigured_host_gets_stdlib_records_and_nothing_on_stdout(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="bulkstop"):
        run_one_rejected_target()
    assert capsys.readouterr().out == ""
    records = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
    assert len(records) == 1
    name, level, message = records[0]
    assert (name, level) == ("bulkstop.engine", logging.WARNING)
    assert message.startswith("event='stop.failed' ")
    assert f"job_id='{JOB}'" in message
    assert "outcome='rejected'" in message


def test_below_the_stdlib_level_nothing_is_formatted_or_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = get_logger("bulkstop.engine")
    with caplog.at_level(logging.INFO, logger="bulkstop"):
        log.debug("hidden", a=1)
        log.info("shown", a=2)
        assert not log.is_enabled_for(logging.DEBUG)
        assert log.is_enabled_for(logging.INFO)
    assert [r.getMessage() for r in caplog.records] == ["event='shown' a=2"]


def test_a_host_that_configured_structlog_gets_the_events_there(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with structlog.testing.capture_logs() as events, caplog.at_level(logging.DEBUG, "bulkstop"):
        run_one_rejected_target()
    assert [r for r in caplog.records if r.name.startswith("bulkstop")] == []
    failed = [e for e in events if e["event"] == "stop.failed"]
    assert len(failed) == 1
    assert failed[0]["log_level"] == "warning"
    assert failed[0]["job_id"] == JOB
    assert failed[0]["outcome"] == "rejected"


def test_is_enabled_for_follows_the_structlog_configuration() -> None:
    log = get_logger("bulkstop.simulator.server")
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    assert log.is_enabled_for(logging.INFO)
    assert not log.is_enabled_for(logging.DEBUG)
