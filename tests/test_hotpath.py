"""The per-target hot path: what it costs, pinned where a cost is countable (clock reads)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fakeclock import FakeClock
from reportkit import job, result

from bulkstop import Outcome, Pacer, Reply, ReplyKind, RunSettings, Stopper, Target
from bulkstop.report import ReportWriter
from bulkstop.report.encoding import format_time
from bulkstop.report.writer import _write_all
from bulkstop.transport import read_body

pytestmark = pytest.mark.anyio

OK = Reply(kind=ReplyKind.STOPPED, http_status=200, request_id="r-ok")


class CountingClock(FakeClock):
    """A fake clock that counts its reads."""

    def __init__(self, start: float = 0.0) -> None:
        super().__init__(start)
        self.reads = 0

    def now(self) -> float:
        self.reads += 1
        return super().now()


def test_the_writer_reads_its_clock_once_a_line(tmp_path: Path) -> None:
    clock = CountingClock()
    writer = ReportWriter(tmp_path / "r.csv", now=clock.now, call_later=lambda d, f: None)
    opened = clock.reads
    for i in range(10):
        writer.attempting(i + 2, job(i), i + 1)
        writer.write(result(i))
    assert clock.reads - opened == 20  # one per marker, one per record
    writer.finalize()


def test_the_writer_checks_its_intervals_on_that_one_read(tmp_path: Path) -> None:
    clock = CountingClock()
    flushed: list[float] = []
    writer = ReportWriter(
        tmp_path / "r.csv",
        now=clock.now,
        call_later=lambda d, f: flushed.append(d),
        fsync_interval=1.0,
    )
    path = tmp_path / "r.csv"
    header = path.stat().st_size
    writer.write(result(0))  # waits for the timer
    assert path.stat().st_size == header
    clock.advance(0.004)
    writer.write(result(1))  # within the flush interval: still waiting
    assert path.stat().st_size == header
    clock.advance(0.001)
    writer.write(result(2))  # 5 ms after the first: all three go
    assert path.read_text().count("\n") == 4
    assert flushed == [0.005]
    writer.finalize()


def test_the_pacer_takes_the_time_of_an_answer_from_its_caller() -> None:
    clock = CountingClock(start=10.0)
    pacer = Pacer(rate=100.0, clock=clock)
    pacer.on_accepted(9.0, 10.0)
    pacer.on_failed(9.0, 10.0)
    assert clock.reads == 0
    pacer.on_accepted(9.0)  # without one, it reads its clock
    pacer.on_failed(9.0)
    assert clock.reads == 2


class InstantClient:
    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock

    async def stop(self, target: Target) -> Reply:
        await self.clock.sleep(0.25)
        return OK

    async def refresh_credentials(self, generation: int) -> bool:
        return True


async def test_a_target_that_stops_at_once_reads_the_run_clock_twice() -> None:
    # One read to take its start, one when its answer comes; the pacer, its guards and its
    # record use that second one.
    n = 20
    clock = CountingClock()
    client = InstantClient(clock)
    pacer = Pacer(rate=1e9, burst=n, clock=clock)
    stopper = Stopper(client, pacer=pacer, settings=RunSettings(concurrency=4), clock=clock)

    out = []
    async with clock.autojump():
        async with stopper.run([(job(i), i + 1) for i in range(n)]) as results:
            before = clock.reads
            async for record in results:
                out.append(record)
            after = clock.reads
    assert [r.outcome for r in out] == [Outcome.STOPPED] * n
    assert all(r.elapsed_ms == 250 for r in out)
    assert after - before <= 2 * n + 2  # and one or two for the run itself


def test_format_time_writes_every_millisecond_as_isoformat_does() -> None:
    # the fast path (UTC, a second's text made once, a millisecond's tail from a table)
    # against the generic one (a naive time), over every millisecond and across seconds
    base = datetime(2026, 11, 28, 23, 59, 58, tzinfo=UTC)
    for ms in range(2000):
        moment = base + timedelta(milliseconds=ms, microseconds=ms % 1000)
        naive = moment.replace(tzinfo=None)
        assert format_time(moment) == format_time(naive)
        assert format_time(moment) == naive.isoformat(timespec="milliseconds") + "Z"
    assert format_time(base + timedelta(seconds=2)) == "2026-11-29T00:00:00.000Z"


def test_format_time_is_right_going_back_in_time_and_at_the_last_second_there_is() -> None:
    # the cached second is a range of datetimes: a time before it, or one in the last second
    # (which has no next second to end the range), is made afresh
    late = datetime(2026, 11, 29, 0, 0, 1, 500_000, tzinfo=UTC)
    early = datetime(2026, 11, 29, 0, 0, 0, 999_999, tzinfo=UTC)
    for moment in (late, early, late, early - timedelta(days=400)):
        assert format_time(moment) == moment.replace(tzinfo=None).isoformat(
            timespec="milliseconds"
        ) + "Z"
    last = datetime.max.replace(tzinfo=UTC)
    assert format_time(last) == "9999-12-31T23:59:59.999Z"
    assert format_time(last - timedelta(milliseconds=5)) == "9999-12-31T23:59:59.994Z"
    assert format_time(late) == "2026-11-29T00:00:01.500Z"


class Trickle(io.RawIOBase):
    """A file that takes at most three bytes a call, as a full disk or a signal may."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.calls = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self.calls += 1
        taken = bytes(b[:3])
        self.data += taken
        return len(taken)


def test_a_short_write_goes_on_where_it_stopped() -> None:
    stream = Trickle()
    _write_all(stream, b"0123456789")  # type: ignore[arg-type]
    assert bytes(stream.data) == b"0123456789"
    assert stream.calls == 4
    whole = Trickle()
    _write_all(whole, b"012")  # type: ignore[arg-type]
    assert (bytes(whole.data), whole.calls) == (b"012", 1)


class Parts:
    """A response body that comes in ``parts``; its end is known with the last one."""

    def __init__(self, parts: list[bytes]) -> None:
        self.parts = parts
        self.reads = 0

    async def read(self, n: int) -> bytes:
        self.reads += 1
        if not self.parts:
            return b""
        part = self.parts[0][:n]
        rest = self.parts[0][n:]
        if rest:
            self.parts[0] = rest
        else:
            self.parts.pop(0)
        return part

    def at_eof(self) -> bool:
        return not self.parts

    def is_eof(self) -> bool:
        return False  # still arriving: its end is not yet in the buffer


class PartsResponse:
    def __init__(self, parts: list[bytes], headers: dict[str, str] | None = None) -> None:
        self.headers = headers or {}
        self.content = Parts(parts)


@pytest.mark.parametrize(
    ("parts", "reads"),
    [([b'{"result":true}'], 1), ([b'{"res', b'ult":', b"true}"], 3), ([], 1)],
)
async def test_a_body_is_read_without_a_read_to_see_its_end(parts: list[bytes], reads: int) -> None:
    response = PartsResponse(list(parts))
    body = await read_body(response, 100)  # type: ignore[arg-type]
    assert body.data == b"".join(parts)
    assert body.problem == ""
    assert response.content.reads == reads


async def test_a_body_over_its_limit_is_still_refused() -> None:
    response = PartsResponse([b"x" * 60, b"y" * 60])
    body = await read_body(response, 100)  # type: ignore[arg-type]
    assert body.problem == "answer over 100 bytes, not read"
    assert response.content.reads == 2


# -- records made past their named tuple's generated __new__ (one per request or row) -----------


@pytest.mark.parametrize("kind", [ReplyKind.STOPPED, ReplyKind.NOT_STOPPED])
def test_an_answered_reply_is_the_reply_its_keywords_make(kind: ReplyKind) -> None:
    from bulkstop.models import answered_reply

    made = answered_reply(kind, 201, "req-7", 3)
    assert made == Reply(kind=kind, http_status=201, request_id="req-7", credential_generation=3)
    assert type(made) is Reply
    assert made._asdict()["maybe_applied"] is False


@pytest.mark.parametrize("maybe_applied", [False, True])
def test_a_run_s_record_is_the_result_its_keywords_make(maybe_applied: bool) -> None:
    from bulkstop.engine import _Item, _result
    from bulkstop.models import Result

    item = _Item(12, Target("0123456789abcdef0123456789abcdef", 34), maybe_applied=maybe_applied)
    item.attempts = 2
    item.started_at = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    item.started_mono = 1.0
    item.last = Reply(
        kind=ReplyKind.HTTP_ERROR, http_status=500, error_code="CB.1", error_msg="m", request_id="r"
    )
    made = _result(item, Outcome.FAILED, 4, FakeClock(1.25), "why")
    assert made == Result(
        line=12,
        job_id="0123456789abcdef0123456789abcdef",
        build_no="34",
        outcome=Outcome.FAILED,
        http_status=500,
        error_code="CB.1",
        error_msg="m",
        request_id="r",
        attempts=2,
        started_at=item.started_at,
        finished_at=made.finished_at,
        elapsed_ms=250,
        detail="why",
        maybe_applied=maybe_applied,
        run=4,
        verified="",
        build_status="",
    )
    assert type(made) is Result
    assert made.finished_at is not None
